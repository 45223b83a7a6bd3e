//! Runs a question with the real executable: `grep` for search and all, `ls` for list.
//!
//! No shell: arguments go to the executable as a list, with `--` before anything that came from
//! the request. The child runs in its own process group (a terminal's Ctrl-C is for troupe, which
//! drains, not for the child), is killed past the time limit, and its output is capped.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::{confine, QuestionConfig, DEFAULT_DICTIONARY};
use crate::protocol::questions::{Question, QuestionError};

/// Lines of context around a match are capped so one question cannot ask for a whole file
/// per match.
pub const MAX_CONTEXT: u32 = 1000;
const MAX_STDERR: u64 = 64 * 1024;

/// Answers a question: one entry per match (with its context lines, joined by `\n`), per line
/// of a dictionary, or per folder entry.
pub async fn answer(
    question: &Question,
    cfg: &QuestionConfig,
) -> Result<Vec<String>, QuestionError> {
    if !cfg.delay.is_zero() {
        tokio::time::sleep(cfg.delay).await;
    }
    match question {
        Question::Search {
            term,
            nresults,
            n_before,
            n_after,
            dictionary,
            regex,
        } => {
            if term.is_empty() || term.contains('\n') || term.contains('\0') {
                return Err(QuestionError::BadRequest(
                    "term must be a non-empty single line of text".into(),
                ));
            }
            if *n_before > MAX_CONTEXT || *n_after > MAX_CONTEXT {
                return Err(QuestionError::BadRequest(format!(
                    "n_before and n_after must be at most {MAX_CONTEXT}"
                )));
            }
            let name = dictionary.as_deref().unwrap_or(DEFAULT_DICTIONARY);
            let file = confine::dictionary(&cfg.dictionaries, name)?;
            let out = search(&file, term, *nresults, *n_before, *n_after, *regex, cfg).await?;
            match out.code {
                Some(0) => Ok(entries(&out.stdout, *n_before, *n_after)),
                Some(1) => Ok(Vec::new()),
                _ => Err(grep_failure(&out.stderr, *regex, &file, name)),
            }
        }
        Question::All { dictionary } => {
            let name = dictionary.as_deref().unwrap_or(DEFAULT_DICTIONARY);
            let file = confine::dictionary(&cfg.dictionaries, name)?;
            let out = run("grep", grep_args(&["-a", "-e", ""], &file), cfg).await?;
            match out.code {
                Some(0) | Some(1) => Ok(lines(&out.stdout)),
                _ => Err(grep_failure(&out.stderr, false, &file, name)),
            }
        }
        Question::List { folder, pattern } => {
            let pattern = pattern
                .as_deref()
                .map(glob::Pattern::new)
                .transpose()
                .map_err(|e| {
                    QuestionError::BadRequest(format!("pattern is not a valid glob: {e}"))
                })?;
            let dir = confine::folder(&cfg.folders, folder)?;
            if !dir.is_dir() {
                return Err(QuestionError::Forbidden(format!(
                    "{folder:?} exists but is not a folder that can be listed"
                )));
            }
            let args: Vec<OsString> = vec!["-1".into(), "--".into(), dir.clone().into_os_string()];
            let out = run("ls", args, cfg).await?;
            if out.code != Some(0) {
                return Err(ls_failure(&out.stderr, &dir, folder));
            }
            Ok(lines(&out.stdout)
                .into_iter()
                .filter(|name| pattern.as_ref().is_none_or(|p| p.matches(name)))
                .collect())
        }
    }
}

fn grep_args(options: &[&str], file: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = options.iter().map(OsString::from).collect();
    args.push("--".into());
    args.push(file.as_os_str().to_owned());
    args
}

async fn search(
    file: &Path,
    term: &str,
    nresults: u64,
    before: u32,
    after: u32,
    regex: bool,
    cfg: &QuestionConfig,
) -> Result<Output, QuestionError> {
    // Line numbers (`N:` for a match, `N-` for context) let overlapping contexts be split back
    // into one entry per match.
    // `-a`: a dictionary with a NUL byte or bytes that are not UTF-8 is still text to search;
    // without it grep answers "binary file matches" on stderr and no lines, with success.
    let mut args: Vec<OsString> = vec![
        "-a".into(),
        "-n".into(),
        if regex { "-E" } else { "-F" }.into(),
        "-B".into(),
        before.to_string().into(),
        "-A".into(),
        after.to_string().into(),
    ];
    if nresults > 0 {
        args.push("-m".into());
        args.push(nresults.to_string().into());
    }
    args.push("--".into());
    args.push(term.into());
    args.push(file.as_os_str().to_owned());
    run("grep", args, cfg).await
}

