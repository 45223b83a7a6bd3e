//! The user service's wire messages (seed 002).

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use super::page::Page;
use super::service_error::ServiceError;
use crate::wire_type;

/// A user as the brief defines it; timestamps in microseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A create request as received; `None` when the field was not sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewUser {
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserCreated(pub Result<User, ServiceError>);
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserLookup(pub Result<Option<User>, ServiceError>);
/// Users found for a set of ids (missing ids are simply absent).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserSet(pub Result<Vec<User>, ServiceError>);
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserIds(pub Vec<u64>);
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserPage(pub Result<Vec<User>, ServiceError>);

wire_type!(NewUser, UserCreated, UserLookup, UserSet, UserIds, UserPage);

#[derive(RactorClusterMessage)]
pub enum UserMsg {
    #[rpc]
    Create(NewUser, RpcReplyPort<UserCreated>),
    #[rpc]
    Get(u64, RpcReplyPort<UserLookup>),
    /// Many users in one message: what a page of public listings needs.
    #[rpc]
    GetMany(UserIds, RpcReplyPort<UserSet>),
    /// Newest first.
    #[rpc]
    List(Page, RpcReplyPort<UserPage>),
}
