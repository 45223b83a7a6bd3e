//! The master's durable job log and its in-memory view of work in flight.

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::time::Instant;

use ractor::ActorId;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::protocol::jobs::JobView;
use crate::store::{Batch, Direction, Schema, Store, StoreError};

/// Every job ever accepted, by id (UUID v7, so key order is submission order).
pub const JOBS: &str = "jobs";
/// Ids of jobs not yet done or failed: what a restarted master must resume.
pub const ACTIVE: &str = "active_jobs";
pub const SCHEMA: Schema = Schema {
    version: 1,
    tables: &[JOBS, ACTIVE],
};

/// The stored form of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub view: JobView,
    pub text: String,
    pub attempts: u32,
}

/// A job handed to a worker and not yet reported back.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub worker: ActorId,
    pub since: Instant,
}

pub struct JobLog {
    store: Store,
    /// Jobs not yet final, with their full record (text included).
    pub active: HashMap<String, JobRecord>,
    /// Active jobs waiting for a worker, oldest first.
    pub queue: VecDeque<String>,
    pub in_flight: HashMap<String, InFlight>,
}

impl JobLog {
    /// Opens the log and loads the jobs a previous instance left unfinished: they all wait for
    /// a worker again (a job that was running may or may not have been written; re-sending it
    /// rewrites the same file).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let store = Store::open(path, SCHEMA)?;
        let mut ids = Vec::new();
        store.visit(
            ACTIVE,
            (Bound::Unbounded, Bound::Unbounded),
            Direction::Forward,
            |k, _| {
                ids.push(String::from_utf8_lossy(k).into_owned());
                true
            },
        )?;
        let mut active = HashMap::new();
        let mut queue = VecDeque::new();
        for id in ids {
            if let Some(record) = load(&store, &id)? {
                queue.push_back(id.clone());
                active.insert(id, record);
            }
        }
        Ok(Self {
            store,
            active,
            queue,
            in_flight: HashMap::new(),
        })
    }

    /// The job as last committed (active jobs from memory, others from disk).
    pub fn view(&self, id: &str) -> Result<Option<JobView>, StoreError> {
        if let Some(r) = self.active.get(id) {
            return Ok(Some(r.view.clone()));
        }
        Ok(load(&self.store, id)?.map(|r| r.view))
    }

    /// Queues a write of `record`; the future resolves when it is on disk.
    pub fn persist(
        &self,
        record: &JobRecord,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let mut batch = Batch::new();
        let id = record.view.job_id.as_bytes().to_vec();
        match codec::encode(record) {
            Ok(bytes) => batch.put(JOBS, id.clone(), bytes),
            Err(e) => tracing::error!(job = %record.view.job_id, "cannot encode job: {e}"),
        }
        if record.view.status.is_final() {
            batch.delete(ACTIVE, id);
        } else {
            batch.put(ACTIVE, id, Vec::new());
        }
        self.store.commit(batch)
    }
}

fn load(store: &Store, id: &str) -> Result<Option<JobRecord>, StoreError> {
    store
        .get(JOBS, id.as_bytes())?
        .map(|bytes| {
            codec::decode(&bytes).map_err(|e| StoreError::Corrupt {
                table: JOBS.into(),
                reason: format!("job {id}: {e}"),
            })
        })
        .transpose()
}
