//! Model-based property test of the scheduler actor, plus deterministic scenarios for the rules
//! the clock drives (a task's whole life; starting with no request to wake the scheduler; firing
//! overdue tasks at a restart; a delete that meets a task coming due).
//!
//! Random sequences of creates (valid and invalid), patches, payload edits, deletes, lookups,
//! filtered and paged lists, waits and restarts run against the real `Scheduler` on a temp redb
//! file with no master in the process, so every dispatch fails and a due task stays RUNNING until
//! its no-worker deadline, then FAILS. The model is the set of tasks created and not deleted. It
//! proves: status only moves SCHEDULED -> RUNNING -> FAILED; a task is SCHEDULED while its start
//! is ahead of the scheduler's clock and not once it has passed (after a restart: at once);
//! invalid input is `Invalid` naming the field checked first; locked fields, payload edits of
//! non-SCHEDULED tasks and deleting a RUNNING task are `Conflict`; unknown ids are `NotFound`;
//! list pages are the model's filtered set in (start, id) order, sliced, with the full count; all
//! of it, status included, survives a restart.
//!
//! Time is real: `tokio`'s `test-util` feature (paused time) is not enabled for this crate. The
//! scheduler's clock is the wall clock read at its start plus `tokio::time::Instant` elapsed, so
//! the test brackets each incarnation's anchor between readings taken around the spawn and each
//! request between readings taken around the call; that gives an interval `[lo, hi]` holding the
//! scheduler's "now" when it handled the request. Starts inside that interval may be judged
//! either way; starts outside it are judged exactly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use ractor::concurrency::JoinHandle;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, RpcReplyPort};
use serde_json::{Map, Value};
use tokio::time::Instant;
use troupe_actors::paging::Page;
use troupe_actors::scheduler::{
    NewTask, PayloadKeyDelete, PayloadPatch, Scheduler, SchedulerArgs, SchedulerConfig,
    SchedulerMsg, Task, TaskError, TaskFilter, TaskPage, TaskPatch, TaskStatus,
};
use troupe_actors::time::now_micros;

const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Short enough that tasks FAIL within a case: with no master every try fails at once and the
/// next comes 250 ms later, so the second try, 250 ms after the task went due, FAILS it.
const SHORT_DEADLINE: Duration = Duration::from_millis(250);
/// Never reached in a case: due tasks stay RUNNING.
const LONG_DEADLINE: Duration = Duration::from_secs(3600);
/// Slack for timers, commits and a busy machine on top of when a task gives up.
const GIVE_UP_SLACK_US: i64 = 350_000;
/// How long after going due a task must have FAILED under `SHORT_DEADLINE`.
const FAILED_WITHIN_US: i64 = 250_000 + GIVE_UP_SLACK_US;
/// How late a due task may still read SCHEDULED: the timer, the wake and the commit of RUNNING
/// take real time. (Starting early is never allowed.)
const FIRE_LAG_US: i64 = 150_000;
/// Rounding of microsecond clocks.
const EPS_US: i64 = 1_000;
/// Workers of valid tasks; list filters also try one that has none.
const WORKERS: [&str; 3] = ["alpha", "beta", "gamma"];
const FILTER_WORKERS: [&str; 4] = ["alpha", "beta", "gamma", "nobody"];
const PAYLOAD_KEYS: [&str; 4] = ["a", "b", "c", "d"];

// ---- commands and their strategies ----

/// A start time relative to the scheduler's clock, resolved when the command runs.
#[derive(Debug, Clone)]
enum StartSpec {
    Missing,
    /// This many ms before the earliest the scheduler's now can be: invalid.
    AgoMs(u64),
    /// Exactly the earliest the scheduler's now can be: `start <= now`, so invalid.
    JustPassed,
    /// This many ms after the latest the scheduler's now can be: valid unless the call is slow.
    InMs(u64),
    /// An hour ahead: stays SCHEDULED for the whole case.
    FarAhead,
}

#[derive(Debug, Clone)]
enum WorkerSpec {
    Same,
    Name(String),
}

#[derive(Debug, Clone)]
enum PayloadSpec {
    Same,
    Set(Option<String>),
}

#[derive(Debug, Clone)]
enum PatchStart {
    Same,
    New(StartSpec),
}

#[derive(Debug, Clone)]
struct CreateSpec {
    start: StartSpec,
    title: Option<String>,
    worker: Option<String>,
    status: Option<String>,
    payload: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct PatchSpec {
    start: Option<PatchStart>,
    title: Option<Option<String>>,
    worker: Option<WorkerSpec>,
    status: Option<String>,
    payload: Option<PayloadSpec>,
}

/// Which task a command is about: one in the model, one deleted, or an id never used.
#[derive(Debug, Clone)]
enum Target {
    Live(Index),
    Deleted(Index),
    Unknown,
}

#[derive(Debug, Clone)]
enum BoundSpec {
    Open,
    /// A task's start (picked from the model) plus -1, 0 or +1 µs: exercises inclusive bounds.
    AtTask(Index, i64),
    /// The scheduler's now plus this many ms.
    FromNowMs(i64),
}

#[derive(Debug, Clone)]
struct ListSpec {
    worker: Option<String>,
    status: Option<TaskStatus>,
    from: BoundSpec,
    to: BoundSpec,
    page: Page,
}

#[derive(Debug, Clone)]
enum Cmd {
    Create(CreateSpec),
    Patch(Target, PatchSpec),
    PatchPayload(Target, String),
    DeletePayloadKey(Target, String),
    Delete(Target),
    Get(Target),
    List(ListSpec),
    /// Lets real time pass, often past some tasks' starts.
    Sleep(u64),
    /// Stops the scheduler, leaves it down this many ms (tasks may come due meanwhile), starts
    /// it again on the same file.
    Restart(u64),
}

fn start_spec() -> impl Strategy<Value = StartSpec> {
    prop_oneof![
        6 => (10..=250u64).prop_map(StartSpec::InMs),
        1 => Just(StartSpec::FarAhead),
        1 => Just(StartSpec::Missing),
        1 => (1..=5_000u64).prop_map(StartSpec::AgoMs),
        1 => Just(StartSpec::JustPassed),
    ]
}

fn valid_worker() -> impl Strategy<Value = String> {
    // Surrounding blanks are trimmed off, so " beta " is worker "beta".
    (
        0..WORKERS.len(),
        prop_oneof![Just(""), Just(" "), Just("\t ")],
    )
        .prop_map(|(i, pad)| format!("{pad}{}{pad}", WORKERS[i]))
}

fn invalid_worker() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("  ".to_string()),
        Just("al\u{7}pha".to_string()),
        Just("x".repeat(129)),
        Just("é".repeat(129)),
    ]
}

fn title() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(None),
        5 => "[a-z ]{0,12}".prop_map(Some),
        // At and past the 1024-character limit, counted in characters: "é" is two bytes.
        1 => Just(Some("é".repeat(1024))),
        1 => Just(Some("é".repeat(1025))),
    ]
}

