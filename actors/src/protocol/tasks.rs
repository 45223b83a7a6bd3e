//! The scheduler's conversation (seed 004): the task API from the edge, and the task run that
//! travels scheduler -> master -> worker and back.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use super::page::Page;
use crate::wire_type;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskStatus {
    Scheduled,
    Running,
    Succeeded,
    Failed,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 4] = [
        Self::Scheduled,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "SCHEDULED",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// The byte that leads this status's keys in the status index.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A task as stored and reported. JSON values travel as JSON text: bincode cannot carry
/// `serde_json::Value`, which is not self-describing in its format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// UUID v7.
    pub id: String,
    /// Microseconds since the epoch, UTC.
    pub start: i64,
    pub title: Option<String>,
    pub worker: String,
    pub status: TaskStatus,
    /// A JSON object, as text.
    pub payload: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Dispatches tried so far.
    pub attempts: u32,
    /// The worker's result (JSON text) once SUCCEEDED.
    pub result: Option<String>,
    pub error: Option<String>,
    /// When the running attempt reached a worker: its lease counts from here.
    pub dispatched_at: Option<i64>,
}

/// A create request as received; `None` where the field was not sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewTask {
    pub start: Option<i64>,
    pub title: Option<String>,
    pub worker: Option<String>,
    pub status: Option<String>,
    /// JSON text; must be an object.
    pub payload: Option<String>,
}

/// The fields a PATCH changes; `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskPatch {
    pub id: String,
    pub start: Option<i64>,
    pub title: Option<Option<String>>,
    pub worker: Option<String>,
    pub status: Option<String>,
    pub payload: Option<Option<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskFilter {
    pub worker: Option<String>,
    pub status: Option<TaskStatus>,
    /// start >= from
    pub from: Option<i64>,
    /// start <= to
    pub to: Option<i64>,
    pub page: Page,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayloadPatch {
    pub id: String,
    /// A JSON object whose first-level keys are added or replaced.
    pub keys: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayloadKeyDelete {
    pub id: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TaskError {
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("storage failed: {0}")]
    Storage(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskReply(pub Result<Task, TaskError>);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// Tasks matching the filter, over all pages.
    pub total: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskPageReply(pub Result<TaskPage, TaskError>);

/// One attempt at running a task, as the master hands it to the named worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRun {
    pub task_id: String,
    pub worker: String,
    pub attempt: u32,
    pub payload: Option<String>,
}

/// The master's answer to a `RunTask`: handed to the worker, or why not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DispatchReply(pub Result<(), String>);

/// What a run of a task came to, from the worker that ran it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskOutcome {
    pub task_id: String,
    pub attempt: u32,
    pub worker: String,
    pub node: String,
    /// The result as JSON text, or the error.
    pub result: Result<String, String>,
}

/// The scheduler's own note that a dispatch went through or did not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dispatched {
    pub task_id: String,
    pub attempt: u32,
    pub outcome: Result<(), String>,
}

wire_type!(
    NewTask,
    TaskPatch,
    TaskFilter,
    PayloadPatch,
    PayloadKeyDelete,
    TaskReply,
    TaskPageReply,
    TaskRun,
    DispatchReply,
    TaskOutcome,
    Dispatched
);

#[derive(RactorClusterMessage)]
pub enum SchedulerMsg {
    #[rpc]
    Create(NewTask, RpcReplyPort<TaskReply>),
    #[rpc]
    Get(String, RpcReplyPort<TaskReply>),
    /// Sorted by start.
    #[rpc]
    List(TaskFilter, RpcReplyPort<TaskPageReply>),
    #[rpc]
    Patch(TaskPatch, RpcReplyPort<TaskReply>),
    #[rpc]
    PatchPayload(PayloadPatch, RpcReplyPort<TaskReply>),
    #[rpc]
    DeletePayloadKey(PayloadKeyDelete, RpcReplyPort<TaskReply>),
    /// Answers with the deleted task.
    #[rpc]
    Delete(String, RpcReplyPort<TaskReply>),
    /// From the master: how a run ended. Answered once the outcome is on disk (or was already:
    /// a copy of an outcome changes nothing), so the master can give the worker its receipt.
    #[rpc]
    Outcome(TaskOutcome, RpcReplyPort<()>),
    /// From itself: a dispatch attempt's result.
    Dispatched(Dispatched),
    /// From itself: something is due.
    Wake,
}
