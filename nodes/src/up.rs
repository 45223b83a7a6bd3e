//! `troupe up`: a whole local cluster as child processes of this one.
//!
//! Children run in their own process group, so a terminal's Ctrl-C reaches only this process;
//! it then stops the edge first (no new requests), then the nodes from last to first (workers
//! drain while the master still records their reports). A child that dies later is started
//! again with the same arguments and data dir (`--restart on-failure`, the default; backoff and
//! limit in `restart.rs`), each restart logged; `--restart never` only reports it. While the
//! cluster is starting (until the edge reports it ready), a child that exits stops the whole
//! cluster with an error naming it: that is a configuration to fix, not a crash to retry, and a
//! cluster missing a process would otherwise look as if it were running.
//!
//! Children's output passes through this process, each line prefixed with the child's name,
//! so that interleaved logs stay readable and the last lines of a child that died can be
//! quoted when reporting it. One thread writes them to stderr: a reader that stops reading
//! (`troupe up 2>&1 | less`, paused) then holds up that thread and, once its queue is full, the
//! forwarders waiting for room, but never the runtime's threads, which must stay free to act
//! on Ctrl-C.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::UpArgs;
use crate::restart::{Restarts, Verdict, WINDOW};
use crate::signals;

/// What one node of the local cluster runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    pub name: String,
    pub roles: Vec<String>,
    pub workers: Vec<String>,
}

