//! What a worker takes from the master: jobs, questions and task runs, and the drain order
//! from its own node.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;

use super::jobs::JobAssignment;
use super::questions::AskJob;
use super::tasks::TaskRun;

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
