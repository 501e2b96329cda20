//! A job's checkpoint at the site: the folder its spec names (`checkpoint = "ckpt"`, in
//! `SUANLI_CHECKPOINT_DIR`) is saved while the attempt runs (every `checkpoint_every`) and when
//! it ends, and a later attempt of the job (requeued, preempted) starts with the last one saved.
//! Saved means uploaded to the hub as the attempt's outputs, except for jobs on sensitive data:
//! those checkpoints stay at the center, in the agent's own folder (`.suanli-checkpoints/JOB`),
//! and only an attempt at the same center can resume from them. Files are read as outputs are
//! (never through a link), and only those changed since the last save go again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use suanli_client::Client;
use suanli_proto::AttemptRef;
use suanli_types::spec::outputs::OutputMatcher;

use crate::outputs::{OutputCaps, read, select, sha256_hex};

/// The agent's folder for the checkpoints that stay at the center.
pub const KEPT_DIR: &str = ".suanli-checkpoints";

/// Saves one attempt's checkpoint folder.
pub struct Saver {
    client: std::sync::Arc<Client>,
    r: AttemptRef,
    dir: PathBuf,
    matcher: Option<OutputMatcher>,
    /// Where a checkpoint that stays at the center goes (sensitive data).
    kept: Option<PathBuf>,
    caps: OutputCaps,
    /// The hash of each file as last saved, and what told it apart then (size, inode,
    /// modification time).
    sent: BTreeMap<String, (String, (u64, u64, i64))>,
}

/// `{work_dir}/.suanli-checkpoints/{job}`.
pub fn kept_dir(work_dir: &Path, job: suanli_types::JobId) -> PathBuf {
    work_dir.join(KEPT_DIR).join(job.to_string())
}

impl Saver {
    pub fn new(
        client: std::sync::Arc<Client>,
        r: AttemptRef,
        dir: PathBuf,
        folder: &str,
        kept: Option<PathBuf>,
        caps: OutputCaps,
    ) -> Saver {
        Saver {
            client,
            r,
            dir,
            matcher: OutputMatcher::under(folder).ok(),
            kept,
            caps,
            sent: BTreeMap::new(),
        }
    }

    /// Saves the files changed since the last save; how many went. A periodic save (`full`
    /// false) reads only files whose size, inode or modification time changed; the last one,
    /// at the attempt's end, reads and hashes every file.
    pub async fn save(&mut self, full: bool) -> usize {
        let Some(m) = self.matcher.clone() else {
            return 0;
        };
        let (dir, caps) = (self.dir.clone(), self.caps);
        let found = tokio::task::spawn_blocking(move || select(&dir, &m, &caps))
            .await
            .map(|s| s.files)
            .unwrap_or_default();
        let mut saved = 0;
        for f in found {
            if !full
                && self
                    .sent
                    .get(&f.rel)
                    .is_some_and(|(_, stamp)| *stamp == f.stamp())
            {
                continue;
            }
            let dir = self.dir.clone();
            let file = f.clone();
            let Ok(Ok(data)) = tokio::task::spawn_blocking(move || read(&dir, &file)).await else {
                continue;
            };
            let sha = sha256_hex(&data);
            if self.sent.get(&f.rel).is_some_and(|(sent, _)| *sent == sha) {
                continue;
            }
            let ok = match &self.kept {
                Some(kept) => keep(kept, &f.rel, &data).is_ok(),
                None => self
                    .client
                    .upload_output(self.r.job, self.r.attempt, &f.rel, &sha, &data)
                    .await
                    .map_err(|e| tracing::debug!(error = %e, path = %f.rel, "checkpoint not saved"))
                    .is_ok(),
            };
            if ok {
                let stamp = f.stamp();
                self.sent.insert(f.rel, (sha, stamp));
                saved += 1;
            }
        }
        saved
    }
}

/// Writes one file of a checkpoint that stays at the center (replacing the older copy).
fn keep(kept: &Path, rel: &str, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let to = kept.join(rel);
    if let Some(parent) = to.parent() {
        // The agent's own, like its work folder: no job user reads another job's checkpoint.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let tmp = to.with_extension("suanli-part");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(data)?;
    std::fs::rename(tmp, to)
}

/// The files of the last checkpoint of `r.job` to start attempt `r` with: from the hub, or for
/// sensitive data from `kept` (what an earlier attempt at this center saved).
pub async fn fetch(
    client: &Client,
    r: AttemptRef,
    folder: &str,
    kept: Option<&Path>,
) -> Vec<(String, Vec<u8>)> {
    if r.attempt <= 1 {
        return Vec::new();
    }
    if let Some(kept) = kept {
        let (kept, folder) = (kept.to_path_buf(), folder.to_string());
        return tokio::task::spawn_blocking(move || {
            let Ok(m) = OutputMatcher::under(&folder) else {
                return Vec::new();
            };
            let s = select(&kept, &m, &OutputCaps::default());
            s.files
                .iter()
                .filter_map(|f| read(&kept, f).ok().map(|d| (f.rel.clone(), d)))
                .collect()
        })
        .await
        .unwrap_or_default();
    }
    let Ok(list) = client.site_checkpoint(r.job).await else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for o in list.outputs {
        match client.site_checkpoint_file(r.job, &o.path).await {
            Ok(data) if sha256_hex(&data) == o.sha256 => files.push((o.path, data)),
            Ok(_) => {
                tracing::warn!(path = %o.path, "a checkpoint file changed in transit; left out")
            }
            Err(e) => tracing::warn!(error = %e, path = %o.path, "cannot fetch a checkpoint file"),
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A periodic save reads only files changed since the last (here into the kept folder, as
    /// for sensitive data); the last save at the end compares every file's hash.
    #[tokio::test]
    async fn a_save_takes_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let kept = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ckpt")).unwrap();
        std::fs::write(dir.path().join("ckpt/step"), b"1").unwrap();
        std::fs::write(dir.path().join("ckpt/model"), b"weights").unwrap();
        let client = std::sync::Arc::new(Client::new(vec!["http://127.0.0.1:9".into()], "t"));
        let r = AttemptRef {
            job: suanli_types::JobId(3),
            attempt: 1,
        };
        let mut s = Saver::new(
            client,
            r,
            dir.path().to_path_buf(),
            "ckpt",
            Some(kept.path().to_path_buf()),
            OutputCaps::default(),
        );
        assert_eq!(s.save(false).await, 2);
        assert_eq!(s.save(false).await, 0, "nothing changed");
        // Another content (and so another size and time): saved again; the model is not.
        std::fs::write(dir.path().join("ckpt/step"), b"22").unwrap();
        assert_eq!(s.save(false).await, 1);
        assert_eq!(std::fs::read(kept.path().join("ckpt/step")).unwrap(), b"22");
        assert_eq!(s.save(true).await, 0, "the same hashes");
    }

    #[test]
    fn a_kept_checkpoint_replaces_its_older_copy() {
        let d = tempfile::tempdir().unwrap();
        keep(d.path(), "ckpt/step", b"3").unwrap();
        keep(d.path(), "ckpt/step", b"7").unwrap();
        assert_eq!(std::fs::read(d.path().join("ckpt/step")).unwrap(), b"7");
        assert_eq!(std::fs::read_dir(d.path().join("ckpt")).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d.path().join("ckpt")), 0o700);
        assert_eq!(mode(&d.path().join("ckpt/step")), 0o600);
    }
}
