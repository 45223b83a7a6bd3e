//! `/healthz`, `/readyz` and `/cluster`: is this process up, can the cluster serve, who is where.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use ractor::pg;
use serde_json::{json, Value};
use troupe_actors::groups;
use troupe_actors::protocol::node_info::{NodeInfo, NodeInfoMsg};
use troupe_actors::rpc;
use troupe_actors::time::micros_to_rfc3339;

use super::doc::{schema, RouteDoc};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/cluster", get(cluster))
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let status = if state.draining.is_draining() {
        "draining"
    } else {
        "ok"
    };
    // This request is itself in flight; report the others.
    let in_flight = state.draining.in_flight().saturating_sub(1);
    Json(json!({ "status": status, "in_flight": in_flight }))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let missing: Vec<&str> = groups::SERVICE_GROUPS
        .iter()
        .copied()
        .filter(|g| pg::get_members(&g.to_string()).is_empty())
        .collect();
    let reachable = state.membership.any_up();
    if state.draining.is_draining() || !reachable || !missing.is_empty() {
        let reason = if state.draining.is_draining() {
            "shutting down".to_string()
        } else if !reachable {
            "no cluster node is reachable".to_string()
        } else {
            format!("no member in {}", missing.join(", "))
        };
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": reason, "missing": missing})),
        );
    }
    (StatusCode::OK, Json(json!({"status": "ready"})))
}

async fn cluster(State(state): State<AppState>) -> impl IntoResponse {
    // Ask every node's info actor, concurrently, each call bounded by the call timeout.
    let members = pg::get_members(&groups::NODE.to_string());
    let timeout = state.config.call_timeout;
    let infos = futures::future::join_all(members.into_iter().map(|m| async move {
        let node_id = m.get_id().node();
        let info: Option<NodeInfo> = rpc::call_member(groups::NODE, m, NodeInfoMsg::Info, timeout)
            .await
            .ok();
        (node_id, info)
    }))
    .await;
    let by_name: HashMap<String, NodeInfo> = {
        // Nodes that answered now, over what the others said when they last could.
        let mut known = state
            .last_known_nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for info in infos.iter().filter_map(|(_, i)| i.clone()) {
            known.insert(info.name.clone(), info);
        }
        known.clone()
    };
    let node_of: HashMap<u64, String> = infos
        .iter()
        .filter_map(|(id, i)| i.as_ref().map(|i| (*id, i.name.clone())))
        .collect();

    let peers = state.membership.snapshot();
    let up: HashMap<&str, bool> = peers.iter().map(|p| (short_name(&p.name), p.up)).collect();
    let nodes: Vec<Value> = peers
        .iter()
        .cloned()
        .map(|p| {
            let info = by_name.get(short_name(&p.name));
            json!({
                "name": short_name(&p.name),
                "addr": info.map(|i| i.addr.clone()).unwrap_or(p.addr),
                "status": if p.up { "up" } else { "down" },
                "since": micros_to_rfc3339(p.since),
                "roles": info.map(|i| i.roles.clone()).unwrap_or_default(),
            })
        })
        .collect();

    let mut group_map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for group in pg::which_groups() {
        if !group.starts_with("troupe.") || group == groups::NODE {
            continue;
        }
        let members = pg::get_members(&group)
            .into_iter()
            .map(|m| {
                let id = m.get_id();
                json!({
                    "node": node_of.get(&id.node()).cloned(),
                    "actor": id.to_string(),
                })
            })
            .collect();
        group_map.insert(group, members);
    }
    // Workers of a node that is down stay listed (their tasks wait for them), marked down.
    let mut workers: Vec<Value> = by_name
        .values()
        .filter(|i| up.contains_key(i.name.as_str()))
        .flat_map(|i| {
            let status = if up[i.name.as_str()] { "up" } else { "down" };
            i.workers
                .iter()
                .map(|w| json!({"name": w, "node": i.name, "status": status}))
                .collect::<Vec<_>>()
        })
        .collect();
    workers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Json(json!({ "nodes": nodes, "groups": group_map, "workers": workers }))
}

/// ractor_cluster names peers `name@host`; the API shows the name given with `--name`.
fn short_name(full: &str) -> &str {
    full.split('@').next().unwrap_or(full)
}

/// The operations this module serves on the public listener (see `crate::openapi`).
pub fn docs() -> Vec<RouteDoc> {
    let node = schema::object(
        json!({
            "name": {"type": "string"},
            "addr": {"type": "string"},
            "status": {"type": "string", "enum": ["up", "down"]},
            "since": schema::date_time(),
            "roles": {"type": "array", "items": {"type": "string"}},
        }),
        &["name", "addr", "status", "since", "roles"],
    );
    let member = schema::object(
        json!({"node": schema::nullable_string(), "actor": {"type": "string"}}),
        &["node", "actor"],
    );
    let worker = schema::object(
        json!({
            "name": {"type": "string"},
            "node": {"type": "string"},
            "status": {"type": "string", "enum": ["up", "down"], "description": "its node's"},
        }),
        &["name", "node", "status"],
    );
    vec![
        RouteDoc::new(
            "GET",
            "/healthz",
            "Is this edge up (and draining?)",
            "health",
        )
        .ok(
            200,
            schema::object(
                json!({
                    "status": {"type": "string", "enum": ["ok", "draining"]},
                    "in_flight": {"type": "integer", "minimum": 0},
                }),
                &["status", "in_flight"],
            ),
        ),
        RouteDoc::new(
            "GET",
            "/readyz",
            "Can the cluster serve: every service group has a member (else 503 with why)",
            "health",
        )
        .ok(
            200,
            schema::object(
                json!({"status": {"type": "string", "enum": ["ready"]}}),
                &["status"],
            ),
        ),
        RouteDoc::new("GET", "/cluster", "Nodes, groups and workers", "health").ok(
            200,
            schema::object(
                json!({
                    "nodes": {"type": "array", "items": node},
                    "groups": {"type": "object", "additionalProperties": {"type": "array", "items": member}},
                    "workers": {"type": "array", "items": worker},
                }),
                &["nodes", "groups", "workers"],
            ),
        ),
    ]
}
