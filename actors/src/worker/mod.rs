//! The worker: does the jobs the master hands out and reports each outcome back.
//!
//! A worker belongs to the `troupe.worker` group and to its own `troupe.worker.<name>` group.
//! Jobs and questions run as tasks, so a slow one never blocks the mailbox. Before the node
//! stops it, `Drain` makes it leave its groups, refuse new work and wait for running work (the
//! supervisor's deadline bounds that), so reports and answers still reach their callers.
//! When it starts, it removes files of jobs the master has recorded as done on another node:
//! copies left by a crash between writing and reporting. A copy of a job that is not finished
//! yet is kept until the master records its outcome, then removed if that is elsewhere.

pub mod files;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ractor::{pg, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::{JoinHandle, JoinSet};

use crate::groups;
use crate::protocol::jobs::{JobAssignment, JobFinished, JobStatus, JobView};
use crate::protocol::master::MasterMsg;
use crate::protocol::questions::{Answer, Answered, QuestionError};
use crate::protocol::receipt::Received;
use crate::protocol::tasks::{TaskOutcome, TaskRun};
use crate::protocol::worker::WorkerMsg;
use crate::question::{self, QuestionConfig};
use crate::rpc;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct WorkerArgs {
    pub name: String,
    pub node: String,
    pub data_dir: PathBuf,
    /// Deadline of each call to the master.
    pub call_timeout: Duration,
    pub questions: Arc<QuestionConfig>,
}

pub struct WorkerState {
    args: Arc<WorkerArgs>,
    /// Work running now, for `/metrics`.
    running_now: Arc<AtomicI64>,
    draining: bool,
    running: JoinSet<()>,
    cleanup: JoinHandle<()>,
}

impl WorkerState {
    /// Runs `work` as a task, counted in the running gauge while it runs.
    fn spawn(&mut self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let gauge = self.running_now.clone();
        gauge.fetch_add(1, Ordering::Relaxed);
        self.running.spawn(async move {
            work.await;
            gauge.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

pub struct Worker;

/// Messages handled and time busy, for `/metrics`.
static LOAD: crate::telemetry::LoadCounter = crate::telemetry::LoadCounter::new("worker");

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WorkerMsg>,
        args: WorkerArgs,
    ) -> Result<WorkerState, ActorProcessingErr> {
        std::fs::create_dir_all(args.data_dir.join(files::FILES_DIR))?;
        let args = Arc::new(args);
        let cleanup = tokio::spawn(remove_orphans(args.clone()));
        pg::join(groups::WORKER.into(), vec![myself.get_cell()]);
        pg::join(groups::named_worker(&args.name), vec![myself.get_cell()]);
        Ok(WorkerState {
            running_now: crate::telemetry::running_gauge(&args.name),
            args,
            draining: false,
            running: JoinSet::new(),
            cleanup,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        let busy = LOAD.busy();
        while state.running.try_join_next().is_some() {}
        match msg {
            // The master re-sends it: leaving the group returned it to the master's queue.
            WorkerMsg::Run(job) if state.draining => {
                tracing::debug!(job = %job.job_id, "draining; not taking the job");
            }
            WorkerMsg::Run(job) => {
                state.spawn(run_job(state.args.clone(), job));
            }
            WorkerMsg::Ask(job) if state.draining => {
                let refused = Err(QuestionError::Unavailable(
                    "this worker is shutting down".into(),
                ));
                let timeout = state.args.call_timeout;
                state.spawn(answer_master(job.token, Answer(refused), timeout));
            }
            WorkerMsg::Ask(job) => {
                let cfg = state.args.questions.clone();
                let timeout = state.args.call_timeout;
                state.spawn(async move {
                    let answer = question::runner::answer(&job.ask.question, &cfg).await;
                    answer_master(job.token, Answer(answer), timeout).await;
                });
            }
            // The scheduler sends it again when its lease runs out.
            WorkerMsg::RunTask(run) if state.draining => {
                tracing::debug!(task = %run.task_id, "draining; not taking the task");
            }
            WorkerMsg::RunTask(run) => {
                state.spawn(run_task(state.args.clone(), run));
            }
            WorkerMsg::Drain(done) => {
                // Waiting out running work is not load.
                drop(busy);
                state.draining = true;
                leave_groups(&myself, &state.args.name);
                state.cleanup.abort();
                if !state.running.is_empty() {
                    tracing::info!(worker = %state.args.name, running = state.running.len(), "finishing running work");
                }
                // Blocking the mailbox is the point: nothing new starts, running tasks finish.
                while state.running.join_next().await.is_some() {}
                let _ = done.send(());
            }
            WorkerMsg::Discard(job_id) => {
                if let Err(e) = files::remove_job_file(&state.args.data_dir, &job_id) {
                    tracing::warn!(job = %job_id, "cannot discard duplicate file: {e}");
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<WorkerMsg>,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        // Normally `Drain` did this already; a stop without drain still lets local work end.
        leave_groups(&myself, &state.args.name);
        state.cleanup.abort();
        while state.running.join_next().await.is_some() {}
        Ok(())
    }
}

/// Runs a task's payload: `{"job": "write", "text"}` writes a file as the job relay does,
/// `{"job": "question", ...}` answers a question, anything else is echoed back.
async fn run_task(args: Arc<WorkerArgs>, run: TaskRun) {
    tracing::info!(task = %run.task_id, attempt = run.attempt, worker = %args.name, "task ran");
    let payload: Value = run
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(Value::Null);
    let result = match payload.get("job").and_then(Value::as_str) {
        Some("write") => match payload.get("text").and_then(Value::as_str) {
            None => Err("a write job needs \"text\" (a string)".to_string()),
            Some(text) => {
                let (data_dir, id, text) =
                    (args.data_dir.clone(), run.task_id.clone(), text.to_string());
                tokio::task::spawn_blocking(move || files::write_job_file(&data_dir, &id, &text))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|w| w.map_err(|e| e.to_string()))
                    .map(|file| json!({"file": file, "worker": args.name, "node": args.node}))
            }
        },
        Some("question") => {
            // The question is the payload without the key that says it is one.
            let mut asked = payload.as_object().cloned().unwrap_or_default();
            asked.remove("job");
            match question::parse::from_json(&asked) {
                Err(e) => Err(format!("not a question: {e}")),
                Ok(q) => question::runner::answer(&q, &args.questions)
                    .await
                    .map(|results| json!({"nr of entries": results.len(), "results": results}))
                    .map_err(|e| e.to_string()),
            }
        }
        _ => Ok(payload),
    };
    let outcome = TaskOutcome {
        task_id: run.task_id,
        attempt: run.attempt,
        worker: args.name.clone(),
        node: args.node.clone(),
        result: result.map(|v| v.to_string()),
    };
    // The receipt comes only once the scheduler has the outcome, which exists nowhere else; a
    // lost one costs a second run after the scheduler's lease (60 s by default). So it is
    // offered long enough to outlast a master or scheduler restart; giving up after that is
    // still safe, as the lease sends the task again.
    let patience = args.call_timeout * 12;
    deliver_to_master(
        patience,
        "task",
        &outcome.task_id,
        args.call_timeout,
        |receipt| MasterMsg::TaskDone(outcome.clone(), receipt),
    )
    .await;
}

async fn answer_master(token: u64, answer: Answer, timeout: Duration) {
    let answered = Answered { token, answer };
    // Giving up leaves the question to the master's deadline.
    deliver_to_master(timeout * 2, "answer", &token, timeout, |receipt| {
        MasterMsg::Answered(answered.clone(), receipt)
    })
    .await;
}

/// Hands a report to a master and waits for its receipt, retrying while none answers, for at
/// most `patience` in all (a draining node waits for this, so jobs and answers keep it to
/// twice the call deadline). A cast would not do: a draining node can exit with the message
/// still queued in its session, and the running work it reports on is only finished once the
/// master holds the report. A retry can deliver a report twice; the master tells (attempts,
/// tokens).
async fn deliver_to_master<F>(
    patience: Duration,
    report: &'static str,
    id: &(dyn std::fmt::Display + Sync),
    timeout: Duration,
    build: F,
) where
    F: Fn(RpcReplyPort<Received>) -> MasterMsg,
{
    let give_up = tokio::time::Instant::now() + patience;
    let mut delay = Duration::from_millis(50);
    loop {
        let left = give_up.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match rpc::call(groups::MASTER, &build, timeout.min(left)).await {
            Ok(Received) => return,
            Err(e) => {
                tracing::debug!(report, %id, "cannot report yet: {e}");
                tokio::time::sleep(delay.min(left)).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    tracing::warn!(report, %id, "no master took the report");
}

fn leave_groups(myself: &ActorRef<WorkerMsg>, name: &str) {
    pg::leave(groups::WORKER.into(), vec![myself.get_cell()]);
    pg::leave(groups::named_worker(name), vec![myself.get_cell()]);
}

/// Drains a worker before its supervisor stops it (see `ChildSpec::with_drain`).
pub fn drain(cell: ractor::ActorCell) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        let _ = ActorRef::<WorkerMsg>::from(cell)
            .call(WorkerMsg::Drain, None)
            .await;
    })
}

async fn run_job(args: Arc<WorkerArgs>, job: JobAssignment) {
    let data_dir = args.data_dir.clone();
    let job_id = job.job_id.clone();
    let attempt = job.attempt;
    let outcome = tokio::task::spawn_blocking(move || {
        files::write_job_file(&data_dir, &job.job_id, &job.text)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|written| written.map_err(|e| e.to_string()));
    let report = JobFinished {
        job_id,
        attempt,
        worker: args.name.clone(),
        node: args.node.clone(),
        outcome,
    };
    // Giving up is safe: the master re-sends a job whose report never came.
    let timeout = args.call_timeout;
    deliver_to_master(timeout * 2, "job", &report.job_id, timeout, |receipt| {
        MasterMsg::Finished(report.clone(), receipt)
    })
    .await;
}

/// Settles every job file found at start against the master's record: a copy of a job the
/// master recorded as done on another node is removed. A copy of a job that is not finished
/// yet (say, re-sent elsewhere while this node was down) is kept until its outcome is
/// recorded, then settled the same way, so the cluster ends with one file per job. Runs until
/// every copy is settled or the worker stops.
async fn remove_orphans(args: Arc<WorkerArgs>) {
    let abandoned = files::remove_abandoned_writes(&args.data_dir);
    if abandoned > 0 {
        tracing::info!(
            files = abandoned,
            "removed temporary files of writes a crash cut short"
        );
    }
    let mut unsettled = futures::stream::FuturesUnordered::new();
    for id in files::job_ids_on_disk(&args.data_dir) {
        let Some(view) = ask_master(&args, MasterAsk::Get, &id).await else {
            continue;
        };
        if view.status.is_final() {
            settle_copy(&args, &view);
        } else {
            tracing::info!(job = %id, status = view.status.as_str(), "keeping this copy until the master records the job as finished");
            unsettled.push(watch_copy(args.clone(), id));
        }
    }
    while unsettled.next().await.is_some() {}
}

/// Waits for an unfinished job's outcome, then settles this node's copy of it.
async fn watch_copy(args: Arc<WorkerArgs>, id: String) {
    loop {
        let Some(view) = ask_master(&args, MasterAsk::AwaitDone, &id).await else {
            return;
        };
        if view.status.is_final() {
            settle_copy(&args, &view);
            return;
        }
    }
}

fn settle_copy(args: &WorkerArgs, view: &JobView) {
    if view.status == JobStatus::Done && view.node.as_deref() != Some(args.node.as_str()) {
        tracing::info!(job = %view.job_id, "removing copy of a job recorded on {:?}", view.node);
        if let Err(e) = files::remove_job_file(&args.data_dir, &view.job_id) {
            tracing::warn!(job = %view.job_id, "cannot remove orphan: {e}");
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum MasterAsk {
    /// The job as recorded now.
    Get,
    /// The job once it is final; the master holds the question until then.
    AwaitDone,
}

/// How long one `AwaitDone` may be held by the master before it is asked again.
const AWAIT_OUTCOME: Duration = Duration::from_secs(60);

/// The master's record of a job (`None`: it knows no such job), asked until a master answers,
/// with capped backoff between failed calls (a restarted master forgets held questions: the
/// call fails and is asked again).
async fn ask_master(args: &WorkerArgs, ask: MasterAsk, id: &str) -> Option<JobView> {
    let mut delay = Duration::from_millis(100);
    loop {
        let outcome = match ask {
            MasterAsk::Get => {
                rpc::call(
                    groups::MASTER,
                    |reply| MasterMsg::Get(id.to_string(), reply),
                    args.call_timeout,
                )
                .await
            }
            MasterAsk::AwaitDone => {
                rpc::call(
                    groups::MASTER,
                    |reply| MasterMsg::AwaitDone(id.to_string(), reply),
                    AWAIT_OUTCOME,
                )
                .await
            }
        };
        match outcome {
            Ok(found) => return found.0,
            // Not finished within this wait: just ask again.
            Err(rpc::CallError::Timeout { .. }) if ask == MasterAsk::AwaitDone => {}
            Err(e) => {
                tracing::debug!(job = %id, "cannot ask the master yet: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
