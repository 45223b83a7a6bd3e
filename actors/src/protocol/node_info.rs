//! What a node tells about itself: to the edge (`/cluster`, `/metrics`) and to its peers'
//! liveness pings.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::telemetry::NodeMetrics;
use crate::wire_type;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    /// The cluster listen address.
    pub addr: String,
    pub roles: Vec<String>,
    /// Names of the workers this node runs.
    pub workers: Vec<String>,
}

wire_type!(NodeInfo);

#[derive(RactorClusterMessage)]
pub enum NodeInfoMsg {
    #[rpc]
    Info(RpcReplyPort<NodeInfo>),
    /// This process's store and supervision counters.
    #[rpc]
    Metrics(RpcReplyPort<NodeMetrics>),
}
