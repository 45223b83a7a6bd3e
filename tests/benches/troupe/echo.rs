//! The ractor RPC floor: an echo actor called locally and over ractor_cluster.
//!
//! For the remote case the benchmark re-executes itself with `TROUPE_BENCH_ECHO=<port>`: that
//! child runs a `NodeServer` and an echo actor in a process group and lives until its stdin
//! closes (so it also ends when the benchmark is killed). The parent runs its own NodeServer,
//! dials the child, finds the actor with `pg::get_members` and calls it with a deadline.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use ractor::{pg, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{NodeServer, NodeServerMessage, RactorClusterMessage};
use troupe_tests::free_port;

use crate::cli::Timing;
use crate::load::{self, LoadResult, Outcome};
use crate::procs::Children;

const ECHO_ENV: &str = "TROUPE_BENCH_ECHO";
const COOKIE_ENV: &str = "TROUPE_BENCH_ECHO_COOKIE";
const GROUP: &str = "troupe-bench.echo";
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(RactorClusterMessage)]
pub enum EchoMsg {
    #[rpc]
    Echo(u64, RpcReplyPort<u64>),
}

pub struct EchoActor;

impl Actor for EchoActor {
    type Msg = EchoMsg;
    type State = ();
    /// The process group to join, if any.
    type Arguments = Option<String>;

    async fn pre_start(
        &self,
        myself: ActorRef<EchoMsg>,
        group: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(group) = group {
            pg::join(group, vec![myself.get_cell()]);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<EchoMsg>,
        msg: EchoMsg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let EchoMsg::Echo(n, reply) = msg;
        let _ = reply.send(n);
        Ok(())
    }
}

/// Calls `actor` from `callers` loops; a call succeeds when it returns its own number.
pub async fn measure(actor: ActorRef<EchoMsg>, timing: Timing, callers: usize) -> LoadResult {
    load::drive(timing, callers, move |_, seq| {
        let actor = actor.clone();
        async move { echo(&actor, seq).await }
    })
    .await
}

async fn echo(actor: &ActorRef<EchoMsg>, n: u64) -> Outcome {
    match actor
        .call(|r| EchoMsg::Echo(n, r), Some(CALL_TIMEOUT))
        .await
    {
        Ok(CallResult::Success(m)) if m == n => Ok(()),
        Ok(CallResult::Success(m)) => Err(format!("echo of {n} answered {m}")),
        Ok(CallResult::Timeout) => Err("call timed out".into()),
        Ok(CallResult::SenderError) => Err("reply port dropped".into()),
        Err(e) => Err(format!("send failed: {e}")),
    }
}

pub async fn spawn_local() -> Result<ActorRef<EchoMsg>, String> {
    let (actor, _) = Actor::spawn(None, EchoActor, None)
        .await
        .map_err(|e| format!("cannot start the echo actor: {e}"))?;
    Ok(actor)
}

/// The remote echo actor: a child process and the session to it.
pub struct Remote {
    pub actor: ActorRef<EchoMsg>,
    server: ActorRef<NodeServerMessage>,
    // Kills the child when dropped.
    _child: Children,
}

impl Remote {
    pub async fn start() -> Result<Self, String> {
        let port = free_port();
        let cookie = format!("echo-{}-{port}", std::process::id());
        let mut children = Children::default();
        let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        cmd.env(ECHO_ENV, port.to_string())
            .env(COOKIE_ENV, &cookie)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        children.spawn("echo-server", cmd)?;
        let stdout = children
            .take_stdout("echo-server")
            .ok_or("the echo server has no stdout")?;
        wait_for_line(stdout, "ready", Duration::from_secs(20))?;

        let server = start_node_server(free_port(), cookie, "bench-client").await?;
        ractor_cluster::client_connect(&server, ("127.0.0.1", port))
            .await
            .map_err(|e| format!("cannot dial the echo server: {e}"))?;
        let actor = find_remote_member(Duration::from_secs(20)).await?;
        Ok(Self {
            actor,
            server,
            _child: children,
        })
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.server.stop(None);
    }
}

async fn find_remote_member(within: Duration) -> Result<ActorRef<EchoMsg>, String> {
    let start = Instant::now();
    while start.elapsed() < within {
        let members = pg::get_members(&GROUP.to_string());
        if let Some(m) = members.into_iter().find(|m| !m.get_id().is_local()) {
            return Ok(m.into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("the remote echo actor never appeared in its group".into())
}

async fn start_node_server(
    port: u16,
    cookie: String,
    name: &str,
) -> Result<ActorRef<NodeServerMessage>, String> {
    let server = NodeServer::new(
        port,
        cookie,
        name.to_string(),
        "127.0.0.1".into(),
        None,
        None,
    )
    .with_listen_addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (server, _) = Actor::spawn(None, server, ())
        .await
        .map_err(|e| format!("cannot start a NodeServer: {e}"))?;
    Ok(server)
}

/// Whether this process was started as the echo server.
pub fn is_echo_server() -> bool {
    std::env::var_os(ECHO_ENV).is_some()
}

/// The echo server mode: serves until stdin closes.
pub fn run_echo_server() -> ExitCode {
    let port: u16 = match std::env::var(ECHO_ENV).ok().and_then(|p| p.parse().ok()) {
        Some(p) => p,
        None => {
            eprintln!("{ECHO_ENV} must be a port");
            return ExitCode::FAILURE;
        }
    };
    let cookie = std::env::var(COOKIE_ENV).unwrap_or_default();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let served = runtime.block_on(async {
        let _server = start_node_server(port, cookie, "bench-echo").await?;
        Actor::spawn(None, EchoActor, Some(GROUP.to_string()))
            .await
            .map_err(|e| format!("cannot start the echo actor: {e}"))?;
        println!("ready");
        // The parent holds our stdin: EOF means it is gone.
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits until `stdout` prints `line`.
fn wait_for_line(stdout: ChildStdout, line: &str, within: Duration) -> Result<(), String> {
    let wanted = line.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let found = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.trim() == wanted);
        let _ = tx.send(found);
    });
    match rx.recv_timeout(within) {
        Ok(true) => Ok(()),
        _ => Err(format!(
            "the echo server did not print {line:?} within {within:?}"
        )),
    }
}
