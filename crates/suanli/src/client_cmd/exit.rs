//! The client's exit codes, in one place: the enum, the `--help` table that documents it, and
//! the mapping from errors and job outcomes to codes.

use suanli_client::ClientError;
use suanli_proto::ErrorCode;
use suanli_types::JobState;

use super::output::is_closed;

/// How a client verb ended. [`HELP`] lists the numbers; README.md repeats them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done; for `wait`, the job succeeded.
    Success = 0,
    /// Any other failure: the hub refused the request (not permitted, conflict, over budget,
    /// unschedulable), or the client config is missing or broken.
    Error = 1,
    /// Invalid input: bad flags, or a job spec, center or programme definition that fails
    /// validation (here or at the hub). Clap's own usage errors exit 2 as well.
    Usage = 2,
    /// No such job, center, tenant or programme (or not visible to this token).
    NotFound = 3,
    /// No hub could be reached, or none could serve the request; for `wait`, at its first poll
    /// (an outage after the hub has answered is waited out).
    Unreachable = 4,
    /// `wait`: the job failed.
    JobFailed = 5,
    /// `wait`: the job was cancelled.
    JobCancelled = 6,
    /// `wait`: the job ran past its wall-time limit.
    JobTimedOut = 7,
    /// `audit verify`, `prove`, `checkpoint`: the log, a proof or a checkpoint does not verify.
    AuditFailed = 8,
    /// `wait --timeout`: gave up before the job ended (like timeout(1)).
    WaitTimedOut = 124,
}

/// The exit codes for `--help`; a test checks it against [`Exit`].
pub const HELP: &str = "\
Exit codes:
  0    success; for `wait`, the job succeeded
  1    error: the hub refused the request, or the client config is missing or broken
  2    invalid input: bad flags, job spec, center or programme definition
  3    not found: no such job, center, tenant or programme (or not yours to see)
  4    unreachable: no hub answered, or none could serve the request (for `wait`: at its
       first poll; an outage after that is waited out)
  5    wait: the job failed
  6    wait: the job was cancelled
  7    wait: the job ran past its wall-time limit
  8    audit: the log, a proof or a checkpoint does not verify
  124  wait --timeout: gave up before the job ended";

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The exit of `wait` for a job that has ended in `state`.
    pub fn of_job(state: JobState) -> Exit {
        match state {
            JobState::Succeeded => Exit::Success,
            JobState::Cancelled => Exit::JobCancelled,
            JobState::TimedOut => Exit::JobTimedOut,
            _ => Exit::JobFailed,
        }
    }

    /// The exit for an error a verb returned. A closed stdout is no failure of the verb.
    pub fn of_error(e: &anyhow::Error) -> Exit {
        if is_closed(e) {
            return Exit::Success;
        }
        if e.is::<Invalid>() {
            return Exit::Usage;
        }
        match e.downcast_ref::<ClientError>() {
            Some(ClientError::Unreachable { .. }) => Exit::Unreachable,
            Some(ce) => match ce.code() {
                Some(ErrorCode::NotFound) => Exit::NotFound,
                Some(
                    ErrorCode::BadRequest | ErrorCode::InvalidSpec | ErrorCode::PayloadTooLarge,
                ) => Exit::Usage,
                Some(ErrorCode::Unavailable) => Exit::Unreachable,
                _ => Exit::Error,
            },
            None => Exit::Error,
        }
    }
}

/// Bad local input (a spec, a center or programme definition, a flag's value): [`Exit::Usage`].
#[derive(Debug)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_cmd::output::Closed;

    const ALL: [Exit; 10] = [
        Exit::Success,
        Exit::Error,
        Exit::Usage,
        Exit::NotFound,
        Exit::Unreachable,
        Exit::JobFailed,
        Exit::JobCancelled,
        Exit::JobTimedOut,
        Exit::AuditFailed,
        Exit::WaitTimedOut,
    ];

    #[test]
    fn help_lists_every_code_once() {
        for e in ALL {
            let n = format!("\n  {:<5}", e.code());
            assert_eq!(HELP.matches(&n).count(), 1, "{e:?} ({n:?}) in HELP");
        }
        let entries = HELP.lines().filter(|l| !l.starts_with("       ")).count();
        assert_eq!(entries, ALL.len() + 1);
    }

    #[test]
    fn job_outcomes_and_errors() {
        assert_eq!(Exit::of_job(JobState::Succeeded), Exit::Success);
        assert_eq!(Exit::of_job(JobState::Failed), Exit::JobFailed);
        assert_eq!(Exit::of_job(JobState::Cancelled), Exit::JobCancelled);
        assert_eq!(Exit::of_job(JobState::TimedOut), Exit::JobTimedOut);
        let invalid = anyhow::Error::new(Invalid("invalid job spec: x".into()));
        assert_eq!(Exit::of_error(&invalid), Exit::Usage);
        assert_eq!(Exit::of_error(&anyhow::Error::new(Closed)), Exit::Success);
        assert_eq!(
            Exit::of_error(&anyhow::anyhow!("no hub configured")),
            Exit::Error
        );
        let api =
            |code| anyhow::Error::new(ClientError::Api(suanli_proto::ApiError::new(code, "x")));
        assert_eq!(Exit::of_error(&api(ErrorCode::NotFound)), Exit::NotFound);
        assert_eq!(Exit::of_error(&api(ErrorCode::InvalidSpec)), Exit::Usage);
        assert_eq!(
            Exit::of_error(&api(ErrorCode::Unavailable)),
            Exit::Unreachable
        );
        assert_eq!(Exit::of_error(&api(ErrorCode::Forbidden)), Exit::Error);
    }
}
