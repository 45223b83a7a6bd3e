//! Turning names from requests into paths that stay inside their configured root.
//!
//! A name is refused (400) before any file system access if it is absolute, contains `..`,
//! NUL or (for dictionaries) a path separator. A name that passes is joined to the root and
//! canonicalised; if the real path is outside the root (a symlink escape) it is a 403, and it
//! is never read.

use std::path::{Component, Path, PathBuf};

use crate::protocol::questions::QuestionError;

/// A dictionary file under `root`: `name` or `name.txt`.
pub fn dictionary(root: &Path, name: &str) -> Result<PathBuf, QuestionError> {
    let bad = |why: &str| {
        Err(QuestionError::BadRequest(format!(
            "dictionary {name:?} {why}; use the plain file name of a dictionary, e.g. \"quotes\""
        )))
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.contains('\0') {
        return bad("contains NUL");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("contains a path separator");
    }
    if name == "." || name == ".." || name.starts_with('.') {
        return bad("is not a dictionary name");
    }
    let plain = root.join(name);
    let candidate = if plain.exists() || plain.is_symlink() {
        plain
    } else {
        root.join(format!("{name}.txt"))
    };
    inside(root, &candidate, "dictionary", name)
}

/// A folder under `root`; `""` and `"."` are the root itself.
pub fn folder(root: &Path, name: &str) -> Result<PathBuf, QuestionError> {
    if name.contains('\0') {
        return Err(QuestionError::BadRequest(format!(
            "folder {name:?} contains NUL"
        )));
    }
    let path = Path::new(name);
    for c in path.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(QuestionError::BadRequest(format!(
                    "folder {name:?} contains \"..\"; give a folder relative to the listing root"
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(QuestionError::BadRequest(format!(
                    "folder {name:?} is absolute; give a folder relative to the listing root"
                )))
            }
        }
    }
    inside(root, &root.join(path), "folder", name)
}

/// The canonical form of `candidate`, if it exists and lies inside `root`.
fn inside(root: &Path, candidate: &Path, what: &str, name: &str) -> Result<PathBuf, QuestionError> {
    let root = root.canonicalize().map_err(|e| {
        QuestionError::Internal(format!(
            "the {what} root {} is unusable: {e}",
            root.display()
        ))
    })?;
    let real = match candidate.canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(QuestionError::NotFound(format!("no {what} named {name:?}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(QuestionError::Forbidden(format!(
                "{what} {name:?} cannot be read: {e}"
            )))
        }
        Err(e) => return Err(QuestionError::Internal(format!("{what} {name:?}: {e}"))),
    };
    if !real.starts_with(&root) {
        return Err(QuestionError::Forbidden(format!(
            "{what} {name:?} resolves outside the {what} root"
        )));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("quotes.txt"), "x\n").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        (dir, root)
    }

    #[test]
    fn dictionaries_resolve_with_or_without_txt() {
        let (_d, root) = setup();
        assert!(dictionary(&root, "quotes").unwrap().ends_with("quotes.txt"));
        assert!(dictionary(&root, "quotes.txt")
            .unwrap()
            .ends_with("quotes.txt"));
        assert!(matches!(
            dictionary(&root, "nope"),
            Err(QuestionError::NotFound(_))
        ));
    }

    #[test]
    fn escapes_are_refused_before_or_after_resolution() {
        let (_d, root) = setup();
        for bad in [
            "../secret",
            "/etc/passwd",
            "a/b",
            "..",
            ".hidden",
            "",
            "x\0y",
        ] {
            assert!(
                matches!(dictionary(&root, bad), Err(QuestionError::BadRequest(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            dictionary(&root, "leak"),
            Err(QuestionError::Forbidden(_))
        ));
        for bad in ["..", "sub/../..", "/tmp", "a\0"] {
            assert!(
                matches!(folder(&root, bad), Err(QuestionError::BadRequest(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            folder(&root, "up"),
            Err(QuestionError::Forbidden(_))
        ));
        assert!(matches!(
            folder(&root, "missing"),
            Err(QuestionError::NotFound(_))
        ));
        assert!(folder(&root, "").unwrap().ends_with("root"));
        assert!(folder(&root, "./sub").unwrap().ends_with("sub"));
    }
}
