//! The model library's shell (docs/MODELS.md): when a certification's benchmark job has ended,
//! read its standard output (streamed through SHA-256, the tail kept for the result line), let
//! `suanli_models::judge` decide the outcome, and record it. Runs every second, and before a
//! model's certifications are listed, so a waiting client sees the outcome as soon as the job
//! has ended and its log has arrived.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use suanli_core::Certified;
use suanli_models::{Certification, JobEnd, judge};
use suanli_store::{LogStream, ModelRecord, Store, StoreError};
use suanli_types::{JobState, TenantId, Timestamp};

use crate::error::HubResult;

/// How much of the end of the output is kept to find the result line in.
const TAIL_BYTES: usize = 2 * suanli_models::MAX_RESULT_LINE + 2;
/// How long after an attempt's end its missing log chunks are waited for.
const LOG_GRACE_MS: i64 = 30_000;

/// How a job names a model once the hub has resolved it: `name@revision`.
pub fn model_ref(m: &ModelRecord) -> String {
    format!("{}@{}", m.spec.name, m.spec.revision)
}

/// The model a job names (`name@revision`, or `name`: its newest revision) among those
/// `tenant` may see (every model: `None`, the operator); `None` if there is none.
pub async fn resolve(
    store: &dyn Store,
    tenant: Option<&TenantId>,
    named: &str,
) -> HubResult<Option<ModelRecord>> {
    let (name, revision) = match named.split_once('@') {
        Some((n, r)) => (n, Some(r)),
        None => (named, None),
    };
    Ok(store
        .models()
        .await?
        .into_iter()
        .filter(|m| m.spec.name == name && revision.is_none_or(|r| m.spec.revision == r))
        .filter(|m| tenant.is_none_or(|t| m.owner.as_ref().is_none_or(|o| o == t)))
        .max_by_key(|m| (m.published_at, m.id)))
}

/// Where a model's records certify it (accepted, functional OK): the chip SKU, stack and stack
/// version each was measured with, and its speed against the model's `reference` throughput
/// (the newest record of each chip and version), as the core places by.
pub fn certified(certs: &[Certification], reference: Option<f64>) -> Vec<Certified> {
    let mut newest: BTreeMap<(String, String, String), &Certification> = BTreeMap::new();
    for c in certs
        .iter()
        .filter(|c| c.certifies(Some(&c.request.stack_version)))
    {
        let r = &c.request;
        let key = (r.sku.clone(), r.stack.clone(), r.stack_version.clone());
        let e = newest.entry(key).or_insert(c);
        if c.id > e.id {
            *e = c;
        }
    }
    newest
        .into_iter()
        .map(|((sku, stack, version), c)| Certified {
            sku,
            stack,
            version,
            speed_milli: speed_milli(c, reference),
        })
        .collect()
}

/// The record's throughput against `reference`, in thousandths (at least 1).
fn speed_milli(c: &Certification, reference: Option<f64>) -> Option<u64> {
    let measured = c.outcome.as_ref()?.0.throughput?;
    let reference = reference.filter(|r| r.is_finite() && *r > 0.0)?;
    let ratio = measured / reference * 1000.0;
    (ratio.is_finite() && ratio > 0.0).then(|| (ratio.round() as u64).clamp(1, 1_000_000_000))
}

/// Where `model` is certified, read from the store.
pub async fn certified_of(store: &dyn Store, model: &ModelRecord) -> HubResult<Vec<Certified>> {
    Ok(certified(
        &store.certifications(Some(model.id)).await?,
        model.spec.reference_throughput,
    ))
}

/// Every model's certified places, by `name@revision` (for the engine's start).
pub async fn all_certified(store: &dyn Store) -> HubResult<BTreeMap<String, Vec<Certified>>> {
    let certs = store.certifications(None).await?;
    let mut out = BTreeMap::new();
    for m in store.models().await? {
        let mine: Vec<Certification> = certs
            .iter()
            .filter(|c| c.request.model == m.id)
            .cloned()
            .collect();
        out.insert(model_ref(&m), certified(&mine, m.spec.reference_throughput));
    }
    Ok(out)
}

