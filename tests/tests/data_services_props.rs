//! Model-based property tests of the listing and user services: random sequences of creates
//! (valid and invalid), lookups, paged lists and restarts run against the real actor on a temp
//! redb file and are checked against a plain `Vec` of what was created. They prove that every
//! page is the exact slice of the newest-first order, walking the pages yields every record once,
//! ids run 1, 2, 3, ... and are never reused, invalid input is refused naming its fields and
//! changes nothing, and all of it survives a restart.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorRef, Message, RpcReplyPort};
use troupe_actors::listing::{ListingActor, ListingArgs};
use troupe_actors::protocol::listings::{Listing, ListingMsg, ListingQuery, NewListing};
use troupe_actors::protocol::page::Page;
use troupe_actors::protocol::service_error::ServiceError;
use troupe_actors::protocol::users::{NewUser, User, UserIds, UserMsg};
use troupe_actors::user::{UserActor, UserArgs};

const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Creates draw user ids from 1..=4; filters also try 5 (no listings) and ids below 1.
const LISTING_USERS: std::ops::RangeInclusive<i64> = 1..=4;
const FILTER_USERS: std::ops::RangeInclusive<i64> = -1..=5;

// ---- commands and their strategies ----

#[derive(Debug, Clone)]
enum ListingCmd {
    Create(NewListing),
    List(Page, Option<i64>),
    /// Reads every page of this size, as a client would, until a short page.
    WalkAll(u64, Option<i64>),
    Restart,
}

#[derive(Debug, Clone)]
enum UserCmd {
    Create(NewUser),
    Get(u64),
    GetMany(Vec<u64>),
    List(Page),
    WalkAll(u64),
    Restart,
}

fn page_size() -> impl Strategy<Value = u64> {
    // Mostly small sizes, so a few dozen records span several pages.
    prop_oneof![3 => 1..=5u64, 1 => 1..=100u64]
}

fn page() -> impl Strategy<Value = Page> {
    (1..=12u64, page_size()).prop_map(|(num, size)| Page { num, size })
}

fn user_filter() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![1 => Just(None), 2 => FILTER_USERS.prop_map(Some)]
}

fn new_listing() -> impl Strategy<Value = NewListing> {
    let user_id = prop_oneof![
        10 => LISTING_USERS.prop_map(Some),
        1 => Just(None),
        1 => prop_oneof![-3..=0i64, Just(i64::MIN)].prop_map(Some),
    ];
    let listing_type = prop_oneof![
        10 => prop_oneof![Just("rent"), Just("sale")].prop_map(|t| Some(t.to_string())),
        1 => Just(None),
        1 => prop_oneof![Just(""), Just("buy"), Just("Rent"), Just(" sale")]
            .prop_map(|t| Some(t.to_string())),
    ];
    let price = prop_oneof![
        10 => prop_oneof![1..=10_000_000i64, Just(i64::MAX)].prop_map(Some),
        1 => Just(None),
        1 => prop_oneof![-1000..=0i64, Just(i64::MIN)].prop_map(Some),
    ];
    (user_id, listing_type, price).prop_map(|(user_id, listing_type, price)| NewListing {
        user_id,
        listing_type,
        price,
    })
}

fn new_user() -> impl Strategy<Value = NewUser> {
    let name = prop_oneof![
        8 => "[ \t]{0,2}[A-Za-zé][A-Za-z0-9é .'-]{0,30}[ \t]{0,2}".prop_map(Some),
        1 => Just(None),
        1 => "[ \t\n]{0,5}".prop_map(Some),
        // Around the 256 limit, counted in characters: "é" is two bytes.
        1 => (250..=262usize).prop_map(|n| Some("é".repeat(n))),
    ];
    name.prop_map(|name| NewUser { name })
}

/// Ids up to past the most a case can create, so lookups also miss.
fn user_id() -> impl Strategy<Value = u64> {
    0..=45u64
}

fn listing_cmds() -> impl Strategy<Value = Vec<ListingCmd>> {
    let cmd = prop_oneof![
        6 => new_listing().prop_map(ListingCmd::Create),
        3 => (page(), user_filter()).prop_map(|(p, u)| ListingCmd::List(p, u)),
        1 => (page_size(), user_filter()).prop_map(|(s, u)| ListingCmd::WalkAll(s, u)),
        1 => Just(ListingCmd::Restart),
    ];
    vec(cmd, 1..40)
}

