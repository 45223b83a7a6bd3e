//! The scheduler as one state machine (issue 5), under paused tokio time: random creates (valid
//! and not), patches, payload edits, deletes, lookups, filtered and paged lists, time advances,
//! restarts, and workers reporting how their runs ended, against the real `Scheduler` on a temp
//! redb file, the real `Master` it dispatches through, and stand-in workers, compared with a
//! model after every step.
//!
//! It proves: status only moves SCHEDULED -> RUNNING -> SUCCEEDED | FAILED; a task is SCHEDULED
//! exactly while its start is ahead of the scheduler's clock, and RUNNING from then on (after a
//! restart too); every attempt the scheduler counts reaches the named worker once, none reaches
//! it before the start, and a worker that does not exist gets none; the first acknowledged
//! report of a RUNNING task settles it with that report's result or error, and copies, late
//! reports and reports for deleted tasks change nothing; a report made while the scheduler is
//! down is not acknowledged, so the worker keeps it and it counts once sent again; a task for
//! a worker that never exists FAILS naming it, never before the no-worker deadline; invalid
//! input is `Invalid` naming the field checked first; locked fields, payload edits of a task
//! that is not SCHEDULED and deleting a RUNNING task are `Conflict`; unknown ids are
//! `NotFound`; list pages are the model's filtered set in (start, id) order with the full
//! count; all of it survives restarts. Each case ends by running every task to its end.
//!
//! Time moves only when a step advances it. Paused time would also jump ahead on its own
//! whenever the runtime idles with a timer pending, which it does each time an actor waits for
//! a commit on the store's writer thread; a task that only yields keeps the runtime from ever
//! idling, so the scheduler's "now" is exactly the shared clock's reading at every step and
//! the model needs no tolerance. The price is one busy core while a case runs.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{TestCaseError, TestRunner};
use ractor::rpc::CallResult;
use ractor::{pg, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{json, Map, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use troupe_actors::groups;
use troupe_actors::master::{Master, MasterArgs};
use troupe_actors::protocol::master::MasterMsg;
use troupe_actors::protocol::page::Page;
use troupe_actors::protocol::receipt::Received;
use troupe_actors::protocol::tasks::{
    NewTask, PayloadKeyDelete, PayloadPatch, SchedulerMsg, Task, TaskError, TaskFilter,
    TaskOutcome, TaskPatch, TaskRun, TaskStatus,
};
use troupe_actors::protocol::worker::WorkerMsg;
use troupe_actors::scheduler::{Clock, Scheduler, SchedulerArgs, SchedulerConfig};

/// Short enough that advances cross it: re-sent attempts happen within cases.
const LEASE: Duration = Duration::from_secs(10);
const NO_WORKER_DEADLINE: Duration = Duration::from_secs(2);
/// The scheduler's longest wait between tries of a missing worker.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Never reached: time moves only by the test's advances, and each call is answered before
/// the next step.
const CALL_TIMEOUT: Duration = Duration::from_secs(3600);
/// Real time a case may take before it counts as hung (paused time cannot measure that).
const HUNG_AFTER: Duration = Duration::from_secs(60);
const FAR_AHEAD_US: i64 = 3_600_000_000;
/// Workers tasks name; "gamma" never exists.
const WORKERS: [&str; 3] = ["alpha", "beta", "gamma"];
/// Workers that have a stand-in.
const PRESENT: [&str; 2] = ["alpha", "beta"];
const FILTER_WORKERS: [&str; 4] = ["alpha", "beta", "gamma", "nobody"];
const PAYLOAD_KEYS: [&str; 4] = ["a", "b", "c", "d"];

fn micros(d: Duration) -> i64 {
    d.as_micros() as i64
}

fn present(worker: &str) -> bool {
    PRESENT.contains(&worker)
}

// ---- commands and their strategies ----

/// A start time relative to the scheduler's clock, resolved when the command runs.
#[derive(Debug, Clone)]
enum StartSpec {
    Missing,
    /// This many ms ago: invalid.
    AgoMs(u64),
    /// Exactly now: `start <= now`, so invalid.
    Now,
    /// This many ms ahead: valid.
    InMs(u64),
    /// An hour ahead: stays SCHEDULED until the case's end.
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

/// One of the runs the stand-in workers were handed (picked when the command runs), and
/// whether it went well.
#[derive(Debug, Clone)]
struct ReportSpec {
    run: Index,
    ok: bool,
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
    Advance(u64),
    /// Advances to a task's start plus -1, 0 or +1 µs (if that lies ahead): the boundary.
    AdvanceTo(Index, i64),
    /// A worker reports a run it was handed: the first report of it, a copy, or a late one.
    Report(ReportSpec),
    /// Stops the scheduler, lets `down_ms` pass (tasks may fall due meanwhile), starts it
    /// again on the same file; a worker may try to report while it is down.
    Restart {
        down_ms: u64,
        report: Option<ReportSpec>,
    },
}

fn start_spec() -> impl Strategy<Value = StartSpec> {
    prop_oneof![
        6 => (1..=3_000u64).prop_map(StartSpec::InMs),
        1 => Just(StartSpec::FarAhead),
        1 => Just(StartSpec::Missing),
        1 => (1..=5_000u64).prop_map(StartSpec::AgoMs),
        1 => Just(StartSpec::Now),
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

/// Creates that succeed: most of them, so cases have tasks to act on.
fn valid_create() -> impl Strategy<Value = CreateSpec> {
    let start = prop_oneof![
        6 => (1..=3_000u64).prop_map(StartSpec::InMs),
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
        1 => (-3_000..=3_000i64).prop_map(BoundSpec::FromNowMs),
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

fn report_spec() -> impl Strategy<Value = ReportSpec> {
    (
        any::<Index>(),
        prop_oneof![2 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(run, ok)| ReportSpec { run, ok })
}

fn cmds() -> impl Strategy<Value = Vec<Cmd>> {
    let cmd = prop_oneof![
        3 => valid_create().prop_map(Cmd::Create),
        2 => any_create().prop_map(Cmd::Create),
        4 => (target(), patch_spec()).prop_map(|(t, p)| Cmd::Patch(t, p)),
        1 => (target(), prop_oneof![3 => valid_payload(), 1 => invalid_payload()])
            .prop_map(|(t, k)| Cmd::PatchPayload(t, k)),
        1 => (target(), prop::sample::select(vec!["a", "b", "c", "zz"]))
            .prop_map(|(t, k)| Cmd::DeletePayloadKey(t, k.to_string())),
        2 => target().prop_map(Cmd::Delete),
        1 => target().prop_map(Cmd::Get),
        2 => list_spec().prop_map(Cmd::List),
        // Mostly short steps (starts lie up to 3 s ahead); sometimes one past a lease.
        4 => prop_oneof![
            3 => 0..=3_000u64,
            1 => 10_000..=12_000u64,
        ]
        .prop_map(Cmd::Advance),
        2 => (any::<Index>(), -1..=1i64).prop_map(|(i, d)| Cmd::AdvanceTo(i, d)),
        3 => report_spec().prop_map(Cmd::Report),
        1 => (0..=3_000u64, prop::option::of(report_spec()))
            .prop_map(|(down_ms, report)| Cmd::Restart { down_ms, report }),
    ];
    // A few creates first, so the commands after them mostly find tasks to act on.
    (vec(valid_create(), 1..4), vec(cmd, 1..30))
        .prop_map(|(first, rest)| first.into_iter().map(Cmd::Create).chain(rest).collect())
}

// ---- the model ----

#[derive(Debug, Clone)]
struct ModelTask {
    id: String,
    start: i64,
    title: Option<String>,
    worker: String,
    payload: Option<String>,
    created_at: i64,
    /// The result or error of the first report acknowledged while it ran: how it ended.
    outcome: Option<Result<String, String>>,
    /// The latest status seen: none seen later may be earlier in the lifecycle.
    seen: TaskStatus,
    /// The most attempts seen: they never go down.
    attempts: u32,
}

struct Model {
    tasks: Vec<ModelTask>,
    deleted: Vec<String>,
    clock: Clock,
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
fn create_kind(new: &NewTask, now: i64) -> Kind {
    if new.start.is_none_or(|s| s <= now) {
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
fn patch_kind(t: &ModelTask, status: TaskStatus, p: &TaskPatch, now: i64) -> Kind {
    let locked = status != TaskStatus::Scheduled;
    if let Some(s) = p.status.as_deref() {
        match TaskStatus::parse(s) {
            None => return Kind::Invalid("status"),
            Some(s) if s != status => return Kind::Conflict,
            Some(_) => {}
        }
    }
    if let Some(start) = p.start.filter(|s| *s != t.start) {
        if locked {
            return Kind::Conflict;
        }
        if start <= now {
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
    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The statuses `t` may have now. Exact, but for a task whose worker does not exist: its
    /// give-up is decided by a dispatch answer that arrives on its own, so once the deadline
    /// has passed it may read RUNNING or FAILED (the case's end checks that it does FAIL).
    fn allowed(&self, t: &ModelTask) -> Vec<TaskStatus> {
        let now = self.now();
        if t.start > now {
            return vec![TaskStatus::Scheduled];
        }
        match &t.outcome {
            Some(Ok(_)) => return vec![TaskStatus::Succeeded],
            Some(Err(_)) => return vec![TaskStatus::Failed],
            None if present(&t.worker) => return vec![TaskStatus::Running],
            None => {}
        }
        let mut out = Vec::new();
        if t.seen != TaskStatus::Failed {
            out.push(TaskStatus::Running);
        }
        // The deadline counts from when the task fell due (or later, from a restart).
        if now >= t.start + micros(NO_WORKER_DEADLINE) {
            out.push(TaskStatus::Failed);
        }
        out
    }

    /// Checks that task `i` may have had one of `statuses` (what a reply reveals) and
    /// remembers the earliest of those in the lifecycle.
    fn observe_any(&mut self, i: usize, statuses: &[TaskStatus]) -> Result<(), TestCaseError> {
        let allowed = self.allowed(&self.tasks[i]);
        let now = self.now();
        let t = &mut self.tasks[i];
        let fits: Vec<TaskStatus> = statuses
            .iter()
            .copied()
            .filter(|s| allowed.contains(s) && rank(*s) >= rank(t.seen))
            .collect();
        prop_assert!(
            !fits.is_empty(),
            "task {} (worker {:?}) shows {:?}, allowed {:?}: last seen {:?}, start - now = {} ms, \
             outcome reported {:?}",
            t.id,
            t.worker,
            statuses,
            allowed,
            t.seen,
            (t.start - now) / 1000,
            t.outcome
        );
        t.seen = fits.iter().copied().min_by_key(|s| rank(*s)).expect("fits");
        Ok(())
    }

    /// Checks a task the scheduler returned against task `i` and remembers what it showed.
    fn check_task(&mut self, i: usize, got: &Task) -> Result<(), TestCaseError> {
        check_fields(&self.tasks[i], got, self.now())?;
        self.observe_any(i, &[got.status])?;
        let t = &mut self.tasks[i];
        prop_assert!(
            got.attempts >= t.attempts,
            "attempts of {} went from {} down to {}",
            t.id,
            t.attempts,
            got.attempts
        );
        t.attempts = got.attempts;
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

    fn start_of(&self, spec: &StartSpec) -> Option<i64> {
        let now = self.now();
        match spec {
            StartSpec::Missing => None,
            StartSpec::AgoMs(ms) => Some(now - *ms as i64 * 1000),
            StartSpec::Now => Some(now),
            StartSpec::InMs(ms) => Some(now + *ms as i64 * 1000),
            StartSpec::FarAhead => Some(now + FAR_AHEAD_US),
        }
    }

    fn bound_of(&self, spec: &BoundSpec) -> Option<i64> {
        match spec {
            BoundSpec::Open => None,
            BoundSpec::AtTask(i, delta) if !self.tasks.is_empty() => {
                Some(self.tasks[i.index(self.tasks.len())].start + delta)
            }
            BoundSpec::AtTask(..) => Some(self.now()),
            BoundSpec::FromNowMs(ms) => Some(self.now() + ms * 1000),
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

    /// A report of a run of task `id` was acknowledged: it is recorded, so if the task was
    /// still RUNNING this is how it ended.
    fn reported(&mut self, id: &str, result: &Result<String, String>) {
        if let Some(t) = self.tasks.iter_mut().find(|t| t.id == id) {
            t.outcome.get_or_insert_with(|| result.clone());
        }
    }
}

/// Everything but the status (which `observe_any` judges) and attempts must be what the model
/// holds.
fn check_fields(t: &ModelTask, got: &Task, now: i64) -> Result<(), TestCaseError> {
    prop_assert_eq!(&got.id, &t.id);
    prop_assert_eq!(got.start, t.start, "start of {}", t.id);
    prop_assert_eq!(&got.title, &t.title, "title of {}", t.id);
    prop_assert_eq!(&got.worker, &t.worker, "worker of {}", t.id);
    prop_assert_eq!(&got.payload, &t.payload, "payload of {}", t.id);
    prop_assert_eq!(got.created_at, t.created_at, "created_at of {}", t.id);
    prop_assert!(
        t.created_at <= got.updated_at && got.updated_at <= now,
        "updated_at of {}: {} outside [{}, {}]",
        t.id,
        got.updated_at,
        t.created_at,
        now
    );
    match got.status {
        TaskStatus::Scheduled => {
            prop_assert_eq!(got.attempts, 0, "SCHEDULED {} was tried", t.id);
            prop_assert_eq!(got.dispatched_at, None);
            prop_assert_eq!((&got.result, &got.error), (&None, &None));
        }
        TaskStatus::Running => {
            prop_assert!(got.attempts >= 1, "RUNNING {} was never tried", t.id);
            prop_assert_eq!((&got.result, &got.error), (&None, &None));
        }
        TaskStatus::Succeeded => {
            prop_assert_eq!(
                got.result.as_ref(),
                t.outcome.as_ref().and_then(|o| o.as_ref().ok()),
                "result of {}",
                t.id
            );
            prop_assert_eq!(&got.error, &None);
        }
        TaskStatus::Failed => {
            prop_assert_eq!(&got.result, &None);
            let error = got.error.as_deref().unwrap_or_default();
            match &t.outcome {
                Some(Err(reported)) => prop_assert_eq!(error, reported, "error of {}", t.id),
                _ => prop_assert!(
                    error.contains(&format!("{:?}", t.worker)),
                    "the error of FAILED {} does not name worker {:?}: {:?}",
                    t.id,
                    t.worker,
                    error
                ),
            }
            prop_assert!(got.attempts >= 1, "FAILED {} was never tried", t.id);
        }
    }
    Ok(())
}

// ---- the cluster in one process: master, stand-in workers, scheduler ----

/// The runs the stand-in workers were handed, in arrival order, with the worker that got each.
#[derive(Default)]
struct Runs {
    got: Mutex<Vec<(String, TaskRun)>>,
    arrived: Notify,
}

impl Runs {
    fn all(&self) -> Vec<(String, TaskRun)> {
        self.got.lock().expect("runs").clone()
    }

    fn of(&self, task: &str) -> Vec<(String, TaskRun)> {
        let got = self.got.lock().expect("runs");
        got.iter()
            .filter(|(_, r)| r.task_id == task)
            .cloned()
            .collect()
    }

    /// Returns once attempt `attempt` of `task` has reached a worker.
    async fn arrival(&self, task: &str, attempt: u32) {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.of(task).iter().any(|(_, r)| r.attempt == attempt) {
                return;
            }
            arrived.await;
        }
    }
}

/// A worker by name: joins `troupe.worker.<name>` (where the master sends task runs) and
/// records each run; the test reports outcomes in its stead.
struct StandIn;

impl Actor for StandIn {
    type Msg = WorkerMsg;
    type State = (String, Arc<Runs>);
    type Arguments = (String, Arc<Runs>);

    async fn pre_start(
        &self,
        myself: ActorRef<WorkerMsg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        pg::join(groups::named_worker(&args.0), vec![myself.get_cell()]);
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        (name, runs): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let WorkerMsg::RunTask(run) = msg {
            runs.got.lock().expect("runs").push((name.clone(), run));
            runs.arrived.notify_waiters();
        }
        Ok(())
    }
}

type Spawned<M> = (ActorRef<M>, JoinHandle<()>);

/// Process groups are global to the process, so this file holds this one test: its master
/// and workers are the only ones the scheduler can find.
struct Rig {
    store: std::path::PathBuf,
    clock: Clock,
    runs: Arc<Runs>,
    master: Spawned<MasterMsg>,
    workers: Vec<Spawned<WorkerMsg>>,
    scheduler: Option<Spawned<SchedulerMsg>>,
}

impl Rig {
    async fn start(dir: &Path) -> Self {
        let (master, master_task) = Actor::spawn(
            None,
            Master,
            MasterArgs {
                store_path: dir.join("master.redb"),
                lease: Duration::from_secs(3600),
                call_timeout: CALL_TIMEOUT,
            },
        )
        .await
        .expect("master starts");
        let runs = Arc::new(Runs::default());
        let mut workers = Vec::new();
        for name in PRESENT {
            let worker = Actor::spawn(None, StandIn, (name.to_string(), runs.clone()))
                .await
                .expect("stand-in starts");
            workers.push(worker);
        }
        let mut rig = Rig {
            store: dir.join("scheduler.redb"),
            clock: Clock::new(),
            runs,
            master: (master, master_task),
            workers,
            scheduler: None,
        };
        rig.start_scheduler().await;
        rig
    }

    async fn start_scheduler(&mut self) {
        let args = SchedulerArgs {
            store_path: self.store.clone(),
            config: SchedulerConfig {
                lease: LEASE,
                no_worker_deadline: NO_WORKER_DEADLINE,
                call_timeout: CALL_TIMEOUT,
            },
            // One clock for every incarnation: a restart does not move "now".
            clock: Some(self.clock),
        };
        self.scheduler = Some(
            Actor::spawn(None, Scheduler, args)
                .await
                .expect("scheduler starts"),
        );
    }

    /// Returns once the actor's task has ended, so its redb file is closed for the next one.
    async fn stop_scheduler(&mut self) {
        if let Some((actor, task)) = self.scheduler.take() {
            stop(actor, task).await;
        }
    }

    fn scheduler(&self) -> &ActorRef<SchedulerMsg> {
        &self.scheduler.as_ref().expect("scheduler running").0
    }

    /// What a worker does with a finished run: report it to the master and wait for the
    /// receipt. `true` if the receipt came.
    async fn report(&self, outcome: TaskOutcome) -> Result<bool, TestCaseError> {
        match self
            .master
            .0
            .call(|r| MasterMsg::TaskDone(outcome, r), None)
            .await
        {
            Ok(CallResult::Success(Received)) => Ok(true),
            Ok(CallResult::SenderError) => Ok(false),
            Ok(CallResult::Timeout) => {
                Err(TestCaseError::fail("a call with no deadline timed out"))
            }
            Err(e) => Err(TestCaseError::fail(format!("master unreachable: {e}"))),
        }
    }

    async fn shutdown(mut self) {
        self.stop_scheduler().await;
        for (actor, task) in self.workers.drain(..) {
            stop(actor, task).await;
        }
        let (master, task) = self.master;
        stop(master, task).await;
    }
}

async fn stop<M: ractor::Message>(actor: ActorRef<M>, task: JoinHandle<()>) {
    actor.stop_and_wait(None, None).await.expect("actor stops");
    task.await.expect("actor task did not panic");
}

/// The result a worker reports for `run`: distinct per attempt, so the test sees which
/// report settled the task.
fn outcome_of(worker: &str, run: &TaskRun, ok: bool) -> TaskOutcome {
    TaskOutcome {
        task_id: run.task_id.clone(),
        attempt: run.attempt,
        worker: worker.to_string(),
        node: "stand-in".into(),
        result: if ok {
            Ok(json!({"attempt": run.attempt, "payload": run.payload}).to_string())
        } else {
            Err(format!("attempt {} went wrong", run.attempt))
        },
    }
}

async fn ask<T: Send + 'static>(
    actor: &ActorRef<SchedulerMsg>,
    msg: impl FnOnce(RpcReplyPort<T>) -> SchedulerMsg,
) -> Result<T, TestCaseError> {
    // No deadline: the clock does not move while a step runs, so none could pass.
    match actor.call(msg, None).await {
        Ok(CallResult::Success(reply)) => Ok(reply),
        Ok(CallResult::Timeout) => Err(TestCaseError::fail("a call with no deadline timed out")),
        Ok(CallResult::SenderError) => Err(TestCaseError::fail("the scheduler dropped the call")),
        Err(e) => Err(TestCaseError::fail(format!("send failed: {e}"))),
    }
}

// ---- the steps ----

async fn do_create(rig: &Rig, model: &mut Model, spec: CreateSpec) -> Result<(), TestCaseError> {
    let new = NewTask {
        start: model.start_of(&spec.start),
        title: spec.title,
        worker: spec.worker,
        status: spec.status,
        payload: spec.payload,
    };
    let reply = ask(rig.scheduler(), |r| SchedulerMsg::Create(new.clone(), r))
        .await?
        .0;
    let now = model.now();
    prop_assert_eq!(
        kind_of(&reply)?,
        create_kind(&new, now),
        "create {:?}: {:?}",
        new,
        reply
    );
    let Ok(task) = reply else { return Ok(()) };
    prop_assert_eq!(task.status, TaskStatus::Scheduled);
    prop_assert_eq!(task.created_at, now, "stamped by the scheduler's clock");
    prop_assert_eq!(task.updated_at, now);
    let t = ModelTask {
        id: task.id.clone(),
        start: new.start.expect("valid"),
        title: new.title.clone(),
        worker: accepted_worker(new.worker.as_deref().expect("valid")).expect("valid"),
        payload: new.payload.clone(),
        created_at: now,
        outcome: None,
        seen: TaskStatus::Scheduled,
        attempts: 0,
    };
    prop_assert!(model.index_of(&t.id).is_none() && !model.deleted.contains(&t.id));
    model.tasks.push(t);
    model.check_task(model.tasks.len() - 1, &task)
}

async fn do_patch(
    rig: &Rig,
    model: &mut Model,
    target: Target,
    spec: PatchSpec,
) -> Result<(), TestCaseError> {
    let (id, idx) = model.resolve(&target);
    let current = idx.map(|i| model.tasks[i].clone());
    let patch = TaskPatch {
        id: id.clone(),
        start: spec.start.and_then(|s| match s {
            PatchStart::Same => current.as_ref().map(|t| t.start),
            PatchStart::New(s) => model.start_of(&s),
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
    let reply = ask(rig.scheduler(), |r| SchedulerMsg::Patch(patch.clone(), r))
        .await?
        .0;
    let got = kind_of(&reply)?;
    let (Some(i), Some(t)) = (idx, current) else {
        prop_assert_eq!(got, Kind::NotFound, "patch of unknown {}", id);
        return Ok(());
    };
    // The statuses the task may have had that give this outcome.
    let now = model.now();
    let expected: Vec<(TaskStatus, Kind)> = model
        .allowed(&t)
        .into_iter()
        .map(|s| (s, patch_kind(&t, s, &patch, now)))
        .collect();
    let fits: Vec<TaskStatus> = expected
        .iter()
        .filter(|(_, k)| *k == got)
        .map(|(s, _)| *s)
        .collect();
    prop_assert!(
        !fits.is_empty(),
        "patch {:?} of {:?}: got {:?}, expected one of {:?}",
        patch,
        t,
        reply,
        expected
    );
    match reply {
        Ok(task) => {
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
            model.tasks[i] = next;
            model.check_task(i, &task)?;
            prop_assert_eq!(task.updated_at, now);
        }
        Err(_) => model.observe_any(i, &fits)?,
    }
    Ok(())
}

#[derive(Debug)]
enum PayloadEdit {
    Merge(String),
    DeleteKey(String),
}

/// Payload routes: allowed only while SCHEDULED (checked before the keys are).
async fn do_payload_edit(
    rig: &Rig,
    model: &mut Model,
    target: Target,
    edit: PayloadEdit,
) -> Result<(), TestCaseError> {
    let (id, idx) = model.resolve(&target);
    let reply = match &edit {
        PayloadEdit::Merge(keys) => {
            let p = PayloadPatch {
                id: id.clone(),
                keys: keys.clone(),
            };
            ask(rig.scheduler(), |r| SchedulerMsg::PatchPayload(p, r)).await?
        }
        PayloadEdit::DeleteKey(key) => {
            let d = PayloadKeyDelete {
                id: id.clone(),
                key: key.clone(),
            };
            ask(rig.scheduler(), |r| SchedulerMsg::DeletePayloadKey(d, r)).await?
        }
    }
    .0;
    let got = kind_of(&reply)?;
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
    let allowed = model.allowed(&t);
    let fits: Vec<TaskStatus> = allowed
        .iter()
        .copied()
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
        reply,
        when_scheduled,
        allowed
    );
    match reply {
        Ok(task) => {
            let stored = task.payload.as_deref().and_then(json_object);
            prop_assert_eq!(stored.as_ref(), Some(&payload), "payload after {:?}", edit);
            model.tasks[i].payload = task.payload.clone();
            model.check_task(i, &task)?;
        }
        Err(_) => model.observe_any(i, &fits)?,
    }
    Ok(())
}

async fn do_delete(rig: &Rig, model: &mut Model, target: Target) -> Result<(), TestCaseError> {
    let (id, idx) = model.resolve(&target);
    let reply = ask(rig.scheduler(), |r| SchedulerMsg::Delete(id.clone(), r))
        .await?
        .0;
    let got = kind_of(&reply)?;
    let Some(i) = idx else {
        prop_assert_eq!(got, Kind::NotFound, "delete of unknown {}", id);
        return Ok(());
    };
    match reply {
        // Only a RUNNING task refuses.
        Err(_) => {
            prop_assert_eq!(got, Kind::Conflict, "delete of {}", id);
            model.observe_any(i, &[TaskStatus::Running])?;
        }
        Ok(task) => {
            prop_assert_ne!(task.status, TaskStatus::Running, "deleted while RUNNING");
            model.check_task(i, &task)?;
            model.tasks.remove(i);
            model.deleted.push(id);
        }
    }
    Ok(())
}

async fn do_get(rig: &Rig, model: &mut Model, target: Target) -> Result<(), TestCaseError> {
    let (id, idx) = model.resolve(&target);
    let reply = ask(rig.scheduler(), |r| SchedulerMsg::Get(id.clone(), r))
        .await?
        .0;
    match idx {
        None => prop_assert_eq!(kind_of(&reply)?, Kind::NotFound, "get of unknown {}", id),
        Some(i) => {
            let task = reply.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            model.check_task(i, &task)?;
        }
    }
    Ok(())
}

async fn do_list(rig: &Rig, model: &mut Model, spec: ListSpec) -> Result<(), TestCaseError> {
    let filter = TaskFilter {
        worker: spec.worker,
        status: spec.status,
        from: model.bound_of(&spec.from),
        to: model.bound_of(&spec.to),
        page: spec.page,
    };
    let page = ask(rig.scheduler(), |r| SchedulerMsg::List(filter.clone(), r))
        .await?
        .0
        .map_err(|e| TestCaseError::fail(format!("list failed: {e:?}")))?;
    let candidates = model.matching(&filter);
    let got: Vec<String> = page.tasks.iter().map(|t| t.id.clone()).collect();
    let offset = filter.page.offset() as usize;
    let size = filter.page.size as usize;
    // Tasks whose status surely matches, and those whose status may (a task whose worker does
    // not exist, past its deadline).
    let (must, may): (Vec<usize>, Vec<usize>) = match filter.status {
        None => (candidates.clone(), candidates.clone()),
        Some(s) => {
            let allowed = |i: usize| model.allowed(&model.tasks[i]);
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
        // The page must still be a run of the possible tasks in order, as long as the total
        // says, holding every sure one when it is the whole list.
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
        model.check_task(i, task)?;
    }
    Ok(())
}

/// A worker reports a run (the one `spec` picks among all handed out so far) and gets its
/// receipt: the scheduler has recorded it.
async fn do_report(rig: &Rig, model: &mut Model, spec: &ReportSpec) -> Result<(), TestCaseError> {
    let runs = rig.runs.all();
    if runs.is_empty() {
        return Ok(());
    }
    let (worker, run) = &runs[spec.run.index(runs.len())];
    let outcome = outcome_of(worker, run, spec.ok);
    prop_assert!(
        rig.report(outcome.clone()).await?,
        "no receipt for {:?}",
        outcome
    );
    model.reported(&outcome.task_id, &outcome.result);
    Ok(())
}

/// Everything read back: one unfiltered list (after a restart it is the first request the new
/// incarnation answers), each task, each deleted id; then what the workers were handed.
async fn check_all(rig: &Rig, model: &mut Model) -> Result<(), TestCaseError> {
    let all = TaskFilter {
        page: Page { num: 1, size: 100 },
        ..TaskFilter::default()
    };
    let page = ask(rig.scheduler(), |r| SchedulerMsg::List(all.clone(), r))
        .await?
        .0
        .map_err(|e| TestCaseError::fail(format!("list failed: {e:?}")))?;
    let expected: Vec<String> = model
        .matching(&all)
        .into_iter()
        .map(|i| model.tasks[i].id.clone())
        .collect();
    let got: Vec<String> = page.tasks.iter().map(|t| t.id.clone()).collect();
    prop_assert_eq!(&got, &expected, "all tasks");
    prop_assert_eq!(page.total, expected.len() as u64);
    for task in &page.tasks {
        let i = model.index_of(&task.id).expect("in the model");
        model.check_task(i, task)?;
    }
    for i in 0..model.tasks.len() {
        let id = model.tasks[i].id.clone();
        let task = ask(rig.scheduler(), |r| SchedulerMsg::Get(id, r))
            .await?
            .0
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        model.check_task(i, &task)?;
    }
    for id in model.deleted.clone() {
        let reply = ask(rig.scheduler(), |r| SchedulerMsg::Get(id.clone(), r))
            .await?
            .0;
        prop_assert_eq!(kind_of(&reply)?, Kind::NotFound, "deleted {}", id);
    }
    check_runs(rig, model).await
}

/// Every attempt the scheduler counts goes to the task's worker once: a RUNNING task's
/// worker was handed exactly attempts 1..=N (waiting for the latest, which may be on its
/// way); a finished task's, distinct attempts up to N; a SCHEDULED task's or a missing
/// worker's, none.
async fn check_runs(rig: &Rig, model: &Model) -> Result<(), TestCaseError> {
    for t in &model.tasks {
        if t.seen == TaskStatus::Running && present(&t.worker) {
            rig.runs.arrival(&t.id, t.attempts).await;
        }
        let runs = rig.runs.of(&t.id);
        let mut attempts: Vec<u32> = runs.iter().map(|(_, r)| r.attempt).collect();
        attempts.sort_unstable();
        if t.seen == TaskStatus::Scheduled || !present(&t.worker) {
            prop_assert!(
                runs.is_empty(),
                "{} ({:?}) was handed out: {:?}",
                t.id,
                t.seen,
                runs
            );
        } else if t.seen == TaskStatus::Running {
            let counted: Vec<u32> = (1..=t.attempts).collect();
            prop_assert_eq!(&attempts, &counted, "runs of {}", t.id);
        } else {
            prop_assert!(
                attempts.windows(2).all(|w| w[0] < w[1])
                    && attempts.last().is_none_or(|a| *a <= t.attempts),
                "runs of {} ({} attempts): {:?}",
                t.id,
                t.attempts,
                attempts
            );
        }
        for (worker, run) in &runs {
            prop_assert_eq!(worker, &t.worker, "{} ran on another worker", t.id);
            prop_assert_eq!(&run.worker, &t.worker);
            prop_assert_eq!(&run.payload, &t.payload, "payload handed out for {}", t.id);
        }
    }
    Ok(())
}

async fn steps(rig: &mut Rig, model: &mut Model, cmds: Vec<Cmd>) -> Result<(), TestCaseError> {
    for cmd in cmds {
        match cmd {
            Cmd::Create(spec) => do_create(rig, model, spec).await?,
            Cmd::Patch(target, spec) => do_patch(rig, model, target, spec).await?,
            Cmd::PatchPayload(target, keys) => {
                do_payload_edit(rig, model, target, PayloadEdit::Merge(keys)).await?
            }
            Cmd::DeletePayloadKey(target, key) => {
                do_payload_edit(rig, model, target, PayloadEdit::DeleteKey(key)).await?
            }
            Cmd::Delete(target) => do_delete(rig, model, target).await?,
            Cmd::Get(target) => do_get(rig, model, target).await?,
            Cmd::List(spec) => do_list(rig, model, spec).await?,
            Cmd::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
            Cmd::AdvanceTo(i, delta) if !model.tasks.is_empty() => {
                let at = model.tasks[i.index(model.tasks.len())].start + delta;
                let ahead = at - model.now();
                if ahead > 0 {
                    tokio::time::advance(Duration::from_micros(ahead as u64)).await;
                }
            }
            Cmd::AdvanceTo(..) => {}
            Cmd::Report(spec) => do_report(rig, model, &spec).await?,
            Cmd::Restart { down_ms, report } => {
                rig.stop_scheduler().await;
                let runs = rig.runs.all();
                let held = match report {
                    Some(spec) if !runs.is_empty() => {
                        let (worker, run) = &runs[spec.run.index(runs.len())];
                        let outcome = outcome_of(worker, run, spec.ok);
                        prop_assert!(
                            !rig.report(outcome.clone()).await?,
                            "the master acknowledged {:?} while the scheduler was down",
                            outcome
                        );
                        Some(outcome)
                    }
                    _ => None,
                };
                tokio::time::advance(Duration::from_millis(down_ms)).await;
                rig.start_scheduler().await;
                // The worker kept the report and sends it again.
                if let Some(outcome) = held {
                    prop_assert!(rig.report(outcome.clone()).await?, "no receipt");
                    model.reported(&outcome.task_id, &outcome.result);
                }
            }
        }
        check_all(rig, model).await?;
    }
    run_to_the_end(rig, model).await
}

/// Every task is run to its end: all fall due, the workers report the latest run of each
/// task still RUNNING, and tasks whose worker does not exist give up within a few retries.
/// Then a last restart shows it all kept.
async fn run_to_the_end(rig: &mut Rig, model: &mut Model) -> Result<(), TestCaseError> {
    tokio::time::advance(Duration::from_micros(FAR_AHEAD_US as u64 + 1_000_000)).await;
    check_all(rig, model).await?;
    for i in 0..model.tasks.len() {
        let t = &model.tasks[i];
        if t.seen == TaskStatus::Running && present(&t.worker) {
            let (worker, run) = rig
                .runs
                .of(&t.id)
                .into_iter()
                .max_by_key(|(_, r)| r.attempt)
                .expect("handed out");
            let outcome = outcome_of(&worker, &run, run.attempt % 2 == 1);
            prop_assert!(rig.report(outcome.clone()).await?, "no receipt");
            model.reported(&outcome.task_id, &outcome.result);
        }
    }
    for _ in 0..5 {
        check_all(rig, model).await?;
        if model.tasks.iter().all(|t| t.seen.is_final()) {
            break;
        }
        tokio::time::advance(RETRY_MAX).await;
    }
    for t in &model.tasks {
        prop_assert!(t.seen.is_final(), "{} never finished: {:?}", t.id, t);
    }
    rig.stop_scheduler().await;
    rig.start_scheduler().await;
    check_all(rig, model).await
}

async fn case(cmds: Vec<Cmd>) -> Result<(), TestCaseError> {
    // Keeps the runtime from idling, so paused time never jumps ahead on its own.
    let busy = tokio::spawn(async {
        loop {
            tokio::task::yield_now().await;
        }
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rig = Rig::start(dir.path()).await;
    let mut model = Model {
        tasks: Vec::new(),
        deleted: Vec::new(),
        clock: rig.clock,
    };
    let outcome = steps(&mut rig, &mut model, cmds).await;
    // Always, so the next case finds only its own actors in the process groups.
    rig.shutdown().await;
    busy.abort();
    outcome
}

/// Resolves after `after` of real time, which paused time does not measure.
fn real_time(after: Duration) -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let _ = tx.send(());
    });
    rx
}

#[test]
fn the_scheduler_matches_its_model_in_paused_time() {
    let mut runner = TestRunner::new(troupe_tests::proptest_config(64));
    let result = runner.run(&cmds(), |cmds| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("tokio runtime")
            .block_on(async {
                tokio::select! {
                    biased;
                    outcome = case(cmds) => outcome,
                    _ = real_time(HUNG_AFTER) => Err(TestCaseError::fail(format!(
                        "the case did not finish within {HUNG_AFTER:?} of real time"
                    ))),
                }
            })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