/// Records the outcome of every running certification whose job has ended; how many.
pub async fn settle(store: &dyn Store, now: Timestamp) -> HubResult<usize> {
    let running: Vec<Certification> = store
        .certifications(None)
        .await?
        .into_iter()
        .filter(|c| c.outcome.is_none())
        .collect();
    let mut models = BTreeMap::new();
    let mut settled = 0;
    for c in running {
        let Some(job) = store.job(c.request.job).await? else {
            continue;
        };
        if !job.state.is_terminal() {
            continue;
        }
        let attempt = store
            .attempts(job.id)
            .await?
            .into_iter()
            .find(|a| a.attempt == job.attempt);
        let (hash, tail, complete) = read_stdout(store, &job, attempt.as_ref()).await?;
        let ended = attempt.as_ref().and_then(|a| a.ended_at).or(job.ended_at);
        if !complete && ended.is_some_and(|e| now.millis_since(e) < LOG_GRACE_MS) {
            continue;
        }
        let model = match models.entry(c.request.model) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let Some(m) = store.model(c.request.model).await? else {
                    continue;
                };
                e.insert(m)
            }
        };
        let detail = match (&job.reason, job.exit_code) {
            (Some(r), _) => format!("{}: {r}", job.state.as_str()),
            (None, Some(code)) => format!("{} with exit code {code}", job.state.as_str()),
            (None, None) => job.state.as_str().to_string(),
        };
        let end = JobEnd {
            succeeded: job.state == JobState::Succeeded,
            detail,
            center: job.center.as_ref(),
            stdout: &tail,
            log_sha256: hash,
        };
        let outcome = judge(&model.spec, &c.request, &end);
        let Ok(outcome) = c.conclude(outcome) else {
            continue;
        };
        match store.record_cert_outcome(c.id, &outcome, now).await {
            Ok(_) => {
                settled += 1;
                tracing::info!(
                    certification = c.id,
                    job = %job.id,
                    functional = outcome.statuses.functional.as_str(),
                    "certification measured"
                );
            }
            // Another hub (or an earlier call) recorded it first.
            Err(StoreError::Exists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(settled)
}

/// The SHA-256 of the attempt's whole standard output, its last [`TAIL_BYTES`], and whether
/// every chunk the site reported has arrived.
async fn read_stdout(
    store: &dyn Store,
    job: &suanli_store::JobRecord,
    attempt: Option<&suanli_store::AttemptRecord>,
) -> HubResult<(String, String, bool)> {
    let mut hash = Sha256::new();
    let mut tail = String::new();
    let mut from = 0;
    let mut seen = 0u64;
    loop {
        let rows = store.logs(job.id, job.attempt, from, 1000).await?;
        let Some(last) = rows.last() else { break };
        from = last.seq + 1;
        seen += rows.len() as u64;
        for r in rows.iter().filter(|r| r.stream == LogStream::Stdout) {
            hash.update(r.data.as_bytes());
            tail.push_str(&r.data);
            if tail.len() > 2 * TAIL_BYTES {
                let mut cut = tail.len() - TAIL_BYTES;
                while !tail.is_char_boundary(cut) {
                    cut += 1;
                }
                tail.drain(..cut);
            }
        }
    }
    let complete = attempt.and_then(|a| a.log_chunks).is_none_or(|n| seen >= n);
    let hex = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, tail, complete))
}

/// Settles certifications every second until `stop`.
pub fn spawn(store: std::sync::Arc<dyn Store>, mut stop: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = settle(store.as_ref(), crate::engine::now()).await {
                        tracing::warn!(error = %e, "settling certifications failed");
                    }
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
    });
}
