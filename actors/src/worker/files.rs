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

pub fn absolute(data_dir: &Path, relative: &str) -> PathBuf {
    data_dir.join(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

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