fn valid_payload() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => btree_map(
            prop::sample::select(PAYLOAD_KEYS.to_vec()).prop_map(str::to_string),
            0..100i64,
            0..3,
        )
        .prop_map(|m| serde_json::to_string(&m).expect("json")),
        // Stored as sent, spacing included.
        1 => Just(r#"{ "a" : [1, 2], "z": null }"#.to_string()),
    ]
}

fn invalid_payload() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[1, 2]".to_string()),
        Just("3".to_string()),
        Just("\"text\"".to_string()),
        Just("null".to_string()),
        Just("{".to_string()),
        Just(String::new()),
    ]
}

fn status_text() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "SCHEDULED",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "scheduled",
        "DONE",
        "",
    ])
    .prop_map(str::to_string)
}

/// Creates that should succeed (unless the call is very slow): most of them, so cases have
/// tasks to act on.
fn valid_create() -> impl Strategy<Value = CreateSpec> {
    let start = prop_oneof![
        6 => (10..=150u64).prop_map(StartSpec::InMs),
        1 => Just(StartSpec::FarAhead),
    ];
    let status = prop_oneof![3 => Just(None), 1 => Just(Some("SCHEDULED".to_string()))];
    let title = prop_oneof![1 => Just(None), 1 => "[a-z ]{0,12}".prop_map(Some)];
    let payload = prop_oneof![1 => Just(None), 2 => valid_payload().prop_map(Some)];
    (start, title, valid_worker(), status, payload).prop_map(
        |(start, title, worker, status, payload)| CreateSpec {
            start,
            title,
            worker: Some(worker),
            status,
            payload,
        },
    )
}

/// Any create, each field valid or not.
fn any_create() -> impl Strategy<Value = CreateSpec> {
    let worker = prop_oneof![
        8 => valid_worker().prop_map(Some),
        1 => Just(None),
        1 => invalid_worker().prop_map(Some),
    ];
    let status = prop_oneof![
        8 => Just(None),
        2 => Just(Some("SCHEDULED".to_string())),
        1 => status_text().prop_map(Some),
    ];
    let payload = prop_oneof![
        4 => Just(None),
        5 => valid_payload().prop_map(Some),
        1 => invalid_payload().prop_map(Some),
    ];
    (start_spec(), title(), worker, status, payload).prop_map(
        |(start, title, worker, status, payload)| CreateSpec {
            start,
            title,
            worker,
            status,
            payload,
        },
    )
}

/// `None` two times in three.
fn sometimes<T: Clone + std::fmt::Debug>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![2 => Just(None), 1 => s.prop_map(Some)]
}

fn patch_spec() -> impl Strategy<Value = PatchSpec> {
    let start = prop_oneof![
        1 => Just(PatchStart::Same),
        2 => start_spec()
            .prop_filter("a patch always sends a start", |s| !matches!(s, StartSpec::Missing))
            .prop_map(PatchStart::New),
    ];
    let title = prop_oneof![1 => Just(None), 2 => title()];
    let worker = prop_oneof![
        1 => Just(WorkerSpec::Same),
        3 => valid_worker().prop_map(WorkerSpec::Name),
        1 => invalid_worker().prop_map(WorkerSpec::Name),
    ];
    let payload = prop_oneof![
        1 => Just(PayloadSpec::Same),
        1 => Just(PayloadSpec::Set(None)),
        2 => valid_payload().prop_map(|p| PayloadSpec::Set(Some(p))),
        1 => invalid_payload().prop_map(|p| PayloadSpec::Set(Some(p))),
    ];
    // Mostly one field, so each field's own rule decides the outcome; sometimes several, for
    // the order in which they are checked.
    prop_oneof![
        2 => start.clone().prop_map(|s| PatchSpec { start: Some(s), ..PatchSpec::default() }),
        1 => title.clone().prop_map(|t| PatchSpec { title: Some(t), ..PatchSpec::default() }),
        3 => worker.clone().prop_map(|w| PatchSpec { worker: Some(w), ..PatchSpec::default() }),
        1 => status_text().prop_map(|s| PatchSpec { status: Some(s), ..PatchSpec::default() }),
        2 => payload.clone().prop_map(|p| PatchSpec { payload: Some(p), ..PatchSpec::default() }),
        2 => (
            sometimes(start),
            sometimes(title),
            sometimes(worker),
            sometimes(status_text()),
            sometimes(payload),
        )
            .prop_map(|(start, title, worker, status, payload)| PatchSpec {
                start,
                title,
                worker,
                status,
                payload,
            }),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        8 => any::<Index>().prop_map(Target::Live),
        1 => any::<Index>().prop_map(Target::Deleted),
        1 => Just(Target::Unknown),
    ]
}

fn bound() -> impl Strategy<Value = BoundSpec> {
    prop_oneof![
        3 => Just(BoundSpec::Open),
        2 => (any::<Index>(), -1..=1i64).prop_map(|(i, d)| BoundSpec::AtTask(i, d)),
        1 => (-500..=1_000i64).prop_map(BoundSpec::FromNowMs),
    ]
}

fn list_spec() -> impl Strategy<Value = ListSpec> {
    let worker = prop_oneof![
        2 => Just(None),
        1 => prop::sample::select(FILTER_WORKERS.to_vec()).prop_map(|w| Some(w.to_string())),
    ];
    let status = prop_oneof![
        2 => Just(None),
        1 => prop::sample::select(TaskStatus::ALL.to_vec()).prop_map(Some),
    ];
    // Mostly small pages, so a dozen tasks span several.
    let page = (1..=4u64, prop_oneof![3 => 1..=4u64, 1 => Just(100u64)])
        .prop_map(|(num, size)| Page { num, size });
    (worker, status, bound(), bound(), page).prop_map(|(worker, status, from, to, page)| ListSpec {
        worker,
        status,
        from,
        to,
        page,
    })
}

fn cmds() -> impl Strategy<Value = Vec<Cmd>> {
    let cmd = prop_oneof![
        3 => valid_create().prop_map(Cmd::Create),
        2 => any_create().prop_map(Cmd::Create),
        5 => (target(), patch_spec()).prop_map(|(t, p)| Cmd::Patch(t, p)),
        1 => (target(), prop_oneof![3 => valid_payload(), 1 => invalid_payload()])
            .prop_map(|(t, k)| Cmd::PatchPayload(t, k)),
        1 => (target(), prop::sample::select(vec!["a", "b", "c", "zz"]))
            .prop_map(|(t, k)| Cmd::DeletePayloadKey(t, k.to_string())),
        2 => target().prop_map(Cmd::Delete),
        2 => target().prop_map(Cmd::Get),
        3 => list_spec().prop_map(Cmd::List),
        3 => prop_oneof![0..=40u64, 40..=300u64].prop_map(Cmd::Sleep),
        1 => prop_oneof![Just(0u64), 1..=200u64].prop_map(Cmd::Restart),
    ];
    // A few creates first, so the commands after them mostly find tasks to act on.
    (vec(valid_create(), 1..4), vec(cmd, 1..30))
        .prop_map(|(first, rest)| first.into_iter().map(Cmd::Create).chain(rest).collect())
}

