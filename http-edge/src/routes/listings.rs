//! The listing service's own API (seed 002), on the internal listener:
//! `GET /listings`, `POST /listings` (form).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use troupe_actors::groups;
use troupe_actors::protocol::listings::{Listing, ListingMsg, ListingQuery, NewListing};
use troupe_actors::protocol::page::Page;
use troupe_actors::rpc;

use super::form;
use super::result_family::{int_param, ResultError};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/listings", get(list).post(create))
}

#[derive(Serialize)]
pub struct ListingsBody {
    pub result: bool,
    pub listings: Vec<Listing>,
}

#[derive(Serialize)]
pub struct ListingBody {
    pub result: bool,
    pub listing: Listing,
}

/// Parses `page_num`, `page_size` and `user_id`, reporting every bad one.
pub fn parse_query(q: &HashMap<String, String>) -> Result<ListingQuery, ResultError> {
    let page = Page::parse(
        q.get("page_num").map(String::as_str),
        q.get("page_size").map(String::as_str),
    );
    let user_id = int_param("user_id", q.get("user_id").map(String::as_str));
    match (page, user_id) {
        (Ok(page), Ok(user_id)) => Ok(ListingQuery { page, user_id }),
        (page, user_id) => {
            let mut errors = page.err().unwrap_or_default();
            errors.extend(user_id.err());
            Err(ResultError::bad_request(errors))
        }
    }
}

/// Lists through the listing actor; shared with the public API.
pub async fn fetch(state: &AppState, query: ListingQuery) -> Result<Vec<Listing>, ResultError> {
    rpc::call(
        groups::LISTING,
        |reply| ListingMsg::List(query, reply),
        state.config.call_timeout,
    )
    .await
    .map_err(|e| ResultError::unavailable("listing", e))?
    .0
    .map_err(ResultError::from_service)
}

/// Creates through the listing actor; shared with the public API.
pub async fn store(state: &AppState, new: NewListing) -> Result<Listing, ResultError> {
    rpc::call(
        groups::LISTING,
        |reply| ListingMsg::Create(new, reply),
        state.config.call_timeout,
    )
    .await
    .map_err(|e| ResultError::unavailable("listing", e))?
    .0
    .map_err(ResultError::from_service)
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ListingsBody>, ResultError> {
    let listings = fetch(&state, parse_query(&q)?).await?;
    Ok(Json(ListingsBody {
        result: true,
        listings,
    }))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ListingBody>, ResultError> {
    let fields = form::fields(&headers, &body)?;
    let mut errors = Vec::new();
    let mut int = |name: &str| {
        int_param(name, fields.get(name).map(String::as_str)).unwrap_or_else(|e| {
            errors.push(e);
            None
        })
    };
    let user_id = int("user_id");
    let price = int("price");
    if !errors.is_empty() {
        return Err(ResultError::bad_request(errors));
    }
    let new = NewListing {
        user_id,
        listing_type: fields.get("listing_type").cloned(),
        price,
    };
    let listing = store(&state, new).await?;
    Ok(Json(ListingBody {
        result: true,
        listing,
    }))
}
