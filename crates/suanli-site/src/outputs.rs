//! A job's outputs at the site: when an attempt ends, the regular files of its folder that the
//! spec's `outputs` patterns match are uploaded to the hub, before the attempt's end is reported
//! (so a finished job's outputs are there when it shows as ended).
//!
//! The folder is the job's, so it is read as hostile: the walk never follows a symbolic link and
//! takes regular files only; each file is opened without following a link and must still be the
//! file the walk saw (same device and inode), so nothing outside the folder is ever read. The
//! site's caps (files and bytes per attempt, entries walked) bound what one job can make the agent
//! read; what is over them, or refused by the hub (its per-file cap, the tenant's quota), is not
//! kept and the job's log says so, by name.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use suanli_client::Client;
use suanli_proto::{AttemptRef, ErrorCode, Stream};
use suanli_types::size::human as bytes;
use suanli_types::spec::outputs::OutputMatcher;

use crate::logs::LogSink;

/// What one attempt may leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputCaps {
    pub max_files: usize,
    pub max_bytes: u64,
    /// The largest single file read (the hub's cap on a file is 64 MiB by default).
    pub max_file_bytes: u64,
}

impl Default for OutputCaps {
    /// 1,000 files and 1 GiB per attempt.
    fn default() -> OutputCaps {
        OutputCaps {
            max_files: 1000,
            max_bytes: 1 << 30,
            max_file_bytes: 64 << 20,
        }
    }
}

/// The most folder entries one attempt's walk looks at: a job that made millions of files does
/// not hold its agent for long.
pub const MAX_WALKED: usize = 100_000;

/// A file the walk found and the patterns select.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Relative to the attempt folder, `/`-separated.
    pub rel: String,
    pub size: u64,
    dev: u64,
    ino: u64,
    /// Its modification time, in nanoseconds: with size and inode, how a saver tells a file
    /// unchanged since its last save without reading it.
    mtime_ns: i64,
}

impl Found {
    /// What tells this file changed: size, inode and modification time.
    pub fn stamp(&self) -> (u64, u64, i64) {
        (self.size, self.ino, self.mtime_ns)
    }
}

/// What the walk selected: within the caps, and over them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub files: Vec<Found>,
    pub over: Vec<Found>,
    /// The walk stopped at [`MAX_WALKED`] entries.
    pub truncated: bool,
}

/// The files of `dir` that `m` selects, in path order, the first ones within `caps`.
pub fn select(dir: &Path, m: &OutputMatcher, caps: &OutputCaps) -> Selection {
    let mut found = Vec::new();
    let mut walked = 0usize;
    let mut truncated = false;
    let mut folders: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    'walk: while let Some((abs, rel)) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&abs) else {
            continue;
        };
        for e in entries.flatten() {
            walked += 1;
            if walked > MAX_WALKED {
                truncated = true;
                break 'walk;
            }
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let path = match rel.is_empty() {
                true => name,
                false => format!("{rel}/{name}"),
            };
            // The entry itself, never what a link points to.
            let Ok(meta) = e.metadata() else { continue };
            let kind = meta.file_type();
            if kind.is_dir() {
                folders.push((e.path(), path));
            } else if kind.is_file() && m.matches(&path) {
                found.push(Found {
                    rel: path,
                    size: meta.len(),
                    dev: meta.dev(),
                    ino: meta.ino(),
                    mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
                });
            }
        }
    }
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    let mut s = Selection {
        truncated,
        ..Selection::default()
    };
    let mut bytes = 0u64;
    for f in found {
        let fits = s.files.len() < caps.max_files
            && f.size <= caps.max_file_bytes
            && bytes.saturating_add(f.size) <= caps.max_bytes;
        if fits {
            bytes += f.size;
            s.files.push(f);
        } else {
            s.over.push(f);
        }
    }
    s
}