fn user_cmds() -> impl Strategy<Value = Vec<UserCmd>> {
    let cmd = prop_oneof![
        6 => new_user().prop_map(UserCmd::Create),
        2 => user_id().prop_map(UserCmd::Get),
        2 => vec(user_id(), 0..8).prop_map(UserCmd::GetMany),
        2 => page().prop_map(UserCmd::List),
        1 => page_size().prop_map(UserCmd::WalkAll),
        1 => Just(UserCmd::Restart),
    ];
    vec(cmd, 1..40)
}

// ---- the model ----

/// The order both services promise: newest first, ties broken by the higher id. Timestamps
/// are the ones the actor returned at creation, since they come from its wall clock.
fn newest_first<T: Clone>(records: &[T], stamp: impl Fn(&T) -> (i64, u64)) -> Vec<T> {
    let mut sorted = records.to_vec();
    sorted.sort_by_key(|r| std::cmp::Reverse(stamp(r)));
    sorted
}

fn slice_of<T: Clone>(sorted: &[T], page: Page) -> Vec<T> {
    let offset = ((page.num - 1) * page.size) as usize;
    sorted
        .iter()
        .skip(offset)
        .take(page.size as usize)
        .cloned()
        .collect()
}

fn sorted_listings(model: &[Listing], user: Option<i64>) -> Vec<Listing> {
    let matching: Vec<Listing> = model
        .iter()
        .filter(|l| user.is_none_or(|u| l.user_id as i64 == u))
        .cloned()
        .collect();
    newest_first(&matching, |l| (l.created_at, l.id))
}

fn sorted_users(model: &[User]) -> Vec<User> {
    newest_first(model, |u| (u.created_at, u.id))
}

/// The fields the listing brief says are wrong, stated independently of the actor's code.
fn listing_faults(new: &NewListing) -> Vec<&'static str> {
    let mut faults = Vec::new();
    if new.user_id.is_none_or(|u| u < 1) {
        faults.push("user_id");
    }
    if !matches!(new.listing_type.as_deref(), Some("rent" | "sale")) {
        faults.push("listing_type");
    }
    if new.price.is_none_or(|p| p <= 0) {
        faults.push("price");
    }
    faults
}

/// The stored name if the user brief accepts this one: trimmed, non-empty, at most 256 chars.
fn accepted_name(new: &NewUser) -> Option<String> {
    let name = new.name.as_deref()?.trim();
    (!name.is_empty() && name.chars().count() <= 256).then(|| name.to_string())
}

/// A refusal must be `Invalid` with one message per faulty field, each starting with its name.
fn check_refusal<T: std::fmt::Debug>(
    answer: Result<T, ServiceError>,
    faults: &[&str],
) -> Result<(), TestCaseError> {
    let messages = match answer {
        Err(ServiceError::Invalid(messages)) => messages,
        other => {
            return Err(TestCaseError::fail(format!(
                "expected Invalid, got {other:?}"
            )))
        }
    };
    let mut named: Vec<&str> = messages
        .iter()
        .map(|m| m.split_whitespace().next().unwrap_or(""))
        .collect();
    named.sort_unstable();
    let mut expected = faults.to_vec();
    expected.sort_unstable();
    prop_assert_eq!(named, expected, "messages: {:?}", messages);
    Ok(())
}

// ---- talking to the actors ----

fn run_case(case: impl Future<Output = Result<(), TestCaseError>>) -> Result<(), TestCaseError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(case)
}

/// Unnamed, so parallel cases never collide; the tests use the `ActorRef` and never the
/// process groups the actors join.
async fn start<A: Actor>(actor: A, args: A::Arguments) -> (ActorRef<A::Msg>, JoinHandle<()>) {
    Actor::spawn(None, actor, args).await.expect("actor starts")
}

async fn stop<M: Message>(actor: ActorRef<M>, task: JoinHandle<()>) {
    troupe_tests::stop_actor(actor, task, CALL_TIMEOUT).await;
}

