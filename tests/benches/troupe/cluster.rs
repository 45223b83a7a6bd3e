//! The cluster under test: the release `troupe` binary run as 3 nodes, the edge and the
//! geolocation stand-in, placed as `troupe up` places them, on free ports with a temp data dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use troupe_tests::free_port;

use crate::procs::{Children, TempDir};
use crate::rss;

/// A node of the cluster: name, roles, workers (as `troupe up` with 3 nodes).
const NODES: [(&str, &str, &str); 3] = [
    ("n1", "master,scheduler", ""),
    ("n2", "listing,user,worker", "worker-1"),
    ("n3", "events,geo,worker", "worker-2"),
];

/// Processes whose memory is reported (the stand-in API is not part of troupe's footprint).
pub const MEASURED: [&str; 4] = ["n1", "n2", "n3", "edge"];

pub struct Cluster {
    pub http: SocketAddr,
    /// The geolocation stand-in.
    geo: SocketAddr,
    pub client: reqwest::Client,
    // Field order matters: children are killed before their data dir is removed.
    children: Children,
    dir: TempDir,
}

impl Cluster {
    /// Starts every process and waits until the cluster is ready (every service group has a
    /// member and both workers have joined). `stub_args` go to the geolocation stand-in.
    pub async fn start(bin: &Path, log_level: &str, stub_args: &[&str]) -> Result<Self, String> {
        let dir = TempDir::new("troupe-bench-")?;
        let cookie = format!("bench-{}-{}", std::process::id(), free_port());
        let mut children = Children::default();
        let launch = Launcher {
            bin,
            dir: dir.path(),
            cookie: &cookie,
            log_level,
        };
        let geo = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let geo_s = geo.to_string();
        let mut stub = vec!["geoip-stub", "--http", &geo_s];
        stub.extend(stub_args);
        children.spawn("geoip-stub", launch.command("geoip-stub", &stub)?)?;
        let mut seeds: Vec<String> = Vec::new();
        for (name, roles, workers) in NODES {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
            let data = dir.path().join(name).display().to_string();
            let mut args = vec![
                "node",
                "--name",
                name,
                "--cluster",
                &addr,
                "--roles",
                roles,
                "--data",
                &data,
            ];
            if !workers.is_empty() {
                args.extend(["--workers", workers]);
            }
            let geo_url = format!("http://{geo}");
            if roles.contains("geo") {
                args.extend(["--geo-url", &geo_url]);
            }
            for seed in &seeds {
                args.extend(["--seed", seed]);
            }
            children.spawn(name, launch.command(name, &args)?)?;
            seeds.push(addr);
        }
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let internal = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
        let edge_cluster = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
        let http_s = http.to_string();
        let mut args = vec![
            "edge",
            "--http",
            &http_s,
            "--internal-http",
            &internal,
            "--cluster",
            &edge_cluster,
            "--trusted-proxies",
            "127.0.0.1",
        ];
        for seed in &seeds {
            args.extend(["--seed", seed]);
        }
        if edge_has_flag(bin, "--rate-limit") {
            // The load comes from one address: a per-client limit would measure itself.
            args.extend(["--rate-limit", "off"]);
        }
        children.spawn("edge", launch.command("edge", &args)?)?;
        let cluster = Self {
            http,
            geo,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| e.to_string())?,
            children,
            dir,
        };
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// The stand-in's `/stats`: calls received, refused, and the most in any one second.
    pub async fn stub_stats(&self, client: &reqwest::Client) -> Result<serde_json::Value, String> {
        let url = format!("http://{}/stats", self.geo);
        let reply = client.get(&url).send().await;
        let reply = reply.map_err(|e| format!("GET {url}: {e}"))?;
        reply.json().await.map_err(|e| format!("GET {url}: {e}"))
    }

    /// Pids of the measured troupe processes.
    pub fn measured_pids(&self) -> Vec<(String, u32)> {
        self.children
            .pids()
            .into_iter()
            .filter(|(name, _)| MEASURED.contains(&name.as_str()))
            .collect()
    }

    /// Current resident set of each measured process, MB.
    pub fn rss_now(&self) -> Vec<(String, f64)> {
        self.measured_pids()
            .into_iter()
            .filter_map(|(name, pid)| Some((name, rss::current_mb(pid)?)))
            .collect()
    }

    /// Resets the peaks so that [`Cluster::rss_peaks`] covers only what follows.
    pub fn reset_rss_peaks(&self) {
        for (_, pid) in self.measured_pids() {
            rss::reset_peak(pid);
        }
    }

    pub fn rss_peaks(&self) -> Vec<(String, f64)> {
        self.measured_pids()
            .into_iter()
            .filter_map(|(name, pid)| Some((name, rss::peak_mb(pid)?)))
            .collect()
    }

    /// Fails when a process died (the figures would mean nothing).
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.children.exited() {
            Some(what) => Err(format!("{what}\n{}", self.log_tails())),
            None => Ok(()),
        }
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if self.ready().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "the cluster was not ready within 60 s\n{}",
            self.log_tails()
        ))
    }

    async fn ready(&self) -> bool {
        let Ok(r) = self.client.get(self.url("/readyz")).send().await else {
            return false;
        };
        if r.status() != 200 {
            return false;
        }
        let Ok(r) = self.client.get(self.url("/cluster")).send().await else {
            return false;
        };
        let Ok(v) = r.json::<serde_json::Value>().await else {
            return false;
        };
        v["groups"]["troupe.worker"].as_array().map(Vec::len) == Some(2)
    }

    fn log_tails(&self) -> String {
        let mut out = String::new();
        for (name, _) in self.children.pids() {
            let log = std::fs::read_to_string(log_path(self.dir.path(), &name)).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!("---- last lines of {name} ----\n"));
            for line in &lines[lines.len().saturating_sub(20)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

struct Launcher<'a> {
    bin: &'a Path,
    dir: &'a Path,
    cookie: &'a str,
    log_level: &'a str,
}

impl Launcher<'_> {
    /// A `troupe` command logging (at `log_level` and up) to `<dir>/<name>.log`.
    fn command(&self, name: &str, args: &[&str]) -> Result<Command, String> {
        let log = std::fs::File::create(log_path(self.dir, name))
            .map_err(|e| format!("cannot create the log of {name}: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(self.bin);
        cmd.args(args)
            .env("TROUPE_COOKIE", self.cookie)
            .env("RUST_LOG", self.log_level)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        Ok(cmd)
    }
}

/// Whether `troupe edge` takes `flag` (the binary may predate it).
fn edge_has_flag(bin: &Path, flag: &str) -> bool {
    Command::new(bin)
        .args(["edge", "--help"])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(flag))
}

fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

/// The `troupe` binary: `TROUPE_BIN`, else `<target>/release/troupe`, else built once with
/// `cargo build --release -p troupe-nodes`.
pub fn troupe_bin() -> Result<PathBuf, String> {
    if let Ok(bin) = std::env::var("TROUPE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let bin = target.join("release/troupe");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!("building the release troupe binary ...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "troupe-nodes"])
        .current_dir(workspace)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() || !bin.exists() {
        return Err(format!(
            "cargo build --release -p troupe-nodes failed ({status})"
        ));
    }
    Ok(bin)
}
