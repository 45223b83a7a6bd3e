//! What travels between actors, and between the edge and actors: every message enum that a
//! process group's members take, and the value types those messages carry, one file per
//! conversation.
//!
//! Owns: wire types only. Must not touch: actors, the store, I/O. A file here imports the
//! codec, the shared value types beside it and nothing else, so every actor (and the edge)
//! builds on this layer and no actor needs another actor's module to talk to it.
//! `tests/tests/layers.rs` holds this, and "no actor module imports another's", against the
//! code.

pub mod events;
pub mod geo;
pub mod jobs;
pub mod listings;
pub mod master;
pub mod node_info;
pub mod page;
pub mod questions;
pub mod raft;
pub mod receipt;
pub mod service_error;
pub mod tasks;
pub mod users;
pub mod worker;
