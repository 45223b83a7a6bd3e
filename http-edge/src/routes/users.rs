//! The user service's own API (seed 002), on the internal listener:
//! `GET /users`, `GET /users/{id}`, `POST /users` (form).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use troupe_actors::groups;
use troupe_actors::protocol::page::Page;
use troupe_actors::protocol::users::{NewUser, User, UserIds, UserMsg};
use troupe_actors::rpc;

use super::form;
use super::result_family::ResultError;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(one))
}

#[derive(Serialize)]
pub struct UsersBody {
    pub result: bool,
    pub users: Vec<User>,
}

#[derive(Serialize)]
pub struct UserBody {
    pub result: bool,
    pub user: User,
}

fn unavailable(e: rpc::CallError) -> ResultError {
    ResultError::unavailable("user", e)
}

/// Creates through the user actor; shared with the public API.
pub async fn store(state: &AppState, new: NewUser) -> Result<User, ResultError> {
    let user = rpc::call(
        groups::USER,
        |r| UserMsg::Create(new, r),
        state.config.call_timeout,
    )
    .await
    .map_err(unavailable)?
    .0
    .map_err(ResultError::from_service)?;
    state.user_cache.insert(std::slice::from_ref(&user));
    Ok(user)
}

/// One user, from the edge's cache of users (see `crate::user_cache`) or the user actor.
pub async fn find(state: &AppState, id: u64) -> Result<Option<User>, ResultError> {
    match state.user_cache.get(id) {
        Some(user) => Ok(Some(user)),
        None => ask_user_service(state, id).await,
    }
}

/// One user from the user actor itself, never the cache: the user service's own API answers
/// for its data, and says so when it is down.
async fn ask_user_service(state: &AppState, id: u64) -> Result<Option<User>, ResultError> {
    let found = rpc::call(
        groups::USER,
        |r| UserMsg::Get(id, r),
        state.config.call_timeout,
    )
    .await
    .map_err(unavailable)?
    .0
    .map_err(ResultError::from_service)?;
    if let Some(user) = &found {
        state.user_cache.insert(std::slice::from_ref(user));
    }
    Ok(found)
}

/// Many users: those not in the edge's cache in one message (never one call per id).
pub async fn find_many(state: &AppState, ids: Vec<u64>) -> Result<Vec<User>, ResultError> {
    let (mut found, missing) = state.user_cache.get_many(&ids);
    if missing.is_empty() {
        return Ok(found);
    }
    let fetched = rpc::call(
        groups::USER,
        |r| UserMsg::GetMany(UserIds(missing), r),
        state.config.call_timeout,
    )
    .await
    .map_err(unavailable)?
    .0
    .map_err(ResultError::from_service)?;
    state.user_cache.insert(&fetched);
    found.extend(fetched);
    Ok(found)
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<UsersBody>, ResultError> {
    let page = Page::parse(
        q.get("page_num").map(String::as_str),
        q.get("page_size").map(String::as_str),
    )
    .map_err(ResultError::bad_request)?;
    let users = rpc::call(
        groups::USER,
        |r| UserMsg::List(page, r),
        state.config.call_timeout,
    )
    .await
    .map_err(unavailable)?
    .0
    .map_err(ResultError::from_service)?;
    Ok(Json(UsersBody {
        result: true,
        users,
    }))
}

async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<UserBody>, ResultError> {
    let parsed: u64 = id.parse().map_err(|_| {
        ResultError::bad_request(vec![format!("id must be a positive integer, not {id:?}")])
    })?;
    match ask_user_service(&state, parsed).await? {
        Some(user) => Ok(Json(UserBody { result: true, user })),
        None => Err(ResultError::one(
            StatusCode::NOT_FOUND,
            format!("user {parsed} not found"),
        )),
    }
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<UserBody>, ResultError> {
    let fields = form::fields(&headers, &body)?;
    let user = store(
        &state,
        NewUser {
            name: fields.get("name").cloned(),
        },
    )
    .await?;
    Ok(Json(UserBody { result: true, user }))
}
