//! The master: the job relay's durable log and dispatcher.
//!
//! Accepts jobs (answering only after they are committed), hands each to the worker with the
//! fewest jobs in flight, and records the worker's finished event. Jobs wait durably while no
//! worker exists. A job comes back to the queue when its worker leaves the worker group (its
//! node died or drained) or when its lease runs out (a hung node), so it is re-sent; workers
//! write a file named by the job id, so a re-sent job rewrites the same file.
//!
//! Questions are routed too, but not logged: they only read. The master keeps the asker's
//! reply port and the worker sends its answer back as a message (`Answered`). A reply port
//! across nodes would not do: ractor_cluster announces an actor's end as soon as it starts to
//! stop, which can overtake an answer already sent and fail a call that was in fact answered.

pub mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ractor::pg::{self, GroupChangeMessage};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort,
    SupervisionEvent,
};

use state::{InFlight, JobLog, JobRecord};

use crate::groups;
use crate::protocol::jobs::{
    JobAssignment, JobFinished, JobLookup, JobStatus, JobView, NewJob, SubmitReply,
};
use crate::protocol::master::MasterMsg;
use crate::protocol::questions::{Answer, Answered, Ask, AskJob, QuestionError};
use crate::protocol::receipt::Received;
use crate::protocol::tasks::{DispatchReply, SchedulerMsg};
use crate::protocol::worker::WorkerMsg;
use crate::time::now_micros;

/// A worker's report error is retried on another worker this many times in all.
const MAX_ATTEMPTS: u32 = 3;
const TICK: Duration = Duration::from_secs(1);
/// How long answers may trail the news that their worker is gone (see `check_questions`).
const ANSWER_GRACE: Duration = Duration::from_millis(500);

pub struct MasterArgs {
    pub store_path: PathBuf,
    /// How long a worker may hold a job without reporting before it is sent elsewhere.
    pub lease: Duration,
    /// Deadline of each call the master makes (relaying a task outcome to the scheduler).
    pub call_timeout: Duration,
}

pub struct MasterState {
    log: JobLog,
    /// Questions handed to workers, by token.
    asking: HashMap<u64, Asking>,
    next_token: u64,
    lease: Duration,
    call_timeout: Duration,
    waiters: HashMap<String, Vec<RpcReplyPort<JobLookup>>>,
    /// Rotates ties between equally loaded workers.
    turn: usize,
}

/// A question on its way: who asked, which worker has it, which were tried.
pub struct Asking {
    ask: Ask,
    reply: RpcReplyPort<Answer>,
    /// The worker's actor, held only for this question: its status tells whether it died.
    worker: Option<ActorCell>,
    tried: Vec<ActorId>,
    started: Instant,
    deadline: Instant,
    /// When its worker's actor was first seen gone.
    worker_gone_since: Option<Instant>,
}

pub struct Master;

/// Messages handled and time busy, for `/metrics`.
static LOAD: crate::telemetry::LoadCounter = crate::telemetry::LoadCounter::new("master");

