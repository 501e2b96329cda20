//! The audit log's shell: the hub's signing key in its data dir, and the recorder task that
//! appends entries (in batches, one transaction each) and signs checkpoints as
//! `suanli_audit::Log` says they are due. What an entry holds is decided in `api::access`,
//! the one place every request passes; what is hashed and how is `suanli_audit`'s.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use suanli_audit::{CheckpointPolicy, Draft, Log, PublicKey, Signer};
use suanli_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::error::{HubError, HubResult};

/// A hub's Ed25519 secret key. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey([u8; 32]);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.signer().public().id())
    }
}

impl AuditKey {
    /// A new key from the OS's random source.
    pub fn generate() -> AuditKey {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).expect("the OS random source works");
        AuditKey(b)
    }

    pub fn signer(&self) -> Signer {
        Signer::from_secret(self.0)
    }

    /// The key in `path` (hex of its 32 bytes), created (mode 0600, never overwritten) if
    /// missing; `true` if it was created.
    pub fn load_or_create(path: &Path) -> std::io::Result<(AuditKey, bool)> {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::read_to_string(path) {
            Ok(s) => {
                let b = suanli_audit::from_hex::<32>(s.trim()).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not an audit key: {e}", path.display()),
                    )
                })?;
                Ok((AuditKey(b), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let key = AuditKey::generate();
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                writeln!(f, "{}", suanli_audit::to_hex(&key.0))?;
                f.sync_all()?;
                Ok((key, true))
            }
            Err(e) => Err(e),
        }
    }
}

/// How the hub audits: its key (a fresh one per start if none is given: tests) and how often
/// it signs checkpoints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditConfig {
    pub key: Option<AuditKey>,
    pub policy: CheckpointPolicy,
    /// Records nothing: only for the benchmark that measures what auditing costs (no command
    /// of the hub sets it).
    pub off: bool,
}

/// Drafts waiting for the recorder, at most.
const QUEUE: usize = 4096;
/// Entries in one append, at most.
const BATCH: usize = 512;
/// How long the recorder waits for more entries to append in the same transaction.
const LINGER: Duration = Duration::from_millis(10);
/// How often the recorder looks whether a checkpoint is due.
const TICK: Duration = Duration::from_millis(250);

/// An entry to append, or a flush: answered once everything queued before it is stored.
struct Job {
    draft: Option<Draft>,
    done: Option<oneshot::Sender<()>>,
}

/// The handle requests record through.
#[derive(Clone)]
pub struct Auditor {
    /// `None` when auditing is off ([`AuditConfig::off`]).
    tx: Option<mpsc::Sender<Job>>,
    public: PublicKey,
}

impl Auditor {
    /// Loads the log's state from `store`, records the key and starts the recorder.
    pub async fn start(store: Arc<dyn Store>, cfg: &AuditConfig) -> HubResult<Auditor> {
        let key = cfg.key.clone().unwrap_or_else(AuditKey::generate);
        let signer = key.signer();
        let public = signer.public();
        if cfg.off {
            tracing::warn!("auditing is off: nothing is recorded (a benchmark's setting)");
            return Ok(Auditor { tx: None, public });
        }
        store.add_audit_key(&public, crate::engine::now()).await?;
        let log = load(store.as_ref()).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(record_loop(store, signer, cfg.policy, log, rx));
        Ok(Auditor {
            tx: Some(tx),
            public,
        })
    }

    /// This hub's signing key.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// Queues `draft` for the recorder, which appends it within milliseconds (with whatever
    /// else is queued, in one transaction); waits only while the queue is full. Readers of the
    /// log [`flush`](Self::flush) first, so they see every entry recorded before they asked.
    pub async fn record(&self, draft: Draft) {
        let Some(tx) = &self.tx else { return };
        let job = Job {
            draft: Some(draft),
            done: None,
        };
        if tx.send(job).await.is_err() {
            tracing::error!("the audit recorder has stopped; an entry is lost");
        }
    }

