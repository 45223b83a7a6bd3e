//! The scheduler's clock-driven rules with real time, as deterministic scenarios: a task's
//! whole life with no worker, starting with no request to wake the scheduler, firing overdue
//! tasks at a restart, and a delete that meets a task coming due (the last two reproduce bugs
//! an earlier real-time property test found). The model-based state machine is
//! `scheduler_paused.rs`; these check what paused time cannot: that the timers really fire.
//!
//! No master runs in this process, so every dispatch fails and a due task stays RUNNING until
//! its no-worker deadline, then FAILS. The scheduler's clock is the wall clock read at its
//! start plus `tokio::time::Instant` elapsed, so the tests bracket each incarnation's anchor
//! between readings taken around the spawn (`Epoch`) and judge only what those bounds decide.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorRef, RpcReplyPort};
use tokio::time::Instant;
use troupe_actors::protocol::page::Page;
use troupe_actors::protocol::tasks::{
    NewTask, PayloadPatch, SchedulerMsg, Task, TaskError, TaskFilter, TaskPatch, TaskStatus,
};
use troupe_actors::scheduler::{Scheduler, SchedulerArgs, SchedulerConfig};
use troupe_actors::time::now_micros;

const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Never reached in a scenario: due tasks stay RUNNING.
const LONG_DEADLINE: Duration = Duration::from_secs(3600);
/// Slack for timers, commits and a busy machine on top of when a task gives up. Generous: these
/// tests run side by side, committing with fsync, on machines with few cores; how soon a task
/// fires is measured by the benchmark, not here.
const GIVE_UP_SLACK_US: i64 = 1_000_000;
/// How late a due task may still read SCHEDULED: the timer, the wake and the commit of RUNNING
/// take real time. (Starting early is never allowed.) Generous for the same reason.
const FIRE_LAG_US: i64 = 1_000_000;
const WORKERS: [&str; 3] = ["alpha", "beta", "gamma"];

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

async fn stop(actor: ActorRef<SchedulerMsg>, task: JoinHandle<()>) {
    troupe_tests::stop_actor(actor, task, CALL_TIMEOUT).await;
}

async fn ask<T: Send + 'static>(
    actor: &ActorRef<SchedulerMsg>,
    msg: impl FnOnce(RpcReplyPort<T>) -> SchedulerMsg,
) -> Result<T, TestCaseError> {
    troupe_tests::ask_actor(actor, msg, CALL_TIMEOUT)
        .await
        .map_err(TestCaseError::fail)
}

// ---- the scenarios ----

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
        // Tries come 0, 0.25, 0.75, 1.75 and 3.75 s after the task is due, so the fifth one
        // gives up: the task is RUNNING for seconds, long enough to check its locks after the
        // fire lag on a busy machine.
        let deadline = Duration::from_millis(3750);
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
        // The next incarnation's clock starts from the wall clock, which must be past the start.
        let overdue_in = start_at + 50_000 - now_micros();
        if overdue_in > 0 {
            tokio::time::sleep(Duration::from_micros(overdue_in as u64)).await;
        }

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
