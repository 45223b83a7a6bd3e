//! The scheduler's tables: tasks by id, and three indexes whose keys end in `start ++ id`, so
//! each one walks in start order. The `SCHEDULED` part of the status index is the due-time
//! index the timers are set from.

use std::future::Future;
use std::ops::Bound;
use std::path::Path;

use crate::codec;
use crate::protocol::tasks::{Task, TaskFilter, TaskPage, TaskStatus};
use crate::store::{key, Batch, Direction, Schema, Store, StoreError};

pub const TASKS: &str = "tasks";
/// `start ++ id`
pub const BY_START: &str = "tasks_by_start";
/// `worker ++ 0x00 ++ start ++ id`
pub const BY_WORKER: &str = "tasks_by_worker";
/// `status code ++ start ++ id`
pub const BY_STATUS: &str = "tasks_by_status";
pub const SCHEMA: Schema = Schema {
    version: 1,
    tables: &[TASKS, BY_START, BY_WORKER, BY_STATUS],
};

pub struct TaskStore {
    store: Store,
}

fn start_id(start: i64, id: &str) -> Vec<u8> {
    [&key::i64(start)[..], id.as_bytes()].concat()
}

fn worker_prefix(worker: &str) -> Vec<u8> {
    [worker.as_bytes(), &[0]].concat()
}

fn index_keys(t: &Task) -> [(&'static str, Vec<u8>); 3] {
    let tail = start_id(t.start, &t.id);
    [
        (BY_START, tail.clone()),
        (BY_WORKER, [worker_prefix(&t.worker), tail.clone()].concat()),
        (BY_STATUS, [vec![t.status.code()], tail].concat()),
    ]
}

/// The ids at the end of index keys (after the 8-byte start).
fn id_of(index_key: &[u8], prefix_len: usize) -> Option<String> {
    String::from_utf8(index_key.get(prefix_len + 8..)?.to_vec()).ok()
}

impl TaskStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            store: Store::open(path, SCHEMA)?,
        })
    }

    pub fn get(&self, id: &str) -> Result<Option<Task>, StoreError> {
        self.store
            .get(TASKS, id.as_bytes())?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// Writes `new` (and moves its index entries from where `old` had them).
    pub fn put(
        &self,
        old: Option<&Task>,
        new: &Task,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let mut batch = Batch::new();
        if let Some(old) = old {
            for (table, k) in index_keys(old) {
                batch.delete(table, k);
            }
        }
        for (table, k) in index_keys(new) {
            batch.put(table, k, Vec::new());
        }
        match codec::encode(new) {
            Ok(bytes) => batch.put(TASKS, new.id.as_bytes().to_vec(), bytes),
            Err(e) => tracing::error!(task = %new.id, "cannot encode task: {e}"),
        }
        self.store.commit(batch)
    }

    pub fn delete(
        &self,
        task: &Task,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let mut batch = Batch::new();
        for (table, k) in index_keys(task) {
            batch.delete(table, k);
        }
        batch.delete(TASKS, task.id.as_bytes().to_vec());
        self.store.commit(batch)
    }

    /// Tasks with `status` whose start is at most `until`, earliest first, up to `limit`.
    pub fn with_status(
        &self,
        status: TaskStatus,
        until: i64,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let lo = vec![status.code()];
        let hi = [
            vec![status.code()],
            key::i64(until.saturating_add(1)).to_vec(),
        ]
        .concat();
        let entries = self.store.scan(
            BY_STATUS,
            (
                Bound::Included(lo.as_slice()),
                Bound::Excluded(hi.as_slice()),
            ),
            Direction::Forward,
            limit,
        )?;
        let ids: Vec<String> = entries.iter().filter_map(|(k, _)| id_of(k, 1)).collect();
        self.load(&ids)
    }

    /// The earliest start among SCHEDULED tasks.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let lo = vec![TaskStatus::Scheduled.code()];
        let hi = vec![TaskStatus::Scheduled.code() + 1];
        let first = self.store.scan(
            BY_STATUS,
            (
                Bound::Included(lo.as_slice()),
                Bound::Excluded(hi.as_slice()),
            ),
            Direction::Forward,
            1,
        )?;
        Ok(first
            .first()
            .and_then(|(k, _)| k.get(1..9))
            .map(|b| (u64::from_be_bytes(b.try_into().expect("8 bytes")) ^ (1 << 63)) as i64))
    }

    /// One page of the tasks matching `filter`, in start order, and how many match in all.
    /// A worker or status filter walks only that part of its index.
    pub fn list(&self, filter: &TaskFilter) -> Result<TaskPage, StoreError> {
        let (table, prefix) = match (&filter.worker, filter.status) {
            (Some(worker), _) => (BY_WORKER, worker_prefix(worker)),
            (None, Some(status)) => (BY_STATUS, vec![status.code()]),
            (None, None) => (BY_START, Vec::new()),
        };
        let lo = [
            prefix.clone(),
            key::i64(filter.from.unwrap_or(i64::MIN)).to_vec(),
        ]
        .concat();
        let hi = match filter.to {
            Some(to) if to < i64::MAX => {
                Bound::Excluded([prefix.clone(), key::i64(to + 1).to_vec()].concat())
            }
            _ => match key::prefix_range(&prefix).1 {
                Some(end) if !prefix.is_empty() => Bound::Excluded(end),
                _ => Bound::Unbounded,
            },
        };
        let hi_ref = match &hi {
            Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
            _ => Bound::Unbounded,
        };
        // Only a worker filter combined with a status needs the records to decide.
        let needs_status_check = filter.worker.is_some() && filter.status.is_some();
        // With no filter the total is the table's length (which redb keeps), so the walk can
        // stop at the end of the page instead of counting every task.
        let unfiltered = filter.worker.is_none()
            && filter.status.is_none()
            && filter.from.is_none()
            && filter.to.is_none();
        let offset = filter.page.offset();
        let size = filter.page.size;
        let mut total = 0u64;
        let mut page_ids = Vec::new();
        let mut failure = None;
        self.store.visit(
            table,
            (Bound::Included(lo.as_slice()), hi_ref),
            Direction::Forward,
            |k, _| {
                let Some(id) = id_of(k, prefix.len()) else {
                    return true;
                };
                if needs_status_check {
                    match self.get(&id) {
                        Ok(Some(t)) if Some(t.status) == filter.status => {}
                        Ok(_) => return true,
                        Err(e) => {
                            failure = Some(e);
                            return false;
                        }
                    }
                }
                if total >= offset && (page_ids.len() as u64) < size {
                    page_ids.push(id);
                }
                total += 1;
                !(unfiltered && page_ids.len() as u64 >= size)
            },
        )?;
        if unfiltered {
            total = self.store.len(BY_START)?;
        }
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(TaskPage {
            tasks: self.load(&page_ids)?,
            total,
        })
    }

    fn load(&self, ids: &[String]) -> Result<Vec<Task>, StoreError> {
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| id.as_bytes().to_vec()).collect();
        self.store
            .get_many(TASKS, &keys)?
            .into_iter()
            .flatten()
            .map(|bytes| decode(&bytes))
            .collect()
    }
}

fn decode(bytes: &[u8]) -> Result<Task, StoreError> {
    codec::decode(bytes).map_err(|e| StoreError::Corrupt {
        table: TASKS.into(),
        reason: e.to_string(),
    })
}
