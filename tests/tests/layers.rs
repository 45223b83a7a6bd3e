//! The layering of `actors/` held against its source: the protocol sits below every actor, and
//! no actor's module imports another actor's module (ARCHITECTURE.md, "Invariants").
//!
//! An actor module is a top-level module of `actors/src` (a file, or a folder with its files)
//! that implements `ractor::Actor`; it is found from the code, so a new actor is covered
//! without editing this test. The runtime's own actors (the supervisor, the Raft replicas) are
//! not services: services build on them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules of `actors/src` a protocol file may use besides its siblings: the codec (and
/// its `wire_type!` macro) and shared value types.
const PROTOCOL_MAY_USE: &[&str] = &["codec", "wire_type", "protocol", "telemetry"];

/// Modules that run actors for every service rather than being a service.
const RUNTIME: &[&str] = &["supervisor", "raft"];

fn actors_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../actors/src")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read actors/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The top-level module of `actors/src` a file belongs to (`master` for `master/state.rs`).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src");
    let first = rel.components().next().expect("non-empty path");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_string()
}

/// The code of a file without its comments, so a doc comment naming a path is no import.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate-level modules a piece of code names: `crate::a::..`, `crate::{a, b::c}`,
/// `troupe_actors::a`, and `super::super::a` as seen from `self_module`'s folder.
fn modules_named(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for prefix in ["crate::", "troupe_actors::", "super::super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let head = item.trim().split("::").next().unwrap_or("").trim();
                    if !head.is_empty() {
                        found.insert(head.to_string());
                    }
                }
            } else {
                let head: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !head.is_empty() {
                    found.insert(head);
                }
            }
        }
    }
    found
}

struct Source {
    module: String,
    file: PathBuf,
    code: String,
}

fn sources() -> Vec<Source> {
    let src = actors_src();
    rust_files(&src)
        .into_iter()
        .map(|file| Source {
            module: top_module(&src, &file),
            code: code_of(&std::fs::read_to_string(&file).expect("read source")),
            file,
        })
        .collect()
}

fn actor_modules(sources: &[Source]) -> BTreeSet<String> {
    sources
        .iter()
        .filter(|s| s.code.contains("impl Actor for") && !RUNTIME.contains(&s.module.as_str()))
        .map(|s| s.module.clone())
        .collect()
}

/// `(file, module it names)` for every import of one actor module by another.
fn cross_actor_imports(sources: &[Source]) -> Vec<(PathBuf, String)> {
    let actors = actor_modules(sources);
    let mut bad = Vec::new();
    for s in sources.iter().filter(|s| actors.contains(&s.module)) {
        for named in modules_named(&s.code) {
            if named != s.module && actors.contains(&named) {
                bad.push((s.file.clone(), named));
            }
        }
    }
    bad
}

#[test]
fn the_actor_modules_are_found() {
    let actors = actor_modules(&sources());
    for expected in [
        "master",
        "worker",
        "listing",
        "user",
        "scheduler",
        "events",
        "geo",
    ] {
        assert!(
            actors.contains(expected),
            "{expected} not found in {actors:?}"
        );
    }
    assert!(!actors.contains("protocol"), "the protocol runs no actor");
    assert!(
        !actors.contains("supervisor"),
        "the supervisor is the runtime's"
    );
}

#[test]
fn no_actor_module_imports_another_actors_module() {
    let bad = cross_actor_imports(&sources());
    assert!(
        bad.is_empty(),
        "actor modules import other actors' modules (put what travels in actors/src/protocol/): {bad:?}"
    );
}

#[test]
fn the_protocol_imports_only_the_codec_and_value_types() {
    let mut bad: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for s in sources().iter().filter(|s| s.module == "protocol") {
        for named in modules_named(&s.code) {
            if !PROTOCOL_MAY_USE.contains(&named.as_str()) {
                bad.entry(s.file.clone()).or_default().push(named);
            }
        }
    }
    assert!(
        bad.is_empty(),
        "protocol files reach above the protocol: {bad:?}"
    );
}

#[test]
fn the_checker_sees_every_form_of_import() {
    let code = code_of(
        "use crate::{groups, master::MasterMsg};\n\
         use crate::scheduler::Task;\n\
         let x = troupe_actors::geo::GeoMsg::Stats;\n\
         use super::super::worker::WorkerMsg;\n\
         // use crate::events::EventsMsg;\n\
         my_crate::listing::X;",
    );
    let named = modules_named(&code);
    let want: BTreeSet<String> = ["groups", "master", "scheduler", "geo", "worker"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(named, want);

    let planted = vec![
        Source {
            module: "master".into(),
            file: "master/mod.rs".into(),
            code: "impl Actor for Master {}\nuse crate::scheduler::SchedulerMsg;".into(),
        },
        Source {
            module: "scheduler".into(),
            file: "scheduler/mod.rs".into(),
            code: "impl Actor for Scheduler {}\nuse crate::protocol::master::MasterMsg;".into(),
        },
    ];
    assert_eq!(
        cross_actor_imports(&planted),
        vec![(PathBuf::from("master/mod.rs"), "scheduler".to_string())]
    );
}
