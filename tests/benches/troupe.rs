//! The troupe benchmark: throughput, latency and memory of a real cluster, next to baselines
//! measured in the same run on the same machine.
//!
//! It starts the release `troupe` binary as `troupe up` would place it (n1 master+scheduler,
//! n2 listing+user+worker-1, n3 events+geo+worker-2, the HTTP edge as its own process, and the
//! geolocation stand-in), then drives each HTTP scenario from a built-in closed-loop load
//! generator (N keep-alive connections, a warm-up, then a fixed measured time; latencies in an
//! HDR histogram). Figures alone say little on a shared machine, so each scenario that has one
//! is compared with a baseline run here and now:
//!
//! - `GET /public-api/listings` (two actor calls across the cluster per request) against a bare
//!   axum server answering a body of the same size: what troupe costs over plain HTTP;
//! - the durable creates against redb committing one write per transaction (one fsync each):
//!   whether troupe's group commit pays;
//! - the ractor RPC floor (an echo actor, locally and over ractor_cluster to another process),
//!   which bounds every cross-node call.
//!
//! Last, on a cluster of its own whose geolocation stand-in stalls 10% of its calls, events
//! arrive at a fixed 200/s (open loop, see `paced.rs`), and the run checks the stand-in's view
//! of our politeness and that every event ends located or failed.
//!
//! It also reports each process's resident memory when idle and its peak under each scenario,
//! and whether the project's targets are met. It prints figures; it passes or fails nothing.
//!
//! `cargo bench -p troupe-tests --bench troupe -- [--quick] [--only S] [--connections N]
//! [--json FILE]`

#[path = "troupe/baselines.rs"]
mod baselines;
#[path = "troupe/cli.rs"]
mod cli;
#[path = "troupe/cluster.rs"]
mod cluster;
#[path = "troupe/echo.rs"]
mod echo;
#[path = "troupe/http.rs"]
mod http;
#[path = "troupe/load.rs"]
mod load;
#[path = "troupe/paced.rs"]
mod paced;
#[path = "troupe/procs.rs"]
mod procs;
#[path = "troupe/report.rs"]
mod report;
#[path = "troupe/rss.rs"]
mod rss;
#[path = "troupe/scheduled.rs"]
mod scheduled;
#[path = "troupe/targets.rs"]
mod targets;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use cli::Options;
use cluster::Cluster;
use load::LoadResult;
use report::{Figures, Report, Row};

pub const IDLE: &str = "idle: cluster ready, before any load";
pub const BARE_AXUM: &str = "baseline: bare axum GET, same body";
pub const LISTINGS_GET: &str = "GET /public-api/listings";
pub const REDB: &str = "baseline: redb, 1 fsync per write";
pub const STORE: &str = "troupe store: group commit, same writes";
pub const USERS_POST: &str = "POST /public-api/users";
pub const LISTINGS_POST: &str = "POST /public-api/listings";
pub const JOBS: &str = "POST /jobs?wait=true";
pub const EVENTS: &str = "POST /event/submit/";
pub const EVENTS_PACED: &str = "POST /event/submit/ at 200/s, API stalling 10% of calls";
pub const SEARCH: &str = "POST /api/v1/json search";
pub const TASKS_POST: &str = "POST /api/tasks";
pub const TASKS_GET: &str = "GET /api/tasks?page_size=10";
pub const TASK_TIMERS: &str = "scheduled task, 10/s: start to SUCCEEDED";

/// Data created before the listings are read: a page of 10 then embeds several users.
const SEED_USERS: u64 = 50;
const SEED_LISTINGS: u64 = 500;

pub fn rpc_name(remote: bool, callers: usize) -> String {
    let place = if remote { "remote" } else { "local" };
    let plural = if callers == 1 { "" } else { "s" };
    format!("RPC echo {place}, {callers} caller{plural}")
}

