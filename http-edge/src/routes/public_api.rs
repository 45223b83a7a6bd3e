//! The public API layer (seed 002) on the public listener: listings with their users embedded,
//! and JSON creates. It reaches data only through the listing and user actors.

use std::collections::{HashMap, HashSet};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Map, Value};
use troupe_actors::listing::{Listing, NewListing};
use troupe_actors::user::{NewUser, User};

use super::json_body::{self, JsonBodyError};
use super::result_family::{self, ResultError};
use super::{listings, users};
use crate::openapi::RouteDoc;
use crate::AppState;

pub fn router() -> Router<AppState> {
    let api = Router::new()
        .route("/listings", get(list).post(create_listing))
        .route("/users", post(create_user))
        .fallback(result_family::not_found)
        .method_not_allowed_fallback(result_family::method_not_allowed);
    Router::new().nest("/public-api", api)
}

/// A listing as the public API shows it: its user embedded instead of `user_id`.
#[derive(Debug, Serialize)]
pub struct PublicListing {
    pub id: u64,
    pub listing_type: String,
    pub price: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// `null` when the user no longer resolves.
    pub user: Option<User>,
}

#[derive(Serialize)]
pub struct PublicListings {
    pub result: bool,
    pub listings: Vec<PublicListing>,
}

#[derive(Serialize)]
pub struct CreatedUser {
    pub user: User,
}

#[derive(Serialize)]
pub struct CreatedListing {
    pub listing: Listing,
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<PublicListings>, ResultError> {
    let page = listings::fetch(&state, listings::parse_query(&q)?).await?;
    let mut ids: Vec<u64> = page
        .iter()
        .map(|l| l.user_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    ids.sort_unstable();
    let found = if ids.is_empty() {
        Vec::new()
    } else {
        users::find_many(&state, ids).await?
    };
    let by_id: HashMap<u64, User> = found.into_iter().map(|u| (u.id, u)).collect();
    let listings = page
        .into_iter()
        .map(|l| PublicListing {
            user: by_id.get(&l.user_id).cloned(),
            id: l.id,
            listing_type: l.listing_type,
            price: l.price,
            created_at: l.created_at,
            updated_at: l.updated_at,
        })
        .collect();
    Ok(Json(PublicListings {
        result: true,
        listings,
    }))
}

/// The JSON object of a public create: 415 for another Content-Type, 400 for bad JSON.
fn json_object(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, ResultError> {
    json_body::object(headers, body).map_err(|e| match e {
        JsonBodyError::WrongContentType(_) => {
            ResultError::one(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.message())
        }
        JsonBodyError::Invalid(m) => ResultError::bad_request(vec![m]),
    })
}

fn int_field(map: &Map<String, Value>, name: &str, errors: &mut Vec<String>) -> Option<i64> {
    match map.get(name) {
        None | Some(Value::Null) => None,
        Some(v) => v.as_i64().or_else(|| {
            errors.push(format!("{name} must be an integer"));
            None
        }),
    }
}

fn string_field(map: &Map<String, Value>, name: &str, errors: &mut Vec<String>) -> Option<String> {
    match map.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(format!("{name} must be a string"));
            None
        }
    }
}

async fn create_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CreatedUser>, ResultError> {
    let map = json_object(&headers, &body)?;
    let mut errors = Vec::new();
    let name = string_field(&map, "name", &mut errors);
    if !errors.is_empty() {
        return Err(ResultError::bad_request(errors));
    }
    let user = users::store(&state, NewUser { name }).await?;
    Ok(Json(CreatedUser { user }))
}

async fn create_listing(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CreatedListing>, ResultError> {
    let map = json_object(&headers, &body)?;
    let mut errors = Vec::new();
    let new = NewListing {
        user_id: int_field(&map, "user_id", &mut errors),
        listing_type: string_field(&map, "listing_type", &mut errors),
        price: int_field(&map, "price", &mut errors),
    };
    if !errors.is_empty() {
        return Err(ResultError::bad_request(errors));
    }
    // The public layer guards what the listing service does not: the user must exist.
    if let Some(user_id) = new.user_id.filter(|id| *id >= 1) {
        if users::find(&state, user_id as u64).await?.is_none() {
            return Err(ResultError::bad_request(vec![format!(
                "user_id {user_id} does not exist"
            )]));
        }
    }
    let listing = listings::store(&state, new).await?;
    Ok(Json(CreatedListing { listing }))
}

/// The operations this module serves on the public listener (see `crate::openapi`).
pub fn docs() -> Vec<RouteDoc> {
    vec![
        RouteDoc {
            method: "GET",
            path: "/public-api/listings".into(),
            summary: "Listings, newest first, each with its user",
            family: "listings",
            body: None,
            success: 200,
            errors: &[400],
        },
        RouteDoc {
            method: "POST",
            path: "/public-api/listings".into(),
            summary: "Create a listing for an existing user",
            family: "listings",
            body: Some("application/json"),
            success: 200,
            errors: &[400, 415],
        },
        RouteDoc {
            method: "POST",
            path: "/public-api/users".into(),
            summary: "Create a user",
            family: "listings",
            body: Some("application/json"),
            success: 200,
            errors: &[400, 415],
        },
    ]
}
