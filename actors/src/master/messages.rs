//! The master's wire messages and the job records they carry.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::question::{Answer, Answered, Ask};
use crate::scheduler::{DispatchReply, TaskOutcome, TaskRun};
use crate::wire_type;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// A job as the master records it and reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub job_id: String,
    pub status: JobStatus,
    /// Path relative to the worker node's data dir.
    pub file: Option<String>,
    pub worker: Option<String>,
    pub node: Option<String>,
    /// Microseconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewJob {
    pub text: String,
}

/// Reply to `Submit`: the durably logged job, or why it could not be logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitReply(pub Result<JobView, String>);

/// Reply to `Get` / `AwaitDone`: `None` for an unknown job id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobLookup(pub Option<JobView>);

/// A worker's report that it finished (or could not do) a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobFinished {
    pub job_id: String,
    /// The attempt it reports on (`JobAssignment::attempt`): a report can arrive twice, or
    /// after the job was sent again.
    pub attempt: u32,
    pub worker: String,
    pub node: String,
    /// The written file (relative to the node's data dir), or the error.
    pub outcome: Result<String, String>,
}

/// The master's receipt for a worker's report: once a worker holds it, the report has crossed
/// the wire. A one-way message gives no such proof, and a draining node could exit with it
/// still queued in its session.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Received;

wire_type!(NewJob, SubmitReply, JobLookup, JobFinished, Received);

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