fn main() -> ExitCode {
    if echo::is_echo_server() {
        return echo::run_echo_server();
    }
    let opts = Options::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(&opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(opts: &Options) -> Result<(), String> {
    procs::clean_up_on_signals();
    let timing = opts.timing();
    let conns = opts.connections as usize;
    eprintln!(
        "{} connections, {:?} warm-up + {:?} measured per scenario, {} CPUs",
        conns,
        timing.warmup,
        timing.measure,
        cpus()
    );
    let mut report = Report::default();
    // First, on a quiet machine: after the cluster scenarios the kernel is still writing back
    // and removing their data (a full run once measured local calls at half their rate).
    rpc_scenarios(opts, &mut report).await?;
    let mut bin = None;
    if needs_cluster(opts) {
        let path = cluster::troupe_bin()?;
        eprintln!("troupe binary: {}, RUST_LOG={}", path.display(), opts.log);
        cluster_scenarios(opts, &path, &mut report).await?;
        bin = Some(path);
    } else if opts.selects(REDB) || opts.selects(STORE) {
        durable_write_rows(opts, &mut report).await?;
    }
    if opts.selects(EVENTS_PACED) {
        let path = match bin.take() {
            Some(path) => path,
            None => cluster::troupe_bin()?,
        };
        paced_events(opts, &path, &mut report).await?;
        bin = Some(path);
    }
    report.targets = targets::evaluate(&report, conns);
    let checked = std::mem::take(&mut report.checks);
    report.targets.extend(checked);
    report.print();
    if let Some(path) = &opts.json {
        report.write_json(path, context(opts, bin.as_deref()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn needs_cluster(opts: &Options) -> bool {
    [
        BARE_AXUM,
        LISTINGS_GET,
        USERS_POST,
        LISTINGS_POST,
        JOBS,
        EVENTS,
        SEARCH,
        TASKS_POST,
        TASKS_GET,
        TASK_TIMERS,
        IDLE,
    ]
    .iter()
    .any(|s| opts.selects(s))
}

async fn cluster_scenarios(opts: &Options, bin: &Path, report: &mut Report) -> Result<(), String> {
    eprintln!("starting the cluster ...");
    let mut cluster = Cluster::start(bin, &opts.log, &[]).await?;
    report.rows.push(Row {
        scenario: IDLE.into(),
        unit: "",
        figures: None,
        rss_mb: cluster.rss_now(),
        versus: None,
    });
    let base = format!("http://{}", cluster.http);
    eprintln!("creating {SEED_USERS} users and {SEED_LISTINGS} listings ...");
    let users = http::seed(&cluster.client, &base, SEED_USERS, SEED_LISTINGS).await?;

    let page_url = format!("{base}/public-api/listings?page_num=1&page_size=10");
    if opts.selects(BARE_AXUM) || opts.selects(LISTINGS_GET) {
        let page = http::fetch_page(&cluster.client, &page_url).await?;
        let axum_url = format!(
            "http://{}/",
            baselines::serve_fixed_json(page.clone()).await?
        );
        let name = format!("{BARE_AXUM} ({} B)", page.len());
        let result = http_load(opts, &name, http::get(axum_url)).await?;
        report
            .rows
            .push(row(&name, "req/s", &result, Vec::new(), None));
    }
    let axum_rate = report
        .rows
        .iter()
        .find(|r| r.scenario.starts_with(BARE_AXUM))
        .map(|r| {
            (
                r.scenario.clone(),
                r.figures.as_ref().map_or(0.0, |f| f.rate),
            )
        });
    cluster_http(
        opts,
        &mut cluster,
        report,
        LISTINGS_GET,
        http::get(page_url),
        axum_rate,
    )
    .await?;

    if opts.selects(REDB) || opts.selects(USERS_POST) || opts.selects(LISTINGS_POST) {
        durable_write_rows(opts, report).await?;
    }
    let redb_rate = report.rate(REDB).map(|r| (REDB.to_string(), r));
    let scenarios: [(&str, http::BuildRequest, _); 7] = [
        (USERS_POST, http::create_user(&base), redb_rate.clone()),
        (LISTINGS_POST, http::create_listing(&base, users), redb_rate),
        (JOBS, http::submit_job_and_wait(&base), None),
        (EVENTS, http::submit_event(&base), None),
        (SEARCH, http::search(&base), None),
        (TASKS_POST, http::create_task(&base), None),
        (
            TASKS_GET,
            http::get(format!("{base}/api/tasks?page_size=10")),
            None,
        ),
    ];
    for (name, build, baseline) in scenarios {
        cluster_http(opts, &mut cluster, report, name, build, baseline).await?;
    }
    if opts.selects(TASK_TIMERS) {
        eprintln!("running {TASK_TIMERS} ...");
        cluster.reset_rss_peaks();
        let result = scheduled::run(&cluster.client, &base).await?;
        cluster.check_alive()?;
        let rss = cluster.rss_peaks();
        report
            .rows
            .push(row(TASK_TIMERS, "tasks/s", &result, rss, None));
    }
    Ok(())
}

/// The geolocation issue's scenario, on a cluster of its own whose stand-in API stalls.
async fn paced_events(opts: &Options, bin: &Path, report: &mut Report) -> Result<(), String> {
    eprintln!("starting a cluster whose geolocation API stalls 10% of its calls ...");
    let mut cluster = Cluster::start(bin, &opts.log, &paced::STUB_ARGS).await?;
    let warmup = opts.timing().warmup;
    let measure = match (opts.duration, opts.quick) {
        (Some(secs), _) => Duration::from_secs_f64(secs.max(0.1)),
        (None, true) => Duration::from_secs(5),
        (None, false) => Duration::from_secs(30),
    };
    eprintln!("running {EVENTS_PACED} for {measure:?}, then waiting for every event to settle ...");
    cluster.reset_rss_peaks();
    let outcome = paced::run(&cluster, warmup, measure).await?;
    cluster.check_alive()?;
    eprintln!("geolocation API stats: {}", outcome.stub_stats);
    let rss = cluster.rss_peaks();
    report
        .rows
        .push(row(EVENTS_PACED, "req/s", &outcome.load, rss, None));
    report.checks.extend(paced::targets(&outcome));
    Ok(())
}

/// Runs one HTTP scenario against the cluster (if selected) and records it with the peak
/// memory of each process during it.
async fn cluster_http(
    opts: &Options,
    cluster: &mut Cluster,
    report: &mut Report,
    name: &str,
    build: http::BuildRequest,
    baseline: Option<(String, f64)>,
) -> Result<(), String> {
    if !opts.selects(name) {
        return Ok(());
    }
    cluster.reset_rss_peaks();
    let result = http_load(opts, name, build).await?;
    cluster.check_alive()?;
    report
        .rows
        .push(row(name, "req/s", &result, cluster.rss_peaks(), baseline));
    Ok(())
}

async fn http_load(
    opts: &Options,
    name: &str,
    build: http::BuildRequest,
) -> Result<LoadResult, String> {
    eprintln!("running {name} ...");
    let clients = http::clients(opts.connections as usize)?;
    Ok(http::run(opts.timing(), clients, build).await)
}

/// The one-fsync-per-write redb baseline, then troupe's store on the same writes against it.
async fn durable_write_rows(opts: &Options, report: &mut Report) -> Result<(), String> {
    let (timing, writers) = (opts.timing(), opts.connections as usize);
    eprintln!("running {REDB} ...");
    let redb = baselines::redb_one_fsync_per_write(timing, writers).await?;
    let redb = row(REDB, "writes/s", &redb, Vec::new(), None);
    let redb_rate = redb.figures.as_ref().map(|f| (REDB.to_string(), f.rate));
    report.rows.push(redb);
    eprintln!("running {STORE} ...");
    let store = baselines::troupe_store_group_commit(timing, writers).await?;
    report
        .rows
        .push(row(STORE, "writes/s", &store, Vec::new(), redb_rate));
    Ok(())
}

async fn rpc_scenarios(opts: &Options, report: &mut Report) -> Result<(), String> {
    let many = opts.connections as usize;
    let wanted = |remote| {
        [1, many]
            .into_iter()
            .any(|n| opts.selects(&rpc_name(remote, n)))
    };
    if wanted(false) {
        let local = echo::spawn_local().await?;
        for callers in [1, many] {
            rpc_one(opts, report, local.clone(), false, callers).await;
        }
        local.stop(None);
    }
    if wanted(true) {
        eprintln!("starting the remote echo server ...");
        let remote = echo::Remote::start().await?;
        for callers in [1, many] {
            rpc_one(opts, report, remote.actor.clone(), true, callers).await;
        }
    }
    Ok(())
}

async fn rpc_one(
    opts: &Options,
    report: &mut Report,
    actor: ractor::ActorRef<echo::EchoMsg>,
    remote: bool,
    callers: usize,
) {
    let name = rpc_name(remote, callers);
    if !opts.selects(&name) {
        return;
    }
    eprintln!("running {name} ...");
    let result = echo::measure(actor, opts.timing(), callers).await;
    report
        .rows
        .push(row(&name, "calls/s", &result, Vec::new(), None));
}

fn row(
    name: &str,
    unit: &'static str,
    result: &LoadResult,
    rss_mb: Vec<(String, f64)>,
    baseline: Option<(String, f64)>,
) -> Row {
    let figures = Figures::from(result);
    let versus = baseline
        .filter(|(_, rate)| *rate > 0.0)
        .map(|(name, rate)| (name, figures.rate / rate));
    Row {
        scenario: name.into(),
        unit,
        figures: Some(figures),
        rss_mb,
        versus,
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn context(opts: &Options, bin: Option<&Path>) -> serde_json::Value {
    let timing = opts.timing();
    json!({
        "connections": opts.connections,
        "warmup_s": timing.warmup.as_secs_f64(),
        "measured_s": timing.measure.as_secs_f64(),
        "cpus": cpus(),
        "troupe_bin": bin.map(|b| b.display().to_string()),
        "seeded": { "users": SEED_USERS, "listings": SEED_LISTINGS },
    })
}
