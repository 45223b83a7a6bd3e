//! Where and how a worker writes a job's file.
//!
//! The name comes from the job id alone, so a job sent twice to a node rewrites one file. The
//! text goes to a temporary file that is fsynced and then renamed, so a crash leaves either no
//! file or the whole text, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The directory under a node's data dir that holds job files.
pub const FILES_DIR: &str = "files";

/// The file for a job, relative to the node's data dir.
pub fn relative_path(job_id: &str) -> Option<String> {
    valid_job_id(job_id).then(|| format!("{FILES_DIR}/{job_id}.txt"))
}

/// Job ids are UUIDs; anything else must never become part of a path.
pub fn valid_job_id(job_id: &str) -> bool {
    uuid::Uuid::parse_str(job_id).is_ok()
}

/// Writes `text` durably; returns the path relative to `data_dir`.
pub fn write_job_file(data_dir: &Path, job_id: &str, text: &str) -> std::io::Result<String> {
    let relative = relative_path(job_id).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "job id is not a UUID")
    })?;
    let dir = data_dir.join(FILES_DIR);
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(".{job_id}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, data_dir.join(&relative))?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(relative)
}

pub fn remove_job_file(data_dir: &Path, job_id: &str) -> std::io::Result<()> {
    match relative_path(job_id) {
        Some(rel) => match std::fs::remove_file(data_dir.join(rel)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
        None => Ok(()),
    }
}

/// Job ids of the files present under `data_dir`.
pub fn job_ids_on_disk(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir.join(FILES_DIR)) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".txt")?;
            valid_job_id(id).then(|| id.to_string())
        })
        .collect()
}

/// A temporary file this old is a write a crash cut short: every live write renames its
/// temporary file within moments. The age keeps a worker starting on a node from removing
/// the temporary file of another worker's write in progress.
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes temporary files of writes that never finished (a crash between create and rename);
/// returns how many.
pub fn remove_abandoned_writes(data_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir.join(FILES_DIR)) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_ours = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".tmp"))
                .is_some_and(valid_job_id);
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            is_ours && age.is_some_and(|a| a >= ABANDONED_AFTER)
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

pub fn absolute(data_dir: &Path, relative: &str) -> PathBuf {
    data_dir.join(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_temporary_files_of_jobs_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join(FILES_DIR);
        std::fs::create_dir_all(&files).unwrap();
        let old = uuid::Uuid::now_v7().to_string();
        let fresh = uuid::Uuid::now_v7().to_string();
        let long_ago = std::time::SystemTime::now() - 2 * ABANDONED_AFTER;
        for (name, aged) in [
            (format!(".{old}.tmp"), true),
            (format!(".{fresh}.tmp"), false),
            (".notes.tmp".to_string(), true),
        ] {
            let f = std::fs::File::create(files.join(&name)).unwrap();
            if aged {
                f.set_modified(long_ago).unwrap();
            }
        }
        assert_eq!(remove_abandoned_writes(dir.path()), 1);
        assert!(!files.join(format!(".{old}.tmp")).exists());
        assert!(files.join(format!(".{fresh}.tmp")).exists());
        assert!(files.join(".notes.tmp").exists());
    }

    #[test]
    fn rewriting_a_job_keeps_one_file_with_the_last_text() {
        let dir = tempfile::tempdir().unwrap();
        let id = uuid::Uuid::now_v7().to_string();
        let rel = write_job_file(dir.path(), &id, "first").unwrap();
        let rel2 = write_job_file(dir.path(), &id, "second").unwrap();
        assert_eq!(rel, rel2);
        assert_eq!(
            std::fs::read_to_string(absolute(dir.path(), &rel)).unwrap(),
            "second"
        );
        assert_eq!(job_ids_on_disk(dir.path()), vec![id.clone()]);
        remove_job_file(dir.path(), &id).unwrap();
        assert!(job_ids_on_disk(dir.path()).is_empty());
    }

    #[test]
    fn refuses_ids_that_are_not_uuids() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_job_file(dir.path(), "../escape", "x").is_err());
        assert!(relative_path("a/b").is_none());
    }
}
