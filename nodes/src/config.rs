//! Command-line and environment configuration: one typed struct per subcommand.
//!
//! Every flag also reads a `TROUPE_...` variable; list flags take commas there. Durations accept
//! `500ms`, `2s`, `1m`, or a bare number of seconds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::restart::RestartMode;

#[derive(Debug, Parser)]
#[command(
    name = "troupe",
    version,
    about = "A supervised actor cluster running backend services"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one cluster node hosting the given service roles.
    // A flag given twice takes its last value, so a wrapper can override what it was handed.
    #[command(args_override_self = true)]
    Node(NodeArgs),
    /// Run the HTTP edge: a cluster node with no roles that turns HTTP into actor messages.
    #[command(args_override_self = true)]
    Edge(EdgeArgs),
    /// Run a whole local cluster (nodes and edge) as child processes.
    Up(UpArgs),
    /// Serve a local stand-in for the external geolocation API, with its rate limit.
    GeoipStub(GeoStubArgs),
}

/// Settings every cluster member needs.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Address the cluster listener binds (loopback unless told otherwise).
    #[arg(
        long = "cluster",
        env = "TROUPE_CLUSTER",
        default_value = "127.0.0.1:4370"
    )]
    pub cluster: SocketAddr,
    /// Cluster members to dial (and re-dial whenever the connection drops).
    #[arg(long = "seed", env = "TROUPE_SEEDS", value_delimiter = ',', num_args = 1..)]
    pub seeds: Vec<String>,
    /// Shared secret of the cluster; required.
    #[arg(long, env = "TROUPE_COOKIE", hide_env_values = true)]
    pub cookie: Option<String>,
    /// Deadline of every call to another actor.
    #[arg(long, env = "TROUPE_CALL_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub call_timeout: Duration,
    /// How long shutdown waits for in-flight work before it stops anyway.
    #[arg(long, env = "TROUPE_SHUTDOWN_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_deadline: Duration,
    /// This member's certificate (PEM) for mutual TLS between nodes; needs --tls-key and --tls-ca.
    #[arg(long, env = "TROUPE_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "TROUPE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The cluster's CA certificate (PEM): peers must present a certificate it signed.
    #[arg(long, env = "TROUPE_TLS_CA", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// A peer that answers no liveness ping (one a second) for this long is taken for hung and
    /// its session dropped, so its actors leave their groups and its work goes elsewhere.
    #[arg(long, env = "TROUPE_HUNG_PEER_AFTER", default_value = "3s", value_parser = parse_duration)]
    pub hung_peer_after: Duration,
    /// How long a peer may take from connecting to a finished TLS handshake.
    #[arg(long, env = "TROUPE_TLS_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,
}

impl ClusterArgs {
    pub fn tls_files(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            ca: self.tls_ca.clone()?,
            handshake_timeout: self.tls_handshake_timeout,
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Node name; unique in the cluster and stable across restarts.
    #[arg(long, env = "TROUPE_NAME")]
    pub name: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Service roles this node runs: master, scheduler, listing, user, events, geo, worker.
    #[arg(
        long,
        env = "TROUPE_ROLES",
        value_delimiter = ',',
        default_value = "master,worker"
    )]
    pub roles: Vec<String>,
    /// Names of the workers this node runs (with the worker role); default `<name>-worker`.
    #[arg(long = "workers", env = "TROUPE_WORKERS", value_delimiter = ',')]
    pub workers: Vec<String>,
    /// Data directory: one redb file per stateful actor, plus worker files.
    #[arg(long, env = "TROUPE_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// How long a worker may hold a job without reporting before the master re-sends it.
    #[arg(long, env = "TROUPE_JOB_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub job_lease: Duration,
    #[command(flatten)]
    pub questions: QuestionArgs,
    /// A dispatched task with no outcome after this is sent again. Workers send no sign of
    /// life while running, so it must exceed the longest run of a task (a question payload:
    /// --question-delay plus --question-time-limit), or a slow run is sent again meanwhile.
    #[arg(long, env = "TROUPE_TASK_LEASE", default_value = "60s", value_parser = parse_duration)]
    pub task_lease: Duration,
    /// How long a due task waits for its worker to exist before it FAILS.
    #[arg(long, env = "TROUPE_NO_WORKER_DEADLINE", default_value = "30s", value_parser = parse_duration)]
    pub no_worker_deadline: Duration,
    #[command(flatten)]
    pub geo: GeoArgs,
}

