//! The hub's durable state.
//!
//! [`Store`] speaks in domain terms (tenants, tokens, centers, jobs, attempts, logs, and the
//! append-only money records the hub's books are rebuilt from, the engine's input log, and the
//! append-only audit log: entries, signed checkpoints and the hubs' public keys; the
//! statistics' facts and frozen quarterly releases, append-only too; the model library and its
//! certification records, append-only as well; the descriptions of the files jobs leave, whose
//! content is in a blob store outside the database; datasets, their grants and the airlock's
//! release requests). Every write is
//! one transaction that has committed when the future resolves, so the hub can acknowledge after it.
//! [`SqliteStore`] is the embedded default; [`PostgresStore`] keeps the same records in
//! PostgreSQL. The conformance suite (see [`conformance`]) runs against every implementation.

mod model;
mod postgres;
mod rows;
mod shared;
mod sql;
mod sqlite;

pub mod conformance;

use std::future::Future;
use std::pin::Pin;

pub use model::*;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
use suanli_types::{CenterId, CenterSpec, JobId, JobState, SharePolicy, TenantId, Timestamp};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (I/O, corruption, lock timeout).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Schema migration failed at open.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A compare-and-set update found the job in another state or attempt.
    #[error("job {job} is no longer in state {expected_state} attempt {expected_attempt}")]
    Conflict {
        job: JobId,
        expected_state: JobState,
        expected_attempt: u32,
    },
    /// Another hub holds the leadership now: this hub's writes are refused (see [`Store::set_fence`]).
    #[error("fenced: this hub's leadership (epoch {held}) was taken over (epoch {current})")]
    Fenced { held: u64, current: u64 },
    /// The store cannot do this (hub leadership on SQLite).
    #[error("not supported by this store: {0}")]
    Unsupported(&'static str),
    /// A unique name or key is taken.
    #[error("already exists: {0}")]
    Exists(String),
    /// An update found nothing to update: no such record, or one changed since the caller
    /// read it (read it again).
    #[error("not updated: {0}")]
    NotUpdated(String),
    /// A stored row could not be decoded (written by a newer version, or damaged).
    #[error("bad stored data in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

pub type StoreResult<T> = Result<T, StoreError>;
/// A boxed store future, so `dyn Store` works.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'a>>;

/// Durable state, in domain terms. Implementations: SQLite (embedded) and PostgreSQL.
pub trait Store: Send + Sync + 'static {
    /// Creates a tenant; `false` if the id exists already (nothing changes then).
    fn create_tenant<'a>(&'a self, t: &'a TenantRecord, at: Timestamp) -> StoreFuture<'a, bool>;
    fn tenants(&self) -> StoreFuture<'_, Vec<TenantRecord>>;
    fn tenant<'a>(&'a self, id: &'a TenantId) -> StoreFuture<'a, Option<TenantRecord>>;

    /// Stores a token by the hash of its secret; [`StoreError::Exists`] if a token not revoked
    /// has its name in its scope ([`NewToken::scope`]).
    fn insert_token<'a>(
        &'a self,
        hash: &'a str,
        t: &'a NewToken,
        at: Timestamp,
    ) -> StoreFuture<'a, TokenRecord>;
    /// Rotation: in one transaction, revokes as of `retire_at` (now, or the end of a grace) the
    /// tokens of `t`'s scope not revoked by then (with `same_name`, only those named like `t`),
    /// and stores `t`.
    fn rotate_token<'a>(
        &'a self,
        hash: &'a str,
        t: &'a NewToken,
        at: Timestamp,
        retire_at: Timestamp,
        same_name: bool,
    ) -> StoreFuture<'a, TokenRecord>;
    /// Revokes a token as of `at` (a token revoked earlier keeps its time) and bumps the
    /// [generation](Store::token_generation); the token as it stands, `None` if no such token.
    fn revoke_token(&self, id: i64, at: Timestamp) -> StoreFuture<'_, Option<TokenRecord>>;
    /// The token whose secret hashes to `hash`, valid or not.
    fn token<'a>(&'a self, hash: &'a str) -> StoreFuture<'a, Option<TokenRecord>>;
    fn token_by_id(&self, id: i64) -> StoreFuture<'_, Option<TokenRecord>>;
    /// Tokens by id, without secrets.
    fn tokens<'a>(&'a self, filter: &'a TokenFilter) -> StoreFuture<'a, Vec<TokenRecord>>;
    /// Grows with every revocation and rotation: a hub that cached principals drops them when
    /// it changed.
    fn token_generation(&self) -> StoreFuture<'_, u64>;
    /// Records that a token was used at `at`.
    fn touch_token(&self, id: i64, at: Timestamp) -> StoreFuture<'_, ()>;
    /// Whether a token of this role is valid at `at` (used to bootstrap the first operator token).
    fn has_live_token_with_role(
        &self,
        role: suanli_types::Role,
        at: Timestamp,
    ) -> StoreFuture<'_, bool>;

    /// Registers or replaces a center; `true` if it is new.
    fn upsert_center<'a>(&'a self, spec: &'a CenterSpec, at: Timestamp) -> StoreFuture<'a, bool>;
    fn centers(&self) -> StoreFuture<'_, Vec<CenterSpec>>;

    /// Records a new job as queued (with `submitted` and `queued` events) and allocates its id.
    fn insert_job(&self, new: NewJob) -> StoreFuture<'_, JobRecord>;
    /// Records the tasks of an array (each `array_task` set) as queued jobs, in one transaction:
    /// the first task's id is the array's id.
    fn insert_array(&self, tasks: Vec<NewJob>) -> StoreFuture<'_, Vec<JobRecord>>;
    /// Writes `job` if the stored row is still in `expect_state` and `expect_attempt`; appends
    /// `event`, upserts `attempt` and appends the `money` records (an attempt's bill line) in the
    /// same transaction.
    fn update_job<'a>(
        &'a self,
        job: &'a JobRecord,
        expect_state: JobState,
        expect_attempt: u32,
        event: Option<&'a JobEvent>,
        attempt: Option<&'a AttemptRecord>,
        money: &'a [String],
    ) -> StoreFuture<'a, ()>;
    fn job(&self, id: JobId) -> StoreFuture<'_, Option<JobRecord>>;
    /// The job `tenant` submitted with this idempotency key, if any. (Inserting a second job with
    /// the same tenant and key fails: the key is unique per tenant.)
    fn job_by_idempotency_key<'a>(
        &'a self,
        tenant: &'a TenantId,
        key: &'a str,
    ) -> StoreFuture<'a, Option<JobRecord>>;
    /// Jobs by ascending id after `filter.after`, at most `filter.limit`.
    fn jobs<'a>(&'a self, filter: &'a JobFilter) -> StoreFuture<'a, Vec<JobRecord>>;
    /// Queued, placed and running jobs, and cancelled jobs whose attempt still holds a lease (the
    /// site has not confirmed the stop), by ascending id: what a restarted hub rebuilds from.
    fn unfinished_jobs(&self) -> StoreFuture<'_, Vec<JobRecord>>;
    fn job_events(&self, id: JobId) -> StoreFuture<'_, Vec<JobEvent>>;
    fn attempts(&self, id: JobId) -> StoreFuture<'_, Vec<AttemptRecord>>;
    fn count_jobs_by_state(&self) -> StoreFuture<'_, Vec<(JobState, u64)>>;

    /// Appends log chunks; a chunk whose (job, attempt, seq) exists is ignored (retries are harmless).
    fn append_logs<'a>(
        &'a self,
        job: JobId,
        attempt: u32,
        rows: &'a [LogRow],
    ) -> StoreFuture<'a, ()>;
    /// Chunks with `seq >= from`, at most `limit`, by seq.
    fn logs(&self, job: JobId, attempt: u32, from: u64, limit: u32)
    -> StoreFuture<'_, Vec<LogRow>>;

    /// Sets a tenant's fair-share weight and quotas; `false` if no such tenant.
    fn set_tenant_policy<'a>(
        &'a self,
        id: &'a TenantId,
        policy: &'a SharePolicy,
    ) -> StoreFuture<'a, bool>;
    /// Every tenant's policy that has been set, by tenant id.
    fn tenant_policies(&self) -> StoreFuture<'_, Vec<(TenantId, SharePolicy)>>;

    /// Every money record (serialised `suanli_money::Record`s), in the order appended.
    fn money_records(&self) -> StoreFuture<'_, Vec<String>>;
    /// Appends money records in one transaction, in order. Records are never changed or removed.
    fn append_money<'a>(&'a self, records: &'a [String]) -> StoreFuture<'a, ()>;

    /// Appends entries to the hub engine's input log, in order, in one transaction. Entries
    /// are never changed or removed.
    fn append_inputs<'a>(&'a self, rows: &'a [InputRow]) -> StoreFuture<'a, ()>;
    /// Input log entries with `seq > after`, at most `limit`, by seq.
    fn inputs(&self, after: u64, limit: u32) -> StoreFuture<'_, Vec<LoggedInput>>;

    /// Appends audit entries in one transaction, in order; each `seq` must be the next one
    /// (a taken `seq` is [`StoreError::Exists`]). Entries are never changed or removed: there
    /// is no method for it, and the tables' triggers refuse UPDATE and DELETE.
    fn append_audit<'a>(&'a self, records: &'a [suanli_audit::Record]) -> StoreFuture<'a, ()>;
    /// Audit entries matching `filter`, by ascending seq.
    fn audit_entries<'a>(
        &'a self,
        filter: &'a AuditFilter,
    ) -> StoreFuture<'a, Vec<suanli_audit::Record>>;
    /// Every audit entry's recorded leaf hash, by seq: what the hub's tree and proofs use.
    fn audit_leaves(&self) -> StoreFuture<'_, Vec<suanli_audit::Hash>>;
    /// Appends a signed checkpoint.
    fn append_checkpoint<'a>(&'a self, c: &'a suanli_audit::Checkpoint) -> StoreFuture<'a, ()>;
    /// Every checkpoint, in the order appended.
    fn audit_checkpoints(&self) -> StoreFuture<'_, Vec<suanli_audit::Checkpoint>>;
    /// Records a hub's public key (known already: nothing changes).
    fn add_audit_key<'a>(
        &'a self,
        key: &'a suanli_audit::PublicKey,
        at: Timestamp,
    ) -> StoreFuture<'a, ()>;
    /// The public keys of every hub that signed, in the order added.
    fn audit_keys(&self) -> StoreFuture<'_, Vec<suanli_audit::PublicKey>>;

    /// Attempts that ended at or after `since` (by their end, then job and attempt), at most
    /// `limit`; with `priority`, only those of jobs of that class.
    fn ended_attempts(
        &self,
        since: Timestamp,
        priority: Option<suanli_types::PriorityClass>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<EndedAttempt>>;
    /// Records risk flags evaluated at `at`: an unknown id is inserted (raised at `at`), a known
    /// one takes the new detail, evidence, count and last-seen time if its count grew. The ids
    /// that were new, in the order given.
    fn record_risk_flags<'a>(
        &'a self,
        flags: &'a [suanli_audit::risk::Flag],
        at: Timestamp,
    ) -> StoreFuture<'a, Vec<String>>;
    /// Every flag with its state history, by the time it was raised, then id.
    fn risk_flags(&self) -> StoreFuture<'_, Vec<RiskFlagRecord>>;
    /// Appends a state change of flag `id`: `false` if there is no such flag,
    /// [`StoreError::Exists`] if the flag was in that state already. Changes are never updated
    /// or removed (the table's triggers refuse it).
    fn change_risk_flag<'a>(
        &'a self,
        id: &'a str,
        change: &'a RiskFlagChange,
    ) -> StoreFuture<'a, bool>;

    /// Appends facts of the statistics in one transaction, in order, recorded at `at`. Facts
    /// are never changed or removed (the tables' triggers refuse UPDATE and DELETE).
    fn append_facts<'a>(&'a self, rows: &'a [NewFact], at: Timestamp) -> StoreFuture<'a, ()>;
    /// Facts with `seq > after`, at most `limit`, by seq.
    fn facts(&self, after: u64, limit: u32) -> StoreFuture<'_, Vec<StoredFact>>;
    /// Stores a frozen release; [`StoreError::Exists`] if its quarter has one already (a
    /// release is never replaced).
    fn insert_release<'a>(&'a self, r: &'a ReleaseRecord) -> StoreFuture<'a, ()>;
    /// Every release without its files, by quarter.
    fn releases(&self) -> StoreFuture<'_, Vec<ReleaseInfo>>;
    /// One release with its files.
    fn release<'a>(&'a self, quarter: &'a str) -> StoreFuture<'a, Option<ReleaseRecord>>;

    /// Publishes a model revision; [`StoreError::Exists`] if its name and revision are
    /// published already. Models are never changed or removed.
    fn insert_model<'a>(&'a self, m: &'a NewModel) -> StoreFuture<'a, ModelRecord>;
    /// Every published model, by id.
    fn models(&self) -> StoreFuture<'_, Vec<ModelRecord>>;
    fn model(&self, id: i64) -> StoreFuture<'_, Option<ModelRecord>>;
    /// Records a certification asked for (its benchmark job submitted); the record, running.
    fn insert_certification<'a>(
        &'a self,
        r: &'a suanli_models::CertRequest,
    ) -> StoreFuture<'a, suanli_models::Certification>;
    /// Records a certification's outcome: `false` if there is no such certification,
    /// [`StoreError::Exists`] if it has one already.
    fn record_cert_outcome<'a>(
        &'a self,
        id: i64,
        outcome: &'a suanli_models::Outcome,
        at: Timestamp,
    ) -> StoreFuture<'a, bool>;
    /// Records a certification's review: `false` if there is no such certification,
    /// [`StoreError::Exists`] if it was reviewed already. (That it had its outcome first is
    /// the caller's check, `Certification::review`.)
    fn record_cert_review<'a>(
        &'a self,
        id: i64,
        review: &'a suanli_models::Review,
    ) -> StoreFuture<'a, bool>;
    /// Certifications with their steps, by id; with `model`, only that model's.
    fn certifications(
        &self,
        model: Option<i64>,
    ) -> StoreFuture<'_, Vec<suanli_models::Certification>>;

    /// Records an output file a site uploaded: inserts it, or replaces the row of the same
    /// (job, attempt, path) (an upload sent again).
    fn put_output<'a>(&'a self, o: &'a OutputRecord) -> StoreFuture<'a, ()>;
    /// Every output of the job, by attempt, then path.
    fn outputs(&self, job: JobId) -> StoreFuture<'_, Vec<OutputRecord>>;
    /// The sum of the sizes of the tenant's outputs, in bytes (0 when it has none).
    fn tenant_output_bytes<'a>(&'a self, tenant: &'a TenantId) -> StoreFuture<'a, u64>;
    /// Deletes the job's outputs of attempts before `attempt` (superseded by a later attempt);
    /// the distinct SHA-256s of the deleted rows, sorted, for the blob store to check with
    /// [`Store::output_sha_in_use`].
    fn delete_outputs_before(&self, job: JobId, attempt: u32) -> StoreFuture<'_, Vec<String>>;
    /// Deletes the job's output `path` with content `sha256` (of any attempt: a file the airlock
    /// rejected); the distinct SHA-256s of the deleted rows.
    fn delete_output<'a>(
        &'a self,
        job: JobId,
        path: &'a str,
        sha256: &'a str,
    ) -> StoreFuture<'a, Vec<String>>;
    /// Deletes every output that expired by `now` (`expires_at <= now`); the distinct
    /// SHA-256s of the deleted rows, sorted.
    fn expire_outputs(&self, now: Timestamp) -> StoreFuture<'_, Vec<String>>;
    /// Whether some output still names this SHA-256 (its content must then be kept).
    fn output_sha_in_use<'a>(&'a self, sha256: &'a str) -> StoreFuture<'a, bool>;

    /// Registers a dataset, or replaces the spec and `updated_at` of the dataset of that name
    /// (its registration stays); [`StoreError::Exists`] if another tenant owns the name.
    fn upsert_dataset<'a>(&'a self, d: &'a DatasetRecord) -> StoreFuture<'a, ()>;
    /// Every dataset, by name.
    fn datasets(&self) -> StoreFuture<'_, Vec<DatasetRecord>>;
    fn dataset<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<DatasetRecord>>;
    /// Records a grant of a registered dataset; [`StoreError::Exists`] if that dataset and
    /// tenant have a grant of the same `granted_at`.
    fn insert_grant<'a>(&'a self, g: &'a suanli_data::Grant) -> StoreFuture<'a, ()>;
    /// Revokes as of `at` the tenant's grants of the dataset not revoked yet; how many.
    fn revoke_grants<'a>(
        &'a self,
        dataset: &'a str,
        tenant: &'a TenantId,
        at: Timestamp,
    ) -> StoreFuture<'a, u64>;
    /// Every grant of the dataset, by `granted_at`, then tenant.
    fn grants<'a>(&'a self, dataset: &'a str) -> StoreFuture<'a, Vec<suanli_data::Grant>>;
    /// Stores a new airlock request (its `id` is ignored) and returns the id allocated; the
    /// stored record carries that id.
    fn insert_release_request<'a>(
        &'a self,
        r: &'a suanli_data::ReleaseRequest,
    ) -> StoreFuture<'a, i64>;
    /// Writes the request `r.id` as it stands now: its state, record and `updated_at` (the
    /// time of its last history entry). Every change of a request appends to its history, so
    /// `r` must have more history entries than the stored record: a write from a stale read
    /// (another review or download landed since) is refused with [`StoreError::NotUpdated`],
    /// as is an unknown id.
    fn update_release<'a>(&'a self, r: &'a suanli_data::ReleaseRequest) -> StoreFuture<'a, ()>;
    /// An airlock request by id.
    fn release_request(&self, id: i64) -> StoreFuture<'_, Option<suanli_data::ReleaseRequest>>;
    /// The job's airlock requests, by id.
    fn releases_of_job(&self, job: JobId) -> StoreFuture<'_, Vec<suanli_data::ReleaseRequest>>;
    /// The airlock requests on data of `owner` (what its reviewers see), by id.
    fn releases_for_owner<'a>(
        &'a self,
        owner: &'a TenantId,
    ) -> StoreFuture<'a, Vec<suanli_data::ReleaseRequest>>;

    /// Marks a registered center drained (no new work) or not; `false` if no such center.
    fn set_center_drained<'a>(&'a self, id: &'a CenterId, drained: bool) -> StoreFuture<'a, bool>;
    /// The centers an operator drained.
    fn drained_centers(&self) -> StoreFuture<'_, Vec<CenterId>>;

    /// Whether several hubs can share this store, one of them leader (PostgreSQL: yes).
    fn supports_leadership(&self) -> bool {
        false
    }
    /// Takes or renews the hub leadership for `ttl`, by the store's clock. `holder` names this hub
    /// process uniquely; `held` is the epoch it holds now, if any. Granted when `holder` renews
    /// its unexpired `held` epoch (same epoch), or when the lease is `holder`'s in another term or
    /// has expired (next epoch: a new term). Returns the lease as it stands after the call,
    /// whoever holds it, and whether this call granted it.
    fn acquire_lease<'a>(
        &'a self,
        holder: &'a str,
        url: &'a str,
        held: Option<u64>,
        ttl: std::time::Duration,
    ) -> StoreFuture<'a, LeaseGrant> {
        let _ = (holder, url, held, ttl);
        Box::pin(async { Err(StoreError::Unsupported(LEADERSHIP_UNSUPPORTED)) })
    }
    /// Gives the lease up at once (graceful stop) if `holder` still holds `epoch`.
    fn release_lease<'a>(&'a self, holder: &'a str, epoch: u64) -> StoreFuture<'a, ()> {
        let _ = (holder, epoch);
        Box::pin(async { Err(StoreError::Unsupported(LEADERSHIP_UNSUPPORTED)) })
    }
    /// The lease as it stands.
    fn lease(&self) -> StoreFuture<'_, Lease> {
        Box::pin(async { Err(StoreError::Unsupported(LEADERSHIP_UNSUPPORTED)) })
    }
    /// From now on, every job, money, input-log, center and policy write of this store handle first checks,
    /// in its transaction, that the lease still has `epoch`, and fails with
    /// [`StoreError::Fenced`] otherwise (`None`: no check; [`FENCE_ALL`]: refuse every write). A takeover waits for such
    /// transactions in flight, so no write of a deposed leader lands after it.
    fn set_fence(&self, epoch: Option<u64>) {
        let _ = epoch;
    }
}

const LEADERSHIP_UNSUPPORTED: &str =
    "hub leadership needs PostgreSQL; one hub serves an SQLite database";

/// A fence epoch no lease ever has: every fenced write is refused (a hub between terms).
pub const FENCE_ALL: u64 = u64::MAX;

/// What [`Store::acquire_lease`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseGrant {
    pub lease: Lease,
    /// This call granted or renewed the lease to the caller (not merely found it there).
    pub granted: bool,
}

/// The hub leadership lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The holding hub process ("" before any hub took it).
    pub holder: String,
    /// The holder's advertised base URL, where followers forward requests.
    pub url: String,
    /// The fencing token: grows with every new term.
    pub epoch: u64,
    /// Milliseconds until it expires by the store's clock (zero or less: expired, free to take).
    pub remaining_ms: i64,
}

impl Lease {
    pub fn is_live(&self) -> bool {
        self.remaining_ms > 0 && !self.holder.is_empty()
    }
}
