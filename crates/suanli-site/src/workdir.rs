//! Attempt folders: created fresh and exclusively (an existing path, a planted link included, is
//! an error), mode 0700, owned by the job user where the job runs as one; the spec's files written
//! into them one path component at a time, never through a symbolic link; named with a random
//! part, so that no attempt can guess another's folder. Removed after the attempt unless the agent
//! keeps them.
//!
//! Nothing else can write into a new folder before its job starts (it belongs to the agent until
//! then, and its name is not known in advance), so checking each component as it is made holds.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use suanli_proto::AttemptRef;

use crate::env::safe_relative_path;
use crate::isolation::Ids;

/// `{work_dir}/{job}-{attempt}-{16 random hex digits}`.
pub fn attempt_dir(work_dir: &Path, attempt: AttemptRef) -> PathBuf {
    let mut b = [0u8; 8];
    // Without randomness the name is still fresh per attempt; creation stays exclusive.
    let _ = getrandom::fill(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    work_dir.join(format!("{}-{}-{hex}", attempt.job, attempt.attempt))
}

/// Whether `name` is one of [`attempt_dir`]'s.
pub fn is_attempt_dir_name(name: &str) -> bool {
    let mut f = name.split('-');
    let num =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    num(f.next())
        && num(f.next())
        && f.next()
            .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        && f.next().is_none()
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn chown(path: &Path, owner: Option<Ids>) -> io::Result<()> {
    match owner {
        Some(o) => std::os::unix::fs::lchown(path, Some(o.uid), Some(o.gid)),
        None => Ok(()),
    }
}

/// Creates the attempt folder `dir` (its parent, the agent's working directory, is made if
/// missing and must not be a link; `dir` must not exist) and writes `files` into it; everything
/// is owned by `owner` when given.
pub fn prepare(dir: &Path, files: &BTreeMap<String, String>, owner: Option<Ids>) -> io::Result<()> {
    let parent = dir
        .parent()
        .ok_or_else(|| invalid(format!("{} has no parent", dir.display())))?;
    if std::fs::symlink_metadata(parent).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let meta = std::fs::symlink_metadata(parent)?;
    if !meta.is_dir() {
        return Err(invalid(format!(
            "{} is not a directory (a link is refused)",
            parent.display()
        )));
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))?;
    chown(dir, owner)?;
    for (rel, content) in files {
        write_file(dir, rel, content.as_bytes(), owner)?;
    }
    Ok(())
}

/// Makes the job's checkpoint folder `{dir}/{folder}` and writes into it the files of the last
/// checkpoint (`files`: paths relative to the attempt folder, under `folder`), the same way as
/// the spec's files.
pub fn restore(
    dir: &Path,
    (folder, files): &crate::backend::Checkpoint,
    owner: Option<Ids>,
) -> io::Result<()> {
    let mut at = dir.to_path_buf();
    for c in Path::new(folder).components() {
        let Component::Normal(name) = c else {
            return Err(invalid(format!(
                "checkpoint folder {folder:?} is not plain"
            )));
        };
        at.push(name);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(invalid(format!("{} is not a folder", at.display()))),
            Err(_) => {
                std::fs::DirBuilder::new().mode(0o700).create(&at)?;
                chown(&at, owner)?;
            }
        }
    }
    for (rel, content) in files {
        write_file(dir, rel, content, owner)?;
    }
    Ok(())
}

