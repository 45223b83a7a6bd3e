//! A harness for tests that run real `troupe` processes.
//!
//! Each [`TestCluster`] owns a temp dir (one data dir per node, one log file per process), its
//! own free ports and its own cookie, so tests run in parallel without meeting. Processes are
//! killed when the cluster is dropped; on a failing test the tail of every log is printed.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The `troupe` binary: `TROUPE_BIN` if set, else built once per test process.
pub fn troupe_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("TROUPE_BIN") {
            return PathBuf::from(bin);
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "troupe-nodes", "--bin", "troupe"])
            .current_dir(workspace)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building troupe failed");
        workspace.join("target/debug/troupe")
    })
    .clone()
}

/// A port no other test of this process will get, free when checked. Taken below the
/// ephemeral range (32768 up), where the OS picks ports for outgoing connections: a port
/// handed out there can be grabbed by some connection before its node binds it.
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: OnceLock<std::sync::atomic::AtomicU32> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let seed = std::process::id().wrapping_mul(7919)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
        std::sync::atomic::AtomicU32::new(seed % SPAN)
    });
    loop {
        let port = (LOW + next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One process of the cluster and how to start it again.
pub struct Proc {
    pub args: Vec<String>,
    pub child: Option<Child>,
    pub log: PathBuf,
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub cookie: String,
    pub http: SocketAddr,
    pub internal_http: SocketAddr,
    pub node_addrs: BTreeMap<String, SocketAddr>,
    procs: BTreeMap<String, Proc>,
    pub client: reqwest::Client,
    /// Sent as a bearer token by the harness's own requests, for an edge started with tokens.
    pub token: Option<String>,
}

impl Default for TestCluster {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCluster {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            cookie: uuid::Uuid::new_v4().simple().to_string(),
            http: SocketAddr::from(([127, 0, 0, 1], free_port())),
            internal_http: SocketAddr::from(([127, 0, 0, 1], free_port())),
            node_addrs: BTreeMap::new(),
            procs: BTreeMap::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            token: None,
        }
    }

    /// A GET carrying the harness's token, if any.
    fn authed_get(&self, url: &str) -> reqwest::RequestBuilder {
        let req = self.client.get(url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub fn data_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join(node)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Starts a node; it dials every node started before it. `extra` are more flags.
    pub fn start_node(&mut self, name: &str, roles: &[&str], workers: &[&str], extra: &[&str]) {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut args: Vec<String> = vec![
            "node".into(),
            "--name".into(),
            name.into(),
            "--cluster".into(),
            addr.to_string(),
            "--roles".into(),
            roles.join(","),
            "--data".into(),
            self.data_dir(name).display().to_string(),
        ];
        if !workers.is_empty() {
            args.extend(["--workers".into(), workers.join(",")]);
        }
        for seed in self.node_addrs.values() {
            args.extend(["--seed".into(), seed.to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        self.node_addrs.insert(name.into(), addr);
        self.spawn(name, args);
    }

    /// One node with every service role (and a worker named `w`) plus the edge: the whole
    /// public surface in two processes.
    pub fn start_all_in_one(&mut self) {
        const EVERY_ROLE: &[&str] = &[
            "master",
            "scheduler",
            "listing",
            "user",
            "events",
            "geo",
            "worker",
        ];
        self.start_node("n1", EVERY_ROLE, &["w"], &[]);
        self.start_edge(&[]);
    }

    /// Starts the edge, dialing every node started so far.
    pub fn start_edge(&mut self, extra: &[&str]) {
        let mut args: Vec<String> = vec![
            "edge".into(),
            // Tests send many requests from one address; a test of the limit turns it on.
            "--rate-limit".into(),
            "off".into(),
            "--http".into(),
            self.http.to_string(),
            "--internal-http".into(),
            self.internal_http.to_string(),
            "--cluster".into(),
            SocketAddr::from(([127, 0, 0, 1], free_port())).to_string(),
        ];
        for seed in self.node_addrs.values() {
            args.extend(["--seed".into(), seed.to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        self.spawn("edge", args);
    }

    fn spawn(&mut self, name: &str, args: Vec<String>) {
        let log = self.dir.path().join(format!("{name}.log"));
        let mut proc = Proc {
            args,
            child: None,
            log,
        };
        proc.child = Some(self.launch(&proc));
        self.procs.insert(name.into(), proc);
    }

    fn launch(&self, proc: &Proc) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&proc.log)
            .unwrap();
        Command::new(troupe_bin())
            .args(&proc.args)
            .env("TROUPE_COOKIE", &self.cookie)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start troupe")
    }

    /// SIGKILL: no drain, no flush.
    pub fn kill(&mut self, name: &str) {
        let proc = self.procs.get_mut(name).expect("known process");
        if let Some(mut child) = proc.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal and waits (bounded) for the exit status.
    pub fn signal_and_wait(&mut self, name: &str, signal: Signal, within: Duration) -> ExitStatus {
        let proc = self.procs.get_mut(name).expect("known process");
        let mut child = proc.child.take().expect("process is running");
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        wait_child(&mut child, within).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("{name} did not exit within {within:?} after {signal}");
        })
    }

    /// Signals without waiting; the process keeps draining in the background.
    pub fn send_signal(&self, name: &str, signal: Signal) {
        let child = self.procs[name].child.as_ref().expect("process is running");
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    }

    /// SIGSTOP, then waits until every thread of the process has stopped. The kernel stops
    /// them one after another, so on a busy machine a thread can keep running (taking a message,
    /// writing a file) for milliseconds after the signal was sent.
    pub async fn freeze(&self, name: &str) {
        self.send_signal(name, Signal::SIGSTOP);
        let pid = self.procs[name]
            .child
            .as_ref()
            .expect("process is running")
            .id();
        eventually(Duration::from_secs(10), "every thread stopped", || async {
            all_threads_stopped(pid)
        })
        .await;
    }

    pub fn wait_exit(&mut self, name: &str, within: Duration) -> ExitStatus {
        let proc = self.procs.get_mut(name).expect("known process");
        let mut child = proc.child.take().expect("process is running");
        wait_child(&mut child, within)
            .unwrap_or_else(|| panic!("{name} did not exit within {within:?}"))
    }

    /// Starts a stopped process again with the same flags (same name, port and data dir).
    pub fn restart(&mut self, name: &str) {
        let child = self.launch(&self.procs[name]);
        self.procs.get_mut(name).unwrap().child = Some(child);
    }

    /// Starts a stopped process again with its flags, and `extra` flags after them (a later
    /// flag wins, so this changes a setting across the restart).
    pub fn restart_with(&mut self, name: &str, extra: &[&str]) {
        let proc = self.procs.get_mut(name).unwrap();
        proc.args.extend(extra.iter().map(|s| s.to_string()));
        self.restart(name);
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(&self.procs[name].log).unwrap_or_default()
    }

    /// Waits until `GET /readyz` is 200.
    pub async fn wait_ready(&self) {
        let client = self.client.clone();
        let url = self.url("/readyz");
        eventually(Duration::from_secs(60), "cluster ready", || {
            let client = client.clone();
            let url = url.clone();
            async move { matches!(client.get(&url).send().await, Ok(r) if r.status() == 200) }
        })
        .await;
    }

    /// Waits until `/cluster` satisfies `holds`.
    async fn wait_cluster(&self, what: &str, holds: impl Fn(&serde_json::Value) -> bool) {
        let url = self.url("/cluster");
        let holds = &holds;
        eventually(Duration::from_secs(60), what, || {
            let request = self.authed_get(&url);
            async move {
                match request.send().await {
                    Ok(r) => r.json::<serde_json::Value>().await.is_ok_and(|v| holds(&v)),
                    Err(_) => false,
                }
            }
        })
        .await;
    }

    /// Waits until each of `groups` has a member (readiness of one service, where `/readyz`
    /// would need every service).
    pub async fn wait_groups(&self, groups: &[&str]) {
        self.wait_cluster("groups have members", |v| {
            groups
                .iter()
                .all(|g| v["groups"][*g].as_array().is_some_and(|a| !a.is_empty()))
        })
        .await;
    }

    /// Waits until `/cluster` lists `n` workers.
    pub async fn wait_workers(&self, n: usize) {
        self.wait_cluster("workers joined", |v| {
            v["groups"]["troupe.worker"].as_array().map(|a| a.len()) == Some(n)
        })
        .await;
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for (name, proc) in self.procs.iter_mut() {
            if let Some(mut child) = proc.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            if std::thread::panicking() {
                let log = std::fs::read_to_string(&proc.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- last lines of {name} ----");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Whether every thread of `pid` is in the stopped state (`T` in `/proc/<pid>/task/*/stat`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(|t| t.ok()).all(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name, which is in parentheses and may hold spaces.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                == Some("T")
        })
    })
}

/// The exit status of `child` once it exits, or `None` if it is still running after `within`.
pub fn wait_child(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() >= within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` until it holds, failing the test after `within`. For conditions in other
/// processes that announce themselves only through their API.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_some(within, what, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Polls `check` until it gives a value, failing the test after `within`.
pub async fn eventually_some<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(start.elapsed() < within, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Job ids of the files under a node's data dir.
pub fn job_files(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("files")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .into_string()
                .ok()?
                .strip_suffix(".txt")
                .map(String::from)
        })
        .collect()
}

/// The proptest settings every property test here uses: `cases` cases, and no failure files
/// written next to the tests (a failure is reported with its shrunk input).
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// Stops an actor and returns only once its task has ended, so what it held (its redb file) is
/// free for the next incarnation; each step within `within`.
pub async fn stop_actor<M: ractor::Message>(
    actor: ractor::ActorRef<M>,
    task: ractor::concurrency::JoinHandle<()>,
    within: Duration,
) {
    actor
        .stop_and_wait(None, Some(within))
        .await
        .expect("actor stops");
    tokio::time::timeout(within, task)
        .await
        .expect("actor task ends in time")
        .expect("actor task did not panic");
}

/// Calls a local actor within `within`; the error says why no reply came.
pub async fn ask_actor<M: ractor::Message, T: Send + 'static>(
    actor: &ractor::ActorRef<M>,
    msg: impl FnOnce(ractor::RpcReplyPort<T>) -> M,
    within: Duration,
) -> Result<T, String> {
    use ractor::rpc::CallResult;
    match actor.call(msg, Some(within)).await {
        Ok(CallResult::Success(reply)) => Ok(reply),
        Ok(CallResult::Timeout) => Err("no answer in time".into()),
        Ok(CallResult::SenderError) => Err("reply port dropped".into()),
        Err(e) => Err(format!("send failed: {e}")),
    }
}