async fn ask<M: Message, T: Send + 'static>(
    actor: &ActorRef<M>,
    msg: impl FnOnce(RpcReplyPort<T>) -> M,
) -> Result<T, TestCaseError> {
    troupe_tests::ask_actor(actor, msg, CALL_TIMEOUT)
        .await
        .map_err(TestCaseError::fail)
}

/// Pages of `size` from 1 until a short one, as a client walks them; the page after that must
/// be empty. Returns everything read, in order.
async fn walk_pages<T, F, Fut>(
    size: u64,
    expected_len: usize,
    mut fetch: F,
) -> Result<Vec<T>, TestCaseError>
where
    F: FnMut(Page) -> Fut,
    Fut: Future<Output = Result<Vec<T>, TestCaseError>>,
{
    // A service that keeps returning full pages would make the walk endless.
    let last_possible = expected_len as u64 / size + 1;
    let mut all = Vec::new();
    let mut num = 1;
    loop {
        prop_assert!(
            num <= last_possible,
            "page {} of size {} is still full",
            num,
            size
        );
        let page = fetch(Page { num, size }).await?;
        prop_assert!(
            page.len() as u64 <= size,
            "page {} holds {} > {}",
            num,
            page.len(),
            size
        );
        let full = page.len() as u64 == size;
        all.extend(page);
        if !full {
            let past = fetch(Page { num: num + 1, size }).await?;
            prop_assert!(past.is_empty(), "page {} is past the end", num + 1);
            return Ok(all);
        }
        num += 1;
    }
}

async fn list_listings(
    actor: &ActorRef<ListingMsg>,
    page: Page,
    user_id: Option<i64>,
) -> Result<Vec<Listing>, TestCaseError> {
    let query = ListingQuery { page, user_id };
    ask(actor, |r| ListingMsg::List(query, r))
        .await?
        .0
        .map_err(|e| TestCaseError::fail(format!("list failed: {e}")))
}

async fn list_users(actor: &ActorRef<UserMsg>, page: Page) -> Result<Vec<User>, TestCaseError> {
    ask(actor, |r| UserMsg::List(page, r))
        .await?
        .0
        .map_err(|e| TestCaseError::fail(format!("list failed: {e}")))
}

/// Every listing, unfiltered and for each filter, read back whole.
async fn check_all_listings(
    actor: &ActorRef<ListingMsg>,
    model: &[Listing],
) -> Result<(), TestCaseError> {
    for user in std::iter::once(None).chain(FILTER_USERS.map(Some)) {
        let expected = sorted_listings(model, user);
        let read = walk_pages(100, expected.len(), |p| list_listings(actor, p, user)).await?;
        prop_assert_eq!(read, expected, "user filter {:?}", user);
    }
    Ok(())
}

async fn check_all_users(actor: &ActorRef<UserMsg>, model: &[User]) -> Result<(), TestCaseError> {
    let expected = sorted_users(model);
    let read = walk_pages(100, expected.len(), |p| list_users(actor, p)).await?;
    prop_assert_eq!(read, expected);
    for user in model {
        let found = ask(actor, |r| UserMsg::Get(user.id, r))
            .await?
            .0
            .ok()
            .flatten();
        prop_assert_eq!(found.as_ref(), Some(user));
    }
    Ok(())
}

// ---- the cases ----

async fn listings_case(cmds: Vec<ListingCmd>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("listings.redb");
    let spawn_listing = |path: &Path| {
        start(
            ListingActor,
            ListingArgs {
                store_path: path.to_path_buf(),
            },
        )
    };
    let (mut actor, mut task) = spawn_listing(&path).await;
    let mut model: Vec<Listing> = Vec::new();
    for cmd in cmds {
        match cmd {
            ListingCmd::Create(new) => {
                let faults = listing_faults(&new);
                let answer = ask(&actor, |r| ListingMsg::Create(new.clone(), r)).await?.0;
                if !faults.is_empty() {
                    check_refusal(answer, &faults)?;
                    continue;
                }
                let listing = answer.map_err(|e| TestCaseError::fail(format!("{e}")))?;
                // Ids count successful creates only, across restarts too.
                prop_assert_eq!(listing.id, model.len() as u64 + 1);
                prop_assert_eq!(Some(listing.user_id as i64), new.user_id);
                prop_assert_eq!(Some(&listing.listing_type), new.listing_type.as_ref());
                prop_assert_eq!(Some(listing.price), new.price);
                prop_assert_eq!(listing.created_at, listing.updated_at);
                model.push(listing);
            }
            ListingCmd::List(page, user) => {
                let read = list_listings(&actor, page, user).await?;
                let expected = slice_of(&sorted_listings(&model, user), page);
                prop_assert_eq!(read, expected, "{:?} user {:?}", page, user);
            }
            ListingCmd::WalkAll(size, user) => {
                let expected = sorted_listings(&model, user);
                let read =
                    walk_pages(size, expected.len(), |p| list_listings(&actor, p, user)).await?;
                prop_assert_eq!(read, expected, "size {} user {:?}", size, user);
            }
            ListingCmd::Restart => {
                stop(actor, task).await;
                (actor, task) = spawn_listing(&path).await;
                check_all_listings(&actor, &model).await?;
            }
        }
    }
    // Every case ends with a restart, so each one also proves durability.
    stop(actor, task).await;
    let (actor, task) = spawn_listing(&path).await;
    check_all_listings(&actor, &model).await?;
    stop(actor, task).await;
    Ok(())
}