/// The spread of roles: the master and the scheduler on n1, listing and user on n2, events and
/// the geo-throttle on n3 (the last node when there are fewer), workers on every node but n1
/// (on n1 too when it is alone), worker names dealt out in turn.
pub fn plan(nodes: u16, worker_names: &[String]) -> Vec<NodePlan> {
    let nodes = nodes.max(1) as usize;
    let worker_nodes: Vec<usize> = if nodes == 1 {
        vec![0]
    } else {
        (1..nodes).collect()
    };
    let names: Vec<String> = if worker_names.is_empty() {
        (1..=worker_nodes.len())
            .map(|i| format!("worker-{i}"))
            .collect()
    } else {
        worker_names.to_vec()
    };
    let mut plans: Vec<NodePlan> = (0..nodes)
        .map(|i| NodePlan {
            name: format!("n{}", i + 1),
            roles: Vec::new(),
            workers: Vec::new(),
        })
        .collect();
    plans[0].roles.push("master".into());
    plans[0].roles.push("scheduler".into());
    let data_node = 1.min(nodes - 1);
    plans[data_node].roles.push("listing".into());
    plans[data_node].roles.push("user".into());
    let events_node = 2.min(nodes - 1);
    plans[events_node].roles.push("events".into());
    plans[events_node].roles.push("geo".into());
    for (i, name) in names.into_iter().enumerate() {
        plans[worker_nodes[i % worker_nodes.len()]]
            .workers
            .push(name);
    }
    for p in &mut plans {
        if !p.workers.is_empty() {
            p.roles.push("worker".into());
        }
    }
    plans
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

pub async fn run(args: UpArgs) -> Result<ExitCode, String> {
    let echo = Echo::start();
    let outcome = run_cluster(args, &echo).await;
    // Lines still queued would be lost when the process exits; a reader that stopped reading
    // must not keep it from exiting, though.
    let _ = tokio::time::timeout(Duration::from_secs(2), echo.flushed()).await;
    outcome
}

async fn run_cluster(args: UpArgs, echo: &Echo) -> Result<ExitCode, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let cookie = uuid::Uuid::new_v4().simple().to_string();
    let internal = args
        .internal_http
        .unwrap_or_else(|| SocketAddr::new(args.http.ip(), args.http.port().wrapping_add(1)));
    let plans = plan(args.nodes, &args.worker_names);
    let mut addrs = Vec::new();
    for i in 0..plans.len() {
        let port = match args.cluster_port_base {
            Some(base) => base
                .checked_add(i as u16)
                .ok_or("--cluster-port-base is too high")?,
            None => free_port()?,
        };
        addrs.push(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    std::fs::create_dir_all(&args.data)
        .map_err(|e| format!("cannot create {}: {e}", args.data.display()))?;

    let deadline = format!("{}ms", args.shutdown_deadline.as_millis());
    // The stand-in geolocation API, unless a real one was named: the cluster needs nothing
    // from outside.
    let launcher = Launcher {
        exe,
        cookie,
        echo,
        restarts: Restarts::new(args.restart, args.restart_limit),
    };
    let (geo_url, stub) = match &args.geo_url {
        Some(url) => (url.clone(), None),
        None => {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let mut cmd = Recipe::default();
            cmd.arg("geoip-stub").args(["--http", &addr.to_string()]);
            (
                format!("http://{addr}"),
                Some(launcher.start("geoip-stub", cmd)?),
            )
        }
    };
    let mut procs: Vec<Proc> = stub.into_iter().collect();
    for (i, p) in plans.iter().enumerate() {
        let mut cmd = Recipe::default();
        cmd.arg("node")
            .args(["--name", &p.name])
            .args(["--cluster", &addrs[i].to_string()])
            .args(["--roles", &p.roles.join(",")])
            .args(["--data", &node_dir(&args.data, &p.name)])
            .args(["--shutdown-deadline", &deadline]);
        if !p.workers.is_empty() {
            cmd.args(["--workers", &p.workers.join(",")]);
            if let Some(delay) = args.question_delay {
                cmd.args(["--question-delay", &format!("{}ms", delay.as_millis())]);
            }
            if let Some(dir) = &args.dictionaries {
                cmd.arg("--dictionaries").arg(dir);
            }
            if let Some(dir) = &args.folders {
                cmd.arg("--folders").arg(dir);
            }
        }
        if p.roles.iter().any(|r| r == "geo") {
            cmd.args(["--geo-url", &geo_url, "--geo-api", &args.geo_api]);
        }
        // Each node dials the ones before it, so every pair has exactly one dialer, and the
        // dialer re-dials when the other restarts.
        for earlier in &addrs[..i] {
            cmd.args(["--seed", &earlier.to_string()]);
        }
        procs.push(launcher.start(&p.name, cmd)?);
    }
    let edge_cluster = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut cmd = Recipe::default();
    cmd.arg("edge")
        .args(["--http", &args.http.to_string()])
        .args(["--internal-http", &internal.to_string()])
        .args(["--cluster", &edge_cluster.to_string()])
        .args(["--shutdown-deadline", &deadline]);
    for a in &addrs {
        cmd.args(["--seed", &a.to_string()]);
    }
    if !args.trusted_proxies.is_empty() {
        cmd.args(["--trusted-proxies", &args.trusted_proxies.join(",")]);
    }
    cmd.args(["--rate-limit", &args.rate_limit]);
    if !args.api_tokens.is_empty() {
        // Through the environment, so tokens do not show in the process list.
        cmd.env("TROUPE_API_TOKENS", args.api_tokens.join(","));
    }
    procs.push(launcher.start("edge", cmd)?);

    println!("public http: {}", args.http);
    println!("internal http: {internal}");
    for (i, p) in plans.iter().enumerate() {
        let workers = if p.workers.is_empty() {
            String::new()
        } else {
            format!(" workers={}", p.workers.join(","))
        };
        println!(
            "node {}: {} roles={}{workers}",
            p.name,
            addrs[i],
            p.roles.join(",")
        );
    }
    println!("geo api: {geo_url}");
    println!("data: {}", args.data.display());

    let signal = signals::shutdown_requested();
    tokio::pin!(signal);
    let ready = wait_ready(internal);
    tokio::pin!(ready);
    let mut starting = true;
    let sig = loop {
        // Far enough to stand for "no restart is due" when none is planned.
        let next_restart = procs
            .iter()
            .filter_map(|p| p.restart_at)
            .min()
            .unwrap_or_else(|| tokio::time::Instant::now() + STARTUP_LIMIT);
        tokio::select! {
            sig = &mut signal => break sig,
            (i, status) = first_exit(&mut procs) => {
                let name = procs[i].name.clone();
                let status_ok = status.as_ref().ok().map(ExitStatus::success);
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                procs[i].exited = true;
                if starting {
                    let last = procs[i].last_lines().await;
                    stop_all(&mut procs, args.shutdown_deadline).await;
                    return Err(format!(
                        "{name} exited ({status}) while the cluster was starting, so the \
                         cluster is stopped. Its last lines (each line of its log is prefixed \
                         \"{name} | \" above):\n{last}"
                    ));
                }
                let success = matches!(status_ok, Some(true));
                let proc = &mut procs[i];
                match proc.restarts.after_exit(success, Instant::now()) {
                    Verdict::RestartAfter { delay, nth } => {
                        tracing::warn!(
                            child = %name,
                            %status,
                            ?delay,
                            restart = nth,
                                                        "exited; restarting it (its log lines are prefixed \"{name} | \")"
                        );
                        proc.restart_at = Some(tokio::time::Instant::now() + delay);
                    }
                    Verdict::GiveUp { limit } => tracing::error!(
                        child = %name,
                        %status,
                        "exited; restart limit reached ({limit} restarts within {WINDOW:?}), so it \
                         stays down; run troupe up again on the same data dir to bring it back"
                    ),
                    Verdict::LeaveDown => tracing::error!(
                        child = %name,
                        %status,
                        "exited; not restarted (--restart never, or a clean exit); run troupe \
                         up again on the same data dir to bring it back"
                    ),
                }
                if procs.iter().all(|p| p.exited && p.restart_at.is_none()) {
                    return Ok(ExitCode::FAILURE);
                }
            }
            _ = tokio::time::sleep_until(next_restart) => {
                let now = tokio::time::Instant::now();
                for proc in procs.iter_mut().filter(|p| p.restart_at.is_some_and(|t| t <= now)) {
                    proc.restart_at = None;
                    match launcher.restart(proc) {
                        Ok(pid) => tracing::info!(child = %proc.name, pid, "restarted"),
                        Err(e) => tracing::error!(child = %proc.name, error = %e, "cannot restart; it stays down"),
                    }
                }
            }
            is_ready = &mut ready, if starting => {
                starting = false;
                if is_ready {
                    tracing::info!("cluster ready");
                } else {
                    tracing::warn!(within = ?STARTUP_LIMIT, "the cluster is not ready yet; still running");
                }
            }
        }
    };
    tracing::info!(signal = sig, "stopping the cluster");
    Ok(if stop_all(&mut procs, args.shutdown_deadline).await {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How long `troupe up` waits for the cluster to become ready; a child exiting before then
/// stops the cluster.
const STARTUP_LIMIT: Duration = Duration::from_secs(120);
/// Lines of each child's output kept to quote when it dies.
const TAIL_LINES: usize = 8;

/// One child process and what is known of it.
struct Proc {
    name: String,
    /// How it was started, to start it again the same way.
    recipe: Recipe,
    child: Child,
    exited: bool,
    restarts: Restarts,
    /// When it is to be started again, after it died.
    restart_at: Option<tokio::time::Instant>,
    /// Its last lines of output.
    tail: Arc<Mutex<VecDeque<String>>>,
    /// The tasks passing its stdout and stderr through.
    forwarders: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Its last lines, once what it wrote before exiting has been read.
    async fn last_lines(&mut self) -> String {
        self.flush_output().await;
        let tail = self.tail.lock().expect("tail lock");
        tail.iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits (briefly: a grandchild could hold the pipe) until its output has been passed on.
    async fn flush_output(&mut self) {
        let forwarders = std::mem::take(&mut self.forwarders);
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            futures::future::join_all(forwarders),
        )
        .await;
    }
}

/// The first child to exit among those still running; pending forever when none is.
async fn first_exit(procs: &mut [Proc]) -> (usize, std::io::Result<ExitStatus>) {
    let waits: Vec<_> = procs
        .iter_mut()
        .enumerate()
        .filter(|(_, p)| !p.exited)
        // `Child::wait` is cancel safe: losing the race to a signal loses nothing.
        .map(|(i, p)| Box::pin(async move { (i, p.child.wait().await) }))
        .collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(waits).await.0
}

/// True once the edge's internal listener answers `GET /readyz` with 200; false if it does not
/// within [`STARTUP_LIMIT`].
async fn wait_ready(internal: SocketAddr) -> bool {
    let deadline = tokio::time::Instant::now() + STARTUP_LIMIT;
    while tokio::time::Instant::now() < deadline {
        if let Ok(true) = tokio::time::timeout(Duration::from_secs(2), readyz(internal)).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn readyz(addr: SocketAddr) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.is_ok() && &head[..] == b"HTTP/1.1 200"
}

/// Stops every child still running: the edge first (it is last in `procs`), then the nodes from
/// last to first, then the geolocation stand-in. True when each exited 0 on its SIGTERM.
async fn stop_all(procs: &mut [Proc], deadline: Duration) -> bool {
    let grace = deadline * 2 + Duration::from_secs(5);
    let mut clean = true;
    // The stand-in, when there is one, is first in `procs` and stopped last: nodes use it.
    for p in procs.iter_mut().rev() {
        clean &= stop(p, grace).await;
    }
    for p in procs.iter_mut() {
        p.flush_output().await;
    }
    clean
}

fn node_dir(data: &Path, name: &str) -> String {
    data.join(name).display().to_string()
}

/// A child's arguments and environment beyond what every child gets.
#[derive(Debug, Clone, Default)]
struct Recipe {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Recipe {
    fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    fn args<S: AsRef<OsStr>>(&mut self, args: impl IntoIterator<Item = S>) -> &mut Self {
        for a in args {
            self.arg(a);
        }
        self
    }

    fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }
}

/// Starts children: this binary with the cluster's cookie, in a process group of its own,
/// output passed through [`Echo`].
struct Launcher<'a> {
    exe: PathBuf,
    cookie: String,
    echo: &'a Echo,
    /// The policy every child starts with.
    restarts: Restarts,
}

impl Launcher<'_> {
    fn start(&self, name: &str, recipe: Recipe) -> Result<Proc, String> {
        self.spawn(name, recipe, self.restarts.clone())
    }

    /// Starts a dead child again as it was started first, keeping its restart history; its pid.
    fn restart(&self, proc: &mut Proc) -> Result<u32, String> {
        *proc = self.spawn(&proc.name, proc.recipe.clone(), proc.restarts.clone())?;
        Ok(proc.child.id().unwrap_or_default())
    }

    fn spawn(&self, name: &str, recipe: Recipe, restarts: Restarts) -> Result<Proc, String> {
        let mut child = Command::new(&self.exe)
            .env("TROUPE_COOKIE", &self.cookie)
            .args(&recipe.args)
            .envs(recipe.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut forwarders = Vec::new();
        if let Some(out) = child.stdout.take() {
            let (name, tail, echo) = (name.to_string(), tail.clone(), self.echo.tx.clone());
            forwarders.push(tokio::spawn(forward(out, name, tail, echo)));
        }
        if let Some(err) = child.stderr.take() {
            let (name, tail, echo) = (name.to_string(), tail.clone(), self.echo.tx.clone());
            forwarders.push(tokio::spawn(forward(err, name, tail, echo)));
        }
        Ok(Proc {
            name: name.to_string(),
            recipe,
            child,
            exited: false,
            restarts,
            restart_at: None,
            tail,
            forwarders,
        })
    }
}

/// Passes a child's output line by line to [`Echo`], prefixed with its name, and keeps its
/// last lines.
async fn forward(
    output: impl AsyncRead + Unpin,
    name: String,
    tail: Arc<Mutex<VecDeque<String>>>,
    echo: mpsc::Sender<Echoed>,
) {
    let mut output = BufReader::new(output);
    let mut buf = Vec::new();
    while let Ok(Some(line)) = read_line_lossy(&mut output, &mut buf).await {
        // The tail first: quoting a dead child's last lines must not wait for a stalled reader.
        {
            let mut tail = tail.lock().expect("tail lock");
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.clone());
        }
        // Without the writer there is nowhere to put the line, but the pipe must still be
        // drained, or the child blocks once it is full.
        let _ = echo.send(Echoed::Line(format!("{name} | {line}"))).await;
    }
}

/// The next line, without its line ending; None at the end of the output. Bytes that are not
/// UTF-8 become U+FFFD instead of ending the reading: a child whose pipe nobody reads blocks
/// once it is full.
async fn read_line_lossy(
    output: &mut (impl AsyncBufRead + Unpin),
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<String>> {
    buf.clear();
    if output.read_until(b'\n', buf).await? == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(Some(String::from_utf8_lossy(buf).into_owned()))
}

/// Lines queued for stderr before forwarders wait for room.
const ECHO_QUEUE: usize = 1024;

enum Echoed {
    Line(String),
    /// Answered once every line queued before it has been written.
    Flushed(oneshot::Sender<()>),
}

/// The thread that writes children's lines to stderr (see the module's documentation for why
/// a thread). It ends once every sender is gone.
struct Echo {
    tx: mpsc::Sender<Echoed>,
}

impl Echo {
    fn start() -> Echo {
        let (tx, mut rx) = mpsc::channel(ECHO_QUEUE);
        std::thread::Builder::new()
            .name("troupe-up-output".into())
            .spawn(move || {
                while let Some(echoed) = rx.blocking_recv() {
                    match echoed {
                        // Not `eprintln!`, which panics when stderr is gone: a lost line is no
                        // reason to stop.
                        Echoed::Line(line) => {
                            let _ = writeln!(std::io::stderr().lock(), "{line}");
                        }
                        Echoed::Flushed(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .expect("cannot start the output thread");
        Echo { tx }
    }

    /// Resolves once the lines queued so far have been written.
    async fn flushed(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Echoed::Flushed(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// SIGTERM, then wait for a clean exit; SIGKILL past `grace`. True when it exited 0.
async fn stop(proc: &mut Proc, grace: Duration) -> bool {
    let (child, name) = (&mut proc.child, proc.name.as_str());
    if proc.exited {
        return false;
    }
    if let Ok(Some(status)) = child.try_wait() {
        tracing::warn!(%name, %status, "had already exited");
        return false;
    }
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) if status.success() => true,
        Ok(Ok(status)) => {
            tracing::warn!(%name, %status, "exited uncleanly");
            false
        }
        _ => {
            tracing::warn!(%name, "did not stop in time; killing");
            let _ = child.kill().await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_line_that_is_not_utf8_is_passed_on_lossily_and_the_lines_after_it_too() {
        let output: &[u8] = b"first\nbad \xff\xfe byte\r\nlast, unterminated";
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, mut rx) = mpsc::channel(16);
        forward(output, "n2".into(), tail.clone(), tx).await;
        let mut echoed = Vec::new();
        while let Some(Echoed::Line(line)) = rx.recv().await {
            echoed.push(line);
        }
        assert_eq!(
            echoed,
            [
                "n2 | first",
                "n2 | bad \u{FFFD}\u{FFFD} byte",
                "n2 | last, unterminated"
            ]
        );
        let tail: Vec<String> = tail.lock().unwrap().iter().cloned().collect();
        assert_eq!(
            tail,
            ["first", "bad \u{FFFD}\u{FFFD} byte", "last, unterminated"]
        );
    }

    #[test]
    fn three_nodes_put_master_alone_and_a_worker_on_each_other_node() {
        let p = plan(3, &[]);
        assert_eq!(p[0].roles, vec!["master", "scheduler"]);
        assert_eq!(p[1].roles, vec!["listing", "user", "worker"]);
        assert_eq!(p[1].workers, vec!["worker-1"]);
        assert_eq!(p[2].workers, vec!["worker-2"]);
        assert_eq!(p[2].roles, vec!["events", "geo", "worker"]);
    }

    #[test]
    fn one_node_runs_everything_and_names_are_dealt_in_turn() {
        let p = plan(1, &[]);
        assert_eq!(
            p[0].roles,
            vec![
                "master",
                "scheduler",
                "listing",
                "user",
                "events",
                "geo",
                "worker"
            ]
        );
        let p = plan(3, &["a".into(), "b".into(), "c".into()]);
        assert_eq!(p[1].workers, vec!["a", "c"]);
        assert_eq!(p[2].workers, vec!["b"]);
    }
}
