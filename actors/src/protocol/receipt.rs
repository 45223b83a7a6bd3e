//! The receipt a reporter waits for.

use serde::{Deserialize, Serialize};

use crate::wire_type;

/// The master's receipt for a worker's report: once a worker holds it, the report has crossed
/// the wire. A one-way message gives no such proof, and a draining node could exit with it
/// still queued in its session.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Received;

wire_type!(Received);
