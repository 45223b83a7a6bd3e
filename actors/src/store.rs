//! The durable store: the only code in troupe that touches redb.
//!
//! One [`Store`] is one redb file owned by one actor. Tables map ordered byte keys to byte values
//! (values are [`crate::codec`] records; keys are built so byte order is the order the actor
//! needs). Writes are [`Batch`]es handed to a group-commit writer thread: it takes every batch
//! that is waiting, applies them in one write transaction and commits once (one fsync), then
//! resolves each batch's future. Callers answer their requests only after that future resolves,
//! so an answered write is on disk.
//!
//! Dropping the `Store` stops the writer after it has committed what was queued and closes the
//! file; an actor that is restarted must be fully dropped first (redb refuses a second open).

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::oneshot;

const META: TableDefinition<&str, u64> = TableDefinition::new("__meta");
const SCHEMA_KEY: &str = "schema_version";
/// Batches applied in one transaction at most; bounds the latency a single huge backlog adds.
const MAX_BATCHES_PER_COMMIT: usize = 4096;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error(
        "store {path} has schema version {found}, newer than the {supported} this troupe \
         understands; run a newer troupe or restore an older data dir"
    )]
    NewerSchema {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error("store {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("store writer for {0} has stopped")]
    WriterGone(PathBuf),
    #[error("corrupt record in {table}: {reason}")]
    Corrupt { table: String, reason: String },
}

/// The shape of one store file: its version and the tables it holds.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub version: u64,
    pub tables: &'static [&'static str],
}

#[derive(Debug)]
enum Op {
    Put {
        table: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        table: &'static str,
        key: Vec<u8>,
    },
}

