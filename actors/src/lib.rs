//! troupe's service actors and the runtime pieces they share.
//!
//! Owns: the protocol (every wire message, in `protocol/`, below all actors), the actors (one
//! module each, with its state and handlers; none imports another actor's module), their wire
//! codec, the durable store, the per-node supervisor and the cluster-wide call helper.
//! Must not touch: HTTP, command-line parsing or process management; those live in `http-edge`
//! and `nodes`.

pub mod codec;
pub mod events;
pub mod geo;
pub mod groups;
pub mod listing;
pub mod master;
pub mod membership;
pub mod node_info;
pub mod paging;
pub mod protocol;
pub mod question;
pub mod raft;
pub mod rpc;
pub mod scheduler;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod time;
pub mod user;
pub mod worker;
