//! How a data service (listing, user) refuses a request: the caller's input, or its own storage.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ServiceError {
    /// Input that breaks the service's rules; each message names its field.
    #[error("invalid input: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("storage failed: {0}")]
    Storage(String),
}
