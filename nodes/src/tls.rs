//! Optional mutual TLS between nodes.
//!
//! Every member presents a certificate signed by the cluster's CA and accepts only peers that do
//! the same; a client checks the server's certificate against the host it dialed (a DNS name or
//! an IP address in the certificate's subject alternative names). The cookie is still checked on
//! top, inside the encrypted session.
//!
//! ractor_cluster's own TLS listener runs each handshake inside its single accept loop with no
//! deadline, so one silent connection would keep every other node out
//! (`notes/stack-facts.md`). Here the cluster port is our own listener: each connection gets its
//! handshake in its own task under a deadline (`--tls-handshake-timeout`), and only an
//! established TLS stream is handed to the NodeServer. Dialing is bounded the same way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::{NetworkStream, NodeServerMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::crypto::{aws_lc_rs, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Where a member's certificate, key and cluster CA live (PEM files).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// How long a peer may take from TCP connect to a finished TLS handshake.
    pub handshake_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no certificate")]
    Empty { path: PathBuf },
    #[error("node TLS setup: {0}")]
    Config(String),
}

/// The acceptor and connector built once from [`TlsFiles`].
#[derive(Clone)]
pub struct NodeTls {
    pub acceptor: TlsAcceptor,
    connector: TlsConnector,
    handshake_timeout: Duration,
}

impl NodeTls {
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let certs = read_certs(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Read {
            path: files.key.clone(),
            reason: e.to_string(),
        })?;
        let mut roots = RootCertStore::empty();
        for ca in read_certs(&files.ca)? {
            roots
                .add(ca)
                .map_err(|e| TlsError::Config(format!("CA {}: {e}", files.ca.display())))?;
        }
        let roots = Arc::new(roots);
        // Explicit, so a second provider turning up in the dependency tree cannot make the
        // process-wide default ambiguous.
        let provider: Arc<CryptoProvider> = Arc::new(aws_lc_rs::default_provider());
        let config = |e: tokio_rustls::rustls::Error| TlsError::Config(e.to_string());

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(config)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(config)?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(config)?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(config)?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            handshake_timeout: files.handshake_timeout,
        })
    }

    /// Dials `seed` ("host:port"), finishes the handshake, and hands the session to `server`.
    pub async fn dial(
        &self,
        server: &ActorRef<NodeServerMessage>,
        seed: &str,
    ) -> Result<(), String> {
        let host = seed
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .ok_or_else(|| format!("seed {seed:?} is not host:port"))?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("seed host {host:?}: {e}"))?;
        let connect = async {
            let tcp = TcpStream::connect(seed).await.map_err(|e| e.to_string())?;
            tcp.set_nodelay(true).map_err(|e| e.to_string())?;
            let (peer_addr, local_addr) = addrs(&tcp)?;
            let stream = self.connector.connect(name, tcp).await.map_err(|e| {
                tracing::warn!(%seed, "cluster TLS handshake failed: {e}");
                format!("TLS handshake with {seed}: {e}")
            })?;
            Ok::<_, String>(NetworkStream::TlsClient {
                peer_addr,
                local_addr,
                stream,
            })
        };
        let limit = self.handshake_timeout;
        let stream = tokio::time::timeout(limit, connect)
            .await
            .map_err(|_| format!("no TLS session with {seed} within {limit:?}"))??;
        server
            .cast(NodeServerMessage::ConnectionOpened {
                stream: Box::new(stream),
                is_server: false,
            })
            .map_err(|e| e.to_string())
    }
}

/// Handshakes under way at once, at most: a flood of silent connections is turned away at the
/// door rather than allowed to use up the process's file descriptors.
const MAX_PENDING_HANDSHAKES: usize = 64;

/// Accepts cluster connections on `listener` for the life of the process: each handshake runs in
/// its own task with a deadline, so a silent or plaintext peer delays nobody else.
pub async fn accept_loop(listener: TcpListener, tls: NodeTls, server: ActorRef<NodeServerMessage>) {
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: pause instead of spinning.
                tracing::warn!("cluster accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = pending.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many cluster handshakes under way; connection dropped");
            continue;
        };
        let (acceptor, server) = (tls.acceptor.clone(), server.clone());
        let limit = tls.handshake_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tcp.set_nodelay(true);
            let Ok((peer_addr, local_addr)) = addrs(&tcp) else {
                return;
            };
            match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = server.cast(NodeServerMessage::ConnectionOpened {
                        stream: Box::new(NetworkStream::TlsServer {
                            peer_addr,
                            local_addr,
                            stream,
                        }),
                        is_server: true,
                    });
                }
                Ok(Err(e)) => tracing::warn!(%peer, "cluster TLS handshake refused: {e}"),
                Err(_) => {
                    tracing::warn!(%peer, "cluster TLS handshake not finished within {limit:?}; dropped")
                }
            }
        });
    }
}

fn addrs(tcp: &TcpStream) -> Result<(SocketAddr, SocketAddr), String> {
    Ok((
        tcp.peer_addr().map_err(|e| e.to_string())?,
        tcp.local_addr().map_err(|e| e.to_string())?,
    ))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}
