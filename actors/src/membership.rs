//! What this process knows about the other nodes: name, cluster address, up/down and since when.
//!
//! Written by the node runtime from ractor_cluster's session events (and its liveness pings);
//! read by the edge for `/cluster` and `/readyz`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::time::now_micros;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub name: String,
    pub addr: String,
    pub up: bool,
    /// Microseconds since the epoch of the last change of `up`.
    pub since: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Membership {
    peers: Arc<RwLock<BTreeMap<String, PeerStatus>>>,
}

impl Membership {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn mark_up(&self, name: &str, addr: &str) {
        self.set(name, Some(addr), true);
    }

    pub fn mark_down(&self, name: &str) {
        self.set(name, None, false);
    }

    fn set(&self, name: &str, addr: Option<&str>, up: bool) {
        let mut peers = self.peers.write().expect("membership lock");
        let entry = peers.entry(name.to_string()).or_insert_with(|| PeerStatus {
            name: name.to_string(),
            addr: String::new(),
            up: !up,
            since: 0,
        });
        if let Some(addr) = addr {
            entry.addr = addr.to_string();
        }
        if entry.up != up {
            entry.up = up;
            entry.since = now_micros();
        }
    }

    pub fn snapshot(&self) -> Vec<PeerStatus> {
        self.peers
            .read()
            .expect("membership lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn any_up(&self) -> bool {
        self.peers
            .read()
            .expect("membership lock")
            .values()
            .any(|p| p.up)
    }
}