// ---- the scheduler's clock, as seen from outside ----

fn micros(d: Duration) -> i64 {
    d.as_micros() as i64
}

/// Readings taken around one spawn. The actor's clock is `wall + (instant - anchor)` with its
/// wall reading and anchor taken during the spawn, so between these.
#[derive(Debug, Clone, Copy)]
struct Epoch {
    wall_before: i64,
    wall_after: i64,
    inst_before: Instant,
    inst_after: Instant,
}

impl Epoch {
    /// The least the scheduler's clock can read at `at` (or later).
    fn lo(&self, at: Instant) -> i64 {
        self.wall_before + micros(at.saturating_duration_since(self.inst_after))
    }

    /// The most the scheduler's clock can read at `at` (or earlier).
    fn hi(&self, at: Instant) -> i64 {
        self.wall_after + micros(at.saturating_duration_since(self.inst_before))
    }
}

/// Bounds on the scheduler's now while it handled one request.
#[derive(Debug, Clone, Copy)]
struct Window {
    lo: i64,
    hi: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Maybe,
}

impl Tri {
    fn options(self) -> &'static [bool] {
        match self {
            Tri::Yes => &[true],
            Tri::No => &[false],
            Tri::Maybe => &[true, false],
        }
    }
}

/// Whether `start` is in the future for the scheduler (the only valid start).
fn start_valid(start: i64, w: Window) -> Tri {
    if start > w.hi {
        Tri::Yes
    } else if start <= w.lo {
        Tri::No
    } else {
        Tri::Maybe
    }
}

// ---- the model ----

#[derive(Debug, Clone)]
struct ModelTask {
    id: String,
    start: i64,
    title: Option<String>,
    worker: String,
    payload: Option<String>,
    /// The latest status seen; statuses seen later must not be earlier in the lifecycle.
    seen: TaskStatus,
}

struct Model {
    tasks: Vec<ModelTask>,
    deleted: Vec<String>,
    /// The no-worker deadline in µs when it is short enough to matter in a case.
    deadline: Option<i64>,
    epoch: Epoch,
}

fn rank(s: TaskStatus) -> u8 {
    match s {
        TaskStatus::Scheduled => 0,
        TaskStatus::Running => 1,
        TaskStatus::Succeeded | TaskStatus::Failed => 2,
    }
}

/// The outcome of a request, as far as the contract distinguishes them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Ok,
    Invalid(&'static str),
    Conflict,
    NotFound,
}

fn kind_of<T>(r: &Result<T, TaskError>) -> Result<Kind, TestCaseError> {
    Ok(match r {
        Ok(_) => Kind::Ok,
        Err(TaskError::Invalid { field, .. }) => match field.as_str() {
            "start" => Kind::Invalid("start"),
            "worker" => Kind::Invalid("worker"),
            "status" => Kind::Invalid("status"),
            "payload" => Kind::Invalid("payload"),
            "title" => Kind::Invalid("title"),
            other => return Err(TestCaseError::fail(format!("Invalid names {other:?}"))),
        },
        Err(TaskError::Conflict(_)) => Kind::Conflict,
        Err(TaskError::NotFound(_)) => Kind::NotFound,
        Err(e @ TaskError::Storage(_)) => return Err(TestCaseError::fail(format!("{e:?}"))),
    })
}

/// The stored worker if the brief accepts this one: trimmed, non-empty, at most 128 printable
/// characters.
fn accepted_worker(w: &str) -> Option<String> {
    let w = w.trim();
    (!w.is_empty() && w.chars().count() <= 128 && !w.chars().any(char::is_control))
        .then(|| w.to_string())
}

fn title_ok(t: &Option<String>) -> bool {
    t.as_ref().is_none_or(|t| t.chars().count() <= 1024)
}

fn json_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The outcome of a create, fields checked in the scheduler's documented order: start, worker,
/// status, payload, title.
fn create_kind(new: &NewTask, start_ok: bool) -> Kind {
    if new.start.is_none() || !start_ok {
        return Kind::Invalid("start");
    }
    if new.worker.as_deref().and_then(accepted_worker).is_none() {
        return Kind::Invalid("worker");
    }
    if new.status.as_deref().is_some_and(|s| s != "SCHEDULED") {
        return Kind::Invalid("status");
    }
    if new
        .payload
        .as_deref()
        .is_some_and(|p| json_object(p).is_none())
    {
        return Kind::Invalid("payload");
    }
    if !title_ok(&new.title) {
        return Kind::Invalid("title");
    }
    Kind::Ok
}

/// The outcome of a patch of `t` if its status is `status`: status first, then start, worker,
/// payload, title; start, worker and payload may change only while SCHEDULED (sending the
/// current value is no change), title always.
fn patch_kind(t: &ModelTask, status: TaskStatus, p: &TaskPatch, start_ok: bool) -> Kind {
    let locked = status != TaskStatus::Scheduled;
    if let Some(s) = p.status.as_deref() {
        match TaskStatus::parse(s) {
            None => return Kind::Invalid("status"),
            Some(s) if s != status => return Kind::Conflict,
            Some(_) => {}
        }
    }
    if p.start.is_some_and(|s| s != t.start) {
        if locked {
            return Kind::Conflict;
        }
        if !start_ok {
            return Kind::Invalid("start");
        }
    }
    if let Some(w) = p.worker.as_deref() {
        match accepted_worker(w) {
            None => return Kind::Invalid("worker"),
            Some(w) if w != t.worker && locked => return Kind::Conflict,
            Some(_) => {}
        }
    }
    if let Some(payload) = &p.payload {
        if payload.as_deref().is_some_and(|p| json_object(p).is_none()) {
            return Kind::Invalid("payload");
        }
        if *payload != t.payload && locked {
            return Kind::Conflict;
        }
    }
    if p.title.as_ref().is_some_and(|t| !title_ok(t)) {
        return Kind::Invalid("title");
    }
    Kind::Ok
}

impl Model {
    /// The statuses `t` may have while the scheduler's now is within `w`.
    fn allowed(&self, t: &ModelTask, w: Window) -> Vec<TaskStatus> {
        let mut out = Vec::new();
        // Overdue when this incarnation started: its first wake fired it before any request.
        let overdue_at_spawn = t.start <= self.epoch.wall_before;
        if t.seen == TaskStatus::Scheduled && !overdue_at_spawn && t.start > w.lo - FIRE_LAG_US {
            out.push(TaskStatus::Scheduled);
        }
        // A restart begins the retries (and the deadline) again for a task that is due.
        let failed_by = self
            .deadline
            .map(|_| t.start.max(self.epoch.wall_after) + FAILED_WITHIN_US);
        if rank(t.seen) <= 1 && t.start <= w.hi + EPS_US && failed_by.is_none_or(|f| w.lo <= f) {
            out.push(TaskStatus::Running);
        }
        // Giving up comes no earlier than the deadline after the task went due.
        if self.deadline.is_some_and(|d| t.start + d <= w.hi + EPS_US) {
            out.push(TaskStatus::Failed);
        }
        out
    }

