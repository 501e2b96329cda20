//! Job states, roles and tenant categories.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
///
/// ```text
/// submitted -> queued -> placed -> running -> succeeded | failed | cancelled | timed-out
///                 ^         |          |
///                 +---------+----------+  (lease lost or preempted: attempt + 1)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    Submitted,
    Queued,
    Placed,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Submitted,
        JobState::Queued,
        JobState::Placed,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::TimedOut,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::TimedOut
        )
    }

    /// The states a job is in until it ends: what a restarted hub takes back (with cancelled
    /// jobs whose attempt still holds cards).
    pub fn unfinished() -> impl Iterator<Item = JobState> {
        JobState::ALL.into_iter().filter(|s| !s.is_terminal())
    }

    /// Handed to a center and not yet finished.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Placed | JobState::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Submitted => "submitted",
            JobState::Queued => "queued",
            JobState::Placed => "placed",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::TimedOut => "timed-out",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown {what} {input:?}; expected one of: {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub input: String,
    pub expected: String,
}

macro_rules! parse_by_name {
    ($ty:ty, $what:literal, $all:expr) => {
        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $all.into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownName {
                        what: $what,
                        input: s.to_string(),
                        expected: $all
                            .iter()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
        }
    };
}

parse_by_name!(JobState, "job state", JobState::ALL);

/// What a principal may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The city platform: everything.
    Operator,
    /// Manages one tenant: sees and cancels all of its jobs.
    TenantAdmin,
    /// A tenant's user: submits and sees the tenant's jobs.
    User,
    /// A center's site agent: acts for its own center only.
    Site,
    /// Reads everything, changes nothing.
    Supervisor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Operator,
        Role::TenantAdmin,
        Role::User,
        Role::Site,
        Role::Supervisor,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::TenantAdmin => "tenant-admin",
            Role::User => "user",
            Role::Site => "site",
            Role::Supervisor => "supervisor",
        }
    }
}
parse_by_name!(Role, "role", Role::ALL);

/// Kind of tenant; drives voucher eligibility and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum TenantCategory {
    Enterprise,
    Sme,
    Startup,
    Research,
    PublicService,
}

impl TenantCategory {
    pub const ALL: [TenantCategory; 5] = [
        TenantCategory::Enterprise,
        TenantCategory::Sme,
        TenantCategory::Startup,
        TenantCategory::Research,
        TenantCategory::PublicService,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TenantCategory::Enterprise => "enterprise",
            TenantCategory::Sme => "sme",
            TenantCategory::Startup => "startup",
            TenantCategory::Research => "research",
            TenantCategory::PublicService => "public-service",
        }
    }
}
parse_by_name!(TenantCategory, "tenant category", TenantCategory::ALL);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        let e = "boss".parse::<Role>().unwrap_err();
        assert!(e.to_string().contains("tenant-admin"));
        assert!(JobState::TimedOut.is_terminal() && !JobState::Running.is_terminal());
    }
}
