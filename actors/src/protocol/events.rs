//! The events service's wire messages (seed 001).

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use super::geo::{Geo, GeoAnswer};
use super::page::Page;
use crate::wire_type;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GeoStatus {
    Pending,
    Done,
    /// With the reason.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// UUID v7; the brief calls it `task_id`.
    pub id: String,
    pub name: Option<String>,
    pub status_code: Option<i64>,
    pub ip: String,
    pub created_at: i64,
    pub geo: Option<Geo>,
    pub geo_status: GeoStatus,
}

/// An event as submitted. `status_code` is the integer sent, as text, or the string sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewEvent {
    pub name: Option<String>,
    pub status_code: Option<String>,
    pub ip: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventFilter {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub city_name: Option<String>,
    pub country_name: Option<String>,
    pub iso_code: Option<String>,
    pub status_code: Option<i64>,
    pub page: Page,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum EventError {
    /// field -> why; the JSend `fail` data.
    #[error("invalid event")]
    Invalid(Vec<(String, String)>),
    #[error("{0}")]
    Storage(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventAccepted(pub Result<String, EventError>);
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventLookup(pub Result<Option<Event>, EventError>);
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventPage(pub Result<(Vec<Event>, u64), EventError>);
/// The geo-throttle's answer for an address, relayed to the events actor by its own task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Located {
    pub ip: String,
    /// `None` when the geo-throttle could not be asked (try again later).
    pub answer: Option<GeoAnswer>,
}

/// An event now on disk, whose address can be asked about.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub id: String,
    pub ip: String,
}

wire_type!(
    NewEvent,
    EventFilter,
    EventAccepted,
    EventLookup,
    EventPage,
    Located,
    Stored
);

#[derive(RactorClusterMessage)]
pub enum EventsMsg {
    /// Stores the event; answers its id once it is on disk. Geolocation comes later.
    #[rpc]
    Submit(NewEvent, RpcReplyPort<EventAccepted>),
    #[rpc]
    Get(String, RpcReplyPort<EventLookup>),
    /// Newest first.
    #[rpc]
    Fetch(EventFilter, RpcReplyPort<EventPage>),
    /// From itself: an event is committed; its geolocation may be asked for.
    Stored(Stored),
    /// From itself: an address was located (or could not be asked about).
    Located(Located),
    /// From itself: ask again about addresses still pending.
    Sweep,
}