    /// Checks a status the scheduler showed for task `i` and remembers it.
    fn observe(&mut self, i: usize, status: TaskStatus, w: Window) -> Result<(), TestCaseError> {
        self.observe_any(i, &[status], w)
    }

    /// Checks that the task may have had one of `statuses` (what a reply reveals) and remembers
    /// the earliest of those in the lifecycle.
    fn observe_any(
        &mut self,
        i: usize,
        statuses: &[TaskStatus],
        w: Window,
    ) -> Result<(), TestCaseError> {
        let allowed = self.allowed(&self.tasks[i], w);
        let t = &mut self.tasks[i];
        let fits: Vec<TaskStatus> = statuses
            .iter()
            .copied()
            .filter(|s| allowed.contains(s))
            .collect();
        prop_assert!(
            !fits.is_empty(),
            "task {} (worker {:?}) shows {:?}, allowed {:?}: last seen {:?}, start - now is in \
             [{} ms, {} ms], overdue since this incarnation started: {}",
            t.id,
            t.worker,
            statuses,
            allowed,
            t.seen,
            (t.start - w.hi) / 1000,
            (t.start - w.lo) / 1000,
            t.start <= self.epoch.wall_before
        );
        let earliest = fits.iter().copied().min_by_key(|s| rank(*s)).expect("fits");
        if rank(earliest) > rank(t.seen) {
            t.seen = earliest;
        }
        Ok(())
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }

    /// The id a target names, and its place in the model if it is live.
    fn resolve(&self, target: &Target) -> (String, Option<usize>) {
        match target {
            Target::Live(i) if !self.tasks.is_empty() => {
                let i = i.index(self.tasks.len());
                (self.tasks[i].id.clone(), Some(i))
            }
            Target::Deleted(i) if !self.deleted.is_empty() => {
                (self.deleted[i.index(self.deleted.len())].clone(), None)
            }
            _ => (uuid::Uuid::new_v4().to_string(), None),
        }
    }

    fn start_of(&self, spec: &StartSpec, now: Instant) -> Option<i64> {
        match spec {
            StartSpec::Missing => None,
            StartSpec::AgoMs(ms) => Some(self.epoch.lo(now) - *ms as i64 * 1000),
            StartSpec::JustPassed => Some(self.epoch.lo(now)),
            StartSpec::InMs(ms) => Some(self.epoch.hi(now) + *ms as i64 * 1000),
            StartSpec::FarAhead => Some(self.epoch.hi(now) + 3_600_000_000),
        }
    }

    fn bound_of(&self, spec: &BoundSpec, now: Instant) -> Option<i64> {
        match spec {
            BoundSpec::Open => None,
            BoundSpec::AtTask(i, delta) if !self.tasks.is_empty() => {
                Some(self.tasks[i.index(self.tasks.len())].start + delta)
            }
            BoundSpec::AtTask(..) => Some(self.epoch.lo(now)),
            BoundSpec::FromNowMs(ms) => Some(self.epoch.lo(now) + ms * 1000),
        }
    }

    /// Tasks matching the filter's worker and start range, in list order.
    fn matching(&self, f: &TaskFilter) -> Vec<usize> {
        let mut found: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| {
                let t = &self.tasks[i];
                f.worker.as_ref().is_none_or(|w| *w == t.worker)
                    && f.from.is_none_or(|from| t.start >= from)
                    && f.to.is_none_or(|to| t.start <= to)
            })
            .collect();
        found.sort_by(|&a, &b| {
            let (a, b) = (&self.tasks[a], &self.tasks[b]);
            (a.start, &a.id).cmp(&(b.start, &b.id))
        });
        found
    }
}

/// Everything but the status (which `observe` judges) must be what the model holds.
fn check_fields(t: &ModelTask, got: &Task) -> Result<(), TestCaseError> {
    prop_assert_eq!(&got.id, &t.id);
    prop_assert_eq!(got.start, t.start, "start of {}", t.id);
    prop_assert_eq!(&got.title, &t.title, "title of {}", t.id);
    prop_assert_eq!(&got.worker, &t.worker, "worker of {}", t.id);
    prop_assert_eq!(&got.payload, &t.payload, "payload of {}", t.id);
    prop_assert_eq!(&got.result, &None, "no worker, so no result: {}", t.id);
    match got.status {
        TaskStatus::Scheduled => {
            prop_assert_eq!(got.attempts, 0, "SCHEDULED {} was tried", t.id);
            prop_assert_eq!(&got.error, &None);
        }
        TaskStatus::Running => prop_assert_eq!(&got.error, &None),
        TaskStatus::Failed => {
            let error = got.error.as_deref().unwrap_or_default();
            prop_assert!(
                error.contains(&format!("{:?}", t.worker)),
                "the error of FAILED {} does not name worker {:?}: {:?}",
                t.id,
                t.worker,
                error
            );
            prop_assert!(got.attempts >= 1, "FAILED {} was never tried", t.id);
        }
        TaskStatus::Succeeded => prop_assert!(false, "{} SUCCEEDED with no worker", t.id),
    }
    Ok(())
}

// ---- talking to the actor ----

fn run_case(
    case: impl std::future::Future<Output = Result<(), TestCaseError>>,
) -> Result<(), TestCaseError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(case)
}

fn args(path: &Path, deadline: Duration) -> SchedulerArgs {
    SchedulerArgs {
        store_path: path.to_path_buf(),
        config: SchedulerConfig {
            lease: Duration::from_secs(60),
            no_worker_deadline: deadline,
            // With no master in the process each call fails at once (no member) anyway.
            call_timeout: Duration::from_millis(50),
        },
        clock: None,
    }
}

/// Unnamed, so parallel tests never collide; the test talks to it through its `ActorRef`.
async fn start(path: &Path, deadline: Duration) -> (ActorRef<SchedulerMsg>, JoinHandle<()>, Epoch) {
    let inst_before = Instant::now();
    let wall_before = now_micros();
    let (actor, task) = Actor::spawn(None, Scheduler, args(path, deadline))
        .await
        .expect("scheduler starts");
    let wall_after = now_micros();
    let inst_after = Instant::now();
    let epoch = Epoch {
        wall_before,
        wall_after,
        inst_before,
        inst_after,
    };
    (actor, task, epoch)
}

/// Returns only once the actor's task has ended, so its redb file is closed for the next one.
async fn stop(actor: ActorRef<SchedulerMsg>, task: JoinHandle<()>) {
    actor
        .stop_and_wait(None, Some(CALL_TIMEOUT))
        .await
        .expect("scheduler stops");
    tokio::time::timeout(CALL_TIMEOUT, task)
        .await
        .expect("scheduler task ends in time")
        .expect("scheduler task did not panic");
}

