//! Job outputs at the hub: the files a job's attempts left, uploaded by the site that ran them.
//!
//! The decision on an upload is pure ([`check_upload`]: the attempt is the one the calling center
//! runs, the path is one the job declared, the hash is the body's, the tenant's quota holds). The
//! content is stored once per SHA-256 in an object store (a folder by default, `sha256/ab/abcd..`)
//! and described by rows in the `job_outputs` table; a content is deleted when no row names it.
//! A job keeps only its latest attempt's outputs unless its spec says `keep_failed_outputs`.
//! Rows expire after the retention; [`Outputs::sweep`] deletes them and what they named.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use suanli_store::{OutputRecord, Store};
use suanli_types::record::{AttemptRecord, JobRecord};
use suanli_types::spec::outputs::OutputMatcher;
use suanli_types::{CenterId, Timestamp};

use crate::error::{HubError, HubResult};

/// Where the hub keeps outputs, and how much.
#[derive(Clone, Debug)]
pub struct OutputsConfig {
    /// A folder for the content; `None`: in memory (tests; lost at a restart).
    pub dir: Option<PathBuf>,
    /// The largest file a site may upload, in bytes.
    pub max_file_bytes: usize,
    /// What one tenant's stored outputs may take, in bytes.
    pub tenant_quota_bytes: u64,
    /// How long an output is kept after its upload.
    pub retention: Duration,
    /// How often expired outputs are deleted.
    pub sweep_every: Duration,
}

impl Default for OutputsConfig {
    /// In memory; 64 MiB per file, 10 GiB per tenant, kept 30 days, swept hourly.
    fn default() -> OutputsConfig {
        OutputsConfig {
            dir: None,
            max_file_bytes: 64 << 20,
            tenant_quota_bytes: 10 << 30,
            retention: Duration::from_secs(30 * 86_400),
            sweep_every: Duration::from_secs(3600),
        }
    }
}

/// What a site asks to store.
#[derive(Clone, Debug)]
pub struct Upload<'a> {
    pub center: &'a CenterId,
    pub attempt: u32,
    pub path: &'a str,
    pub sha256: &'a str,
    pub size: u64,
    /// The body's own SHA-256.
    pub body_sha256: &'a str,
}

/// Whether `u` may be stored for `job` (`attempt`: its row, if any), with the tenant holding
/// `stored` bytes of outputs (of which `replaced` would be replaced by this file) under `quota`.
/// A job the calling center does not run is not found; an attempt that has ended, or is not the
/// job's current one, is a conflict.
pub fn check_upload(
    job: &JobRecord,
    attempt: Option<&AttemptRecord>,
    u: &Upload<'_>,
) -> HubResult<()> {
    let runs_here = attempt.is_some_and(|a| &a.center == u.center);
    if !runs_here {
        return Err(HubError::NotFound(format!(
            "attempt {} of job {} at center {}",
            u.attempt, job.id, u.center
        )));
    }
    let live = attempt.is_some_and(|a| a.outcome.is_none());
    if job.attempt != u.attempt || !live {
        return Err(HubError::Conflict(format!(
            "attempt {} of job {} has ended; outputs are taken only from the running attempt \
             (now {})",
            u.attempt, job.id, job.attempt
        )));
    }
    suanli_types::spec::input::check_relative_path(u.path)
        .map_err(|m| suanli_types::SpecError::new("path", m))?;
    let matcher = OutputMatcher::new(&job.spec.outputs)?;
    if !matcher.matches(u.path) && !job.spec.in_checkpoint(u.path) {
        return Err(suanli_types::SpecError::new(
            "path",
            format!(
                "{:?} matches none of the job's output patterns ({})",
                u.path,
                job.spec.outputs.join(", ")
            ),
        )
        .into());
    }
    let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex(u.sha256) {
        return Err(suanli_types::SpecError::new(
            "sha256",
            "must be 64 lowercase hexadecimal digits",
        )
        .into());
    }
    if u.sha256 != u.body_sha256 {
        return Err(suanli_types::SpecError::new(
            "sha256",
            format!(
                "the body's SHA-256 is {}, not {}: the file changed or was cut in transit",
                u.body_sha256, u.sha256
            ),
        )
        .into());
    }
    Ok(())
}