/// Splits `grep -n` output with context into one entry per match.
fn entries(stdout: &[u8], before: u32, after: u32) -> Vec<String> {
    let mut text: BTreeMap<u64, String> = BTreeMap::new();
    let mut matches = Vec::new();
    for line in lines(stdout) {
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        let (Ok(n), Some(sep)) = (line[..digits].parse::<u64>(), line[digits..].chars().next())
        else {
            continue; // the `--` group separator
        };
        if sep == ':' {
            matches.push(n);
        }
        text.insert(n, line[digits + 1..].to_string());
    }
    matches
        .into_iter()
        .map(|m| {
            let from = m.saturating_sub(before as u64);
            (from..=m + after as u64)
                .filter_map(|n| text.get(&n).map(String::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

fn lines(stdout: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(stdout);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    if text.is_empty() {
        return Vec::new();
    }
    text.split('\n').map(str::to_string).collect()
}

/// Classifies a failed grep by what it wrote. With a regex term, a diagnostic that names no file
/// is about the pattern: grep writes `grep: <file>: <why>` about files and `grep: <why>` about
/// the expression ("Trailing backslash", "Regular expression too big", "character class syntax
/// is [[:space:]], not [:space:]", ...), which is the caller's mistake, not ours.
fn grep_failure(stderr: &str, regex: bool, file: &Path, name: &str) -> QuestionError {
    let why = &in_callers_terms(stderr, file, name);
    let about_the_pattern = regex
        && why
            .strip_prefix("grep: ")
            .is_some_and(|rest| !rest.contains(": "));
    if why.contains("Permission denied") || why.contains("Is a directory") {
        QuestionError::Forbidden(format!("the dictionary cannot be read: {why}"))
    } else if why.contains("No such file") {
        QuestionError::NotFound(format!("the dictionary does not exist: {why}"))
    } else if about_the_pattern
        || why.contains("Unmatched")
        || why.contains("Invalid")
        || why.contains("regular expression")
    {
        QuestionError::BadRequest(format!("term is not a valid regular expression: {why}"))
    } else {
        QuestionError::Internal(format!("grep failed: {why}"))
    }
}

fn ls_failure(stderr: &str, dir: &Path, folder: &str) -> QuestionError {
    let why = &in_callers_terms(stderr, dir, folder);
    if why.contains("Permission denied") {
        QuestionError::Forbidden(format!("the folder cannot be read: {why}"))
    } else if why.contains("No such file") {
        QuestionError::NotFound(format!("the folder does not exist: {why}"))
    } else {
        QuestionError::Internal(format!("ls failed: {why}"))
    }
}

/// A diagnostic with the server's path replaced by the name the caller gave: the caller learns
/// what went wrong without learning where the roots are on this machine.
fn in_callers_terms(stderr: &str, path: &Path, name: &str) -> String {
    let full = path.display().to_string();
    stderr.trim().replace(&full, name)
}

struct Output {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs `program` with `args`, within the time limit and the output cap.
async fn run(
    program: &str,
    args: Vec<OsString>,
    cfg: &QuestionConfig,
) -> Result<Output, QuestionError> {
    let mut child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Dropping the future (time limit, or the worker going away) kills the child.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| QuestionError::Internal(format!("cannot run {program}: {e}")))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let cap = cfg.max_output;
    let work = async move {
        // stderr is drained on its own so a child blocked on a full stdout pipe can still be
        // killed without waiting for it.
        let stderr_task = tokio::spawn(async move {
            let mut err = Vec::new();
            let _ = stderr.take(MAX_STDERR).read_to_end(&mut err).await;
            err
        });
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = stdout
                .read(&mut buf)
                .await
                .map_err(|e| QuestionError::Internal(format!("{program}: {e}")))?;
            if n == 0 {
                break;
            }
            if out.len() + n > cap {
                let _ = child.start_kill();
                return Err(QuestionError::Internal(format!(
                    "the answer is over {cap} bytes; ask for fewer results (nresults) or a narrower folder"
                )));
            }
            out.extend_from_slice(&buf[..n]);
        }
        let status = child
            .wait()
            .await
            .map_err(|e| QuestionError::Internal(format!("{program}: {e}")))?;
        let err = stderr_task.await.unwrap_or_default();
        Ok(Output {
            code: status.code(),
            stdout: out,
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    };
    match tokio::time::timeout(cfg.time_limit, work).await {
        Ok(result) => result,
        Err(_) => Err(QuestionError::TimedOut(format!(
            "{program} ran past the time limit of {:?} and was stopped",
            cfg.time_limit
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn setup(text: &str) -> (tempfile::TempDir, QuestionConfig) {
        let dir = tempfile::tempdir().unwrap();
        let dicts = dir.path().join("dicts");
        std::fs::create_dir_all(&dicts).unwrap();
        std::fs::write(dicts.join("quotes.txt"), text).unwrap();
        let folders = dir.path().join("folders");
        std::fs::create_dir_all(folders.join("docs/inner")).unwrap();
        for f in ["a.txt", "b.md", "c.txt"] {
            std::fs::write(folders.join("docs").join(f), "").unwrap();
        }
        (dir, QuestionConfig::new(dicts, folders))
    }

    fn search(term: &str, nresults: u64, before: u32, after: u32) -> Question {
        Question::Search {
            term: term.into(),
            nresults,
            n_before: before,
            n_after: after,
            dictionary: None,
            regex: false,
        }
    }

    const TEXT: &str = "one apple\ntwo\nthree apple\nfour\nfive\nsix apple\n";

    #[tokio::test]
    async fn one_entry_per_match_with_its_own_context() {
        let (_d, cfg) = setup(TEXT);
        let got = answer(&search("apple", 0, 0, 0), &cfg).await.unwrap();
        assert_eq!(got, vec!["one apple", "three apple", "six apple"]);
        // Overlapping contexts (lines 2 and 3) still give each match its full context.
        let got = answer(&search("apple", 0, 1, 1), &cfg).await.unwrap();
        assert_eq!(
            got,
            vec![
                "one apple\ntwo",
                "two\nthree apple\nfour",
                "five\nsix apple"
            ]
        );
        let got = answer(&search("apple", 2, 0, 0), &cfg).await.unwrap();
        assert_eq!(got, vec!["one apple", "three apple"]);
        assert!(answer(&search("pear", 0, 0, 0), &cfg)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn terms_are_literal_unless_regex_and_never_options() {
        let (_d, cfg) = setup("a.c\nabc\n-v\n--help\n");
        assert_eq!(
            answer(&search("a.c", 0, 0, 0), &cfg).await.unwrap(),
            vec!["a.c"]
        );
        assert_eq!(
            answer(&search("-v", 0, 0, 0), &cfg).await.unwrap(),
            vec!["-v"]
        );
        assert_eq!(
            answer(&search("--help", 0, 0, 0), &cfg).await.unwrap(),
            vec!["--help"]
        );
        let regex = Question::Search {
            term: "^a.c$".into(),
            nresults: 0,
            n_before: 0,
            n_after: 0,
            dictionary: None,
            regex: true,
        };
        assert_eq!(answer(&regex, &cfg).await.unwrap(), vec!["a.c", "abc"]);
        // Each refused by grep with its own diagnostic; none is our failure.
        for term in ["(", "a\\", "a{99999}", "[:space:]"] {
            let broken = Question::Search {
                term: term.into(),
                nresults: 0,
                n_before: 0,
                n_after: 0,
                dictionary: None,
                regex: true,
            };
            let got = answer(&broken, &cfg).await;
            assert!(
                matches!(got, Err(QuestionError::BadRequest(_))),
                "{term:?}: {got:?}"
            );
        }
        assert!(matches!(
            answer(&search("a\nb", 0, 0, 0), &cfg).await,
            Err(QuestionError::BadRequest(_))
        ));
    }

    #[tokio::test]
    async fn all_lists_every_line_and_list_filters_by_glob() {
        let (_d, cfg) = setup(TEXT);
        let all = answer(
            &Question::All {
                dictionary: Some("quotes".into()),
            },
            &cfg,
        )
        .await
        .unwrap();
        assert_eq!(all.len(), 6);
        let list = |pattern: Option<&str>| Question::List {
            folder: "docs".into(),
            pattern: pattern.map(String::from),
        };
        assert_eq!(
            answer(&list(None), &cfg).await.unwrap(),
            vec!["a.txt", "b.md", "c.txt", "inner"]
        );
        assert_eq!(
            answer(&list(Some("*.txt")), &cfg).await.unwrap(),
            vec!["a.txt", "c.txt"]
        );
        assert!(matches!(
            answer(&list(Some("[")), &cfg).await,
            Err(QuestionError::BadRequest(_))
        ));
        let file_as_folder = Question::List {
            folder: "docs/a.txt".into(),
            pattern: None,
        };
        assert!(matches!(
            answer(&file_as_folder, &cfg).await,
            Err(QuestionError::Forbidden(_))
        ));
        let escape = Question::List {
            folder: "../dicts".into(),
            pattern: None,
        };
        assert!(matches!(
            answer(&escape, &cfg).await,
            Err(QuestionError::BadRequest(_))
        ));
    }

    #[tokio::test]
    async fn a_dictionary_that_is_a_folder_cannot_be_read() {
        let (_d, cfg) = setup(TEXT);
        std::fs::create_dir_all(cfg.dictionaries.join("shelf")).unwrap();
        let q = Question::All {
            dictionary: Some("shelf".into()),
        };
        assert!(matches!(
            answer(&q, &cfg).await,
            Err(QuestionError::Forbidden(_))
        ));
        let q = Question::All {
            dictionary: Some("missing".into()),
        };
        assert!(matches!(
            answer(&q, &cfg).await,
            Err(QuestionError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn the_time_limit_kills_and_the_cap_bounds_output() {
        // A FIFO with no writer makes grep block on open: a real executable past its limit.
        let (_d, mut cfg) = setup(TEXT);
        let fifo = cfg.dictionaries.join("stuck.txt");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        cfg.time_limit = Duration::from_millis(300);
        let q = Question::All {
            dictionary: Some("stuck".into()),
        };
        let err = answer(&q, &cfg).await.unwrap_err();
        assert!(matches!(err, QuestionError::TimedOut(_)), "{err:?}");
        // Killed, not left behind: no process still has the FIFO on its command line (the
        // kill is sent on drop; give the kernel a moment to reap it).
        let fifo_arg = fifo.display().to_string();
        let mut left = processes_naming(&fifo_arg);
        for _ in 0..100 {
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            left = processes_naming(&fifo_arg);
        }
        assert!(left.is_empty(), "still running: {left:?}");

        let (_d, mut cfg) = setup(&"x".repeat(100_000));
        cfg.max_output = 1000;
        let q = Question::All { dictionary: None };
        let err = answer(&q, &cfg).await.unwrap_err();
        assert!(err.to_string().contains("over 1000 bytes"), "{err}");
    }

    /// Pids of live (not zombie) processes with `needle` among their arguments.
    fn processes_naming(needle: &str) -> Vec<String> {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .flatten()
            .filter_map(|p| {
                let pid = p.file_name().into_string().ok()?;
                pid.parse::<u32>().ok()?;
                let cmdline = std::fs::read(p.path().join("cmdline")).ok()?;
                let stat = std::fs::read_to_string(p.path().join("stat")).ok()?;
                let zombie = stat.rsplit(") ").next()?.starts_with('Z');
                let named = cmdline
                    .split(|b| *b == 0)
                    .any(|arg| arg == needle.as_bytes());
                (named && !zombie).then_some(pid)
            })
            .collect()
    }

    #[tokio::test]
    async fn dictionaries_that_are_not_clean_utf8_are_still_searched() {
        // A NUL byte makes grep call the file binary; a Latin-1 byte is not UTF-8.
        let (_d, cfg) = setup("");
        std::fs::write(
            cfg.dictionaries.join("quotes.txt"),
            b"hello one\nbin\x00ary one\ncaf\xe9 one\nlast\n",
        )
        .unwrap();
        let got = answer(&search("one", 0, 0, 0), &cfg).await.unwrap();
        assert_eq!(got, vec!["hello one", "bin\0ary one", "caf\u{fffd} one"]);
        let all = answer(&Question::All { dictionary: None }, &cfg).await;
        assert_eq!(all.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn errors_name_what_the_caller_asked_for_not_server_paths() {
        let (_d, cfg) = setup(TEXT);
        std::fs::create_dir_all(cfg.dictionaries.join("shelf")).unwrap();
        let root = cfg.dictionaries.display().to_string();
        let err = answer(
            &Question::All {
                dictionary: Some("shelf".into()),
            },
            &cfg,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, QuestionError::Forbidden(_)), "{err:?}");
        let message = err.to_string();
        assert!(!message.contains(&root), "{message}");
        assert!(message.contains("shelf"), "{message}");
    }

    #[tokio::test]
    async fn the_delay_is_added_before_answering() {
        let (_d, mut cfg) = setup(TEXT);
        cfg.delay = Duration::from_millis(200);
        let start = std::time::Instant::now();
        answer(&search("apple", 0, 0, 0), &cfg).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(200));
    }
}
