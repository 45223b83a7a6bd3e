//! The conversation between the replicas of one Raft group: openraft's own RPCs, and the hello
//! by which replicas find each other and agree who forms the group.
//!
//! Every payload is an opaque frame (the codec's bytes of a header and an openraft message):
//! ractor drops a field it cannot decode without a word, while a frame is decoded by the
//! replica itself, which can answer that it was not meant for it.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::wire_type;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaftFrame(pub Vec<u8>);

wire_type!(RaftFrame);

#[derive(RactorClusterMessage)]
pub enum RaftPeerMsg {
    #[rpc]
    AppendEntries(RaftFrame, RpcReplyPort<RaftFrame>),
    #[rpc]
    Vote(RaftFrame, RpcReplyPort<RaftFrame>),
    #[rpc]
    InstallSnapshot(RaftFrame, RpcReplyPort<RaftFrame>),
    /// A replica's hello; answered with the receiver's own.
    #[rpc]
    Hello(RaftFrame, RpcReplyPort<RaftFrame>),
    /// From itself: a peer's hello, in answer to its own.
    Heard(RaftFrame),
    /// From itself: say hello, form the group or bring its members up to date.
    Tick,
}
