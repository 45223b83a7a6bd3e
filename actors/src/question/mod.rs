//! Questions (seed 003): a search in, a listing of, or all of a dictionary, answered by running
//! a real executable (`grep`, `ls`) on a worker.
//!
//! Owns: the runner that executes them with a time limit and an output cap, the confinement of
//! every name to its configured root, and the parser of a question's JSON. The question and
//! answer types are `protocol::questions`. The worker actor runs questions; the master routes
//! them; the edge only parses JSON into a question.

pub mod confine;
pub mod parse;
pub mod runner;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DICTIONARY: &str = "quotes";

/// The dictionaries troupe ships: written for it, installed when a node has none.
const SHIPPED: &[(&str, &str)] = &[
    ("quotes.txt", include_str!("dictionaries/quotes.txt")),
    ("proverbs.txt", include_str!("dictionaries/proverbs.txt")),
    ("limericks.txt", include_str!("dictionaries/limericks.txt")),
];

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
