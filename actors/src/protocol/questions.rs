//! The question API's conversation (seed 003): a question from the edge, routed by the master
//! to a worker, and its answer back.

use serde::{Deserialize, Serialize};

use crate::wire_type;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Question {
    Search {
        term: String,
        /// 0 means all matches.
        nresults: u64,
        n_before: u32,
        n_after: u32,
        dictionary: Option<String>,
        /// A regular expression (grep -E) instead of a literal string.
        regex: bool,
    },
    All {
        dictionary: Option<String>,
    },
    List {
        folder: String,
        /// A glob such as `*.txt`, matched against entry names.
        pattern: Option<String>,
    },
}

/// Why a question got no answer; each maps to one HTTP status of the question API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum QuestionError {
    /// 400: the question itself is wrong (bad name, escape attempt, bad pattern).
    #[error("{0}")]
    BadRequest(String),
    /// 403: it exists but cannot be read (or resolves outside its root).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such dictionary or folder.
    #[error("{0}")]
    NotFound(String),
    /// 503: no worker could take it (none running, or shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// 504: the executable ran past its time limit and was killed.
    #[error("{0}")]
    TimedOut(String),
    /// 500: anything else.
    #[error("{0}")]
    Internal(String),
}

/// The reply to a question: its result lines, or why there are none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer(pub Result<Vec<String>, QuestionError>);

/// A question with the time the asker will wait for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ask {
    pub question: Question,
    /// How long the caller waits; routing gives up past it.
    pub wait_ms: u64,
}

/// A question handed to a worker, tagged so its answer finds the asker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AskJob {
    pub token: u64,
    pub ask: Ask,
}

/// A worker's answer to an [`AskJob`], sent back as a message (not a reply port): see the
/// master for why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answered {
    pub token: u64,
    pub answer: Answer,
}

wire_type!(Answer, Ask, AskJob, Answered);
