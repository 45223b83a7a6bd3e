//! The job relay's conversation (seed 000): a job submitted to the master, handed to a worker,
//! reported back; and the job record the master keeps and reports.

use serde::{Deserialize, Serialize};

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

/// A job handed out by the master.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobAssignment {
    pub job_id: String,
    pub text: String,
    /// 1 for the first send; higher when re-sent.
    pub attempt: u32,
}

wire_type!(NewJob, SubmitReply, JobLookup, JobFinished, JobAssignment);