/// The content of `f` in `dir`: opened without following a link, and only if it is still the
/// regular file the walk found; at most its size then.
pub fn read(dir: &Path, f: &Found) -> io::Result<Vec<u8>> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(dir.join(&f.rel))?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() || meta.dev() != f.dev || meta.ino() != f.ino {
        return Err(io::Error::other(
            "it changed after it was found (not the same regular file)",
        ));
    }
    // What was opened is the file at that path inside the folder, reached through no link: a
    // folder on the way swapped for a link while the walk ran leads elsewhere, and is refused.
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    if opened != std::fs::canonicalize(dir)?.join(&f.rel) {
        return Err(io::Error::other(
            "it is not inside the attempt folder (a link on the way)",
        ));
    }
    let mut data = Vec::with_capacity(usize::try_from(f.size).unwrap_or(0).min(1 << 26));
    file.take(f.size).read_to_end(&mut data)?;
    Ok(data)
}

/// The lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How many times an upload that failed for a transient reason is tried.
const UPLOAD_TRIES: u32 = 4;

/// Selects `patterns`' files in `dir`, uploads them for attempt `r`, and writes to the job's log
/// (through `sink`) what was not kept and why. Returns the number of files uploaded.
pub async fn ship(
    client: &Client,
    r: AttemptRef,
    dir: &Path,
    patterns: &[String],
    caps: OutputCaps,
    sink: &mut LogSink,
) -> usize {
    let Ok(m) = OutputMatcher::new(patterns) else {
        // Checked at submit; a spec that does not check here declares nothing.
        return 0;
    };
    if m.is_empty() {
        return 0;
    }
    let (owned, matcher) = (dir.to_path_buf(), m.clone());
    let selection = tokio::task::spawn_blocking(move || select(&owned, &matcher, &caps))
        .await
        .unwrap_or_default();
    let mut notes = Vec::new();
    if selection.truncated {
        notes.push(format!(
            "the attempt folder has more than {MAX_WALKED} entries; files past them were not looked at"
        ));
    }
    if !selection.over.is_empty() {
        notes.push(format!(
            "{} over the site's cap of {} files and {} per attempt ({} per file), not kept: {}",
            files(selection.over.len()),
            caps.max_files,
            bytes(caps.max_bytes),
            bytes(caps.max_file_bytes),
            names(&selection.over)
        ));
    }
    let mut uploaded = 0;
    let mut refused: Vec<(String, String)> = Vec::new();
    for f in selection.files {
        let (owned, file) = (dir.to_path_buf(), f.clone());
        let data = match tokio::task::spawn_blocking(move || read(&owned, &file)).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                refused.push((f.rel, format!("cannot be read: {e}")));
                continue;
            }
            Err(_) => continue,
        };
        let sha = sha256_hex(&data);
        let mut tries = 0;
        let outcome = loop {
            tries += 1;
            match client
                .upload_output(r.job, r.attempt, &f.rel, &sha, &data)
                .await
            {
                Ok(_) => break Ok(()),
                Err(e) if e.is_transient() && tries < UPLOAD_TRIES => {
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(tries))).await;
                }
                Err(e) => break Err(e),
            }
        };
        match outcome {
            Ok(()) => uploaded += 1,
            Err(e) => {
                let stop = matches!(
                    e.code(),
                    Some(ErrorCode::Conflict | ErrorCode::StaleAttempt | ErrorCode::NotFound)
                );
                refused.push((f.rel, e.to_string()));
                // The attempt is over at the hub (lost, or ended): nothing more is taken.
                if stop {
                    break;
                }
            }
        }
    }
    for (path, why) in refused {
        notes.push(format!("{path}: not kept: {why}"));
    }
    if !notes.is_empty() {
        let text: String = notes
            .iter()
            .map(|n| format!("suanli: outputs: {n}\n"))
            .collect();
        sink.emit(Stream::Stderr, text);
    }
    tracing::info!(job = %r.job, attempt = r.attempt, uploaded, "outputs shipped");
    uploaded
}

fn files(n: usize) -> String {
    match n {
        1 => "1 file".into(),
        n => format!("{n} files"),
    }
}

