//! What every replicated service shares: replica addresses, commands and their ids, the
//! proposal a Raft entry carries, and the group names.

use serde::{Deserialize, Serialize};

/// A replica's Raft node id: random, made when the group's file is created, so a node that
/// lost its disk comes back as a new replica instead of one that forgot its votes.
pub type ReplicaId = u64;

/// Where a replica lives: the troupe node's name. openraft's `Node` type.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaAddr {
    pub node: String,
}

/// A command's identity, chosen by whoever first sent it (the edge's request id): a command
/// sent again after a leader change is recognised and not applied twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CommandId(pub [u8; 16]);

/// One command as the leader proposes it: everything applying it needs beyond the replicated
/// state (ids, timestamps and random choices are made here, before proposing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command<Op> {
    pub id: CommandId,
    /// The leader's clock when it proposed, microseconds since the epoch.
    pub proposed_at: i64,
    pub op: Op,
}

/// What one Raft entry carries: the commands the leader batched into it (one fsync for many).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal<Op> {
    pub cmds: Vec<Command<Op>>,
}

/// What applying an entry came to: one outcome per command, in order (none for blank and
/// membership entries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcomes<O>(pub Vec<O>);

/// The name of a service's Raft group: the service and its shard (`listing.0`). Splitting a
/// service into shards comes later; the name has room for it now.
pub fn group_name(service: &str, shard: u32) -> String {
    format!("{service}.{shard}")
}

/// The openraft type configuration every group uses, whatever its service: one bound instead
/// of five on everything generic over a group.
pub trait GroupConfig:
    openraft::RaftTypeConfig<
    NodeId = ReplicaId,
    Node = ReplicaAddr,
    Entry = openraft::Entry<Self>,
    SnapshotData = std::io::Cursor<Vec<u8>>,
    Responder = openraft::raft::responder::OneshotResponder<Self>,
>
{
}

impl<C> GroupConfig for C where
    C: openraft::RaftTypeConfig<
        NodeId = ReplicaId,
        Node = ReplicaAddr,
        Entry = openraft::Entry<C>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        Responder = openraft::raft::responder::OneshotResponder<C>,
    >
{
}
