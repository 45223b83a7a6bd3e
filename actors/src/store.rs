//! The durable store: the only code in troupe that touches redb.
//!
//! One [`Store`] is one redb file owned by one actor. Tables map ordered byte keys to byte values
//! (values are [`crate::codec`] records; keys are built so byte order is the order the actor
//! needs). Writes are [`Batch`]es handed to a group-commit writer thread: it takes every batch
//! that is waiting, applies them in one write transaction and commits once (one fsync), then
//! resolves each batch's future. Callers answer their requests only after that future resolves,
//! so an answered write is on disk.
//!
//! A batch is durable unless built with [`Batch::non_durable`]: a group transaction is fsynced
//! when any batch in it is durable, and otherwise only made visible. redb's commits form one
//! linear history, so a durable commit also persists every non-durable one before it; a crash
//! loses only the non-durable commits after the last durable one, never a commit in between.
//!
//! Reads go through a [`StoreView`], one read transaction: every read from one view sees the
//! same point in time across all tables. A table that was never created reads as empty.
//!
//! Dropping the `Store` stops the writer after it has committed what was queued and closes the
//! file; an actor that is restarted must be fully dropped first (redb refuses a second open).

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, TableError,
};
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
    /// Removes every row of the table; later ops in the same transaction see it empty.
    Clear {
        table: &'static str,
    },
}

impl Op {
    fn table(&self) -> &'static str {
        match self {
            Op::Put { table, .. } | Op::Delete { table, .. } | Op::Clear { table } => table,
        }
    }
}

/// Writes that commit together or not at all.
#[derive(Debug)]
pub struct Batch {
    ops: Vec<Op>,
    durable: bool,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            ops: Vec::new(),
            durable: true,
        }
    }
}

impl Batch {
    /// A batch whose commit future resolves once it is on disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// A batch whose commit future resolves once new reads see it, without waiting for an fsync.
    /// It reaches the disk with the next durable commit (or a clean close); a crash before that
    /// loses it, so use it only for writes that can be redone from something durable.
    pub fn non_durable() -> Self {
        Self {
            ops: Vec::new(),
            durable: false,
        }
    }

    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Empties the table; the batch's later puts land in the emptied table (ops apply in order).
    pub fn clear_table(&mut self, table: &'static str) {
        self.ops.push(Op::Clear { table });
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

/// How to open a store file beyond its schema.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// redb's page cache in bytes; `None` keeps redb's default (1 GiB), which is far more than a
    /// node with many small files wants resident.
    pub cache_bytes: Option<usize>,
}

pub struct Store {
    path: Arc<Path>,
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
        Self::open_with(path, schema, OpenOptions::default())
    }

    /// [`Store::open`] with options.
    pub fn open_with(
        path: &Path,
        schema: Schema,
        options: OpenOptions,
    ) -> Result<Self, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let mut builder = Database::builder();
        if let Some(bytes) = options.cache_bytes {
            builder.set_cache_size(bytes);
        }
        let db = builder.create(path).map_err(|e| open_err(e.to_string()))?;
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
            path: Arc::from(path),
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
        let path = self.path.to_path_buf();
        async move {
            if !queued {
                return Err(StoreError::WriterGone(path));
            }
            committed.await.unwrap_or(Err(StoreError::WriterGone(path)))
        }
    }

    /// A consistent view of every table as of now: later commits are not seen through it.
    /// It holds a redb read transaction, which keeps the pages it sees from being reused: drop
    /// it when done rather than keeping it for long.
    pub fn view(&self) -> Result<StoreView, StoreError> {
        let txn = self.db.begin_read().map_err(|e| io_error(&self.path, e))?;
        Ok(StoreView {
            path: self.path.clone(),
            txn,
        })
    }

    pub fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.view()?.get(table, key)
    }

    /// Values of several keys, read in one transaction (`None` where a key is absent).
    pub fn get_many(
        &self,
        table: &'static str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.view()?.get_many(table, keys)
    }

    /// Up to `limit` entries of `table` within the key range, in the given direction.
    pub fn scan(
        &self,
        table: &'static str,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.view()?.scan(table, range, direction, limit)
    }

    /// Calls `f` for each entry in the range until it returns false; for loads that must not
    /// hold a whole table in memory twice.
    pub fn visit(
        &self,
        table: &'static str,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        direction: Direction,
        f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.view()?.visit(table, range, direction, f)
    }

    /// The greatest key in the table, if any.
    pub fn last_key(&self, table: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        self.view()?.last_key(table)
    }

    pub fn len(&self, table: &'static str) -> Result<u64, StoreError> {
        self.view()?.len(table)
    }
}

