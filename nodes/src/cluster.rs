//! Joining the cluster: the NodeServer, dialing seeds, re-dialing them, and noticing dead or
//! hung peers.
//!
//! ractor_cluster does not re-dial a peer that went away and never notices a hung one
//! (`notes/stack-facts.md`). So each process runs a keeper: one task per seed keeps a session
//! to that seed open (dial, back off, re-dial on disconnect), and a pinger calls every peer's
//! node-info actor on a timer; a peer that misses several pings in a row has its session
//! dropped, which fails calls to it at once instead of at their deadlines.
//!
//! With TLS (`crate::tls`) the cluster port is served by our own guarded listener, and seeds are
//! dialed through it; the session protocol above is the same.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorRef};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{
    IncomingEncryptionMode, NodeEventSubscription, NodeServer, NodeServerMessage,
    NodeSessionMessage,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use troupe_actors::groups;
use troupe_actors::membership::Membership;
use troupe_actors::protocol::node_info::NodeInfoMsg;
use troupe_actors::rpc;

use crate::tls::{self, NodeTls, TlsFiles};

const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(1);
const REDIAL_MAX: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("a cluster cookie is required (--cookie or TROUPE_COOKIE)")]
    NoCookie,
    #[error("cannot start the cluster listener on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

pub struct ClusterOptions {
    pub name: String,
    pub listen: SocketAddr,
    pub cookie: String,
    pub seeds: Vec<String>,
    /// Mutual TLS between members; plaintext (cookie only) when `None`.
    pub tls: Option<TlsFiles>,
    /// A peer that answers no ping for this long is taken for hung and its session dropped.
    pub hung_peer_after: Duration,
}

pub struct Cluster {
    pub membership: Membership,
    server: ActorRef<NodeServerMessage>,
    server_task: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
}

enum SessionEvent {
    Up(NodeServerSessionInformation),
    Down(NodeServerSessionInformation),
}

struct Forward(mpsc::UnboundedSender<SessionEvent>);

impl NodeEventSubscription for Forward {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        tracing::debug!(peer = %ses.peer_addr, "cluster session opened");
    }
    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.send(SessionEvent::Down(ses));
    }
    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.send(SessionEvent::Up(ses));
    }
}

/// Sessions we know of, shared by the keeper's tasks.
#[derive(Default)]
struct Sessions {
    /// Peer addresses of authenticated sessions we dialed (how a seed task knows it is connected).
    dialed_up: HashSet<SocketAddr>,
    /// Session actor by node id (the node part of a remote `ActorId`).
    by_node_id: HashMap<u64, ActorRef<NodeSessionMessage>>,
}

impl Cluster {
    pub async fn start(opts: ClusterOptions) -> Result<Self, ClusterError> {
        if opts.cookie.is_empty() {
            return Err(ClusterError::NoCookie);
        }
        let listen_err = |e: &dyn std::fmt::Display| ClusterError::Listen {
            addr: opts.listen,
            reason: e.to_string(),
        };
        let tls = opts.tls.as_ref().map(NodeTls::load).transpose()?;
        // ractor_cluster's listener reports a failed bind only in its log; bind first so a taken
        // port is an error at start, not a node nobody can reach. With TLS this listener is the
        // one that serves the port.
        let bound = std::net::TcpListener::bind(opts.listen).map_err(|e| listen_err(&e))?;
        // The port actually bound (the configured one may be 0).
        let port = bound.local_addr().map_err(|e| listen_err(&e))?.port();
        // With TLS, the NodeServer's own listener (it insists on one) is parked on an ephemeral
        // loopback port, TLS-only, and the real port is advertised instead. (Were that listener
        // ever to fail, ractor would respawn it and advertise the parked port again; it has no
        // reason to.)
        let (server_port, encryption, server_ip, own_listener) = match &tls {
            None => {
                // Plaintext: the NodeServer serves the port itself.
                drop(bound);
                (opts.listen.port(), None, opts.listen.ip(), None)
            }
            Some(tls) => (
                0,
                Some(IncomingEncryptionMode::Tls(tls.acceptor.clone())),
                Ipv4Addr::LOCALHOST.into(),
                Some(bound),
            ),
        };
        let server = NodeServer::new(
            server_port,
            opts.cookie,
            opts.name.clone(),
            opts.listen.ip().to_string(),
            encryption,
            None,
        )
        .with_listen_addr(server_ip);
        let (server, server_task) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| listen_err(&e))?;
        let mut tasks = Vec::new();
        if let Some((tls, own_listener)) = tls.as_ref().zip(own_listener) {
            // Queued behind the parked listener's own notice, so this one wins.
            server
                .cast(NodeServerMessage::PortChanged { port })
                .expect("node server is running");
            own_listener
                .set_nonblocking(true)
                .map_err(|e| listen_err(&e))?;
            let listener =
                tokio::net::TcpListener::from_std(own_listener).map_err(|e| listen_err(&e))?;
            tasks.push(tokio::spawn(tls::accept_loop(
                listener,
                tls.clone(),
                server.clone(),
            )));
        }
        let (events_tx, events) = mpsc::unbounded_channel();
        server
            .cast(NodeServerMessage::SubscribeToEvents {
                id: "troupe-keeper".into(),
                subscription: Box::new(Forward(events_tx)),
            })
            .expect("node server is running");

