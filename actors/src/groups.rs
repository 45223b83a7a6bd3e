//! Process-group names: the only way actors and the edge find each other.
//!
//! One group per message type (a member of a group only ever receives that group's enum; a
//! wrong-typed message would be dropped silently by ractor_cluster).

/// The master actor(s): `crate::protocol::master::MasterMsg`.
pub const MASTER: &str = "troupe.master";
/// Every worker actor: `crate::protocol::worker::WorkerMsg`.
pub const WORKER: &str = "troupe.worker";
/// The listing service: `crate::protocol::listings::ListingMsg`.
pub const LISTING: &str = "troupe.listing";
/// The user service: `crate::protocol::users::UserMsg`.
pub const USER: &str = "troupe.user";
/// The scheduler: `crate::protocol::tasks::SchedulerMsg`.
pub const SCHEDULER: &str = "troupe.scheduler";
/// The geo-throttle (one per cluster): `crate::protocol::geo::GeoMsg`.
pub const GEO: &str = "troupe.geo";
/// The events service: `crate::protocol::events::EventsMsg`.
pub const EVENTS: &str = "troupe.events";
/// One node-info actor per node process: `crate::protocol::node_info::NodeInfoMsg`.
pub const NODE: &str = "troupe.node";

/// Prefix of the per-name worker groups (`troupe.worker.<name>`).
pub const NAMED_WORKER_PREFIX: &str = "troupe.worker.";

/// Groups that must have a member for the cluster to be ready to serve.
pub const SERVICE_GROUPS: &[&str] = &[MASTER, WORKER, LISTING, USER, SCHEDULER, EVENTS, GEO];

pub fn named_worker(name: &str) -> String {
    format!("{NAMED_WORKER_PREFIX}{name}")
}

/// Every replica of one Raft group (`troupe.raft.listing.0`): `crate::protocol::raft::RaftPeerMsg`.
pub fn raft_replicas(group: &str) -> String {
    format!("troupe.raft.{group}")
}

/// The one replica of a Raft group on a node (`troupe.raft.listing.0@n2`), where Raft messages
/// for it are sent.
pub fn raft_replica_on(group: &str, node: &str) -> String {
    format!("troupe.raft.{group}@{node}")
}