async fn ask<T: Send + 'static>(
    actor: &ActorRef<SchedulerMsg>,
    msg: impl FnOnce(RpcReplyPort<T>) -> SchedulerMsg,
) -> Result<T, TestCaseError> {
    match actor.call(msg, Some(CALL_TIMEOUT)).await {
        Ok(CallResult::Success(reply)) => Ok(reply),
        Ok(CallResult::Timeout) => Err(TestCaseError::fail("no answer in time")),
        Ok(CallResult::SenderError) => Err(TestCaseError::fail("reply port dropped")),
        Err(e) => Err(TestCaseError::fail(format!("send failed: {e}"))),
    }
}

/// One request, with bounds on the scheduler's now while it handled it.
async fn timed<T: Send + 'static>(
    actor: &ActorRef<SchedulerMsg>,
    epoch: Epoch,
    msg: impl FnOnce(RpcReplyPort<T>) -> SchedulerMsg,
) -> Result<(T, Window), TestCaseError> {
    let before = Instant::now();
    let reply = ask(actor, msg).await?;
    let after = Instant::now();
    Ok((
        reply,
        Window {
            lo: epoch.lo(before),
            hi: epoch.hi(after),
        },
    ))
}

async fn list(
    actor: &ActorRef<SchedulerMsg>,
    epoch: Epoch,
    filter: TaskFilter,
) -> Result<(TaskPage, Window), TestCaseError> {
    let (reply, w) = timed(actor, epoch, |r| SchedulerMsg::List(filter, r)).await?;
    let page = reply
        .0
        .map_err(|e| TestCaseError::fail(format!("list failed: {e:?}")))?;
    Ok((page, w))
}

/// Everything, read back: first one unfiltered list (after a restart it is the first request
/// the new incarnation answers, so overdue tasks must already show as fired), then each task and
/// each deleted id.
async fn check_all(actor: &ActorRef<SchedulerMsg>, model: &mut Model) -> Result<(), TestCaseError> {
    let all = TaskFilter {
        page: Page { num: 1, size: 100 },
        ..TaskFilter::default()
    };
    let (page, w) = list(actor, model.epoch, all.clone()).await?;
    let expected: Vec<String> = model
        .matching(&all)
        .into_iter()
        .map(|i| model.tasks[i].id.clone())
        .collect();
    let got: Vec<String> = page.tasks.iter().map(|t| t.id.clone()).collect();
    prop_assert_eq!(&got, &expected, "all tasks");
    prop_assert_eq!(page.total, expected.len() as u64);
    for task in &page.tasks {
        let i = model
            .index_of(&task.id)
            .expect("listed task is in the model");
        check_fields(&model.tasks[i], task)?;
        model.observe(i, task.status, w)?;
    }
    for i in 0..model.tasks.len() {
        let id = model.tasks[i].id.clone();
        let (reply, w) = timed(actor, model.epoch, |r| SchedulerMsg::Get(id, r)).await?;
        let task = reply.0.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        check_fields(&model.tasks[i], &task)?;
        model.observe(i, task.status, w)?;
    }
    for id in model.deleted.clone() {
        let (reply, _) = timed(actor, model.epoch, |r| SchedulerMsg::Get(id.clone(), r)).await?;
        prop_assert_eq!(kind_of(&reply.0)?, Kind::NotFound, "deleted {}", id);
    }
    Ok(())
}

// ---- the case ----

async fn do_create(
    actor: &ActorRef<SchedulerMsg>,
    model: &mut Model,
    spec: CreateSpec,
) -> Result<(), TestCaseError> {
    let new = NewTask {
        start: model.start_of(&spec.start, Instant::now()),
        title: spec.title,
        worker: spec.worker,
        status: spec.status,
        payload: spec.payload,
    };
    let (reply, w) = timed(actor, model.epoch, |r| SchedulerMsg::Create(new.clone(), r)).await?;
    let got = kind_of(&reply.0)?;
    let validity = new.start.map_or(Tri::No, |s| start_valid(s, w));
    let expected: Vec<Kind> = validity
        .options()
        .iter()
        .map(|&ok| create_kind(&new, ok))
        .collect();
    prop_assert!(
        expected.contains(&got),
        "create {:?}: got {:?}, expected one of {:?}",
        new,
        reply.0,
        expected
    );
    let Ok(task) = reply.0 else { return Ok(()) };
    prop_assert_eq!(task.status, TaskStatus::Scheduled);
    prop_assert_eq!(task.attempts, 0);
    prop_assert_eq!(task.created_at, task.updated_at);
    // The scheduler's clock stamps it: it must read within the call's window.
    prop_assert!(
        w.lo <= task.created_at && task.created_at <= w.hi + EPS_US,
        "created_at {} outside [{}, {}]",
        task.created_at,
        w.lo,
        w.hi
    );
    let t = ModelTask {
        id: task.id.clone(),
        start: new.start.expect("valid"),
        title: new.title.clone(),
        worker: accepted_worker(new.worker.as_deref().expect("valid")).expect("valid"),
        payload: new.payload.clone(),
        seen: TaskStatus::Scheduled,
    };
    check_fields(&t, &task)?;
    prop_assert!(model.index_of(&t.id).is_none() && !model.deleted.contains(&t.id));
    model.tasks.push(t);
    Ok(())
}

async fn do_patch(
    actor: &ActorRef<SchedulerMsg>,
    model: &mut Model,
    target: Target,
    spec: PatchSpec,
) -> Result<(), TestCaseError> {
    let (id, idx) = model.resolve(&target);
    let current = idx.map(|i| model.tasks[i].clone());
    let now = Instant::now();
    let patch = TaskPatch {
        id: id.clone(),
        start: spec.start.and_then(|s| match s {
            PatchStart::Same => current.as_ref().map(|t| t.start),
            PatchStart::New(s) => model.start_of(&s, now),
        }),
        title: spec.title,
        worker: spec.worker.and_then(|w| match w {
            WorkerSpec::Same => current.as_ref().map(|t| t.worker.clone()),
            WorkerSpec::Name(w) => Some(w),
        }),
        status: spec.status,
        payload: spec.payload.and_then(|p| match p {
            PayloadSpec::Same => current.as_ref().map(|t| t.payload.clone()),
            PayloadSpec::Set(p) => Some(p),
        }),
    };
    let (reply, w) = timed(actor, model.epoch, |r| {
        SchedulerMsg::Patch(patch.clone(), r)
    })
    .await?;
    let got = kind_of(&reply.0)?;
    let (Some(i), Some(t)) = (idx, current) else {
        prop_assert_eq!(got, Kind::NotFound, "patch of unknown {}", id);
        return Ok(());
    };
    let validity = patch.start.map_or(Tri::Yes, |s| start_valid(s, w));
    // Which statuses the task may have had that give this outcome.
    let mut fits = Vec::new();
    let mut expected = Vec::new();
    for status in model.allowed(&t, w) {
        for &ok in validity.options() {
            let kind = patch_kind(&t, status, &patch, ok);
            if kind == got {
                fits.push(status);
            }
            expected.push((status, kind));
        }
    }
    prop_assert!(
        !fits.is_empty(),
        "patch {:?} of {:?}: got {:?}, expected one of {:?}",
        patch,
        t,
        reply.0,
        expected
    );
    match reply.0 {
        Ok(task) => {
            prop_assert!(fits.contains(&task.status), "{:?} not in {:?}", task, fits);
            let mut next = t.clone();
            if let Some(s) = patch.start {
                next.start = s;
            }
            if let Some(title) = patch.title {
                next.title = title;
            }
            if let Some(w) = patch.worker.as_deref() {
                next.worker = accepted_worker(w).expect("valid");
            }
            if let Some(p) = patch.payload {
                next.payload = p;
            }
            check_fields(&next, &task)?;
            model.tasks[i] = next;
            model.observe(i, task.status, w)?;
        }
        Err(_) => model.observe_any(i, &fits, w)?,
    }
    Ok(())
}

