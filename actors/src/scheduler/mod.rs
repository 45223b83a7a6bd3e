//! The scheduler (seed 004): tasks with a start time and a named worker, stored durably, and
//! really run: at `start` a task turns RUNNING and goes through the master to its worker; the
//! worker's outcome makes it SUCCEEDED or FAILED.
//!
//! Status only moves SCHEDULED -> RUNNING -> SUCCEEDED | FAILED. One timer is armed for the
//! earliest thing due (a start, a dispatch retry, a lease end). Timers are durable in the
//! sense that matters: they are recomputed from the store at start, so overdue SCHEDULED tasks
//! fire once, now, and a RUNNING task whose worker never reported is sent again once its lease
//! has passed. A missing worker is retried with capped exponential backoff until a deadline,
//! then the task FAILS naming that worker. Runs are at least once: a re-sent task may run twice
//! if its first worker was only slow (a `write` rewrites the same file).
//!
//! Every write is awaited inside the actor before it decides anything else: reads go to the
//! store, which shows only committed data, so a decision taken before the previous write
//! landed would see the past (a timer not armed for a task just created, a deleted task
//! brought back by the wake that follows). The scheduler gives up group commit across its own
//! messages for that; writes made together (tasks falling due at once) still commit as one.

pub mod clock;
pub mod start_time;
pub mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use ractor::{pg, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

pub use clock::Clock;
use state::TaskStore;

use crate::protocol::master::MasterMsg;
use crate::protocol::tasks::{
    Dispatched, NewTask, SchedulerMsg, Task, TaskError, TaskOutcome, TaskPageReply, TaskPatch,
    TaskReply, TaskRun, TaskStatus,
};
use crate::{groups, rpc};

pub const MAX_WORKER_CHARS: usize = 128;
pub const MAX_TITLE_CHARS: usize = 1024;
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// A dispatched task with no outcome after this is sent again.
    pub lease: Duration,
    /// How long a task waits for its worker to exist before it FAILS.
    pub no_worker_deadline: Duration,
    /// Deadline of each call to the master.
    pub call_timeout: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            no_worker_deadline: Duration::from_secs(30),
            call_timeout: Duration::from_secs(5),
        }
    }
}

pub struct SchedulerArgs {
    pub store_path: PathBuf,
    pub config: SchedulerConfig,
    /// The clock to keep time by; `None` starts one now. Tests pass one clock to every
    /// incarnation so a restart under paused time does not move "now".
    pub clock: Option<Clock>,
}

/// A RUNNING task whose dispatch failed and waits to be tried again.
struct Retry {
    at: i64,
    backoff: Duration,
    give_up_at: i64,
    last_error: String,
}

pub struct SchedulerState {
    tasks: TaskStore,
    clock: Clock,
    config: SchedulerConfig,
    /// Dispatched tasks awaiting an outcome: id -> lease end.
    leases: HashMap<String, i64>,
    retries: HashMap<String, Retry>,
    /// Dispatches on their way to the master (not yet `Dispatched`).
    sending: HashMap<String, u32>,
    timer: Option<JoinHandle<()>>,
}

pub struct Scheduler;

/// Messages handled and time busy, for `/metrics`.
static LOAD: crate::telemetry::LoadCounter = crate::telemetry::LoadCounter::new("scheduler");