        let membership = Membership::new();
        let sessions = Arc::new(Mutex::new(Sessions::default()));
        let (changed_tx, changed) = watch::channel(0u64);
        tasks.push(tokio::spawn(track_sessions(
            events,
            membership.clone(),
            sessions.clone(),
            changed_tx,
        )));
        for seed in opts.seeds {
            tasks.push(tokio::spawn(keep_dialing(
                server.clone(),
                tls.clone(),
                seed,
                sessions.clone(),
                changed.clone(),
            )));
        }
        let missed_limit = (opts.hung_peer_after.as_secs_f64() / PING_EVERY.as_secs_f64())
            .ceil()
            .max(1.0) as u32;
        tasks.push(tokio::spawn(ping_peers(sessions, missed_limit)));
        Ok(Self {
            membership,
            server,
            server_task,
            tasks,
        })
    }

    /// Stops dialing and closes every session.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.server.stop(Some("shutdown".into()));
        let _ = self.server_task.await;
    }
}

fn peer_name(ses: &NodeServerSessionInformation) -> String {
    ses.peer_name
        .as_ref()
        .map(|n| n.name.clone())
        .unwrap_or_else(|| ses.peer_addr.clone())
}

async fn track_sessions(
    mut events: mpsc::UnboundedReceiver<SessionEvent>,
    membership: Membership,
    sessions: Arc<Mutex<Sessions>>,
    changed: watch::Sender<u64>,
) {
    while let Some(event) = events.recv().await {
        match event {
            SessionEvent::Up(ses) => {
                let name = peer_name(&ses);
                let addr = ses
                    .peer_name
                    .as_ref()
                    .map(|n| n.connection_string.clone())
                    .unwrap_or_else(|| ses.peer_addr.clone());
                tracing::info!(peer = %name, %addr, "node up");
                membership.mark_up(&name, &addr);
                let mut s = sessions.lock().expect("sessions lock");
                if !ses.is_server {
                    if let Ok(a) = ses.peer_addr.parse() {
                        s.dialed_up.insert(a);
                    }
                }
                s.by_node_id.insert(ses.node_id, ses.actor.clone());
            }
            SessionEvent::Down(ses) => {
                let mut s = sessions.lock().expect("sessions lock");
                let was_up = s.by_node_id.remove(&ses.node_id).is_some();
                if !ses.is_server {
                    if let Ok(a) = ses.peer_addr.parse() {
                        s.dialed_up.remove(&a);
                    }
                }
                drop(s);
                if was_up {
                    let name = peer_name(&ses);
                    tracing::warn!(peer = %name, "node down");
                    membership.mark_down(&name);
                } else {
                    tracing::warn!(peer = %ses.peer_addr, "cluster session closed before authenticating (wrong cookie?)");
                }
            }
        }
        changed.send_modify(|n| *n += 1);
    }
}

/// Keeps a session to `seed` open for the life of the process.
async fn keep_dialing(
    server: ActorRef<NodeServerMessage>,
    tls: Option<NodeTls>,
    seed: String,
    sessions: Arc<Mutex<Sessions>>,
    mut changed: watch::Receiver<u64>,
) {
    let connected = |addrs: &[SocketAddr]| {
        let s = sessions.lock().expect("sessions lock");
        addrs.iter().any(|a| s.dialed_up.contains(a))
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        let addrs: Vec<SocketAddr> = match tokio::net::lookup_host(seed.as_str()).await {
            Ok(a) => a.collect(),
            Err(e) => {
                tracing::warn!(%seed, "cannot resolve seed: {e}");
                tokio::time::sleep(REDIAL_MAX).await;
                continue;
            }
        };
        if connected(&addrs) {
            backoff = Duration::from_millis(50);
            if changed.changed().await.is_err() {
                return;
            }
            continue;
        }
        let dialed = match &tls {
            None => ractor_cluster::client_connect(&server, seed.as_str())
                .await
                .map_err(|e| e.to_string()),
            Some(tls) => tls.dial(&server, &seed).await,
        };
        match dialed {
            Ok(()) => {
                // A session counts once it authenticates; wait for that (or give up and re-dial).
                let deadline = tokio::time::sleep(Duration::from_secs(2));
                tokio::pin!(deadline);
                loop {
                    if connected(&addrs) {
                        break;
                    }
                    tokio::select! {
                        _ = &mut deadline => break,
                        r = changed.changed() => if r.is_err() { return },
                    }
                }
            }
            Err(e) => tracing::debug!(%seed, "dial failed: {e}"),
        }
        if !connected(&addrs) {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(REDIAL_MAX);
        }
    }
}

/// Pings every remote node-info actor; drops the session of a peer that stopped answering.
async fn ping_peers(sessions: Arc<Mutex<Sessions>>, missed_limit: u32) {
    let mut missed: HashMap<u64, u32> = HashMap::new();
    let mut tick = tokio::time::interval(PING_EVERY);
    loop {
        tick.tick().await;
        let peers: Vec<_> = ractor::pg::get_members(&groups::NODE.to_string())
            .into_iter()
            .filter(|m| !m.get_id().is_local())
            .collect();
        let pings = peers.into_iter().map(|m| async move {
            let node_id = m.get_id().node();
            let ok = rpc::call_member(groups::NODE, m, NodeInfoMsg::Info, PING_TIMEOUT)
                .await
                .is_ok();
            (node_id, ok)
        });
        for (node_id, ok) in futures::future::join_all(pings).await {
            if ok {
                missed.remove(&node_id);
                continue;
            }
            let n = missed.entry(node_id).or_default();
            *n += 1;
            if *n >= missed_limit {
                missed.remove(&node_id);
                let session = sessions
                    .lock()
                    .expect("sessions lock")
                    .by_node_id
                    .get(&node_id)
                    .cloned();
                if let Some(session) = session {
                    tracing::warn!(
                        node_id,
                        "peer stopped answering pings; dropping its session"
                    );
                    session.kill();
                }
            }
        }
    }
}
