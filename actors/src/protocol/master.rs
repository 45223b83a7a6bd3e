//! What the master takes: jobs from the edge and their reports from workers, questions to
//! route, and task runs between the scheduler and the workers.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;

use super::jobs::{JobFinished, JobLookup, NewJob, SubmitReply};
use super::questions::{Answer, Answered, Ask};
use super::receipt::Received;
use super::tasks::{DispatchReply, TaskOutcome, TaskRun};

#[derive(RactorClusterMessage)]
pub enum MasterMsg {
    /// Log a new job durably, then hand it to a worker.
    #[rpc]
    Submit(NewJob, RpcReplyPort<SubmitReply>),
    #[rpc]
    Get(String, RpcReplyPort<JobLookup>),
    /// Answers once the job is done or failed (at once if it already is).
    #[rpc]
    AwaitDone(String, RpcReplyPort<JobLookup>),
    /// From a worker: the job's outcome.
    #[rpc]
    Finished(JobFinished, RpcReplyPort<Received>),
    /// Periodic: re-send jobs whose lease expired, dispatch what waits.
    Tick,
    /// From the master itself: a job's outcome is committed; answer its waiters.
    Settled(String),
    /// Route a question to the least loaded worker and relay its answer.
    #[rpc]
    Ask(Ask, RpcReplyPort<Answer>),
    /// From a worker: the answer to a question this master handed out.
    #[rpc]
    Answered(Answered, RpcReplyPort<Received>),
    /// From the scheduler: hand this run to the worker it names (`troupe.worker.<name>`).
    #[rpc]
    RunTask(TaskRun, RpcReplyPort<DispatchReply>),
    /// From a worker: how a task run ended; relayed to the scheduler.
    #[rpc]
    TaskDone(TaskOutcome, RpcReplyPort<Received>),
}
