//! The listing service's wire messages (seed 002).

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use super::page::Page;
use super::service_error::ServiceError;
use crate::wire_type;

/// A listing as the brief defines it; timestamps in microseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub id: u64,
    pub user_id: u64,
    pub listing_type: String,
    pub price: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A create request as received; `None` when the field was not sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewListing {
    pub user_id: Option<i64>,
    pub listing_type: Option<String>,
    pub price: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListingQuery {
    pub page: Page,
    pub user_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListingCreated(pub Result<Listing, ServiceError>);
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListingPage(pub Result<Vec<Listing>, ServiceError>);

wire_type!(NewListing, ListingQuery, ListingCreated, ListingPage);

#[derive(RactorClusterMessage)]
pub enum ListingMsg {
    #[rpc]
    Create(NewListing, RpcReplyPort<ListingCreated>),
    /// Newest first, optionally one user's only.
    #[rpc]
    List(ListingQuery, RpcReplyPort<ListingPage>),
}