/// Payload routes: allowed only while SCHEDULED (checked before the keys are).
async fn do_payload_edit(
    actor: &ActorRef<SchedulerMsg>,
    model: &mut Model,
    target: Target,
    edit: PayloadEdit,
) -> Result<(), TestCaseError> {
    let (id, idx) = model.resolve(&target);
    let msg_id = id.clone();
    let (reply, w) = match &edit {
        PayloadEdit::Merge(keys) => {
            let p = PayloadPatch {
                id: msg_id,
                keys: keys.clone(),
            };
            timed(actor, model.epoch, |r| SchedulerMsg::PatchPayload(p, r)).await?
        }
        PayloadEdit::DeleteKey(key) => {
            let d = PayloadKeyDelete {
                id: msg_id,
                key: key.clone(),
            };
            timed(actor, model.epoch, |r| SchedulerMsg::DeletePayloadKey(d, r)).await?
        }
    };
    let got = kind_of(&reply.0)?;
    let Some(i) = idx else {
        prop_assert_eq!(got, Kind::NotFound, "payload edit of unknown {}", id);
        return Ok(());
    };
    let t = model.tasks[i].clone();
    let mut payload = t.payload.as_deref().map_or_else(Map::new, |p| {
        json_object(p).expect("the model holds only object payloads")
    });
    let when_scheduled = match &edit {
        PayloadEdit::Merge(keys) => match json_object(keys) {
            Some(keys) => {
                payload.extend(keys);
                Kind::Ok
            }
            None => Kind::Invalid("payload"),
        },
        PayloadEdit::DeleteKey(key) => match payload.remove(key) {
            Some(_) => Kind::Ok,
            None => Kind::NotFound,
        },
    };
    let fits: Vec<TaskStatus> = model
        .allowed(&t, w)
        .into_iter()
        .filter(|&s| {
            let expected = if s == TaskStatus::Scheduled {
                when_scheduled.clone()
            } else {
                Kind::Conflict
            };
            expected == got
        })
        .collect();
    prop_assert!(
        !fits.is_empty(),
        "{:?} of {:?}: got {:?}; if SCHEDULED expected {:?}, allowed {:?}",
        edit,
        t,
        reply.0,
        when_scheduled,
        model.allowed(&t, w)
    );
    match reply.0 {
        Ok(task) => {
            let stored = task.payload.as_deref().and_then(json_object);
            prop_assert_eq!(stored.as_ref(), Some(&payload), "payload after {:?}", edit);
            let mut next = t.clone();
            next.payload = task.payload.clone();
            check_fields(&next, &task)?;
            model.tasks[i] = next;
            model.observe(i, task.status, w)?;
        }
        Err(_) => model.observe_any(i, &fits, w)?,
    }
    Ok(())
}

#[derive(Debug)]
enum PayloadEdit {
    Merge(String),
    DeleteKey(String),
}

async fn do_delete(
    actor: &ActorRef<SchedulerMsg>,
    model: &mut Model,
    target: Target,
) -> Result<(), TestCaseError> {
    let (id, idx) = model.resolve(&target);
    let (reply, w) = timed(actor, model.epoch, |r| SchedulerMsg::Delete(id.clone(), r)).await?;
    let got = kind_of(&reply.0)?;
    let Some(i) = idx else {
        prop_assert_eq!(got, Kind::NotFound, "delete of unknown {}", id);
        return Ok(());
    };
    match reply.0 {
        // Only a RUNNING task refuses.
        Err(_) => {
            prop_assert_eq!(got, Kind::Conflict, "delete of {}", id);
            model.observe(i, TaskStatus::Running, w)?;
        }
        Ok(task) => {
            prop_assert_ne!(task.status, TaskStatus::Running, "deleted while RUNNING");
            check_fields(&model.tasks[i], &task)?;
            model.observe(i, task.status, w)?;
            model.tasks.remove(i);
            model.deleted.push(id);
        }
    }
    Ok(())
}

async fn do_get(
    actor: &ActorRef<SchedulerMsg>,
    model: &mut Model,
    target: Target,
) -> Result<(), TestCaseError> {
    let (id, idx) = model.resolve(&target);
    let (reply, w) = timed(actor, model.epoch, |r| SchedulerMsg::Get(id.clone(), r)).await?;
    match idx {
        None => prop_assert_eq!(kind_of(&reply.0)?, Kind::NotFound, "get of unknown {}", id),
        Some(i) => {
            let task = reply.0.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            check_fields(&model.tasks[i], &task)?;
            model.observe(i, task.status, w)?;
        }
    }
    Ok(())
}

async fn do_list(
    actor: &ActorRef<SchedulerMsg>,
    model: &mut Model,
    spec: ListSpec,
) -> Result<(), TestCaseError> {
    let now = Instant::now();
    let filter = TaskFilter {
        worker: spec.worker,
        status: spec.status,
        from: model.bound_of(&spec.from, now),
        to: model.bound_of(&spec.to, now),
        page: spec.page,
    };
    let (page, w) = list(actor, model.epoch, filter.clone()).await?;
    let candidates = model.matching(&filter);
    let got: Vec<String> = page.tasks.iter().map(|t| t.id.clone()).collect();
    let offset = filter.page.offset() as usize;
    let size = filter.page.size as usize;
    // Tasks whose status surely matches, and those whose status may.
    let (must, may): (Vec<usize>, Vec<usize>) = match filter.status {
        None => (candidates.clone(), candidates.clone()),
        Some(s) => {
            let allowed = |i: usize| model.allowed(&model.tasks[i], w);
            (
                candidates
                    .iter()
                    .copied()
                    .filter(|&i| allowed(i) == [s])
                    .collect(),
                candidates
                    .iter()
                    .copied()
                    .filter(|&i| allowed(i).contains(&s))
                    .collect(),
            )
        }
    };
    let ids =
        |v: &[usize]| -> Vec<String> { v.iter().map(|&i| model.tasks[i].id.clone()).collect() };
    if must == may {
        let expected: Vec<String> = ids(&must).into_iter().skip(offset).take(size).collect();
        prop_assert_eq!(&got, &expected, "page of {:?}", filter);
        prop_assert_eq!(page.total, must.len() as u64, "total of {:?}", filter);
    } else {
        // Some task's status is undecided (its start is near now): the page must still be a
        // run of the possible tasks in order, as long as the total says, holding every sure one
        // when it is the whole list.
        let total = page.total as usize;
        prop_assert!(
            must.len() <= total && total <= may.len(),
            "total {} of {:?} outside [{}, {}]",
            total,
            filter,
            must.len(),
            may.len()
        );
        prop_assert_eq!(got.len(), total.saturating_sub(offset).min(size));
        let may_ids = ids(&may);
        let mut at = 0;
        for id in &got {
            match may_ids[at..].iter().position(|m| m == id) {
                Some(p) => at += p + 1,
                None => prop_assert!(false, "{} out of order or unexpected in {:?}", id, filter),
            }
        }
        if offset == 0 && total <= size {
            for id in ids(&must) {
                prop_assert!(got.contains(&id), "{} missing from {:?}", id, filter);
            }
        }
    }
    for task in &page.tasks {
        if let Some(s) = filter.status {
            prop_assert_eq!(task.status, s, "listed under {:?}", s);
        }
        let i = model
            .index_of(&task.id)
            .expect("listed task is in the model");
        check_fields(&model.tasks[i], task)?;
        model.observe(i, task.status, w)?;
    }
    Ok(())
}