    /// Waits until every entry queued before this call is stored (or the recorder gave up on
    /// it, which it logs).
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        let job = Job {
            draft: None,
            done: Some(done),
        };
        if tx.send(job).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn load(store: &dyn Store) -> HubResult<Log> {
    let leaves = store.audit_leaves().await?;
    let checkpoints = store.audit_checkpoints().await?;
    let last = checkpoints.iter().max_by_key(|c| (c.time, c.size));
    Ok(Log::from_leaves(&leaves, last))
}

async fn record_loop(
    store: Arc<dyn Store>,
    signer: Signer,
    policy: CheckpointPolicy,
    mut log: Log,
    mut rx: mpsc::Receiver<Job>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            job = rx.recv() => {
                let Some(job) = job else { break };
                // Entries arriving within LINGER share one commit (fewer fsyncs beside the
                // engine's own); a flush is answered without lingering.
                let deadline = tokio::time::Instant::now() + LINGER;
                let mut flush = job.done.is_some();
                let mut jobs = vec![job];
                while jobs.len() < BATCH && !flush {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(j)) => {
                            flush = j.done.is_some();
                            jobs.push(j);
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                append(store.as_ref(), &mut log, jobs).await;
            }
            _ = tick.tick() => {
                let now = crate::engine::now().0;
                if log.checkpoint_due(now, &policy) {
                    let c = log.checkpoint(&signer, now);
                    match store.append_checkpoint(&c).await {
                        Ok(()) => log.checkpointed(&c),
                        Err(e) => tracing::error!(error = %e, "cannot store an audit checkpoint"),
                    }
                }
            }
        }
    }
}

/// Appends the jobs' entries in one transaction; if another hub appended first (a shared
/// store), reloads the log and tries once more.
async fn append(store: &dyn Store, log: &mut Log, jobs: Vec<Job>) {
    let mut drafts = Vec::with_capacity(jobs.len());
    let mut dones = Vec::new();
    for j in jobs {
        drafts.extend(j.draft);
        dones.extend(j.done);
    }
    for attempt in 0..2 {
        let mut next = log.clone();
        let mut records = Vec::with_capacity(drafts.len());
        for d in &drafts {
            let r = next.prepare(d.clone());
            if let Err(e) = next.apply(&r) {
                tracing::error!(error = %e, "audit log state is inconsistent");
                break;
            }
            records.push(r);
        }
        match store.append_audit(&records).await {
            Ok(()) => {
                *log = next;
                break;
            }
            Err(StoreError::Exists(_)) if attempt == 0 => match load(store).await {
                Ok(fresh) => *log = fresh,
                Err(e) => {
                    tracing::error!(error = %e, "cannot reload the audit log");
                    break;
                }
            },
            Err(e) => {
                let e = HubError::from(e);
                tracing::error!(error = %e, entries = records.len(), "cannot store audit entries");
                break;
            }
        }
    }
    for d in dones {
        let _ = d.send(());
    }
}

/// The request id header: made by the hub for every request (a client's is ignored) and sent
/// back on the response.
pub const REQUEST_ID: &str = "x-request-id";

/// Whether a response status is a refusal the log records as denied.
pub fn is_denial(status: u16) -> bool {
    matches!(status, 401 | 403 | 429)
}

/// A request extension: the request's id, as its audit entry records it.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// A response extension: this read is sensitive (another tenant's logs or env values, read with
/// a reason, which the entry's target carries), so it is recorded like a write.
#[derive(Clone, Copy, Debug)]
pub struct SensitiveRead;

/// A response extension saying the handler refused the request (why: its code and reason), so
/// that its entry is recorded as denied although the status is not 401, 403 or 429.
#[derive(Clone, Debug)]
pub struct Refusal(pub String);

/// What the audit knows of a request as it passes: its id, source, action, target and digest.
pub struct Seen {
    write: bool,
    action: String,
    target: String,
    source: String,
    request_id: String,
    digest: sha2::Sha256,
    why: Option<String>,
}