impl Actor for Scheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SchedulerMsg>,
        args: SchedulerArgs,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        let tasks = TaskStore::open(&args.store_path)?;
        let clock = args.clock.unwrap_or_default();
        let lease_us = args.config.lease.as_micros() as i64;
        let mut leases = HashMap::new();
        let mut retries = HashMap::new();
        for t in tasks.with_status(TaskStatus::Running, i64::MAX, usize::MAX)? {
            match t.dispatched_at {
                // Its worker may still report; if not, the lease sends it again.
                Some(at) => {
                    leases.insert(t.id.clone(), at + lease_us);
                }
                None => {
                    retries.insert(t.id.clone(), new_retry(&clock, &args.config, "restarted"));
                }
            }
        }
        if !leases.is_empty() || !retries.is_empty() {
            tracing::info!(
                leased = leases.len(),
                to_send = retries.len(),
                "resuming running tasks"
            );
        }
        pg::join(groups::SCHEDULER.into(), vec![myself.get_cell()]);
        Ok(SchedulerState {
            tasks,
            clock,
            config: args.config,
            leases,
            retries,
            sending: HashMap::new(),
            timer: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<SchedulerMsg>,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        catch_up(&myself, state).await?;
        arm(&myself, state)?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SchedulerMsg>,
        msg: SchedulerMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        let _busy = LOAD.busy();
        // Whatever fell due is fired before this message is answered, even if its timer has
        // not been delivered yet, so no answer shows a due task as SCHEDULED.
        catch_up(&myself, state).await?;
        match msg {
            SchedulerMsg::Create(new, reply) => {
                let result = create(state, new);
                answer_after_commit(result, reply).await;
            }
            SchedulerMsg::Get(id, reply) => {
                let found = state
                    .tasks
                    .get(&id)
                    .map_err(storage)
                    .and_then(|t| t.ok_or_else(|| not_found(&id)));
                let _ = reply.send(TaskReply(found));
            }
            SchedulerMsg::List(filter, reply) => {
                let _ = reply.send(TaskPageReply(state.tasks.list(&filter).map_err(storage)));
            }
            SchedulerMsg::Patch(patch, reply) => {
                let result = patch_task(state, patch);
                answer_after_commit(result, reply).await;
            }
            SchedulerMsg::PatchPayload(p, reply) => {
                let result = edit_payload(state, &p.id, |payload| {
                    let keys = json_object("payload", &p.keys)?;
                    payload.extend(keys);
                    Ok(())
                });
                answer_after_commit(result, reply).await;
            }
            SchedulerMsg::DeletePayloadKey(d, reply) => {
                let result = edit_payload(state, &d.id, |payload| {
                    payload.remove(&d.key).map(|_| ()).ok_or_else(|| {
                        TaskError::NotFound(format!(
                            "the payload of task {} has no key {:?}",
                            d.id, d.key
                        ))
                    })
                });
                answer_after_commit(result, reply).await;
            }
            SchedulerMsg::Delete(id, reply) => answer_after_commit(delete(state, &id), reply).await,
            SchedulerMsg::Outcome(outcome, recorded) => {
                // A storage error fails the actor before the answer: the reply port is dropped,
                // so the worker keeps the report and sends it again.
                finish(state, outcome).await?;
                let _ = recorded.send(());
            }
            SchedulerMsg::Dispatched(d) => dispatched(state, d).await?,
            SchedulerMsg::Wake => {}
        }
        // Nothing a message does makes work due now (starts and retries lie ahead), so the
        // timer is all that needs setting; if something is due, it fires at once.
        arm(&myself, state)?;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SchedulerMsg>,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(t) = state.timer.take() {
            t.abort();
        }
        Ok(())
    }
}

type Pending = (
    Task,
    std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), crate::store::StoreError>> + Send>,
    >,
);

/// Replies once the write behind `result` is on disk. Awaited inside the actor: the next
/// message must read what this one wrote.
async fn answer_after_commit(result: Result<Pending, TaskError>, reply: RpcReplyPort<TaskReply>) {
    let answer = match result {
        Ok((task, committed)) => committed.await.map(|_| task).map_err(storage),
        Err(e) => Err(e),
    };
    let _ = reply.send(TaskReply(answer));
}

fn storage(e: crate::store::StoreError) -> TaskError {
    TaskError::Storage(e.to_string())
}

fn not_found(id: &str) -> TaskError {
    TaskError::NotFound(format!("no task with id {id}"))
}