/// Writes that commit together or not at all.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, table: &'static str, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.ops.push(Op::Put {
            table,
            key: key.into(),
            value,
        });
    }

    pub fn delete(&mut self, table: &'static str, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete {
            table,
            key: key.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

struct Pending {
    batch: Batch,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// A key and its value, as stored.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Which way a scan walks its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
}

pub struct Store {
    path: PathBuf,
    db: Arc<Database>,
    to_writer: Option<mpsc::Sender<Pending>>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the store file, creating its tables and checking its schema version.
    pub fn open(path: &Path, schema: Schema) -> Result<Self, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let db = Database::create(path).map_err(|e| open_err(e.to_string()))?;
        let txn = db.begin_write().map_err(|e| open_err(e.to_string()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| open_err(e.to_string()))?;
            let found = meta
                .get(SCHEMA_KEY)
                .map_err(|e| open_err(e.to_string()))?
                .map(|v| v.value());
            match found {
                Some(found) if found > schema.version => {
                    return Err(StoreError::NewerSchema {
                        path: path.to_path_buf(),
                        found,
                        supported: schema.version,
                    })
                }
                Some(found) if found == schema.version => {}
                // Older or absent: this version's tables are a superset, so record the upgrade.
                _ => {
                    meta.insert(SCHEMA_KEY, schema.version)
                        .map_err(|e| open_err(e.to_string()))?;
                }
            }
            for table in schema.tables {
                txn.open_table(table_def(table))
                    .map_err(|e| open_err(e.to_string()))?;
            }
        }
        txn.commit().map_err(|e| open_err(e.to_string()))?;

        let db = Arc::new(db);
        let (to_writer, inbox) = mpsc::channel();
        let writer_db = db.clone();
        let writer_path = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(&writer_db, &writer_path, inbox))
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            db,
            to_writer: Some(to_writer),
            writer: Some(writer),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a batch; the returned future resolves once it is committed to disk.
    pub fn commit(
        &self,
        batch: Batch,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let (done, committed) = oneshot::channel();
        let queued = self
            .to_writer
            .as_ref()
            .map(|tx| tx.send(Pending { batch, done }).is_ok())
            .unwrap_or(false);
        let path = self.path.clone();
        async move {
            if !queued {
                return Err(StoreError::WriterGone(path));
            }
            committed.await.unwrap_or(Err(StoreError::WriterGone(path)))
        }
    }

    pub fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let t = txn.open_table(table_def(table)).map_err(|e| self.io(e))?;
        let found = t.get(key).map_err(|e| self.io(e))?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    /// Values of several keys, read in one transaction (`None` where a key is absent).
    pub fn get_many(
        &self,
        table: &'static str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let t = txn.open_table(table_def(table)).map_err(|e| self.io(e))?;
        keys.iter()
            .map(|k| {
                t.get(k.as_slice())
                    .map(|v| v.map(|v| v.value().to_vec()))
                    .map_err(|e| self.io(e))
            })
            .collect()
    }

    /// Up to `limit` entries of `table` within the key range, in the given direction.
    pub fn scan(
        &self,
        table: &'static str,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        self.visit(table, range, direction, |k, v| {
            if out.len() >= limit {
                return false;
            }
            out.push((k.to_vec(), v.to_vec()));
            true
        })?;
        Ok(out)
    }

    /// Calls `f` for each entry in the range until it returns false; for loads that must not
    /// hold a whole table in memory twice.
    pub fn visit(
        &self,
        table: &'static str,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        direction: Direction,
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let t = txn.open_table(table_def(table)).map_err(|e| self.io(e))?;
        let iter = t.range::<&[u8]>(range).map_err(|e| self.io(e))?;
        let mut step = |entry: Result<_, redb::StorageError>| -> Result<bool, StoreError> {
            let (k, v): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) =
                entry.map_err(|e| self.io(e))?;
            Ok(f(k.value(), v.value()))
        };
        match direction {
            Direction::Forward => {
                for entry in iter {
                    if !step(entry)? {
                        break;
                    }
                }
            }
            Direction::Reverse => {
                for entry in iter.rev() {
                    if !step(entry)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// The greatest key in the table, if any.
    pub fn last_key(&self, table: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let t = txn.open_table(table_def(table)).map_err(|e| self.io(e))?;
        let last = t.last().map_err(|e| self.io(e))?;
        Ok(last.map(|(k, _)| k.value().to_vec()))
    }

    pub fn len(&self, table: &'static str) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let t = txn.open_table(table_def(table)).map_err(|e| self.io(e))?;
        t.len().map_err(|e| self.io(e))
    }

    fn io(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Closing the channel lets the writer commit what is queued and exit; joining it means
        // the file is released when drop returns.
        self.to_writer.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn table_def(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

fn write_loop(db: &Database, path: &Path, inbox: mpsc::Receiver<Pending>) {
    while let Ok(first) = inbox.recv() {
        let mut group = vec![first];
        while group.len() < MAX_BATCHES_PER_COMMIT {
            match inbox.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let applied = apply(db, &group);
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        crate::telemetry::record_commit(&name, group.len(), started.elapsed(), applied.is_ok());
        let result = applied.map_err(|reason| {
            tracing::error!(store = %path.display(), %reason, "group commit failed");
            StoreError::Io {
                path: path.to_path_buf(),
                reason,
            }
        });
        for pending in group {
            let _ = pending.done.send(result.clone());
        }
    }
}

fn apply(db: &Database, group: &[Pending]) -> Result<(), String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        // Each table is opened once per transaction, not once per write: a group commit
        // carries many writes to the same few tables.
        let mut open: HashMap<&'static str, redb::Table<'_, &'static [u8], &'static [u8]>> =
            HashMap::new();
        for op in group.iter().flat_map(|p| &p.batch.ops) {
            let name = match op {
                Op::Put { table, .. } | Op::Delete { table, .. } => *table,
            };
            let t = match open.entry(name) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(txn.open_table(table_def(name)).map_err(|e| e.to_string())?)
                }
            };
            match op {
                Op::Put { key, value, .. } => {
                    t.insert(key.as_slice(), value.as_slice())
                        .map_err(|e| e.to_string())?;
                }
                Op::Delete { key, .. } => {
                    t.remove(key.as_slice()).map_err(|e| e.to_string())?;
                }
            }
        }
    }
    txn.commit().map_err(|e| e.to_string())
}

/// Order-preserving key encodings.
pub mod key {
    /// Big-endian, so byte order is numeric order.
    pub fn u64(n: u64) -> [u8; 8] {
        n.to_be_bytes()
    }

    pub fn to_u64(bytes: &[u8]) -> Option<u64> {
        Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
    }

    /// The range of every key that starts with `prefix`.
    pub fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut end = prefix.to_vec();
        // The next prefix: increment the last byte that is not 0xff; none means unbounded.
        while let Some(last) = end.pop() {
            if last < 0xff {
                end.push(last + 1);
                return (prefix.to_vec(), Some(end));
            }
        }
        (prefix.to_vec(), None)
    }

    /// Sign bit flipped, so negative numbers sort before positive ones.
    pub fn i64(n: i64) -> [u8; 8] {
        ((n as u64) ^ (1 << 63)).to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: Schema = Schema {
        version: 2,
        tables: &["items"],
    };

    #[tokio::test]
    async fn committed_writes_survive_reopen_and_scan_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let store = Store::open(&path, SCHEMA).unwrap();
            let commits: Vec<_> = (0..50u64)
                .map(|i| {
                    let mut b = Batch::new();
                    b.put("items", key::u64(i), vec![i as u8]);
                    store.commit(b)
                })
                .collect();
            for c in commits {
                c.await.unwrap();
            }
            let mut b = Batch::new();
            b.delete("items", key::u64(3));
            store.commit(b).await.unwrap();
        }
        let store = Store::open(&path, SCHEMA).unwrap();
        assert_eq!(store.len("items").unwrap(), 49);
        assert_eq!(store.get("items", &key::u64(3)).unwrap(), None);
        assert_eq!(store.get("items", &key::u64(4)).unwrap(), Some(vec![4]));
        let lo = key::u64(10);
        let newest = store
            .scan(
                "items",
                (Bound::Included(&lo[..]), Bound::Unbounded),
                Direction::Reverse,
                3,
            )
            .unwrap();
        let ids: Vec<u64> = newest
            .iter()
            .map(|(k, _)| key::to_u64(k).unwrap())
            .collect();
        assert_eq!(ids, vec![49, 48, 47]);
        assert_eq!(
            store.last_key("items").unwrap(),
            Some(key::u64(49).to_vec())
        );
    }

    #[test]
    fn refuses_a_file_with_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        drop(Store::open(&path, SCHEMA).unwrap());
        let older = Schema {
            version: 1,
            tables: &["items"],
        };
        let err = Store::open(&path, older).unwrap_err();
        assert!(matches!(
            err,
            StoreError::NewerSchema {
                found: 2,
                supported: 1,
                ..
            }
        ));
        assert!(err.to_string().contains("newer"));
    }

    #[test]
    fn signed_keys_sort_numerically() {
        let mut v = [5i64, -1, 0, i64::MIN, 42].map(key::i64);
        v.sort();
        assert_eq!(v, [i64::MIN, -1, 0, 5, 42].map(key::i64));
    }
}
