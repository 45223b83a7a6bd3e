//! `GET /metrics`: Prometheus text (see `crate::metrics`).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use ractor::pg;
use troupe_actors::groups;
use troupe_actors::protocol::geo::GeoMsg;
use troupe_actors::protocol::node_info::NodeInfoMsg;
use troupe_actors::rpc;

use crate::metrics::{render, GeoCounters};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let timeout = state.config.call_timeout;
    let asks = pg::get_members(&groups::NODE.to_string())
        .into_iter()
        .map(|m| rpc::call_member(groups::NODE, m, NodeInfoMsg::Metrics, timeout));
    let nodes: Vec<_> = futures::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    let geo = rpc::call(groups::GEO, GeoMsg::Stats, timeout)
        .await
        .ok()
        .map(|s| GeoCounters {
            upstream_calls: s.upstream_calls,
            rate_limited: s.rate_limited,
            cache_hits: s.cache_hits,
            joined: s.joined,
            local: s.local,
        });
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&state.http_metrics, &nodes, geo),
    )
}
