//! The worker's wire messages.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::question::AskJob;
use crate::scheduler::TaskRun;
use crate::wire_type;

/// A job handed out by the master.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobAssignment {
    pub job_id: String,
    pub text: String,
    /// 1 for the first send; higher when re-sent.
    pub attempt: u32,
}

wire_type!(JobAssignment);

#[derive(RactorClusterMessage)]
pub enum WorkerMsg {
    /// Write the job's text to its file, then report to the master.
    Run(JobAssignment),
    /// Delete this job's file: the master recorded the job as done elsewhere.
    Discard(String),
    /// Answer a question by running its executable; the answer goes to the master as
    /// `MasterMsg::Answered`.
    Ask(AskJob),
    /// Run a scheduled task's payload; the outcome goes to the master as `TaskDone`.
    RunTask(TaskRun),
    /// Leave the worker groups, refuse new work, and answer once running work is done.
    #[rpc]
    Drain(RpcReplyPort<()>),
}