/// Whether `tenant`, storing `stored` bytes of outputs (`replaced` of them by this file), may
/// store `size` more under `quota`.
pub fn check_quota(
    tenant: &suanli_types::TenantId,
    (stored, replaced, size): (u64, u64, u64),
    quota: u64,
) -> HubResult<()> {
    if stored.saturating_sub(replaced).saturating_add(size) > quota {
        return Err(HubError::OverQuota(format!(
            "tenant {tenant} stores {} of outputs; {} more would exceed its quota of {}",
            suanli_types::size::human(stored),
            suanli_types::size::human(size),
            suanli_types::size::human(quota)
        )));
    }
    Ok(())
}

/// The content store and its rows.
#[derive(Clone)]
pub struct Outputs {
    blobs: Arc<dyn ObjectStore>,
    /// A content written and its row recorded, or rows deleted and contents collected, one at
    /// a time: a collection never deletes a content whose row is about to be written.
    lock: Arc<tokio::sync::Mutex<()>>,
    pub config: OutputsConfig,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn key(sha256: &str) -> Key {
    Key::from(format!(
        "sha256/{}/{sha256}",
        &sha256[..2.min(sha256.len())]
    ))
}

fn internal(what: &str, e: impl std::fmt::Display) -> HubError {
    tracing::error!(error = %e, "outputs: {what}");
    HubError::Internal(format!("the hub could not {what}"))
}

impl Outputs {
    /// The store `config` names (its folder created, mode 0700).
    pub fn open(config: OutputsConfig) -> std::io::Result<Outputs> {
        let blobs: Arc<dyn ObjectStore> = match &config.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
                Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(dir)
                        .map_err(std::io::Error::other)?,
                )
            }
            None => Arc::new(object_store::memory::InMemory::new()),
        };
        Ok(Outputs {
            blobs,
            lock: Arc::new(tokio::sync::Mutex::new(())),
            config,
        })
    }

    /// Stores `data` and its row; then, unless the job keeps them, drops the outputs of its
    /// earlier attempts.
    pub async fn put(
        &self,
        store: &dyn Store,
        rec: OutputRecord,
        data: axum::body::Bytes,
        keep_failed: bool,
    ) -> HubResult<()> {
        let _one = self.lock.lock().await;
        let (job, attempt) = (rec.job, rec.attempt);
        // The quota under the lock: uploads in flight at once cannot pass it together.
        let stored = store.tenant_output_bytes(&rec.tenant).await?;
        let same = store
            .outputs(job)
            .await?
            .into_iter()
            .find(|o| o.attempt == attempt && o.path == rec.path);
        let replaced = same.as_ref().map_or(0, |o| o.size);
        check_quota(
            &rec.tenant,
            (stored, replaced, rec.size),
            self.config.tenant_quota_bytes,
        )?;
        self.blobs
            .put(&key(&rec.sha256), PutPayload::from(data))
            .await
            .map_err(|e| internal("store an output", e))?;
        // A file uploaded again with other content: its old content may go.
        let mut gone: Vec<String> = same
            .filter(|o| o.sha256 != rec.sha256)
            .map(|o| o.sha256)
            .into_iter()
            .collect();
        store.put_output(&rec).await?;
        if attempt > 1 && !keep_failed {
            gone.extend(store.delete_outputs_before(job, attempt).await?);
        }
        self.collect(store, gone).await;
        Ok(())
    }

    /// Deletes the output `path` of `job` with content `sha256` (a file the airlock rejected),
    /// and its content if nothing else names it.
    pub async fn delete(
        &self,
        store: &dyn Store,
        job: suanli_types::JobId,
        path: &str,
        sha256: &str,
    ) -> HubResult<()> {
        let _one = self.lock.lock().await;
        let gone = store.delete_output(job, path, sha256).await?;
        self.collect(store, gone).await;
        Ok(())
    }

    /// The content of `sha256`.
    pub async fn get(&self, sha256: &str) -> HubResult<axum::body::Bytes> {
        let got = self
            .blobs
            .get(&key(sha256))
            .await
            .map_err(|e| internal("read an output", e))?;
        got.bytes().await.map_err(|e| internal("read an output", e))
    }

    /// Deletes the outputs expired at `now` and their contents; how many contents went.
    pub async fn sweep(&self, store: &dyn Store, now: Timestamp) -> HubResult<usize> {
        let _one = self.lock.lock().await;
        let gone = store.expire_outputs(now).await?;
        Ok(self.collect(store, gone).await)
    }

    /// Deletes each content of `shas` that no row names any more (the lock held).
    async fn collect(&self, store: &dyn Store, shas: Vec<String>) -> usize {
        let mut deleted = 0;
        for sha in shas {
            match store.output_sha_in_use(&sha).await {
                Ok(false) => match self.blobs.delete(&key(&sha)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                    Err(e) => tracing::warn!(error = %e, %sha, "cannot delete an output"),
                },
                Ok(true) => {}
                Err(e) => tracing::warn!(error = %e, %sha, "cannot check an output's use"),
            }
        }
        deleted
    }
}

