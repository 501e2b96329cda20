//! The airlock (after Azure TRE's): the outputs of a job on restricted or sensitive data are
//! quarantined at the hub, and leave only through a release request. The requester gives a
//! justification; the automatic output rules run on every file (a breach blocks the request:
//! nothing can be approved); a tenant admin of the data owner who is not the requester approves
//! or rejects (sensitive data: two different reviewers approve); approved files may be
//! downloaded. Every step is appended to the request's history, which is never rewritten.
//!
//! ```text
//! request ─► in-review ─► approved    (enough approvals)
//!    │            └─────► rejected    (one reject)
//!    └─────► blocked                  (an automatic check failed)
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use suanli_types::state::UnknownName;
use suanli_types::{JobId, TenantId, Timestamp};

use crate::check::{Breach, RULE_ALLOWED_TYPES, RULE_FORBIDDEN, RULE_MAX_BYTES, check_file};
use crate::dataset::{Classification, OutputRules};

/// Where a release request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseState {
    /// The checks passed; waiting for the owner's reviewers.
    InReview,
    /// Enough approvals: the files may be downloaded.
    Approved,
    /// A reviewer rejected it: the files stay in quarantine (and are deleted).
    Rejected,
    /// An automatic check failed: nothing can be approved.
    Blocked,
}

impl ReleaseState {
    pub const ALL: [ReleaseState; 4] = [
        ReleaseState::InReview,
        ReleaseState::Approved,
        ReleaseState::Rejected,
        ReleaseState::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseState::InReview => "in-review",
            ReleaseState::Approved => "approved",
            ReleaseState::Rejected => "rejected",
            ReleaseState::Blocked => "blocked",
        }
    }

    /// Whether nothing changes it any more.
    pub fn is_final(self) -> bool {
        self != ReleaseState::InReview
    }
}

/// A reviewer's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = AirlockVerdict))]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Approve,
    Reject,
}

impl Verdict {
    pub const ALL: [Verdict; 2] = [Verdict::Approve, Verdict::Reject];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }
}

macro_rules! by_name {
    ($ty:ty, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$ty>::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownName {
                        what: $what,
                        input: s.to_string(),
                        expected: <$ty>::ALL
                            .iter()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
        }
    };
}
by_name!(ReleaseState, "release state");
by_name!(Verdict, "verdict");

/// A file that asks to leave: its path in the job's outputs, size and SHA-256 (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// One reviewer's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = AirlockReviewRecord))]
pub struct Review {
    /// The reviewer's principal id (by which "a different reviewer" is decided).
    pub reviewer_id: i64,
    /// The reviewer, as a label.
    pub reviewer: String,
    pub verdict: Verdict,
    pub reason: String,
    pub at: Timestamp,
}

/// One step of a request, as shown on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryEntry {
    pub at: Timestamp,
    /// Who did it: a principal's label, or [`AIRLOCK`] for the automatic steps.
    pub actor: String,
    /// What: `requested: <justification>`, `check max_bytes: ok`, `check forbidden: out/a.csv
    /// contains "patient_id"`, `blocked`, `approved by X: reason`, `rejected by X: reason`,
    /// `released`, `downloaded out/a.csv by Y`.
    pub what: String,
}

/// The actor of the automatic steps (checks, blocked, released).
pub const AIRLOCK: &str = "airlock";

/// A request to release a job's quarantined outputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = AirlockRelease))]
pub struct ReleaseRequest {
    /// Assigned by the store (0 until stored).
    pub id: i64,
    pub job: JobId,
    /// The job's tenant.
    pub tenant: TenantId,
    /// The data owner, whose tenant admins review.
    pub owner: TenantId,
    /// The datasets the job computed on.
    pub datasets: Vec<String>,
    /// The strictest of the job's datasets.
    pub classification: Classification,
    pub requester_id: i64,
    pub requester: String,
    pub justification: String,
    pub files: Vec<ReleaseFile>,
    pub state: ReleaseState,
    /// What the automatic checks found (any: blocked).
    #[serde(default)]
    pub breaches: Vec<Breach>,
    #[serde(default)]
    pub reviews: Vec<Review>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    pub created_at: Timestamp,
}

