//! The scheduler's timing as a state machine under paused tokio time: random creates, start
//! edits, deletes, time advances and restarts against the real actor on a temp redb file,
//! compared with a model of which tasks must have fired.
//!
//! Paused time auto-advances whenever the runtime idles with a timer pending, which happens
//! while the scheduler waits for a commit on the store's thread. So the test never assumes how
//! far time moved: after every step it reads the scheduler's own clock (shared across restarts
//! through `SchedulerArgs::clock`) and checks the model against that "now".

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;
use troupe_actors::scheduler::{
    Clock, NewTask, Scheduler, SchedulerArgs, SchedulerConfig, SchedulerMsg, Task, TaskError,
    TaskPatch, TaskStatus,
};

/// The timer wheel's resolution (and its rounding), in microseconds.
const TIMER_TICK_US: i64 = 2_000;

#[derive(Debug, Clone)]
enum Step {
    Create { in_ms: u64 },
    MoveStart { task: usize, in_ms: u64 },
    Delete { task: usize },
    Advance { ms: u64 },
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (50u64..5_000).prop_map(|in_ms| Step::Create { in_ms }),
        1 => (0usize..8, 50u64..5_000).prop_map(|(task, in_ms)| Step::MoveStart { task, in_ms }),
        1 => (0usize..8).prop_map(|task| Step::Delete { task }),
        3 => (0u64..3_000).prop_map(|ms| Step::Advance { ms }),
        1 => Just(Step::Restart),
    ]
}

/// What the model knows of one task.
#[derive(Debug, Clone)]
struct Known {
    id: String,
    start: i64,
    deleted: bool,
    /// Seen not SCHEDULED once: it must never be SCHEDULED again.
    fired: bool,
}

async fn spawn(path: &std::path::Path, clock: Clock) -> (ActorRef<SchedulerMsg>, JoinHandle<()>) {
    let args = SchedulerArgs {
        store_path: path.to_path_buf(),
        config: SchedulerConfig {
            lease: Duration::from_secs(3600),
            // No worker exists here: a fired task stays RUNNING, retrying, for a day.
            no_worker_deadline: Duration::from_secs(86_400),
            call_timeout: Duration::from_millis(10),
        },
        clock: Some(clock),
    };
    Actor::spawn(None, Scheduler, args).await.unwrap()
}

async fn call<T: Send + 'static>(
    actor: &ActorRef<SchedulerMsg>,
    build: impl FnOnce(ractor::RpcReplyPort<T>) -> SchedulerMsg,
) -> T {
    // No deadline: under paused time a deadline is a timer, and time would jump to it while
    // the scheduler waits for a commit.
    match actor.call(build, None).await.unwrap() {
        ractor::rpc::CallResult::Success(v) => v,
        ractor::rpc::CallResult::Timeout => panic!("the scheduler timed out"),
        ractor::rpc::CallResult::SenderError => panic!("the scheduler dropped the call (it died?)"),
    }
}

async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.redb");
    let clock = Clock::new();
    let (mut actor, mut task) = spawn(&path, clock).await;
    let mut known: Vec<Known> = Vec::new();
    for step in steps {
        match step {
            Step::Create { in_ms } => {
                let start = clock.now() + in_ms as i64 * 1000;
                let new = NewTask {
                    start: Some(start),
                    worker: Some("w".into()),
                    ..NewTask::default()
                };
                let created: Task = call(&actor, |r| SchedulerMsg::Create(new, r))
                    .await
                    .0
                    .unwrap();
                known.push(Known {
                    id: created.id,
                    start,
                    deleted: false,
                    fired: false,
                });
            }
            Step::MoveStart { task: i, in_ms } => {
                let Some(k) = known.get_mut(i) else { continue };
                let start = clock.now() + in_ms as i64 * 1000;
                let patch = TaskPatch {
                    id: k.id.clone(),
                    start: Some(start),
                    ..TaskPatch::default()
                };
                match call(&actor, |r| SchedulerMsg::Patch(patch, r)).await.0 {
                    Ok(t) => {
                        prop_assert!(
                            !k.deleted && !k.fired,
                            "a fired or deleted task moved: {t:?}"
                        );
                        k.start = start;
                    }
                    Err(TaskError::Conflict(_)) => {
                        prop_assert!(k.fired || start <= clock.now() + 1000)
                    }
                    Err(TaskError::NotFound(_)) => prop_assert!(k.deleted),
                    // The start passed while the patch was on its way (auto-advance).
                    Err(TaskError::Invalid { field, .. }) => prop_assert_eq!(field, "start"),
                    Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
                }
            }
            Step::Delete { task: i } => {
                let Some(k) = known.get_mut(i) else { continue };
                let id = k.id.clone();
                match call(&actor, |r| SchedulerMsg::Delete(id, r)).await.0 {
                    Ok(_) => {
                        prop_assert!(!k.deleted);
                        k.deleted = true;
                    }
                    // Fired tasks are RUNNING here (no worker), and RUNNING tasks stay.
                    Err(TaskError::Conflict(_)) => k.fired = true,
                    Err(TaskError::NotFound(_)) => prop_assert!(k.deleted),
                    Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
                }
            }
            Step::Advance { ms } => tokio::time::advance(Duration::from_millis(ms)).await,
            Step::Restart => {
                actor.stop_and_wait(None, None).await.unwrap();
                task.await.unwrap();
                (actor, task) = spawn(&path, clock).await;
            }
        }
        // Every task against the scheduler's now: due ones fired (once, never back), the
        // others still wait, deleted ones are gone.
        for k in known.iter_mut() {
            let id = k.id.clone();
            let got = call(&actor, |r| SchedulerMsg::Get(id, r)).await.0;
            let now = clock.now();
            match got {
                Err(TaskError::NotFound(_)) => prop_assert!(k.deleted, "task {} vanished", k.id),
                Ok(t) => {
                    prop_assert!(!k.deleted, "deleted task {} is back", k.id);
                    if t.status == TaskStatus::Scheduled {
                        prop_assert!(!k.fired, "task {} went back to SCHEDULED", k.id);
                        // tokio's timer wheel ticks in whole milliseconds and rounds a sleep up.
                        prop_assert!(
                            t.start > now - TIMER_TICK_US,
                            "task {} is overdue but not fired",
                            k.id
                        );
                    } else {
                        prop_assert_eq!(t.status, TaskStatus::Running);
                        prop_assert!(t.start <= now, "task {} fired before its start", k.id);
                        k.fired = true;
                    }
                }
                Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
            }
        }
    }
    actor.stop_and_wait(None, None).await.unwrap();
    Ok(())
}

#[test]
fn tasks_fire_at_their_start_in_paused_time_across_edits_and_restarts() {
    let mut runner = TestRunner::new(troupe_tests::proptest_config(48));
    let result = runner.run(&proptest::collection::vec(step(), 1..30), |steps| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(run(steps))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