/// The geo-throttle's upstream and its manners (seed 001).
#[derive(Debug, Clone, Args)]
pub struct GeoArgs {
    /// Base URL of the geolocation API.
    #[arg(long, env = "TROUPE_GEO_URL", default_value = "http://127.0.0.1:8090")]
    pub geo_url: String,
    /// Its shape: geoip-api (`/info?ip=`, the brief's image) or freegeoip (`/json/<ip>`).
    #[arg(long, env = "TROUPE_GEO_API", default_value = "geoip-api")]
    pub geo_api: String,
    /// Upstream calls started per second, at most.
    #[arg(long, env = "TROUPE_GEO_RATE", default_value_t = 5)]
    pub geo_rate: u32,
    /// Per call; just above the upstream's 5 s hiccups.
    #[arg(long, env = "TROUPE_GEO_TIMEOUT", default_value = "6s", value_parser = parse_duration)]
    pub geo_timeout: Duration,
    #[arg(long, env = "TROUPE_GEO_MAX_IN_FLIGHT", default_value_t = 8)]
    pub geo_max_in_flight: usize,
    #[arg(long, env = "TROUPE_GEO_CACHE_TTL", default_value = "1h", value_parser = parse_duration)]
    pub geo_cache_ttl: Duration,
    /// Calls per lookup, retries included.
    #[arg(long, env = "TROUPE_GEO_ATTEMPTS", default_value_t = 5)]
    pub geo_attempts: u32,
}

/// How workers answer questions (seed 003).
#[derive(Debug, Clone, Args)]
pub struct QuestionArgs {
    /// Dictionary files searched by questions; default `<data>/dictionaries`, filled with the
    /// dictionaries troupe ships.
    #[arg(long, env = "TROUPE_DICTIONARIES")]
    pub dictionaries: Option<PathBuf>,
    /// Root of the folders a `list` question may show; default: the dictionaries folder.
    #[arg(long, env = "TROUPE_FOLDERS")]
    pub folders: Option<PathBuf>,
    /// Added to every question: the brief's simulated blocking call.
    #[arg(long, env = "TROUPE_QUESTION_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub question_delay: Duration,
    /// An executable running longer is killed (504).
    #[arg(long, env = "TROUPE_QUESTION_TIME_LIMIT", default_value = "10s", value_parser = parse_duration)]
    pub question_time_limit: Duration,
    /// Bytes of executable output kept at most.
    #[arg(long, env = "TROUPE_QUESTION_MAX_OUTPUT", default_value_t = 4 * 1024 * 1024)]
    pub question_max_output: usize,
}

