//! The node-info actor: one per node process, in `troupe.node`. It tells the edge what the
//! node runs (`/cluster`) and answers the liveness pings of its peers.

use ractor::{pg, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::{groups, wire_type};

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
    Metrics(RpcReplyPort<crate::telemetry::NodeMetrics>),
}

pub struct NodeInfoActor;

impl Actor for NodeInfoActor {
    type Msg = NodeInfoMsg;
    type State = NodeInfo;
    type Arguments = NodeInfo;

    async fn pre_start(
        &self,
        myself: ActorRef<NodeInfoMsg>,
        info: NodeInfo,
    ) -> Result<NodeInfo, ActorProcessingErr> {
        pg::join(groups::NODE.into(), vec![myself.get_cell()]);
        Ok(info)
    }

    async fn handle(
        &self,
        _myself: ActorRef<NodeInfoMsg>,
        msg: NodeInfoMsg,
        info: &mut NodeInfo,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeInfoMsg::Info(reply) => {
                let _ = reply.send(info.clone());
            }
            NodeInfoMsg::Metrics(reply) => {
                let _ = reply.send(crate::telemetry::snapshot(&info.name));
            }
        }
        Ok(())
    }
}
