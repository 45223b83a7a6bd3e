//! The public API layer (seed 002) on the public listener: listings with their users embedded,
//! and JSON creates. It reaches data only through the listing and user actors.

use std::collections::{HashMap, HashSet};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Map, Value};
use troupe_actors::protocol::listings::{Listing, NewListing};
use troupe_actors::protocol::users::{NewUser, User};

use super::doc::{schema, RouteDoc};
use super::json_body::{self, JsonBodyError};
use super::result_family::{self, ResultError};
use super::{listings, users};
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
    // Every mistake in one answer: the service's rules for the fields that parsed (a field of
    // the wrong type already has its message), then whether the user exists.
    if let Err(rules) = troupe_actors::listing::validate(&new) {
        let mistyped: Vec<String> = errors.clone();
        let names_a_mistyped_field = |rule: &String| {
            let field = rule.split(' ').next().unwrap_or_default();
            mistyped.iter().any(|m| m.split(' ').next() == Some(field))
        };
        errors.extend(rules.into_iter().filter(|r| !names_a_mistyped_field(r)));
    }
    // The public layer guards what the listing service does not: the user must exist.
    if let Some(user_id) = new.user_id.filter(|id| *id >= 1) {
        match users::find(&state, user_id as u64).await {
            Ok(Some(_)) => {}
            Ok(None) => errors.push(format!("user_id {user_id} does not exist")),
            // With the user service down, the request's other mistakes are still a 400: a
            // 503 would have the client retry a request that cannot succeed.
            Err(unavailable) if errors.is_empty() => return Err(unavailable),
            Err(_) => {}
        }
    }
    if !errors.is_empty() {
        return Err(ResultError::bad_request(errors));
    }
    let listing = listings::store(&state, new).await?;
    Ok(Json(CreatedListing { listing }))
}

fn user_schema() -> Value {
    schema::object(
        json!({
            "id": {"type": "integer", "minimum": 1},
            "name": {"type": "string"},
            "created_at": {"type": "integer", "description": "microseconds since the epoch"},
            "updated_at": {"type": "integer", "description": "microseconds since the epoch"},
        }),
        &["id", "name", "created_at", "updated_at"],
    )
}

/// The operations this module serves on the public listener (see `crate::openapi`).
pub fn docs() -> Vec<RouteDoc> {
    let micros = || json!({"type": "integer", "description": "microseconds since the epoch"});
    let listing_type = json!({"type": "string", "enum": troupe_actors::listing::LISTING_TYPES});
    let mut user_or_null = user_schema();
    user_or_null["nullable"] = json!(true);
    let public_listing = schema::object(
        json!({
            "id": {"type": "integer", "minimum": 1},
            "listing_type": listing_type,
            "price": {"type": "integer", "minimum": 1},
            "created_at": micros(),
            "updated_at": micros(),
            "user": user_or_null,
        }),
        &[
            "id",
            "listing_type",
            "price",
            "created_at",
            "updated_at",
            "user",
        ],
    );
    let listing = schema::object(
        json!({
            "id": {"type": "integer", "minimum": 1},
            "user_id": {"type": "integer", "minimum": 1},
            "listing_type": listing_type,
            "price": {"type": "integer", "minimum": 1},
            "created_at": micros(),
            "updated_at": micros(),
        }),
        &[
            "id",
            "user_id",
            "listing_type",
            "price",
            "created_at",
            "updated_at",
        ],
    );
    let ok = || json!({"type": "boolean", "enum": [true]});
    vec![
        RouteDoc::new(
            "GET",
            "/public-api/listings",
            "Listings, newest first, each with its user",
            "listings",
        )
        .paginated()
        .query("user_id", schema::int64(i64::MIN, i64::MAX))
        .ok(
            200,
            schema::object(
                json!({"result": ok(), "listings": {"type": "array", "items": public_listing}}),
                &["result", "listings"],
            ),
        )
        .errors(&[400]),
        RouteDoc::new(
            "POST",
            "/public-api/listings",
            "Create a listing for an existing user",
            "listings",
        )
        .body(
            "application/json",
            schema::with_example(
                schema::object(
                    json!({
                        "user_id": schema::int64(1, i64::MAX),
                        "listing_type": listing_type,
                        "price": schema::int64(1, i64::MAX),
                    }),
                    &["user_id", "listing_type", "price"],
                ),
                json!({"user_id": 1, "listing_type": "rent", "price": 6000}),
            ),
        )
        .ok(
            200,
            schema::object(json!({"listing": listing}), &["listing"]),
        )
        .errors(&[400, 415]),
        RouteDoc::new("POST", "/public-api/users", "Create a user", "listings")
            .body(
                "application/json",
                schema::with_example(
                    schema::object(
                        json!({"name": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": troupe_actors::user::MAX_NAME_CHARS,
                            "pattern": "\\S",
                            "description": "trimmed; not only white space",
                        }}),
                        &["name"],
                    ),
                    json!({"name": "Lorel Ipsum"}),
                ),
            )
            .ok(
                200,
                schema::object(json!({"user": user_schema()}), &["user"]),
            )
            .errors(&[400, 415]),
    ]
}