/// One point in time of a store, across all its tables (a redb read transaction).
pub struct StoreView {
    path: Arc<Path>,
    txn: ReadTransaction,
}

impl std::fmt::Debug for StoreView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreView")
            .field("path", &self.path)
            .finish()
    }
}

impl StoreView {
    pub fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(t) = self.table(table)? else {
            return Ok(None);
        };
        let found = t.get(key).map_err(|e| self.io(e))?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    /// Values of several keys (`None` where a key is absent).
    pub fn get_many(
        &self,
        table: &'static str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let Some(t) = self.table(table)? else {
            return Ok(vec![None; keys.len()]);
        };
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
        let Some(t) = self.table(table)? else {
            return Ok(());
        };
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
        let Some(t) = self.table(table)? else {
            return Ok(None);
        };
        let last = t.last().map_err(|e| self.io(e))?;
        Ok(last.map(|(k, _)| k.value().to_vec()))
    }

    pub fn len(&self, table: &'static str) -> Result<u64, StoreError> {
        let Some(t) = self.table(table)? else {
            return Ok(0);
        };
        t.len().map_err(|e| self.io(e))
    }

    /// The table as of this view; `None` when it has never been created, which reads as empty
    /// (a table is created by the schema at open or by its first write).
    fn table(&self, name: &'static str) -> Result<Option<BytesTable>, StoreError> {
        match self.txn.open_table(table_def(name)) {
            Ok(t) => Ok(Some(t)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    fn io(&self, e: impl std::fmt::Display) -> StoreError {
        io_error(&self.path, e)
    }
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
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

type BytesTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

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
    let mut txn = db.begin_write().map_err(|e| e.to_string())?;
    // One durable batch makes the whole group durable: its caller waits for the fsync anyway,
    // and the others only gain from it.
    let durable = group.iter().any(|p| p.batch.durable);
    txn.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    })
    .map_err(|e| e.to_string())?;
    {
        // Each table is opened once per transaction, not once per write: a group commit
        // carries many writes to the same few tables.
        let mut open: HashMap<&'static str, redb::Table<'_, &'static [u8], &'static [u8]>> =
            HashMap::new();
        for op in group.iter().flat_map(|p| &p.batch.ops) {
            let name = op.table();
            if let Op::Clear { table } = op {
                // Deleting the table drops its rows without visiting them; it must not be open
                // while deleted, and is reopened (created empty) for the ops that follow.
                open.remove(table);
                txn.delete_table(table_def(table))
                    .map_err(|e| e.to_string())?;
            }
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
                Op::Clear { .. } => {}
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

    const CRASH_CHILD_ENV: &str = "TROUPE_STORE_CRASH_CHILD";

    fn put(store: &Store, durable: bool, key: u64) -> impl std::future::Future<Output = ()> {
        let mut b = if durable {
            Batch::new()
        } else {
            Batch::non_durable()
        };
        b.put("items", key::u64(key), vec![key as u8]);
        let committed = store.commit(b);
        async move { committed.await.unwrap() }
    }

    /// The test runs twice: as the parent it starts this test binary again as the child, which
    /// commits and then dies without closing the file (what kill -9 does to redb), and checks
    /// what the reopened file holds.
    #[test]
    fn a_non_durable_commit_is_persisted_by_a_later_durable_one() {
        if let Some(path) = std::env::var_os(CRASH_CHILD_ENV) {
            let store = Store::open(Path::new(&path), SCHEMA).unwrap();
            futures::executor::block_on(async {
                put(&store, false, 1).await;
                put(&store, true, 2).await;
                put(&store, false, 3).await;
            });
            // Visible before the crash, though only in this process's memory.
            assert_eq!(store.get("items", &key::u64(3)).unwrap(), Some(vec![3]));
            std::process::abort();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "store::tests::a_non_durable_commit_is_persisted_by_a_later_durable_one",
                "--exact",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_ENV, &path)
            .output()
            .unwrap();
        assert!(!child.status.success(), "the child must die, not exit");
        let store = Store::open_with(
            &path,
            SCHEMA,
            OpenOptions {
                cache_bytes: Some(1 << 20),
            },
        )
        .unwrap();
        let has = |k: u64| store.get("items", &key::u64(k)).unwrap().is_some();
        assert!(has(1), "the durable commit after it persisted commit 1");
        assert!(has(2), "a durable commit survives the crash");
        assert!(
            !has(3),
            "nothing durable followed commit 3, so the crash lost it"
        );
    }

    #[tokio::test]
    async fn a_clear_and_puts_commit_as_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb"), SCHEMA).unwrap();
        for k in 0..100 {
            put(&store, true, k).await;
        }
        let before = store.view().unwrap();

        let mut b = Batch::new();
        b.put("items", key::u64(500), vec![0]);
        b.clear_table("items");
        b.put("items", key::u64(7), vec![70]);
        b.put("fresh", b"x".to_vec(), vec![1]);
        // Queued behind it without waiting, so it likely shares the group transaction: a clear
        // erases what came before it, never what comes after.
        let mut after = Batch::non_durable();
        after.put("items", key::u64(8), vec![80]);
        let (first, second) = tokio::join!(store.commit(b), store.commit(after));
        first.unwrap();
        second.unwrap();

        let all = store
            .scan(
                "items",
                (Bound::Unbounded, Bound::Unbounded),
                Direction::Forward,
                usize::MAX,
            )
            .unwrap();
        assert_eq!(
            all,
            vec![
                (key::u64(7).to_vec(), vec![70]),
                (key::u64(8).to_vec(), vec![80])
            ]
        );
        assert_eq!(store.get("fresh", b"x").unwrap(), Some(vec![1]));
        assert_eq!(
            before.len("items").unwrap(),
            100,
            "an older view keeps its rows"
        );

        let mut b = Batch::new();
        b.clear_table("items");
        store.commit(b).await.unwrap();
        assert_eq!(store.len("items").unwrap(), 0);
        assert_eq!(store.last_key("items").unwrap(), None);
    }

    #[tokio::test]
    async fn a_view_sees_every_table_as_of_its_opening() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb"), SCHEMA).unwrap();
        let mut b = Batch::new();
        b.put("items", key::u64(1), vec![1]);
        b.put("other", key::u64(1), vec![1]);
        store.commit(b).await.unwrap();

        let view = store.view().unwrap();
        let mut b = Batch::non_durable();
        b.put("items", key::u64(2), vec![2]);
        b.put("other", key::u64(1), vec![9]);
        b.put("later", key::u64(1), vec![1]);
        store.commit(b).await.unwrap();

        assert_eq!(view.get("items", &key::u64(2)).unwrap(), None);
        assert_eq!(view.get("other", &key::u64(1)).unwrap(), Some(vec![1]));
        assert_eq!(view.len("items").unwrap(), 1);
        assert_eq!(view.get("later", &key::u64(1)).unwrap(), None);
        assert_eq!(
            view.scan(
                "later",
                (Bound::Unbounded, Bound::Unbounded),
                Direction::Forward,
                10
            )
            .unwrap(),
            vec![],
            "a table created after the view reads as empty through it"
        );
        let now = store.view().unwrap();
        assert_eq!(now.get("items", &key::u64(2)).unwrap(), Some(vec![2]));
        assert_eq!(now.get("other", &key::u64(1)).unwrap(), Some(vec![9]));
        assert_eq!(
            now.get_many("later", &[key::u64(1).to_vec(), key::u64(2).to_vec()])
                .unwrap(),
            vec![Some(vec![1]), None]
        );
    }

    #[test]
    fn signed_keys_sort_numerically() {
        let mut v = [5i64, -1, 0, i64::MIN, 42].map(key::i64);
        v.sort();
        assert_eq!(v, [i64::MIN, -1, 0, 5, 42].map(key::i64));
    }
}
