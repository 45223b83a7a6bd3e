//! The user service (seed 002): users with integer ids from 1, never reused, newest first.

use std::path::PathBuf;

use ractor::{pg, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::paging;
use crate::protocol::service_error::ServiceError;
use crate::protocol::users::{NewUser, User, UserCreated, UserLookup, UserMsg, UserPage, UserSet};
use crate::store::{key, Batch, Schema, Store, StoreError};
use crate::time::now_micros;
use crate::{codec, groups};

pub const USERS: &str = "users";
/// `created_at ++ id` of every user: the newest-first order of `GET /users`.
pub const BY_CREATED: &str = "users_by_created";
pub const SCHEMA: Schema = Schema {
    version: 1,
    tables: &[USERS, BY_CREATED],
};
pub const MAX_NAME_CHARS: usize = 256;

/// The user service's rules for a new user; each message names the field.
pub fn validate(new: &NewUser) -> Result<String, Vec<String>> {
    match new.name.as_deref().map(str::trim) {
        None => Err(vec!["name is required".into()]),
        Some("") => Err(vec!["name must not be empty".into()]),
        Some(name) if name.chars().count() > MAX_NAME_CHARS => Err(vec![format!(
            "name must be at most {MAX_NAME_CHARS} characters"
        )]),
        Some(name) => Ok(name.to_string()),
    }
}

pub struct UserArgs {
    pub store_path: PathBuf,
}

pub struct UserState {
    store: Store,
    next_id: u64,
}

pub struct UserActor;

/// Messages handled and time busy, for `/metrics`.
static LOAD: crate::telemetry::LoadCounter = crate::telemetry::LoadCounter::new("user");

impl Actor for UserActor {
    type Msg = UserMsg;
    type State = UserState;
    type Arguments = UserArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<UserMsg>,
        args: UserArgs,
    ) -> Result<UserState, ActorProcessingErr> {
        let store = Store::open(&args.store_path, SCHEMA)?;
        let next_id = store
            .last_key(USERS)?
            .and_then(|k| key::to_u64(&k))
            .map_or(1, |last| last + 1);
        pg::join(groups::USER.into(), vec![myself.get_cell()]);
        Ok(UserState { store, next_id })
    }

    async fn handle(
        &self,
        _myself: ActorRef<UserMsg>,
        msg: UserMsg,
        state: &mut UserState,
    ) -> Result<(), ActorProcessingErr> {
        let _busy = LOAD.busy();
        match msg {
            UserMsg::Create(new, reply) => create(state, new, reply),
            // A storage error is the caller's 500, not a reason to restart the actor.
            UserMsg::Get(id, reply) => {
                let found = load_many(&state.store, &[id]).map(|mut users| users.pop());
                let _ = reply.send(UserLookup(found.map_err(storage)));
            }
            UserMsg::GetMany(ids, reply) => {
                let found = load_many(&state.store, &ids.0);
                let _ = reply.send(UserSet(found.map_err(storage)));
            }
            UserMsg::List(page, reply) => {
                let users = paging::newest_ids(&state.store, BY_CREATED, &[], page)
                    .and_then(|ids| load_many(&state.store, &ids));
                let _ = reply.send(UserPage(users.map_err(storage)));
            }
        }
        Ok(())
    }
}

fn create(state: &mut UserState, new: NewUser, reply: RpcReplyPort<UserCreated>) {
    let name = match validate(&new) {
        Ok(name) => name,
        Err(errors) => {
            let _ = reply.send(UserCreated(Err(ServiceError::Invalid(errors))));
            return;
        }
    };
    let now = now_micros();
    let user = User {
        id: state.next_id,
        name,
        created_at: now,
        updated_at: now,
    };
    state.next_id += 1;
    let mut batch = Batch::new();
    let id = key::u64(user.id);
    match codec::encode(&user) {
        Ok(bytes) => batch.put(USERS, id.to_vec(), bytes),
        Err(e) => {
            let _ = reply.send(UserCreated(Err(ServiceError::Storage(e.to_string()))));
            return;
        }
    }
    batch.put(BY_CREATED, [key::i64(now), id].concat(), Vec::new());
    let committed = state.store.commit(batch);
    tokio::spawn(async move {
        let answer = committed
            .await
            .map(|_| user)
            .map_err(|e| ServiceError::Storage(e.to_string()));
        let _ = reply.send(UserCreated(answer));
    });
}

fn storage(e: StoreError) -> ServiceError {
    ServiceError::Storage(e.to_string())
}

fn load_many(store: &Store, ids: &[u64]) -> Result<Vec<User>, StoreError> {
    let keys: Vec<Vec<u8>> = ids.iter().map(|id| key::u64(*id).to_vec()).collect();
    store
        .get_many(USERS, &keys)?
        .into_iter()
        .flatten()
        .map(|bytes| {
            codec::decode(&bytes).map_err(|e| StoreError::Corrupt {
                table: USERS.into(),
                reason: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_required_and_bounded() {
        let v = |n: Option<&str>| {
            validate(&NewUser {
                name: n.map(String::from),
            })
        };
        assert_eq!(v(Some("  Ada ")).unwrap(), "Ada");
        assert_eq!(v(None).unwrap_err(), vec!["name is required"]);
        assert!(v(Some("   ")).unwrap_err()[0].contains("empty"));
        assert!(v(Some(&"é".repeat(256))).is_ok());
        assert!(v(Some(&"é".repeat(257))).unwrap_err()[0].contains("256"));
    }
}