async fn scheduler_case(short_deadline: bool, cmds: Vec<Cmd>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("scheduler.redb");
    let deadline = if short_deadline {
        SHORT_DEADLINE
    } else {
        LONG_DEADLINE
    };
    let (mut actor, mut task, epoch) = start(&path, deadline).await;
    let mut model = Model {
        tasks: Vec::new(),
        deleted: Vec::new(),
        deadline: short_deadline.then(|| micros(SHORT_DEADLINE)),
        epoch,
    };
    for cmd in cmds {
        match cmd {
            Cmd::Create(spec) => do_create(&actor, &mut model, spec).await?,
            Cmd::Patch(target, spec) => do_patch(&actor, &mut model, target, spec).await?,
            Cmd::PatchPayload(target, keys) => {
                do_payload_edit(&actor, &mut model, target, PayloadEdit::Merge(keys)).await?
            }
            Cmd::DeletePayloadKey(target, key) => {
                do_payload_edit(&actor, &mut model, target, PayloadEdit::DeleteKey(key)).await?
            }
            Cmd::Delete(target) => do_delete(&actor, &mut model, target).await?,
            Cmd::Get(target) => do_get(&actor, &mut model, target).await?,
            Cmd::List(spec) => do_list(&actor, &mut model, spec).await?,
            Cmd::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Cmd::Restart(down_ms) => {
                stop(actor, task).await;
                tokio::time::sleep(Duration::from_millis(down_ms)).await;
                (actor, task, model.epoch) = start(&path, deadline).await;
                check_all(&actor, &mut model).await?;
            }
        }
    }
    // Every case ends with a restart, so each one also proves durability.
    stop(actor, task).await;
    let (actor, task, epoch) = start(&path, deadline).await;
    model.epoch = epoch;
    check_all(&actor, &mut model).await?;
    stop(actor, task).await;
    Ok(())
}

proptest! {
    #![proptest_config(troupe_tests::proptest_config(32))]

    #[test]
    fn scheduler_matches_its_model(short_deadline in any::<bool>(), cmds in cmds()) {
        run_case(scheduler_case(short_deadline, cmds))?;
    }
}

// ---- deterministic scenarios ----

async fn get_task(actor: &ActorRef<SchedulerMsg>, id: &str) -> Result<Task, TaskError> {
    let id = id.to_string();
    ask(actor, |r| SchedulerMsg::Get(id, r))
        .await
        .expect("get answers")
        .0
}

async fn create_task(
    actor: &ActorRef<SchedulerMsg>,
    start: i64,
    worker: &str,
) -> Result<Task, TestCaseError> {
    let new = NewTask {
        start: Some(start),
        worker: Some(worker.into()),
        payload: Some(r#"{"a":1}"#.into()),
        ..NewTask::default()
    };
    ask(actor, |r| SchedulerMsg::Create(new, r))
        .await?
        .0
        .map_err(|e| TestCaseError::fail(format!("create: {e:?}")))
}

/// Sleeps until the scheduler's clock is at least `at`.
async fn sleep_until(epoch: Epoch, at: i64) {
    let ahead = at - epoch.lo(Instant::now());
    if ahead > 0 {
        tokio::time::sleep(Duration::from_micros(ahead as u64)).await;
    }
}

fn run_scenario(case: impl std::future::Future<Output = Result<(), TestCaseError>>) {
    if let Err(e) = run_case(case) {
        panic!("{e}");
    }
}

/// One task's whole life with no worker, and the start boundary: a start that has just passed
/// is refused; the task is SCHEDULED until its start, RUNNING after (and then locked and not
/// deletable, though its title may change), FAILED naming its worker once the deadline has
/// passed, then deletable.
#[test]
fn a_task_runs_at_its_start_and_fails_without_its_worker() {
    run_scenario(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("scheduler.redb");
        // Tries come 0, 250 and 750 ms after the task is due, so the third one gives up: the
        // task is RUNNING long enough to check its locks.
        let deadline = Duration::from_millis(750);
        let (actor, task, epoch) = start(&path, deadline).await;

        // `start <= now` is refused, even when now has only just reached it.
        let just_passed = NewTask {
            start: Some(epoch.lo(Instant::now())),
            worker: Some("alpha".into()),
            ..NewTask::default()
        };
        let refused = ask(&actor, |r| SchedulerMsg::Create(just_passed, r))
            .await?
            .0;
        prop_assert!(
            matches!(&refused, Err(TaskError::Invalid { field, .. }) if field == "start"),
            "{:?}",
            refused
        );

        let start_at = epoch.hi(Instant::now()) + 300_000;
        let created = create_task(&actor, start_at, " alpha ").await?;
        prop_assert_eq!(&created.worker, "alpha");
        let id = created.id.clone();

        // Just before its start it has not fired (unless this machine was too slow to ask in
        // time).
        sleep_until(epoch, start_at - 100_000).await;
        let t = get_task(&actor, &id).await.expect("task");
        if epoch.hi(Instant::now()) < start_at {
            prop_assert_eq!(t.status, TaskStatus::Scheduled);
        }

        // Past its start it is RUNNING: locked, and not deletable.
        sleep_until(epoch, start_at + FIRE_LAG_US).await;
        let t = get_task(&actor, &id).await.expect("task");
        prop_assert_eq!(t.status, TaskStatus::Running, "{:?}", t);
        prop_assert!(t.attempts >= 1, "not tried: {:?}", t);
        let moved = TaskPatch {
            id: id.clone(),
            start: Some(epoch.hi(Instant::now()) + 3_600_000_000),
            ..TaskPatch::default()
        };
        let refused = ask(&actor, |r| SchedulerMsg::Patch(moved, r)).await?.0;
        prop_assert!(
            matches!(refused, Err(TaskError::Conflict(_))),
            "{:?}",
            refused
        );
        let keys = PayloadPatch {
            id: id.clone(),
            keys: r#"{"b":2}"#.into(),
        };
        let refused = ask(&actor, |r| SchedulerMsg::PatchPayload(keys, r))
            .await?
            .0;
        prop_assert!(
            matches!(refused, Err(TaskError::Conflict(_))),
            "{:?}",
            refused
        );
        let refused = ask(&actor, |r| SchedulerMsg::Delete(id.clone(), r))
            .await?
            .0;
        prop_assert!(
            matches!(refused, Err(TaskError::Conflict(_))),
            "{:?}",
            refused
        );
        let renamed = TaskPatch {
            id: id.clone(),
            title: Some(Some("renamed".into())),
            ..TaskPatch::default()
        };
        let t = ask(&actor, |r| SchedulerMsg::Patch(renamed, r))
            .await?
            .0
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(t.title.as_deref(), Some("renamed"));

        // Past the deadline (and its last retry) it has FAILED, naming the worker.
        sleep_until(epoch, start_at + micros(deadline) + GIVE_UP_SLACK_US).await;
        let t = get_task(&actor, &id).await.expect("task");
        prop_assert_eq!(t.status, TaskStatus::Failed, "{:?}", t);
        prop_assert!(t.error.as_deref().unwrap_or_default().contains("\"alpha\""));
        let deleted = ask(&actor, |r| SchedulerMsg::Delete(id.clone(), r))
            .await?
            .0;
        prop_assert_eq!(deleted.map(|t| t.status), Ok(TaskStatus::Failed));
        prop_assert!(matches!(
            get_task(&actor, &id).await,
            Err(TaskError::NotFound(_))
        ));
        stop(actor, task).await;
        Ok(())
    });
}