#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// Name of the edge in the cluster.
    #[arg(long, env = "TROUPE_NAME", default_value = "edge")]
    pub name: String,
    /// Public HTTP listener.
    #[arg(long, env = "TROUPE_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Internal HTTP listener (services not meant for external clients).
    #[arg(long, env = "TROUPE_INTERNAL_HTTP", default_value = "127.0.0.1:8081")]
    pub internal_http: SocketAddr,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// How long `POST /jobs?wait=true` waits for the job.
    #[arg(long, env = "TROUPE_WAIT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub wait_timeout: Duration,
    /// How long `POST /api/v1/json` waits for its answer.
    #[arg(long, env = "TROUPE_QUESTION_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub question_timeout: Duration,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client; none by
    /// default, so an event's IP is its TCP peer.
    #[arg(long, env = "TROUPE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Bearer tokens the public listener accepts (repeat, or commas); none: no authentication.
    #[arg(
        long = "api-token",
        env = "TROUPE_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_tokens: Vec<String>,
    /// A file of bearer tokens, one per line (blank lines and `#` comments ignored).
    #[arg(long, env = "TROUPE_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Per-client rate limit on the public listener: `off`, `RPS` or `RPS,BURST`.
    #[arg(long, env = "TROUPE_RATE_LIMIT", default_value = "50,100")]
    pub rate_limit: String,
    /// Requests in flight at most; more are answered 503 at once.
    #[arg(long, env = "TROUPE_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// A request taking longer is stopped (408).
    #[arg(long, env = "TROUPE_REQUEST_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Request headers, all together, at most (431 past it).
    #[arg(long, env = "TROUPE_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// Largest job text, in bytes.
    #[arg(long, env = "TROUPE_MAX_TEXT_BYTES", default_value_t = 1024 * 1024)]
    pub max_text_bytes: usize,
    /// Largest request body, in bytes.
    #[arg(long, env = "TROUPE_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Number of node processes.
    #[arg(long, env = "TROUPE_NODES", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub nodes: u16,
    /// Public HTTP listener of the edge.
    #[arg(long, env = "TROUPE_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Internal HTTP listener; default: the port after --http.
    #[arg(long, env = "TROUPE_INTERNAL_HTTP")]
    pub internal_http: Option<SocketAddr>,
    /// Data directory; each node keeps its files under `<data>/<node name>`.
    #[arg(long, env = "TROUPE_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// First of consecutive cluster ports; default: free ports picked by the OS.
    #[arg(long, env = "TROUPE_CLUSTER_PORT_BASE")]
    pub cluster_port_base: Option<u16>,
    /// Worker names, spread over the worker nodes; default worker-1 .. worker-N.
    #[arg(long, env = "TROUPE_WORKER_NAMES", value_delimiter = ',')]
    pub worker_names: Vec<String>,
    #[arg(long, env = "TROUPE_SHUTDOWN_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_deadline: Duration,
    /// Passed to the worker nodes.
    #[arg(long, env = "TROUPE_QUESTION_DELAY", value_parser = parse_duration)]
    pub question_delay: Option<Duration>,
    /// Passed to the worker nodes.
    #[arg(long, env = "TROUPE_DICTIONARIES")]
    pub dictionaries: Option<PathBuf>,
    /// Passed to the worker nodes.
    #[arg(long, env = "TROUPE_FOLDERS")]
    pub folders: Option<PathBuf>,
    /// Passed to the edge.
    #[arg(long, env = "TROUPE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Passed to the edge; off by default for a local cluster.
    #[arg(long, env = "TROUPE_RATE_LIMIT", default_value = "off")]
    pub rate_limit: String,
    /// Passed to the edge.
    #[arg(
        long = "api-token",
        env = "TROUPE_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_tokens: Vec<String>,
    /// An external geolocation API; default: a `troupe geoip-stub` started with the cluster.
    #[arg(long, env = "TROUPE_GEO_URL")]
    pub geo_url: Option<String>,
    /// Its shape: geoip-api or freegeoip.
    #[arg(long, env = "TROUPE_GEO_API", default_value = "geoip-api")]
    pub geo_api: String,
    /// Whether a child that dies after the cluster is ready is started again: on-failure (it
    /// exited with an error or was killed) or never.
    #[arg(long, env = "TROUPE_RESTART", value_enum, default_value = "on-failure")]
    pub restart: RestartMode,
    /// Restarts of one child within a minute past which it stays down.
    #[arg(long, env = "TROUPE_RESTART_LIMIT", default_value_t = 5)]
    pub restart_limit: u32,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GeoStubArgs {
    /// Address to serve HTTP on (loopback unless told otherwise).
    #[arg(long, env = "TROUPE_GEO_STUB_HTTP", default_value = "127.0.0.1:8090")]
    pub http: SocketAddr,
    /// Requests accepted per sliding second; the others get 429, as from the real API.
    #[arg(long, env = "TROUPE_GEO_STUB_RATE", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// Probability (0 to 1) that an accepted request is answered late.
    #[arg(long, env = "TROUPE_GEO_STUB_HICCUP_PROB", default_value_t = 0.0,
          value_parser = parse_probability)]
    pub hiccup_prob: f64,
    /// Longest such delay; each one is drawn uniformly between zero and this.
    #[arg(long, env = "TROUPE_GEO_STUB_HICCUP_MAX", default_value = "5s",
          value_parser = parse_duration)]
    pub hiccup_max: Duration,
    /// A MaxMind-format City database (GeoLite2/GeoIP2) to answer from instead of the table.
    #[arg(long, env = "TROUPE_GEO_STUB_MMDB")]
    pub mmdb: Option<PathBuf>,
    /// Seeds the hiccup randomness, so that a run can be repeated exactly.
    #[arg(long, env = "TROUPE_GEO_STUB_SEED")]
    pub seed: Option<u64>,
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{s} is not a probability (use 0 to 1)"))
    }
}

/// A duration flag: a number with `ms`, `s`, `m` or `h`, or a bare number of seconds (the
/// contract's shorthand). Fractions are fine (`1.5s`). Ours rather than humantime's: that one
/// takes no bare number and no fraction, and takes units no flag here means (`y`, `w`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 500ms, 2s, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is too long a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        // Past what a Duration holds: an error, not a panic while parsing flags.
        assert!(parse_duration("1000000000000000000000000h").is_err());
    }

    #[test]
    fn cli_parses_node_flags() {
        let cli = Cli::try_parse_from([
            "troupe",
            "node",
            "--name",
            "n1",
            "--cluster",
            "127.0.0.1:5000",
            "--seed",
            "127.0.0.1:5001",
            "127.0.0.1:5002",
            "--roles",
            "master,worker",
            "--cookie",
            "c",
        ])
        .unwrap();
        let Command::Node(n) = cli.command else {
            panic!()
        };
        assert_eq!(n.cluster.seeds.len(), 2);
        assert_eq!(n.roles, vec!["master", "worker"]);
    }

    #[test]
    fn roles_help_names_every_role() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        let node = cli.find_subcommand_mut("node").unwrap();
        let roles = node
            .get_arguments()
            .find(|a| a.get_id() == "roles")
            .unwrap();
        let help = roles.get_help().unwrap().to_string();
        for role in crate::roles::KNOWN_ROLES {
            assert!(help.contains(role), "--roles help misses {role}: {help}");
        }
    }
}
