//! Replication: each stateful service as an openraft group whose log, vote and state machine
//! live in one redb file of the node, through the store.
//!
//! Owns: the vocabulary every replicated service shares (`types.rs`), the Raft log and state
//! machine over [`crate::store::Store`], and the transport of Raft messages between replicas
//! over ractor_cluster. Must not touch: any one service's rules (those stay in the service's
//! module, behind [`types::ReplicatedService`]), HTTP, or redb directly.

pub mod network;
pub mod replica;
pub mod types;