fn invalid(field: &str, message: impl Into<String>) -> TaskError {
    TaskError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn validate_worker(worker: &str) -> Result<String, TaskError> {
    let w = worker.trim();
    if w.is_empty() {
        return Err(invalid(
            "worker",
            "worker must name the worker that runs the task",
        ));
    }
    if w.chars().count() > MAX_WORKER_CHARS || w.chars().any(char::is_control) {
        return Err(invalid(
            "worker",
            format!("worker must be a name of at most {MAX_WORKER_CHARS} printable characters"),
        ));
    }
    Ok(w.to_string())
}

fn validate_title(title: &str) -> Result<String, TaskError> {
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(invalid(
            "title",
            format!("title must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(title.to_string())
}

fn validate_start(clock: &Clock, start: i64) -> Result<i64, TaskError> {
    if start <= clock.now() {
        return Err(invalid(
            "start",
            format!(
                "start must be in the future; {} has passed",
                start_time::render(start)
            ),
        ));
    }
    Ok(start)
}

fn json_object(field: &str, text: &str) -> Result<Map<String, Value>, TaskError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(invalid(field, format!("{field} must be a JSON object"))),
    }
}

fn create(state: &mut SchedulerState, new: NewTask) -> Result<Pending, TaskError> {
    let start = validate_start(
        &state.clock,
        new.start
            .ok_or_else(|| invalid("start", "start is required"))?,
    )?;
    let worker = validate_worker(
        new.worker
            .as_deref()
            .ok_or_else(|| invalid("worker", "worker is required"))?,
    )?;
    if let Some(status) = new.status.as_deref() {
        match TaskStatus::parse(status) {
            Some(TaskStatus::Scheduled) => {}
            Some(_) => {
                return Err(invalid(
                    "status",
                    "a new task is SCHEDULED; leave status out or send SCHEDULED",
                ))
            }
            None => {
                return Err(invalid(
                    "status",
                    format!(
                        "unknown status {status:?}; one of SCHEDULED, RUNNING, SUCCEEDED, FAILED"
                    ),
                ))
            }
        }
    }
    if let Some(p) = &new.payload {
        json_object("payload", p)?;
    }
    let now = state.clock.now();
    let task = Task {
        id: uuid::Uuid::now_v7().to_string(),
        start,
        title: new.title.as_deref().map(validate_title).transpose()?,
        worker,
        status: TaskStatus::Scheduled,
        payload: new.payload,
        created_at: now,
        updated_at: now,
        attempts: 0,
        result: None,
        error: None,
        dispatched_at: None,
    };
    let committed = Box::pin(state.tasks.put(None, &task));
    Ok((task, committed))
}

fn load(state: &SchedulerState, id: &str) -> Result<Task, TaskError> {
    state
        .tasks
        .get(id)
        .map_err(storage)?
        .ok_or_else(|| not_found(id))
}

fn patch_task(state: &mut SchedulerState, patch: TaskPatch) -> Result<Pending, TaskError> {
    let old = load(state, &patch.id)?;
    let mut task = old.clone();
    let locked = |field: &str| {
        TaskError::Conflict(format!(
            "task {} is {}; its {field} can change only while it is SCHEDULED",
            old.id,
            old.status.as_str()
        ))
    };
    if let Some(status) = patch.status.as_deref() {
        let status = TaskStatus::parse(status).ok_or_else(|| {
            invalid(
                "status",
                format!("unknown status {status:?}; one of SCHEDULED, RUNNING, SUCCEEDED, FAILED"),
            )
        })?;
        if status != old.status {
            return Err(TaskError::Conflict(format!(
                "task {} is {}; status changes only as the task runs",
                old.id,
                old.status.as_str()
            )));
        }
    }
    if let Some(start) = patch.start {
        if start != old.start {
            if old.status != TaskStatus::Scheduled {
                return Err(locked("start"));
            }
            task.start = validate_start(&state.clock, start)?;
        }
    }
    if let Some(worker) = patch.worker.as_deref() {
        let worker = validate_worker(worker)?;
        if worker != old.worker {
            if old.status != TaskStatus::Scheduled {
                return Err(locked("worker"));
            }
            task.worker = worker;
        }
    }
    if let Some(payload) = patch.payload {
        if let Some(p) = &payload {
            json_object("payload", p)?;
        }
        if payload != old.payload {
            if old.status != TaskStatus::Scheduled {
                return Err(locked("payload"));
            }
            task.payload = payload;
        }
    }
    if let Some(title) = patch.title {
        task.title = title.as_deref().map(validate_title).transpose()?;
    }
    task.updated_at = state.clock.now();
    let committed = Box::pin(state.tasks.put(Some(&old), &task));
    Ok((task, committed))
}

fn edit_payload(
    state: &mut SchedulerState,
    id: &str,
    edit: impl FnOnce(&mut Map<String, Value>) -> Result<(), TaskError>,
) -> Result<Pending, TaskError> {
    let old = load(state, id)?;
    if old.status != TaskStatus::Scheduled {
        return Err(TaskError::Conflict(format!(
            "task {id} is {}; its payload can change only while it is SCHEDULED",
            old.status.as_str()
        )));
    }
    let mut payload = match &old.payload {
        Some(p) => json_object("payload", p)?,
        None => Map::new(),
    };
    edit(&mut payload)?;
    let mut task = old.clone();
    task.payload = Some(Value::Object(payload).to_string());
    task.updated_at = state.clock.now();
    let committed = Box::pin(state.tasks.put(Some(&old), &task));
    Ok((task, committed))
}

fn delete(state: &mut SchedulerState, id: &str) -> Result<Pending, TaskError> {
    let task = load(state, id)?;
    if task.status == TaskStatus::Running {
        return Err(TaskError::Conflict(format!(
            "task {id} is RUNNING and cannot be deleted"
        )));
    }
    state.leases.remove(id);
    state.retries.remove(id);
    let committed = Box::pin(state.tasks.delete(&task));
    Ok((task, committed))
}

fn new_retry(clock: &Clock, config: &SchedulerConfig, why: &str) -> Retry {
    let now = clock.now();
    Retry {
        at: now,
        backoff: RETRY_FIRST,
        give_up_at: now + config.no_worker_deadline.as_micros() as i64,
        last_error: why.to_string(),
    }
}

/// Fires what is due: starts, runs whose lease ran out, dispatch retries.
async fn catch_up(
    myself: &ActorRef<SchedulerMsg>,
    state: &mut SchedulerState,
) -> Result<(), ActorProcessingErr> {
    let now = state.clock.now();
    // Due starts: SCHEDULED -> RUNNING (committed together), then send.
    let due_tasks = state.tasks.with_status(TaskStatus::Scheduled, now, 1024)?;
    let mut writes = Vec::with_capacity(due_tasks.len());
    for task in &due_tasks {
        let mut running = task.clone();
        running.status = TaskStatus::Running;
        running.updated_at = now;
        writes.push(state.tasks.put(Some(task), &running));
    }
    for written in futures::future::join_all(writes).await {
        written?;
    }
    for task in due_tasks {
        tracing::info!(task = %task.id, worker = %task.worker, "task due");
        state.retries.insert(
            task.id.clone(),
            new_retry(&state.clock, &state.config, "due"),
        );
    }
    // Leases that ran out: send again.
    let expired: Vec<String> = state
        .leases
        .iter()
        .filter(|(_, end)| **end <= now)
        .map(|(id, _)| id.clone())
        .collect();
    for id in expired {
        state.leases.remove(&id);
        tracing::warn!(task = %id, "no outcome within the lease; sending again");
        state
            .retries
            .insert(id, new_retry(&state.clock, &state.config, "lease expired"));
    }
    // Sends that are due.
    let due: Vec<String> = state
        .retries
        .iter()
        .filter(|(id, r)| r.at <= now && !state.sending.contains_key(*id))
        .map(|(id, _)| id.clone())
        .collect();
    for id in due {
        send(myself, state, &id).await?;
    }
    Ok(())
}

fn arm(
    myself: &ActorRef<SchedulerMsg>,
    state: &mut SchedulerState,
) -> Result<(), ActorProcessingErr> {
    let next = [
        state.tasks.next_due()?,
        state.leases.values().min().copied(),
        state
            .retries
            .iter()
            .filter(|(id, _)| !state.sending.contains_key(*id))
            .map(|(_, r)| r.at)
            .min(),
    ]
    .into_iter()
    .flatten()
    .min();
    if let Some(t) = state.timer.take() {
        t.abort();
    }
    if let Some(next) = next {
        let delay = state.clock.until(next);
        let me = myself.clone();
        state.timer = Some(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = me.cast(SchedulerMsg::Wake);
        }));
    }
    Ok(())
}

