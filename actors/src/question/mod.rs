//! Questions (seed 003): a search in, a listing of, or all of a dictionary, answered by running
//! a real executable (`grep`, `ls`) on a worker.
//!
//! Owns: the question and answer types, the runner that executes them with a time limit and
//! an output cap, and the confinement of every name to its configured root. The worker actor
//! runs questions; the master routes them; the edge only parses JSON into a [`Question`].

pub mod confine;
pub mod parse;
pub mod runner;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wire_type;

pub const DEFAULT_DICTIONARY: &str = "quotes";

/// The dictionaries troupe ships: written for it, installed when a node has none.
const SHIPPED: &[(&str, &str)] = &[
    ("quotes.txt", include_str!("dictionaries/quotes.txt")),
    ("proverbs.txt", include_str!("dictionaries/proverbs.txt")),
    ("limericks.txt", include_str!("dictionaries/limericks.txt")),
];

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

/// Where and how a worker runs questions.
#[derive(Debug, Clone)]
pub struct QuestionConfig {
    pub dictionaries: PathBuf,
    /// Root of the folders `list` may show.
    pub folders: PathBuf,
    /// Added before each question: the brief's simulated blocking call.
    pub delay: Duration,
    /// The executable is killed past this.
    pub time_limit: Duration,
    /// Bytes of executable output kept at most.
    pub max_output: usize,
}

impl QuestionConfig {
    pub fn new(dictionaries: PathBuf, folders: PathBuf) -> Self {
        Self {
            dictionaries,
            folders,
            delay: Duration::ZERO,
            time_limit: Duration::from_secs(10),
            max_output: 4 * 1024 * 1024,
        }
    }
}

/// Writes the shipped dictionaries into `dir` unless it already holds any file.
pub fn install_shipped_dictionaries(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if std::fs::read_dir(dir)?.next().is_some() {
        return Ok(());
    }
    for (name, text) in SHIPPED {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}
