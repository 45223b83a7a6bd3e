//! Baselines measured in the same run on the same machine: what the hardware and libraries give
//! without troupe in the way.
//!
//! - a bare axum server answering a fixed JSON body (the size of a real listings page): the
//!   ceiling of an HTTP GET through this stack and this load generator;
//! - redb committing every write in its own transaction (one fsync each), writers serialized by
//!   redb: what a durable write costs without batching (and, next to it, the same writes
//!   through troupe's group-committing store).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;
use axum::Router;
use redb::{Database, TableDefinition};

use crate::cli::Timing;
use crate::load::{self, LoadResult};
use crate::procs::TempDir;

/// Serves `body` as JSON at `/` from this process until the runtime ends.
pub async fn serve_fixed_json(body: Bytes) -> Result<SocketAddr, String> {
    let app = Router::new().route(
        "/",
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind the bare axum server: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");

/// Bytes of each baseline write: about one user or listing record.
const RECORD_BYTES: usize = 96;

/// `concurrency` writers, each commit its own transaction (redb's default durability: fsync).
pub async fn redb_one_fsync_per_write(
    timing: Timing,
    concurrency: usize,
) -> Result<LoadResult, String> {
    let dir = TempDir::new("troupe-bench-redb-")?;
    let db = Database::create(dir.path().join("baseline.redb"))
        .map_err(|e| format!("cannot create the baseline redb: {e}"))?;
    let db = Arc::new(db);
    let result = load::drive(timing, concurrency, move |_, seq| {
        let db = db.clone();
        async move {
            tokio::task::spawn_blocking(move || commit_one(&db, seq))
                .await
                .map_err(|e| e.to_string())?
        }
    })
    .await;
    Ok(result)
}

/// The same writes through troupe's own store (`troupe_actors::store`): `concurrency` writers,
/// each waiting for its write's commit, which the store's writer thread groups. Not a
/// baseline but the durable-write ceiling the services sit on, without HTTP or actor calls.
pub async fn troupe_store_group_commit(
    timing: Timing,
    concurrency: usize,
) -> Result<LoadResult, String> {
    use troupe_actors::store::{Batch, Schema, Store};
    const TABLE: &str = "records";
    let dir = TempDir::new("troupe-bench-store-")?;
    let store = Store::open(
        &dir.path().join("store.redb"),
        Schema {
            version: 1,
            tables: &[TABLE],
        },
    )
    .map_err(|e| format!("cannot open the store: {e}"))?;
    let store = Arc::new(store);
    let result = load::drive(timing, concurrency, move |_, seq| {
        let mut batch = Batch::new();
        batch.put(
            TABLE,
            seq.to_be_bytes().to_vec(),
            vec![0x5a_u8; RECORD_BYTES],
        );
        let committed = store.commit(batch);
        async move { committed.await.map_err(|e| e.to_string()) }
    })
    .await;
    Ok(result)
}

fn commit_one(db: &Database, key: u64) -> Result<(), String> {
    let value = [0x5a_u8; RECORD_BYTES];
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(RECORDS).map_err(|e| e.to_string())?;
        table
            .insert(key, value.as_slice())
            .map_err(|e| e.to_string())?;
    }
    txn.commit().map_err(|e| e.to_string())
}