/// Hands a RUNNING task to the master for its worker; the answer comes back as `Dispatched`.
async fn send(
    myself: &ActorRef<SchedulerMsg>,
    state: &mut SchedulerState,
    id: &str,
) -> Result<(), ActorProcessingErr> {
    let Some(old) = state.tasks.get(id)? else {
        state.retries.remove(id);
        return Ok(());
    };
    if old.status != TaskStatus::Running {
        state.retries.remove(id);
        return Ok(());
    }
    let mut task = old.clone();
    task.attempts += 1;
    task.updated_at = state.clock.now();
    // The attempt is counted on disk before it can run.
    state.tasks.put(Some(&old), &task).await?;
    let run = TaskRun {
        task_id: task.id.clone(),
        worker: task.worker.clone(),
        attempt: task.attempts,
        payload: task.payload.clone(),
    };
    state.sending.insert(task.id.clone(), task.attempts);
    let me = myself.clone();
    let timeout = state.config.call_timeout;
    tokio::spawn(async move {
        let outcome = rpc::call(
            groups::MASTER,
            |r| MasterMsg::RunTask(run.clone(), r),
            timeout,
        )
        .await
        .map_err(|e| e.to_string())
        .and_then(|reply| reply.0);
        let _ = me.cast(SchedulerMsg::Dispatched(Dispatched {
            task_id: run.task_id,
            attempt: run.attempt,
            outcome,
        }));
    });
    Ok(())
}