impl Actor for Master {
    type Msg = MasterMsg;
    type State = MasterState;
    type Arguments = MasterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MasterMsg>,
        args: MasterArgs,
    ) -> Result<MasterState, ActorProcessingErr> {
        let log = JobLog::open(&args.store_path)?;
        if !log.queue.is_empty() {
            tracing::info!(jobs = log.queue.len(), "resuming unfinished jobs");
        }
        pg::join(groups::MASTER.into(), vec![myself.get_cell()]);
        pg::monitor(groups::WORKER.into(), myself.get_cell());
        myself.send_interval(TICK, || MasterMsg::Tick);
        Ok(MasterState {
            log,
            asking: HashMap::new(),
            next_token: 0,
            lease: args.lease,
            call_timeout: args.call_timeout,
            waiters: HashMap::new(),
            turn: 0,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<MasterMsg>,
        state: &mut MasterState,
    ) -> Result<(), ActorProcessingErr> {
        dispatch(state);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<MasterMsg>,
        msg: MasterMsg,
        state: &mut MasterState,
    ) -> Result<(), ActorProcessingErr> {
        let _busy = LOAD.busy();
        match msg {
            MasterMsg::Submit(job, reply) => submit(state, job, reply),
            MasterMsg::Get(id, reply) => {
                let _ = reply.send(JobLookup(state.log.view(&id)?));
            }
            // An active job's waiters are answered once its outcome is committed (`Settled`).
            MasterMsg::AwaitDone(id, reply) => {
                if state.log.active.contains_key(&id) {
                    let waiting = state.waiters.entry(id).or_default();
                    // Callers whose deadline passed ask again (a worker holding a copy of a
                    // long-running job does, every minute): forget the ones nobody hears.
                    waiting.retain(|w| !w.is_closed());
                    waiting.push(reply);
                } else {
                    let _ = reply.send(JobLookup(state.log.view(&id)?));
                }
            }
            MasterMsg::Finished(report, receipt) => {
                let _ = receipt.send(Received);
                finished(&myself, state, report)
            }
            MasterMsg::Settled(id) => {
                let view = state.log.active.remove(&id).map(|r| r.view);
                for w in state.waiters.remove(&id).unwrap_or_default() {
                    let _ = w.send(JobLookup(view.clone()));
                }
            }
            MasterMsg::Ask(ask, reply) => {
                let now = Instant::now();
                let asking = Asking {
                    deadline: now + Duration::from_millis(ask.wait_ms),
                    started: now,
                    ask,
                    reply,
                    worker: None,
                    tried: Vec::new(),
                    worker_gone_since: None,
                };
                send_question(state, asking);
            }
            MasterMsg::Answered(Answered { token, answer }, receipt) => {
                let _ = receipt.send(Received);
                if let Some(asking) = state.asking.remove(&token) {
                    match answer {
                        // A draining worker declined; another may answer.
                        Answer(Err(QuestionError::Unavailable(_))) => send_question(state, asking),
                        answer => {
                            let _ = asking.reply.send(answer);
                        }
                    }
                }
            }
            MasterMsg::RunTask(run, reply) => {
                let group = groups::named_worker(&run.worker);
                let name = run.worker.clone();
                let sent = crate::rpc::cast(&group, WorkerMsg::RunTask(run))
                    .map_err(|_| format!("no worker named {name:?} is running"));
                let _ = reply.send(DispatchReply(sent));
            }
            // The master keeps no record of tasks, so it must not hold a receipt it cannot back:
            // the worker gets one only once the scheduler has committed the outcome. Until then
            // the worker still holds the report and sends it again (the scheduler ignores
            // copies), so a master or scheduler that is down or restarting loses no outcome.
            // Relayed from a task of its own: the scheduler may be slow, the mailbox must not be.
            // The worker waits `call_timeout` for the receipt, so the relay gets only half of it:
            // a scheduler committing late must still leave time for the receipt to travel back,
            // or the worker times out and resends, and every resend spawns another relay.
            MasterMsg::TaskDone(outcome, receipt) => {
                let timeout = state.call_timeout / 2;
                tokio::spawn(async move {
                    let id = outcome.task_id.clone();
                    let relayed = crate::rpc::call(
                        groups::SCHEDULER,
                        |recorded| SchedulerMsg::Outcome(outcome, recorded),
                        timeout,
                    )
                    .await;
                    match relayed {
                        Ok(()) => {
                            let _ = receipt.send(Received);
                        }
                        // Dropping the receipt fails the worker's call (at its deadline, when
                        // remote): the worker tries again.
                        Err(e) => {
                            tracing::warn!(task = %id, "cannot relay a task outcome yet: {e}")
                        }
                    }
                });
            }
            MasterMsg::Tick => {
                expire_leases(state);
                check_questions(state);
                dispatch(state);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<MasterMsg>,
        event: SupervisionEvent,
        state: &mut MasterState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ProcessGroupChanged(change) = event {
            match change {
                GroupChangeMessage::Leave(_, group, gone) if group == groups::WORKER => {
                    let gone: Vec<ActorId> = gone.iter().map(|c| c.get_id()).collect();
                    requeue_where(state, |f| gone.contains(&f.worker), "its worker left");
                    check_questions(state);
                    dispatch(state);
                }
                GroupChangeMessage::Join(_, group, _) if group == groups::WORKER => {
                    dispatch(state);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn submit(state: &mut MasterState, job: NewJob, reply: RpcReplyPort<SubmitReply>) {
    let now = now_micros();
    let id = uuid::Uuid::now_v7().to_string();
    let record = JobRecord {
        view: JobView {
            job_id: id.clone(),
            status: JobStatus::Queued,
            file: None,
            worker: None,
            node: None,
            created_at: now,
            updated_at: now,
            error: None,
        },
        text: job.text,
        attempts: 0,
    };
    let view = record.view.clone();
    let committed = state.log.persist(&record);
    tokio::spawn(async move {
        let answer = committed.await.map(|_| view).map_err(|e| e.to_string());
        let _ = reply.send(SubmitReply(answer));
    });
    state.log.active.insert(id.clone(), record);
    state.log.queue.push_back(id);
    dispatch(state);
}

/// Work each worker holds now: jobs in flight plus questions being answered.
fn worker_load(state: &MasterState, workers: &[ractor::ActorCell]) -> HashMap<ActorId, usize> {
    let mut load: HashMap<ActorId, usize> = workers.iter().map(|w| (w.get_id(), 0)).collect();
    let jobs = state.log.in_flight.values().map(|f| f.worker);
    let questions = state
        .asking
        .values()
        .filter_map(|a| a.worker.as_ref().map(|w| w.get_id()));
    for id in jobs.chain(questions) {
        if let Some(n) = load.get_mut(&id) {
            *n += 1;
        }
    }
    load
}

/// Sends a question to the least loaded worker it was not yet sent to, or answers that no
/// worker can take it.
/// Sends the question to the least loaded worker it has not tried, under a token of its own: an
/// answer to an earlier send (say, a refusal delivered twice) then finds nothing to act on.
fn send_question(state: &mut MasterState, mut asking: Asking) {
    let token = state.next_token;
    state.next_token += 1;
    let mut workers: Vec<ActorCell> = pg::get_members(&groups::WORKER.to_string())
        .into_iter()
        .filter(|w| !asking.tried.contains(&w.get_id()))
        .collect();
    let load = worker_load(state, &workers);
    if !workers.is_empty() {
        state.turn = state.turn.wrapping_add(1);
        let turn = state.turn % workers.len();
        workers.rotate_left(turn);
    }
    workers.sort_by_key(|w| load[&w.get_id()]);
    for worker in workers {
        asking.tried.push(worker.get_id());
        let job = AskJob {
            token,
            ask: asking.ask.clone(),
        };
        if ActorRef::<WorkerMsg>::from(worker.clone())
            .cast(WorkerMsg::Ask(job))
            .is_ok()
        {
            asking.worker = Some(worker);
            state.asking.insert(token, asking);
            return;
        }
    }
    let why = if asking.tried.is_empty() {
        "no worker is running to answer questions; retry later"
    } else {
        "every worker that could answer went away; retry later"
    };
    let _ = asking
        .reply
        .send(Answer(Err(QuestionError::Unavailable(why.into()))));
}

/// Re-sends questions whose worker actor is gone, and times out those past their deadline.
/// A worker that is only draining has left its group but is still alive: its answers come.
fn check_questions(state: &mut MasterState) {
    let now = Instant::now();
    let tokens: Vec<u64> = state.asking.keys().copied().collect();
    for token in tokens {
        let asking = &state.asking[&token];
        let gone = asking
            .worker
            .as_ref()
            .is_none_or(|w| matches!(w.get_status(), ActorStatus::Stopped | ActorStatus::Stopping));
        if now >= asking.deadline {
            let asking = state.asking.remove(&token).expect("present");
            let waited = asking.deadline.duration_since(asking.started);
            let _ = asking
                .reply
                .send(Answer(Err(QuestionError::TimedOut(format!(
                    "no answer within {waited:?}"
                )))));
        } else if gone {
            // ractor delivers supervision events before ordinary messages, so the news of a
            // worker's end can overtake answers it sent just before: give them a moment.
            let since = *state
                .asking
                .get_mut(&token)
                .expect("present")
                .worker_gone_since
                .get_or_insert(now);
            if now.duration_since(since) >= ANSWER_GRACE {
                let mut asking = state.asking.remove(&token).expect("present");
                asking.worker_gone_since = None;
                send_question(state, asking);
            }
        }
    }
}

/// Hands queued jobs to the least loaded workers; leaves them queued when there is none.
fn dispatch(state: &mut MasterState) {
    if state.log.queue.is_empty() {
        return;
    }
    let workers = pg::get_members(&groups::WORKER.to_string());
    if workers.is_empty() {
        return;
    }
    let mut load = worker_load(state, &workers);
    while let Some(id) = state.log.queue.pop_front() {
        let Some(record) = state.log.active.get_mut(&id) else {
            continue;
        };
        state.turn = state.turn.wrapping_add(1);
        let offset = state.turn % workers.len();
        let target = (0..workers.len())
            .map(|i| &workers[(i + offset) % workers.len()])
            .min_by_key(|w| load[&w.get_id()])
            .expect("workers is not empty");
        let assignment = JobAssignment {
            job_id: id.clone(),
            text: record.text.clone(),
            attempt: record.attempts + 1,
        };
        if ActorRef::<WorkerMsg>::from(target.clone())
            .cast(WorkerMsg::Run(assignment))
            .is_err()
        {
            // The member is on its way out; its Leave event will trigger another dispatch.
            state.log.queue.push_front(id);
            return;
        }
        *load.get_mut(&target.get_id()).expect("known worker") += 1;
        record.attempts += 1;
        record.view.status = JobStatus::Running;
        record.view.updated_at = now_micros();
        let write = state.log.persist(&state.log.active[&id]);
        tokio::spawn(async move {
            if let Err(e) = write.await {
                tracing::error!("cannot record dispatch: {e}");
            }
        });
        state.log.in_flight.insert(
            id,
            InFlight {
                worker: target.get_id(),
                since: Instant::now(),
            },
        );
    }
}

fn finished(myself: &ActorRef<MasterMsg>, state: &mut MasterState, report: JobFinished) {
    let Some(record) = state
        .log
        .active
        .get_mut(&report.job_id)
        .filter(|r| !r.view.status.is_final())
    else {
        on_late_report(state, &report);
        return;
    };
    // A failure counts only for the attempt in flight: an earlier attempt's failure, or a
    // failure delivered twice, says nothing of the one running now (or queued). An earlier
    // attempt's success still counts: its file is written.
    let current =
        report.attempt == record.attempts && state.log.in_flight.contains_key(&report.job_id);
    if report.outcome.is_err() && !current {
        tracing::debug!(job = %report.job_id, attempt = report.attempt, current = record.attempts, "stale failure report");
        return;
    }
    state.log.in_flight.remove(&report.job_id);
    match report.outcome {
        Ok(file) => {
            tracing::info!(
                "job {} written to {} on {}/{}",
                report.job_id,
                file,
                report.node,
                report.worker
            );
            record.view.status = JobStatus::Done;
            record.view.file = Some(file);
            record.view.error = None;
        }
        Err(error) if record.attempts < MAX_ATTEMPTS => {
            tracing::warn!(job = %report.job_id, worker = %report.worker, %error, "job failed; retrying");
            record.view.error = Some(error);
            state.log.queue.push_back(report.job_id);
            dispatch(state);
            return;
        }
        Err(error) => {
            tracing::warn!(job = %report.job_id, %error, "job failed for good");
            record.view.status = JobStatus::Failed;
            record.view.error = Some(error);
        }
    }
    record.view.worker = Some(report.worker);
    record.view.node = Some(report.node);
    record.view.updated_at = now_micros();
    // The record stays active until its outcome is on disk, so waiters never read an older one.
    let committed = state.log.persist(&state.log.active[&report.job_id]);
    let myself = myself.clone();
    let id = report.job_id;
    tokio::spawn(async move {
        match committed.await {
            Ok(()) => {
                let _ = myself.cast(MasterMsg::Settled(id));
            }
            // Waiters stay: their callers time out and read the job again.
            Err(e) => tracing::error!(job = %id, "cannot record outcome: {e}"),
        }
    });
    dispatch(state);
}

/// A report for a job that is already final: a re-sent job that ran twice. The master's record
/// wins; a second copy written elsewhere is removed so the cluster keeps one file per job.
fn on_late_report(state: &MasterState, report: &JobFinished) {
    let Ok(Some(view)) = state.log.view(&report.job_id) else {
        return;
    };
    // Workers of one node share its files dir: a copy on the recorded node is the record's file.
    let same_node = view.node.as_deref() == Some(&report.node);
    if report.outcome.is_ok() && !same_node {
        tracing::info!(job = %report.job_id, worker = %report.worker, "duplicate copy; asking its worker to discard it");
        let _ = crate::rpc::cast(
            &groups::named_worker(&report.worker),
            WorkerMsg::Discard(report.job_id.clone()),
        );
    }
}

fn expire_leases(state: &mut MasterState) {
    let lease = state.lease;
    let members: Vec<ActorId> = pg::get_members(&groups::WORKER.to_string())
        .iter()
        .map(|c| c.get_id())
        .collect();
    requeue_where(
        state,
        |f| f.since.elapsed() > lease || !members.contains(&f.worker),
        "its lease expired or its worker is gone",
    );
}

fn requeue_where(state: &mut MasterState, pred: impl Fn(&InFlight) -> bool, why: &str) {
    let mut back: Vec<String> = state
        .log
        .in_flight
        .iter()
        .filter(|(_, f)| pred(f))
        .map(|(id, _)| id.clone())
        .collect();
    back.sort();
    for id in back.iter().rev() {
        state.log.in_flight.remove(id);
        state.log.queue.push_front(id.clone());
    }
    if !back.is_empty() {
        tracing::warn!(jobs = back.len(), "re-sending jobs: {why}");
    }
}