/// Writes `content` to `{dir}/{rel}`, a new file: directories on the way are made one at a time
/// (mode 0700) or must be directories already, never links; the file must not exist.
pub fn write_file(dir: &Path, rel: &str, content: &[u8], owner: Option<Ids>) -> io::Result<()> {
    if !safe_relative_path(rel) {
        return Err(invalid(format!(
            "working file path {rel:?} is not a plain relative path"
        )));
    }
    let parts: Vec<_> = Path::new(rel).components().collect();
    let mut at = dir.to_path_buf();
    for (i, c) in parts.iter().enumerate() {
        let Component::Normal(name) = c else {
            return Err(invalid(format!("working file path {rel:?} is not plain")));
        };
        at.push(name);
        let last = i + 1 == parts.len();
        if last {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&at)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot create working file {rel:?}: {e}"))
                })?;
            f.write_all(content)?;
            if let Some(o) = owner {
                std::os::unix::fs::fchown(&f, Some(o.uid), Some(o.gid))?;
            }
            return Ok(());
        }
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(invalid(format!(
                    "working file path {rel:?}: {} is not a directory",
                    at.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new().mode(0o700).create(&at)?;
                chown(&at, owner)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes an attempt folder (links in it are removed, not followed); a missing one is fine.
pub fn remove(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the attempt folder")
        }
    }
}

/// Makes the agent's working directory private: mode `mode` (0700; 0711 where job users must pass
/// through it to their folders), owned by the agent, not a link.
pub fn restrict(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::symlink_metadata(dir)?;
    if !m.is_dir() {
        return Err(invalid(format!(
            "{} is not a directory (a link is refused)",
            dir.display()
        )));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// The first ancestor of `dir` (or `dir`) that `ids` cannot pass through, going by its mode bits
/// and owner (`x` for its owner, group or others).
pub fn untraversable(dir: &Path, ids: Ids) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    dir.ancestors().find_map(|a| {
        let m = std::fs::metadata(a).ok()?;
        let mode = m.mode();
        let ok = if m.uid() == ids.uid {
            mode & 0o100 != 0
        } else if m.gid() == ids.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        (!ok).then(|| a.to_path_buf())
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_are_fresh_and_recognised() {
        let a = AttemptRef {
            job: suanli_types::JobId(42),
            attempt: 3,
        };
        let x = attempt_dir(Path::new("/w"), a);
        let y = attempt_dir(Path::new("/w"), a);
        assert_ne!(x, y, "not guessable from the attempt");
        let name = x.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("42-3-") && is_attempt_dir_name(name),
            "{name}"
        );
        for other in [
            "42-3",
            ".suanli-live",
            "42-3-xyz",
            "a-3-0123456789abcdef",
            "1-2-0123456789abcdef-x",
        ] {
            assert!(!is_attempt_dir_name(other), "{other}");
        }
    }

    #[test]
    fn a_folder_is_created_once_private_with_its_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("1-1-0123456789abcdef");
        prepare(
            &dir,
            &files(&[("a/b/train.py", "print(1)"), ("x", "y")]),
            None,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("a/b/train.py")).unwrap(),
            "print(1)"
        );
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = std::fs::metadata(dir.join("x"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let e = prepare(&dir, &files(&[]), None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    }

    /// H5: links planted for later attempts are never written through.
    #[test]
    fn planted_links_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        // The folder itself planted as a link.
        let planted = root.path().join("2-1-0123456789abcdef");
        std::os::unix::fs::symlink(&outside, &planted).unwrap();
        assert!(prepare(&planted, &files(&[("train.py", "x")]), None).is_err());
        assert!(!outside.join("train.py").exists());
        // A link to a file, or to a directory, where a working file or its directory goes.
        let dir = root.path().join("3-1-0123456789abcdef");
        prepare(&dir, &files(&[]), None).unwrap();
        std::os::unix::fs::symlink(outside.join("stolen"), dir.join("out")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("sub")).unwrap();
        assert!(write_file(&dir, "out", b"secret", None).is_err());
        assert!(write_file(&dir, "sub/f", b"secret", None).is_err());
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
        // A parent that is a link is refused too.
        let link_parent = root.path().join("lp");
        std::os::unix::fs::symlink(&outside, &link_parent).unwrap();
        assert!(prepare(&link_parent.join("4-1-0123456789abcdef"), &files(&[]), None).is_err());
        // Conflicting and unsafe paths.
        let dir = root.path().join("5-1-0123456789abcdef");
        assert!(prepare(&dir, &files(&[("a", "1"), ("a/b", "2")]), None).is_err());
        assert!(write_file(&dir, "../x", b"", None).is_err());
        // Removal does not follow links.
        std::os::unix::fs::symlink(&outside, dir.join("l")).unwrap();
        std::fs::write(outside.join("keep"), "k").unwrap();
        remove(&dir);
        assert!(!dir.exists() && outside.join("keep").exists());
    }

    #[test]
    fn traversal_by_mode_bits() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a");
        let b = a.join("b");
        std::fs::create_dir_all(&b).unwrap();
        let ids = Ids {
            uid: 4_000_001,
            gid: 4_000_001,
        };
        restrict(root.path(), 0o711).unwrap();
        restrict(&a, 0o700).unwrap();
        assert_eq!(untraversable(&b, ids), Some(a.clone()));
        restrict(&a, 0o711).unwrap();
        assert_eq!(untraversable(&b, ids), None);
        assert_eq!(
            std::fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o711
        );
    }
}