async fn dispatched(state: &mut SchedulerState, d: Dispatched) -> Result<(), ActorProcessingErr> {
    state.sending.remove(&d.task_id);
    let Some(old) = state.tasks.get(&d.task_id)? else {
        state.retries.remove(&d.task_id);
        return Ok(());
    };
    if old.status != TaskStatus::Running {
        state.retries.remove(&d.task_id);
        return Ok(());
    }
    let now = state.clock.now();
    match d.outcome {
        Ok(()) => {
            state.retries.remove(&d.task_id);
            state.leases.insert(
                d.task_id.clone(),
                now + state.config.lease.as_micros() as i64,
            );
            let mut task = old.clone();
            task.dispatched_at = Some(now);
            state.tasks.put(Some(&old), &task).await?;
            // From here a restart waits for the lease instead of sending the task again.
            tracing::info!(task = %d.task_id, "task handed to its worker");
        }
        Err(error) => {
            let retry = state
                .retries
                .entry(d.task_id.clone())
                .or_insert_with(|| new_retry(&state.clock, &state.config, "first try"));
            retry.last_error = error;
            if now >= retry.give_up_at {
                let why = format!(
                    "worker {:?} could not be reached within {:?}: {}",
                    old.worker, state.config.no_worker_deadline, retry.last_error
                );
                state.retries.remove(&d.task_id);
                tracing::warn!(task = %d.task_id, "{why}");
                let mut task = old.clone();
                task.status = TaskStatus::Failed;
                task.error = Some(why);
                task.updated_at = now;
                state.tasks.put(Some(&old), &task).await?;
            } else {
                retry.at = now + retry.backoff.as_micros() as i64;
                retry.backoff = (retry.backoff * 2).min(RETRY_MAX);
            }
        }
    }
    Ok(())
}

async fn finish(
    state: &mut SchedulerState,
    outcome: TaskOutcome,
) -> Result<(), ActorProcessingErr> {
    let Some(old) = state.tasks.get(&outcome.task_id)? else {
        return Ok(());
    };
    // The first outcome of a RUNNING task settles it; a late one from an earlier attempt
    // (a re-sent task that also ran), or a copy sent again by a worker whose receipt was lost,
    // changes nothing.
    if old.status != TaskStatus::Running {
        return Ok(());
    }
    state.leases.remove(&outcome.task_id);
    state.retries.remove(&outcome.task_id);
    let mut task = old.clone();
    match outcome.result {
        Ok(result) => {
            task.status = TaskStatus::Succeeded;
            task.result = Some(result);
            task.error = None;
        }
        Err(error) => {
            task.status = TaskStatus::Failed;
            task.error = Some(error);
        }
    }
    task.updated_at = state.clock.now();
    tracing::info!(
        task = %task.id,
        status = task.status.as_str(),
        worker = %outcome.worker,
        node = %outcome.node,
        "task finished"
    );
    state.tasks.put(Some(&old), &task).await?;
    Ok(())
}
