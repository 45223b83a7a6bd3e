//! The geo-throttle's wire messages.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::wire_type;

/// Where an IP address is, as troupe records it (either upstream shape maps to this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geo {
    pub city: Option<String>,
    pub country_name: Option<String>,
    pub iso_code: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub time_zone: Option<String>,
}

/// A location, or why there is none. `retryable` failures (the budget ran out of tries) may be
/// asked again later; the others are final answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoAnswer(pub Result<Geo, GeoFailure>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeoFailure {
    pub reason: String,
    pub retryable: bool,
}

/// What the throttle has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeoStats {
    /// Calls made to the upstream API (each retry counts).
    pub upstream_calls: u64,
    /// Of which answered 429.
    pub rate_limited: u64,
    pub cache_hits: u64,
    /// Requests that joined a lookup already in flight for the same address.
    pub joined: u64,
    /// Answered without the upstream (private, loopback, reserved).
    pub local: u64,
}

/// The pump's report that a lookup finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fetched {
    pub ip: String,
    pub answer: GeoAnswer,
    pub calls: u64,
    pub rate_limited: u64,
}

wire_type!(GeoAnswer, GeoStats, Fetched);

#[derive(RactorClusterMessage)]
pub enum GeoMsg {
    /// Where is this address? Answers when known (possibly much later: the budget is small).
    #[rpc]
    Locate(String, RpcReplyPort<GeoAnswer>),
    #[rpc]
    Stats(RpcReplyPort<GeoStats>),
    /// From the pump: a lookup is done.
    Fetched(Fetched),
}