/// Who asks for a release: the principal's id and label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requester<'a> {
    pub id: i64,
    pub name: &'a str,
}

/// Who reviews: the principal's id, label, tenant and whether it is a tenant admin there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reviewer<'a> {
    pub id: i64,
    pub name: &'a str,
    pub tenant: Option<&'a TenantId>,
    pub is_tenant_admin: bool,
}

/// The shortest justification, in characters.
pub const MIN_JUSTIFICATION: usize = 3;
/// The longest justification, in characters.
pub const MAX_JUSTIFICATION: usize = 500;
/// The longest review reason, in characters (at least 1).
pub const MAX_REASON: usize = 500;

/// Why a request cannot be made or changed so.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AirlockError {
    #[error(
        "justification: say why these files should leave, in {MIN_JUSTIFICATION} to \
         {MAX_JUSTIFICATION} characters"
    )]
    EmptyJustification,
    #[error("no files: name at least one of the job's outputs to release")]
    NoFiles,
    #[error("{files} files but {contents} contents were given to check")]
    ContentsMismatch { files: usize, contents: usize },
    #[error("the request is {state}: only a request in review can be reviewed")]
    NotReviewable { state: ReleaseState },
    #[error("the requester cannot review their own request")]
    OwnReview,
    #[error("only a tenant admin of the data owner {owner} reviews")]
    NotOwner { owner: TenantId },
    #[error("{reviewer} has reviewed this request already: a second review needs another reviewer")]
    AlreadyReviewed { reviewer: String },
    #[error("reason: say why, in 1 to {MAX_REASON} characters")]
    ReasonLength,
}

/// A new request (its id is assigned by the store: 0 here). Runs [`check_file`] on every file
/// with `rules` (the strictest rules of the job's datasets: the caller merges them with
/// [`merged_rules`](crate::merged_rules)); any breach: blocked, else in review. `contents`
/// gives each file's bytes, in `files` order. The history records the request, each rule's
/// check (`ok`, or each breach), and `blocked` if so.
#[allow(clippy::too_many_arguments)]
pub fn request(
    job: JobId,
    tenant: TenantId,
    owner: TenantId,
    datasets: Vec<String>,
    classification: Classification,
    who: Requester<'_>,
    justification: &str,
    files: Vec<ReleaseFile>,
    contents: &[&[u8]],
    rules: &OutputRules,
    now: Timestamp,
) -> Result<ReleaseRequest, AirlockError> {
    let justification = justification.trim();
    let n = justification.chars().count();
    if !(MIN_JUSTIFICATION..=MAX_JUSTIFICATION).contains(&n) {
        return Err(AirlockError::EmptyJustification);
    }
    if files.is_empty() {
        return Err(AirlockError::NoFiles);
    }
    if contents.len() != files.len() {
        return Err(AirlockError::ContentsMismatch {
            files: files.len(),
            contents: contents.len(),
        });
    }
    let breaches: Vec<Breach> = files
        .iter()
        .zip(contents)
        .flat_map(|(f, c)| check_file(rules, &f.path, f.size, c))
        .collect();
    let entry = |actor: &str, what: String| HistoryEntry {
        at: now,
        actor: actor.to_string(),
        what,
    };
    let mut history = vec![entry(who.name, format!("requested: {justification}"))];
    let active = [
        (RULE_MAX_BYTES, rules.max_bytes.is_some()),
        (RULE_ALLOWED_TYPES, !rules.allowed_types.is_empty()),
        (RULE_FORBIDDEN, !rules.forbidden.is_empty()),
    ];
    for (rule, on) in active {
        if !on {
            continue;
        }
        let mut found = breaches.iter().filter(|b| b.rule == rule).peekable();
        if found.peek().is_none() {
            history.push(entry(AIRLOCK, format!("check {rule}: ok")));
        }
        for b in found {
            history.push(entry(AIRLOCK, format!("check {rule}: {}", b.detail)));
        }
    }
    if active.iter().all(|(_, on)| !on) {
        history.push(entry(AIRLOCK, "checks: no output rules apply".into()));
    }
    let state = if breaches.is_empty() {
        ReleaseState::InReview
    } else {
        history.push(entry(AIRLOCK, "blocked".into()));
        ReleaseState::Blocked
    };
    Ok(ReleaseRequest {
        id: 0,
        job,
        tenant,
        owner,
        datasets,
        classification,
        requester_id: who.id,
        requester: who.name.to_string(),
        justification: justification.to_string(),
        files,
        state,
        breaches,
        reviews: Vec::new(),
        history,
        created_at: now,
    })
}