impl Seen {
    pub fn of(req: &axum::extract::Request, peer: Option<std::net::SocketAddr>) -> Seen {
        use sha2::Digest as _;
        let method = req.method().as_str().to_string();
        let write = !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS");
        let route = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string());
        let target = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
        // Always the hub's own: a bill line names the request of its site report by this id,
        // so no client may choose it (a site could point its line at another's report).
        let request_id = new_request_id();
        let mut digest = sha2::Sha256::new();
        digest.update(method.as_bytes());
        digest.update(b" ");
        digest.update(target.as_bytes());
        digest.update(b"\n");
        Seen {
            write,
            action: format!("{method} {route}"),
            target: shorten(target),
            source: peer.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
            request_id,
            digest,
            why: None,
        }
    }

    pub fn request_id(&self) -> RequestId {
        RequestId(self.request_id.clone())
    }

    pub fn is_write(&self) -> bool {
        self.write
    }

    /// The body, digested after the method and target.
    pub fn body(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        self.digest.update(bytes);
    }

    /// The access rule refused the request: why (its code and message).
    pub fn refused(&mut self, e: &HubError) {
        let api = e.to_api();
        let code = serde_json::to_value(api.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "refused".into());
        self.why = Some(format!("{code}: {}", api.message));
    }

    /// The handler refused the request (see [`Refusal`]).
    pub fn refused_by_handler(&mut self, resp: &axum::response::Response) {
        if let Some(r) = resp.extensions().get::<Refusal>() {
            self.why = Some(r.0.clone());
        }
    }

    /// The entry of this request, answered with `status`, made by `principal` if known.
    pub fn draft(&self, principal: Option<&suanli_store::Principal>, status: u16) -> Draft {
        use sha2::Digest as _;
        let outcome = match (is_denial(status), &self.why) {
            (_, Some(why)) => suanli_audit::Outcome::Denied {
                status,
                why: why.clone(),
            },
            (true, None) => suanli_audit::Outcome::Denied {
                status,
                why: match status {
                    401 => "unauthenticated",
                    403 => "forbidden",
                    _ => "rate_limited",
                }
                .into(),
            },
            (false, None) => suanli_audit::Outcome::Allowed { status },
        };
        Draft {
            time: crate::engine::now().0,
            principal: principal.map_or_else(|| "anonymous".to_string(), |p| p.id.to_string()),
            role: principal.map(|p| p.role.as_str().to_string()),
            tenant: principal.and_then(|p| p.tenant.as_ref().map(|t| t.as_str().to_string())),
            source: self.source.clone(),
            request_id: self.request_id.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            outcome,
            request_digest: suanli_audit::Hash(self.digest.clone().finalize().into()),
        }
    }
}

/// The longest target an entry keeps (the digest covers the whole of it): an unauthenticated
/// caller's refusals are recorded too, and must not fill the log with 60 KiB URLs.
pub const MAX_TARGET_BYTES: usize = 512;

/// `target` cut at [`MAX_TARGET_BYTES`] (on a character boundary), marked when cut.
fn shorten(mut target: String) -> String {
    if target.len() > MAX_TARGET_BYTES {
        let mut end = MAX_TARGET_BYTES;
        while !target.is_char_boundary(end) {
            end -= 1;
        }
        target.truncate(end);
        target.push_str("...(cut)");
    }
    target
}

fn new_request_id() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random source works");
    suanli_audit::to_hex(&b)
}

/// `resp` with the request's id.
pub fn with_request_id(
    mut resp: axum::response::Response,
    seen: &Seen,
) -> axum::response::Response {
    if let Ok(v) = axum::http::HeaderValue::from_str(&seen.request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An anonymous caller sends refused requests with huge URLs: each entry keeps at most
    /// 512 bytes of the target, while the digest still covers all of it.
    #[test]
    fn a_huge_target_is_cut_in_the_entry_but_digested_whole() {
        let long = format!("/v1/jobs?x={}", "%C3%A9".repeat(5_000));
        let req = |t: &str| {
            axum::extract::Request::builder()
                .uri(t)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let a = Seen::of(&req(&long), None);
        assert!(a.target.len() <= MAX_TARGET_BYTES + 8, "{}", a.target.len());
        assert!(a.target.ends_with("...(cut)"));
        let b = Seen::of(&req(&format!("{long}y")), None);
        assert_eq!(a.target, b.target);
        let digest = |s: Seen| s.draft(None, 401).request_digest;
        assert_ne!(digest(a), digest(b), "the digest is over the whole target");
        let short = Seen::of(&req("/v1/jobs"), None);
        assert_eq!(short.target, "/v1/jobs");
    }

    #[test]
    fn the_key_file_is_created_once_owner_only_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("audit-key");
        let (a, created) = AuditKey::load_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, created) = AuditKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a, b);
        assert!(!format!("{a:?}").contains(&suanli_audit::to_hex(&a.0)));
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(AuditKey::load_or_create(&path).is_err());
    }
}