/// `a, b, c and 7 more`.
fn names(found: &[Found]) -> String {
    const SHOWN: usize = 5;
    let mut s = found
        .iter()
        .take(SHOWN)
        .map(|f| format!("{} ({})", f.rel, bytes(f.size)))
        .collect::<Vec<_>>()
        .join(", ");
    if found.len() > SHOWN {
        s.push_str(&format!(" and {} more", found.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(p: &[&str]) -> OutputMatcher {
        OutputMatcher::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn write(dir: &Path, rel: &str, n: usize) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, vec![b'x'; n]).unwrap();
    }

    #[test]
    fn selects_regular_files_in_path_order_within_the_caps() {
        let d = tempfile::tempdir().unwrap();
        for (rel, n) in [("out/b.csv", 10), ("out/a.csv", 20), ("out/x/c.csv", 30)] {
            write(d.path(), rel, n);
        }
        write(d.path(), "out/skip.txt", 5);
        let all = select(
            d.path(),
            &matcher(&["out/**/*.csv"]),
            &OutputCaps::default(),
        );
        let rels: Vec<_> = all.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["out/a.csv", "out/b.csv", "out/x/c.csv"]);
        assert!(all.over.is_empty() && !all.truncated);

        let caps = OutputCaps {
            max_files: 5,
            max_bytes: 35,
            max_file_bytes: 1 << 20,
        };
        let capped = select(d.path(), &matcher(&["out/**/*.csv"]), &caps);
        let rels: Vec<_> = capped.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["out/a.csv", "out/b.csv"], "20 + 10 bytes fit in 35");
        assert_eq!(capped.over.len(), 1);
        let one = OutputCaps {
            max_files: 1,
            max_bytes: 1 << 20,
            max_file_bytes: 1 << 20,
        };
        assert_eq!(
            select(d.path(), &matcher(&["out/**/*.csv"]), &one)
                .files
                .len(),
            1
        );
    }

    #[test]
    fn links_are_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret.csv", 7);
        write(outside.path(), "inner/deep.csv", 7);
        // A link to a file outside, and a link to a folder outside.
        std::os::unix::fs::symlink(outside.path().join("secret.csv"), d.path().join("s.csv"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path().join("inner"), d.path().join("inner")).unwrap();
        write(d.path(), "own.csv", 3);
        let s = select(d.path(), &matcher(&["**/*.csv"]), &OutputCaps::default());
        let rels: Vec<_> = s.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["own.csv"]);
        assert_eq!(read(d.path(), &s.files[0]).unwrap(), b"xxx");

        // A file swapped for a link after the walk is not read.
        std::fs::remove_file(d.path().join("own.csv")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.csv"), d.path().join("own.csv"))
            .unwrap();
        assert!(read(d.path(), &s.files[0]).is_err());
        // Nor one replaced by another file (made while the first exists: another inode).
        std::fs::remove_file(d.path().join("own.csv")).unwrap();
        write(d.path(), "own.csv", 3);
        let s = select(d.path(), &matcher(&["**/*.csv"]), &OutputCaps::default());
        write(d.path(), "new.csv", 3);
        std::fs::rename(d.path().join("new.csv"), d.path().join("own.csv")).unwrap();
        let again = read(d.path(), &s.files[0]);
        assert!(again.is_err(), "{again:?}");
    }

    /// The walk raced: a folder it listed was a link by then (the job swapped it), so what it
    /// found lies outside. Reading it is refused even though it is the file found.
    #[test]
    fn a_file_found_through_a_swapped_folder_is_not_read() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret.csv", 7);
        std::os::unix::fs::symlink(outside.path(), d.path().join("sub")).unwrap();
        let meta = std::fs::metadata(outside.path().join("secret.csv")).unwrap();
        let found = Found {
            rel: "sub/secret.csv".into(),
            size: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: 0,
        };
        let e = read(d.path(), &found).unwrap_err();
        assert!(
            e.to_string().contains("not inside the attempt folder"),
            "{e}"
        );
        // The same file at its own place in a folder reads.
        write(d.path(), "own/ok.csv", 3);
        let meta = std::fs::metadata(d.path().join("own/ok.csv")).unwrap();
        let own = Found {
            rel: "own/ok.csv".into(),
            size: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: 0,
        };
        assert_eq!(read(d.path(), &own).unwrap(), b"xxx");
    }

    #[test]
    fn hashes_are_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