/// Runs [`Outputs::sweep`] every `config.sweep_every` until `stop` turns true.
pub async fn sweeper(
    outputs: Outputs,
    store: Arc<dyn Store>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(outputs.config.sweep_every.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = every.tick() => {
                match outputs.sweep(store.as_ref(), crate::engine::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "expired outputs deleted"),
                    Err(e) => tracing::warn!(error = %e, "cannot sweep expired outputs"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use suanli_types::record::AttemptOutcome;
    use suanli_types::{JobId, JobSpec, JobState, TenantId};

    use super::*;

    fn job(attempt: u32) -> JobRecord {
        let mut spec = JobSpec::new("t", "true");
        spec.outputs = vec!["out/*.csv".into()];
        let new = suanli_types::record::NewJob {
            tenant: TenantId::new("acme"),
            submitted_by: "u".into(),
            submitted_by_id: None,
            spec,
            at: Timestamp(0),
            idempotency_key: None,
            held: false,
            array_task: None,
        };
        let mut j = JobRecord::queued(JobId(7), new, None);
        j.state = JobState::Running;
        j.attempt = attempt;
        j
    }

    fn row(attempt: u32, center: &str, ended: bool) -> AttemptRecord {
        AttemptRecord {
            job: JobId(7),
            attempt,
            center: CenterId::new(center),
            sku: "RTX4090".into(),
            cards: 1,
            placed_at: Timestamp(0),
            started_at: Some(Timestamp(1)),
            ended_at: ended.then_some(Timestamp(2)),
            outcome: ended.then_some(AttemptOutcome::Succeeded),
            exit_code: None,
            card_seconds: 0,
            log_chunks: None,
        }
    }

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn upload<'a>(center: &'a CenterId, path: &'a str) -> Upload<'a> {
        Upload {
            center,
            attempt: 2,
            path,
            sha256: SHA,
            size: 100,
            body_sha256: SHA,
        }
    }

    fn code(r: HubResult<()>) -> String {
        match r {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn only_the_running_attempt_at_its_center_uploads_declared_files_within_the_quota() {
        let here = CenterId::new("sz-a");
        let there = CenterId::new("sz-b");
        let j = job(2);
        assert_eq!(
            code(check_upload(
                &j,
                Some(&row(2, "sz-a", false)),
                &upload(&here, "out/a.csv")
            )),
            "ok"
        );
        // Another center, or no attempt row: as if there were no such job.
        assert!(
            code(check_upload(
                &j,
                Some(&row(2, "sz-a", false)),
                &upload(&there, "out/a.csv")
            ))
            .starts_with("not found")
        );
        assert!(code(check_upload(&j, None, &upload(&here, "out/a.csv"))).starts_with("not found"));
        // An ended attempt, or an old one.
        assert!(
            code(check_upload(
                &j,
                Some(&row(2, "sz-a", true)),
                &upload(&here, "out/a.csv")
            ))
            .starts_with("conflict")
        );
        let mut old = upload(&here, "out/a.csv");
        old.attempt = 1;
        assert!(code(check_upload(&j, Some(&row(1, "sz-a", false)), &old)).starts_with("conflict"));
        // Undeclared and unsafe paths.
        let r = code(check_upload(
            &j,
            Some(&row(2, "sz-a", false)),
            &upload(&here, "secret.txt"),
        ));
        assert!(
            r.contains(
                "path: \"secret.txt\" matches none of the job's output patterns (out/*.csv)"
            ),
            "{r}"
        );
        let r = code(check_upload(
            &j,
            Some(&row(2, "sz-a", false)),
            &upload(&here, "out/../x.csv"),
        ));
        assert!(r.contains("path: "), "{r}");
        // A body that is not what was hashed.
        let mut cut = upload(&here, "out/a.csv");
        cut.body_sha256 = "00";
        assert!(
            code(check_upload(&j, Some(&row(2, "sz-a", false)), &cut)).contains("cut in transit")
        );
        // The quota: 950 stored, 100 more is over 1000, unless 60 of them are replaced.
        let acme = TenantId::new("acme");
        let r = code(check_quota(&acme, (950, 0, 100), 1000));
        assert!(r.starts_with("over quota: tenant acme stores 950 B of outputs; 100 B more would exceed its quota of 1000 B"), "{r}");
        assert_eq!(code(check_quota(&acme, (950, 60, 100), 1000)), "ok");
    }
}