impl ReleaseRequest {
    /// Approvals needed: sensitive data 2 (by two different reviewers), else 1.
    pub fn approvals_needed(&self) -> usize {
        match self.classification {
            Classification::Sensitive => 2,
            _ => 1,
        }
    }

    /// The distinct reviewers who approved, by principal id, in review order.
    pub fn approvers(&self) -> Vec<i64> {
        let mut ids = Vec::new();
        for r in &self.reviews {
            if r.verdict == Verdict::Approve && !ids.contains(&r.reviewer_id) {
                ids.push(r.reviewer_id);
            }
        }
        ids
    }

    /// A review: only of a request in review; by a tenant admin of the data owner who is not
    /// the requester, at most once each. A reject ends it (rejected); enough approvals approve
    /// it (and `released` follows in the history). Appends to the reviews and the history.
    pub fn review(
        &mut self,
        who: Reviewer<'_>,
        verdict: Verdict,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), AirlockError> {
        if self.state != ReleaseState::InReview {
            return Err(AirlockError::NotReviewable { state: self.state });
        }
        if who.id == self.requester_id {
            return Err(AirlockError::OwnReview);
        }
        if !who.is_tenant_admin || who.tenant != Some(&self.owner) {
            return Err(AirlockError::NotOwner {
                owner: self.owner.clone(),
            });
        }
        if self.reviews.iter().any(|r| r.reviewer_id == who.id) {
            return Err(AirlockError::AlreadyReviewed {
                reviewer: who.name.to_string(),
            });
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON {
            return Err(AirlockError::ReasonLength);
        }
        self.reviews.push(Review {
            reviewer_id: who.id,
            reviewer: who.name.to_string(),
            verdict,
            reason: reason.to_string(),
            at: now,
        });
        let what = match verdict {
            Verdict::Approve => "approved",
            Verdict::Reject => "rejected",
        };
        self.push(now, who.name, format!("{what} by {}: {reason}", who.name));
        match verdict {
            Verdict::Reject => self.state = ReleaseState::Rejected,
            Verdict::Approve if self.approvers().len() >= self.approvals_needed() => {
                self.state = ReleaseState::Approved;
                self.push(now, AIRLOCK, "released".into());
            }
            Verdict::Approve => {}
        }
        Ok(())
    }

    /// Whether `path` may be downloaded now: the request is approved and `path` is one of its
    /// files.
    pub fn releases(&self, path: &str) -> bool {
        self.state == ReleaseState::Approved && self.files.iter().any(|f| f.path == path)
    }

    /// Whether the file `path` with content `sha256` may be downloaded now: the very content
    /// reviewed (a file of the same name uploaded since is another file, and waits for a review
    /// of its own).
    pub fn releases_content(&self, path: &str, sha256: &str) -> bool {
        self.state == ReleaseState::Approved
            && self
                .files
                .iter()
                .any(|f| f.path == path && f.sha256 == sha256)
    }

    /// Records in the history that a rejected file was deleted at the hub.
    pub fn record_deletion(&mut self, path: &str, now: Timestamp) {
        self.history.push(HistoryEntry {
            at: now,
            actor: "airlock".into(),
            what: format!("deleted {path}"),
        });
    }

    /// Records a download of `path` by `by` in the history.
    pub fn record_download(&mut self, path: &str, by: &str, now: Timestamp) {
        self.push(now, by, format!("downloaded {path} by {by}"));
    }

    /// The time of the last step (the request's, if none after it): when it last changed.
    pub fn updated_at(&self) -> Timestamp {
        self.history
            .iter()
            .map(|h| h.at)
            .max()
            .unwrap_or(self.created_at)
            .max(self.created_at)
    }

    fn push(&mut self, at: Timestamp, actor: &str, what: String) {
        self.history.push(HistoryEntry {
            at,
            actor: actor.to_string(),
            what,
        });
    }
}