/// Nothing but the clock may be needed to start a task: created (or moved earlier) on a
/// scheduler that then gets no other request, it is RUNNING once its start has passed.
#[test]
fn a_task_starts_on_an_idle_scheduler() {
    run_scenario(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let (actor, task, epoch) = start(&dir.path().join("created.redb"), LONG_DEADLINE).await;
        let start_at = epoch.hi(Instant::now()) + 100_000;
        let created = create_task(&actor, start_at, "alpha").await?;
        sleep_until(epoch, start_at + FIRE_LAG_US).await;
        let fresh = get_task(&actor, &created.id).await.map(|t| t.status);
        stop(actor, task).await;

        let (actor, task, epoch) = start(&dir.path().join("moved.redb"), LONG_DEADLINE).await;
        let far = epoch.hi(Instant::now()) + 3_600_000_000;
        let created = create_task(&actor, far, "alpha").await?;
        let start_at = epoch.hi(Instant::now()) + 100_000;
        let moved = TaskPatch {
            id: created.id.clone(),
            start: Some(start_at),
            ..TaskPatch::default()
        };
        ask(&actor, |r| SchedulerMsg::Patch(moved, r))
            .await?
            .0
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        sleep_until(epoch, start_at + FIRE_LAG_US).await;
        let moved = get_task(&actor, &created.id).await.map(|t| t.status);
        stop(actor, task).await;

        prop_assert_eq!(
            (&fresh, &moved),
            (&Ok(TaskStatus::Running), &Ok(TaskStatus::Running)),
            "read {} ms after the start, with no request between: a task created 100 ms ahead, \
             and one moved from an hour ahead to 100 ms ahead",
            FIRE_LAG_US / 1000
        );
        Ok(())
    });
}

/// Every task id listed under each status has that status, and the counts agree.
async fn check_status_index(actor: &ActorRef<SchedulerMsg>) -> Result<(), TestCaseError> {
    for status in TaskStatus::ALL {
        let filter = TaskFilter {
            status: Some(status),
            page: Page { num: 1, size: 100 },
            ..TaskFilter::default()
        };
        let page = ask(actor, |r| SchedulerMsg::List(filter, r))
            .await?
            .0
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(page.total, page.tasks.len() as u64, "{:?}", status);
        for t in &page.tasks {
            prop_assert_eq!(t.status, status, "{} listed under {:?}", t.id, status);
        }
    }
    Ok(())
}

/// Tasks that came due while the scheduler was down fire as it starts ("once, now"): the very
/// first request of the new incarnation must find them RUNNING, so not deletable; and nothing
/// deleted may come back.
#[test]
fn overdue_tasks_are_running_for_the_first_request_after_a_restart() {
    run_scenario(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("scheduler.redb");
        let (actor, task, epoch) = start(&path, LONG_DEADLINE).await;
        let start_at = epoch.hi(Instant::now()) + 100_000;
        let mut ids = Vec::new();
        for worker in WORKERS {
            ids.push(create_task(&actor, start_at, worker).await?.id);
        }
        stop(actor, task).await;
        tokio::time::sleep(Duration::from_millis(200)).await;

        let (actor, task, _) = start(&path, LONG_DEADLINE).await;
        let first = ask(&actor, |r| SchedulerMsg::Delete(ids[0].clone(), r))
            .await?
            .0;
        // Let every write settle before reading back.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after = get_task(&actor, &ids[0]).await;
        prop_assert!(
            matches!(first, Err(TaskError::Conflict(_))),
            "deleting a task overdue since before the restart, as the first request: expected \
             Conflict (it is RUNNING), got {:?}; 100 ms later it reads {:?}",
            first.map(|t| t.status),
            after.map(|t| t.status)
        );
        check_status_index(&actor).await?;
        for id in &ids {
            let t = get_task(&actor, id).await.expect("not deleted");
            prop_assert_eq!(t.status, TaskStatus::Running, "{}", id);
        }
        stop(actor, task).await;
        Ok(())
    });
}

/// A request that reaches the scheduler just as a task comes due (before its timer's wake is
/// handled) may still delete it, but then the task must stay deleted and never run.
#[test]
fn a_task_deleted_as_it_comes_due_stays_deleted() {
    run_scenario(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("scheduler.redb");
        let (actor, task, epoch) = start(&path, LONG_DEADLINE).await;
        let start_at = epoch.hi(Instant::now()) + 150_000;
        let id = create_task(&actor, start_at, "alpha").await?.id;
        // A read, so the timer is armed from a store that holds the task.
        let _ = get_task(&actor, &id).await;
        // Blocks this runtime's only thread past the start: the scheduler's timer cannot run
        // before the delete below, as when a busy scheduler has a request queued at that moment.
        let ahead = start_at + 20_000 - epoch.lo(Instant::now());
        std::thread::sleep(Duration::from_micros(ahead.max(0) as u64));
        let answer = ask(&actor, |r| SchedulerMsg::Delete(id.clone(), r))
            .await?
            .0;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after = get_task(&actor, &id).await;
        if let Ok(deleted) = &answer {
            prop_assert!(
                matches!(after, Err(TaskError::NotFound(_))),
                "delete answered {:?}, yet 100 ms later the task reads {:?}",
                deleted.status,
                after.map(|t| (t.status, t.attempts))
            );
        }
        check_status_index(&actor).await?;
        stop(actor, task).await;
        Ok(())
    });
}
