//! The HTTP edge as a library: HTTP in, actor messages out, replies back as HTTP.
//!
//! Owns: routing, request parsing and validation, the mapping of actor replies and call errors
//! to each API family's JSON bodies, and the draining switch used during shutdown.
//! Must not own: business rules or storage; everything a request needs comes from an actor
//! through `troupe_actors::rpc`, with a deadline.

pub mod access_log;
pub mod client_ip;
pub mod draining;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod protect;
pub mod refusal;
pub mod routes;
pub mod user_cache;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use troupe_actors::membership::Membership;
use troupe_actors::protocol::node_info::NodeInfo;

pub use draining::Draining;

/// Limits and deadlines of the edge.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Deadline of every actor call made for a request.
    pub call_timeout: Duration,
    /// How long `POST /jobs?wait=true` waits for the job to finish.
    pub wait_timeout: Duration,
    /// How long `POST /api/v1/json` waits for its answer.
    pub question_timeout: Duration,
    /// Peers whose `X-Forwarded-For` names the client (none by default).
    pub trusted_proxies: client_ip::TrustedProxies,
    /// A request taking longer is stopped (408); above every wait a route offers.
    pub request_timeout: Duration,
    /// Largest job text accepted (bytes).
    pub max_text_bytes: usize,
    /// Largest request body accepted (bytes), except on `POST /jobs` (see `jobs_body_bytes`).
    pub max_body_bytes: usize,
}

/// Room in a `POST /jobs` body for what is not the text: the JSON object around it, `wait`,
/// or other form fields.
const JOBS_BODY_SLACK: usize = 64 * 1024;

impl EdgeConfig {
    /// The body limit of `POST /jobs`, from the text limit: any text within `max_text_bytes`
    /// fits however its client encodes it, so the relay's own text limit answers (413 naming
    /// the text) rather than the body limit. The worst encodings take 6 bytes per byte of text
    /// (JSON escapes a control character as `\u00XX`; form encoding takes 3 per byte, and
    /// `ensure_ascii` JSON 2 to 3 per byte of non-ASCII text).
    pub fn jobs_body_bytes(&self) -> usize {
        self.max_text_bytes
            .saturating_mul(6)
            .saturating_add(JOBS_BODY_SLACK)
            .max(self.max_body_bytes)
    }
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(30),
            question_timeout: Duration::from_secs(60),
            trusted_proxies: client_ip::TrustedProxies::default(),
            request_timeout: Duration::from_secs(120),
            max_text_bytes: 1024 * 1024,
            max_body_bytes: 2 * 1024 * 1024,
        }
    }
}

/// What every handler can reach. Every middleware layer and handler clones it per request, so
/// it is one pointer to [`Shared`] rather than a bundle of counted references.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: EdgeConfig,
    pub membership: Membership,
    pub draining: Draining,
    pub protection: Arc<protect::Protection>,
    pub http_metrics: metrics::HttpMetrics,
    pub user_cache: user_cache::UserCache,
    /// What each node said of itself when it last answered `/cluster`'s question, so a node
    /// that is down still shows its roles and workers.
    pub last_known_nodes: std::sync::Mutex<std::collections::HashMap<String, NodeInfo>>,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The public listener's routes.
pub fn public_router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(routes::health::router())
        .merge(routes::metrics::router())
        .merge(routes::jobs::router(state.config.jobs_body_bytes()))
        .merge(routes::public_api::router())
        .merge(routes::questions::router())
        .merge(routes::tasks::router())
        .merge(routes::events::router())
        .route("/openapi.json", axum::routing::get(openapi::serve))
        .fallback(routes::not_found);
    with_edge_layers(routes, state, pipeline::Listener::Public)
}

/// The internal listener's routes: services the briefs keep away from external clients.
pub fn internal_router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(routes::health::router())
        .merge(routes::metrics::router())
        .merge(routes::listings::router())
        .merge(routes::users::router())
        .fallback(routes::result_family::not_found)
        .method_not_allowed_fallback(routes::result_family::method_not_allowed);
    with_edge_layers(routes, state, pipeline::Listener::Internal)
}

/// Every request passes the listener's pipeline (`pipeline.rs`); the body limit inside it is
/// read by the extractors.
fn with_edge_layers(
    routes: Router<AppState>,
    state: AppState,
    listener: pipeline::Listener,
) -> Router {
    use axum::extract::{Request, State};
    routes
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_body_bytes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            move |State(state): State<AppState>, request: Request, next: axum::middleware::Next| {
                pipeline::around(state, request, next, listener)
            },
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bodies of the largest text in its most expensive encodings all fit `/jobs`'s limit.
    #[test]
    fn the_jobs_body_limit_fits_any_encoding_of_a_text_within_the_limit() {
        let config = EdgeConfig::default();
        let n = config.max_text_bytes;
        let json = |text: String| {
            serde_json::to_vec(&serde_json::json!({"text": text, "wait": true}))
                .unwrap()
                .len()
        };
        let control = json("\u{1}".repeat(n));
        // What Python's json.dumps sends by default: \ud83d\ude00 (12 bytes) for 4.
        let escaped_astral = 12 * (n / 4) + 30;
        let form = 3 * n + "text=&wait=true".len();
        for size in [control, escaped_astral, form] {
            assert!(
                size <= config.jobs_body_bytes(),
                "{size} > {}",
                config.jobs_body_bytes()
            );
        }
        // Never below the limit of every other route.
        let big = EdgeConfig {
            max_text_bytes: 10,
            ..EdgeConfig::default()
        };
        assert_eq!(big.jobs_body_bytes(), big.max_body_bytes);
    }
}
