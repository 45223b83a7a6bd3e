//! Users the edge has already fetched, by id, so a listings page or a listing create usually
//! needs no call to the user actor.
//!
//! Safe only because a user never changes once created and its id is never reused: the user
//! service (seed 002) has no update or delete, and ids come from a durable counter. Only users
//! that exist are kept; an unknown id always asks the actor, so a user created a moment ago is
//! found. The user service's own `GET /users/{id}` never reads it: that answer comes from the
//! service, which also makes it a 503 while the service is down. If users ever become mutable, this cache must go (or learn invalidation). The cache
//! outlives nothing but the edge process: a user store wiped or restored from an older backup
//! while an edge keeps running would reuse ids the edge still holds, so restart the edges then.

use std::collections::HashMap;
use std::sync::Mutex;

use troupe_actors::protocol::users::User;

/// Entries kept at most: a few MB of names, far more users than a page ever shows.
pub const CAPACITY: usize = 50_000;

pub struct UserCache {
    users: Mutex<HashMap<u64, User>>,
    capacity: usize,
}

impl Default for UserCache {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl UserCache {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            users: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, id: u64) -> Option<User> {
        self.users
            .lock()
            .expect("user cache lock")
            .get(&id)
            .cloned()
    }

    /// The cached users among `ids`, and the ids still to fetch.
    pub fn get_many(&self, ids: &[u64]) -> (Vec<User>, Vec<u64>) {
        let users = self.users.lock().expect("user cache lock");
        let mut found = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match users.get(id) {
                Some(u) => found.push(u.clone()),
                None => missing.push(*id),
            }
        }
        (found, missing)
    }

    pub fn insert(&self, fetched: &[User]) {
        let mut users = self.users.lock().expect("user cache lock");
        for u in fetched {
            if users.len() >= self.capacity && !users.contains_key(&u.id) {
                // Any entry will do: every entry stays correct, only the hit rate is at stake.
                if let Some(old) = users.keys().next().copied() {
                    users.remove(&old);
                }
            }
            users.insert(u.id, u.clone());
        }
    }

    pub fn len(&self) -> usize {
        self.users.lock().expect("user cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: u64) -> User {
        User {
            id,
            name: format!("user {id}"),
            created_at: id as i64,
            updated_at: id as i64,
        }
    }

    #[test]
    fn splits_ids_into_cached_users_and_ids_to_fetch() {
        let cache = UserCache::default();
        cache.insert(&[user(1), user(3)]);
        let (found, missing) = cache.get_many(&[1, 2, 3, 4]);
        assert_eq!(found, vec![user(1), user(3)]);
        assert_eq!(missing, vec![2, 4]);
        assert_eq!(cache.get(3), Some(user(3)));
        assert_eq!(cache.get(2), None);
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let cache = UserCache::with_capacity(10);
        let users: Vec<User> = (1..=25).map(user).collect();
        cache.insert(&users);
        assert_eq!(cache.len(), 10);
        // The newest insert is always kept, and whatever is kept is correct.
        assert_eq!(cache.get(25), Some(user(25)));
        for id in 1..=25 {
            if let Some(u) = cache.get(id) {
                assert_eq!(u, user(id));
            }
        }
        // Re-inserting a cached user does not evict another.
        cache.insert(&[user(25)]);
        assert_eq!(cache.len(), 10);
    }
}