async fn users_case(cmds: Vec<UserCmd>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("users.redb");
    let spawn_user = |path: &Path| {
        start(
            UserActor,
            UserArgs {
                store_path: path.to_path_buf(),
            },
        )
    };
    let (mut actor, mut task) = spawn_user(&path).await;
    let mut model: Vec<User> = Vec::new();
    for cmd in cmds {
        match cmd {
            UserCmd::Create(new) => {
                let accepted = accepted_name(&new);
                let answer = ask(&actor, |r| UserMsg::Create(new.clone(), r)).await?.0;
                let Some(name) = accepted else {
                    check_refusal(answer, &["name"])?;
                    continue;
                };
                let user = answer.map_err(|e| TestCaseError::fail(format!("{e}")))?;
                prop_assert_eq!(user.id, model.len() as u64 + 1);
                prop_assert_eq!(&user.name, &name);
                prop_assert_eq!(user.created_at, user.updated_at);
                model.push(user);
            }
            UserCmd::Get(id) => {
                let found = ask(&actor, |r| UserMsg::Get(id, r)).await?.0;
                let found = found.map_err(|e| TestCaseError::fail(format!("get failed: {e}")))?;
                prop_assert_eq!(found.as_ref(), model.iter().find(|u| u.id == id));
            }
            UserCmd::GetMany(mut ids) => {
                // A set of ids: repeats are not part of the contract.
                let mut seen = std::collections::HashSet::new();
                ids.retain(|id| seen.insert(*id));
                let mut found = ask(&actor, |r| UserMsg::GetMany(UserIds(ids.clone()), r))
                    .await?
                    .0
                    .map_err(|e| TestCaseError::fail(format!("get many failed: {e}")))?;
                found.sort_by_key(|u| u.id);
                let mut expected: Vec<User> = model
                    .iter()
                    .filter(|u| ids.contains(&u.id))
                    .cloned()
                    .collect();
                expected.sort_by_key(|u| u.id);
                prop_assert_eq!(found, expected, "ids {:?}", ids);
            }
            UserCmd::List(page) => {
                let read = list_users(&actor, page).await?;
                prop_assert_eq!(read, slice_of(&sorted_users(&model), page), "{:?}", page);
            }
            UserCmd::WalkAll(size) => {
                let expected = sorted_users(&model);
                let read = walk_pages(size, expected.len(), |p| list_users(&actor, p)).await?;
                prop_assert_eq!(read, expected, "size {}", size);
            }
            UserCmd::Restart => {
                stop(actor, task).await;
                (actor, task) = spawn_user(&path).await;
                check_all_users(&actor, &model).await?;
            }
        }
    }
    stop(actor, task).await;
    let (actor, task) = spawn_user(&path).await;
    check_all_users(&actor, &model).await?;
    stop(actor, task).await;
    Ok(())
}

proptest! {
    #![proptest_config(troupe_tests::proptest_config(32))]

    #[test]
    fn listing_service_matches_its_model(cmds in listing_cmds()) {
        run_case(listings_case(cmds))?;
    }

    #[test]
    fn user_service_matches_its_model(cmds in user_cmds()) {
        run_case(users_case(cmds))?;
    }
}
