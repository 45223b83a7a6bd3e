//! The listing service (seed 002): listings with integer ids from 1, never reused, newest
//! first, with an index by user so one user's listings are read without a scan of all.

use std::path::PathBuf;

use ractor::{pg, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::paging;
use crate::protocol::listings::{
    Listing, ListingCreated, ListingMsg, ListingPage, ListingQuery, NewListing,
};
use crate::protocol::service_error::ServiceError;
use crate::store::{key, Batch, Schema, Store, StoreError};
use crate::time::now_micros;
use crate::{codec, groups};

pub const LISTINGS: &str = "listings";
/// `created_at ++ id` of every listing.
pub const BY_CREATED: &str = "listings_by_created";
/// `user_id ++ created_at ++ id` of every listing.
pub const BY_USER: &str = "listings_by_user";
pub const SCHEMA: Schema = Schema {
    version: 1,
    tables: &[LISTINGS, BY_CREATED, BY_USER],
};
pub const LISTING_TYPES: &[&str] = &["rent", "sale"];

/// A listing that passed the rules: `(user_id, listing_type, price)`.
type ValidListing = (u64, String, i64);

/// The listing service's rules; every message names its field.
pub fn validate(new: &NewListing) -> Result<ValidListing, Vec<String>> {
    let mut errors = Vec::new();
    let user_id = match new.user_id {
        None => {
            errors.push("user_id is required".to_string());
            0
        }
        Some(id) if id < 1 => {
            errors.push("user_id must be a positive integer".to_string());
            0
        }
        Some(id) => id as u64,
    };
    let listing_type = match new.listing_type.as_deref() {
        None => {
            errors.push("listing_type is required".to_string());
            String::new()
        }
        Some(t) if LISTING_TYPES.contains(&t) => t.to_string(),
        Some(t) => {
            errors.push(format!("listing_type must be rent or sale, not {t:?}"));
            String::new()
        }
    };
    let price = match new.price {
        None => {
            errors.push("price is required".to_string());
            0
        }
        Some(p) if p <= 0 => {
            errors.push("price must be greater than 0".to_string());
            0
        }
        Some(p) => p,
    };
    if errors.is_empty() {
        Ok((user_id, listing_type, price))
    } else {
        Err(errors)
    }
}

pub struct ListingArgs {
    pub store_path: PathBuf,
}

pub struct ListingState {
    store: Store,
    next_id: u64,
}

pub struct ListingActor;

/// Messages handled and time busy, for `/metrics`.
static LOAD: crate::telemetry::LoadCounter = crate::telemetry::LoadCounter::new("listing");

impl Actor for ListingActor {
    type Msg = ListingMsg;
    type State = ListingState;
    type Arguments = ListingArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ListingMsg>,
        args: ListingArgs,
    ) -> Result<ListingState, ActorProcessingErr> {
        let store = Store::open(&args.store_path, SCHEMA)?;
        let next_id = store
            .last_key(LISTINGS)?
            .and_then(|k| key::to_u64(&k))
            .map_or(1, |last| last + 1);
        pg::join(groups::LISTING.into(), vec![myself.get_cell()]);
        Ok(ListingState { store, next_id })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ListingMsg>,
        msg: ListingMsg,
        state: &mut ListingState,
    ) -> Result<(), ActorProcessingErr> {
        let _busy = LOAD.busy();
        match msg {
            ListingMsg::Create(new, reply) => create(state, new, reply),
            ListingMsg::List(query, reply) => {
                let listings =
                    list(&state.store, &query).map_err(|e| ServiceError::Storage(e.to_string()));
                let _ = reply.send(ListingPage(listings));
            }
        }
        Ok(())
    }
}

fn create(state: &mut ListingState, new: NewListing, reply: RpcReplyPort<ListingCreated>) {
    let (user_id, listing_type, price) = match validate(&new) {
        Ok(valid) => valid,
        Err(errors) => {
            let _ = reply.send(ListingCreated(Err(ServiceError::Invalid(errors))));
            return;
        }
    };
    let now = now_micros();
    let listing = Listing {
        id: state.next_id,
        user_id,
        listing_type,
        price,
        created_at: now,
        updated_at: now,
    };
    state.next_id += 1;
    let id = key::u64(listing.id);
    let mut batch = Batch::new();
    match codec::encode(&listing) {
        Ok(bytes) => batch.put(LISTINGS, id.to_vec(), bytes),
        Err(e) => {
            let _ = reply.send(ListingCreated(Err(ServiceError::Storage(e.to_string()))));
            return;
        }
    }
    batch.put(BY_CREATED, [key::i64(now), id].concat(), Vec::new());
    batch.put(
        BY_USER,
        [key::u64(user_id), key::i64(now), id].concat(),
        Vec::new(),
    );
    let committed = state.store.commit(batch);
    tokio::spawn(async move {
        let answer = committed
            .await
            .map(|_| listing)
            .map_err(|e| ServiceError::Storage(e.to_string()));
        let _ = reply.send(ListingCreated(answer));
    });
}

fn list(store: &Store, query: &ListingQuery) -> Result<Vec<Listing>, StoreError> {
    let ids = match query.user_id {
        // No listing has a user id below 1.
        Some(user_id) if user_id < 1 => return Ok(Vec::new()),
        Some(user_id) => paging::newest_ids(store, BY_USER, &key::u64(user_id as u64), query.page)?,
        None => paging::newest_ids(store, BY_CREATED, &[], query.page)?,
    };
    let keys: Vec<Vec<u8>> = ids.iter().map(|id| key::u64(*id).to_vec()).collect();
    store
        .get_many(LISTINGS, &keys)?
        .into_iter()
        .flatten()
        .map(|bytes| {
            codec::decode(&bytes).map_err(|e| StoreError::Corrupt {
                table: LISTINGS.into(),
                reason: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_names_its_field() {
        let new = |u, t: Option<&str>, p| NewListing {
            user_id: u,
            listing_type: t.map(String::from),
            price: p,
        };
        assert_eq!(
            validate(&new(Some(1), Some("rent"), Some(6000))).unwrap(),
            (1, "rent".to_string(), 6000)
        );
        let errs = validate(&new(None, None, None)).unwrap_err();
        assert_eq!(
            errs,
            vec![
                "user_id is required",
                "listing_type is required",
                "price is required"
            ]
        );
        let errs = validate(&new(Some(0), Some("buy"), Some(0))).unwrap_err();
        assert!(errs[0].starts_with("user_id"));
        assert!(errs[1].starts_with("listing_type"));
        assert_eq!(errs[2], "price must be greater than 0");
    }
}
