//! The warning signal a job asks for, as sbatch's `--signal=[B:]SIG[@SECS]`: sent `SECS`
//! seconds before the wall time runs out (and before any stop the agent makes: cancel,
//! preemption), so that the job can checkpoint. Pure: the agent does the sending.

use std::fmt;

/// Seconds before the end when `@SECS` is not given (sbatch's default).
pub const DEFAULT_LEAD_SECS: u32 = 60;
/// The largest `@SECS` (sbatch's).
pub const MAX_LEAD_SECS: u32 = 65_535;

/// The signals a job may ask for: every one a program can catch and that does not stop it or
/// mean a fault (Linux numbers, which are the same on x86-64 and arm64).
const SIGNALS: [(&str, i32); 17] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ABRT", 6),
    ("USR1", 10),
    ("USR2", 12),
    ("ALRM", 14),
    ("TERM", 15),
    ("CONT", 18),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
];

/// A parsed warning signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarnSignal {
    /// The signal's Linux number.
    pub number: i32,
    /// Its name without `SIG`, such as `USR1`.
    pub name: &'static str,
    /// How many seconds before the end of the wall time it is sent.
    pub lead_secs: u32,
    /// `B:`: to the batch shell only; otherwise to every process of the job.
    pub batch_only: bool,
}

impl WarnSignal {
    /// Parses `[B:]SIG[@SECS]`: `SIG` a name (`USR1`, `SIGUSR1`, any case) or a number.
    pub fn parse(s: &str) -> Result<WarnSignal, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty; expected [B:]SIG[@SECS], such as USR1@120".into());
        }
        let (batch_only, rest) = match t.split_once(':') {
            Some((p, rest)) if p.eq_ignore_ascii_case("b") => (true, rest),
            Some((p, _)) if p.eq_ignore_ascii_case("r") => {
                return Err(format!(
                    "{s:?}: R: (signal only when a reservation ends) is not supported; \
                     no reservation ends a job here"
                ));
            }
            Some((p, _)) => {
                return Err(format!(
                    "{s:?}: unknown prefix {p:?}; expected B: (the batch shell only) or none"
                ));
            }
            None => (false, t),
        };
        let (sig, lead) = match rest.split_once('@') {
            Some((sig, lead)) => (sig, Some(lead)),
            None => (rest, None),
        };
        let (name, number) = signal_named(sig).ok_or_else(|| {
            format!(
                "{s:?}: {sig:?} is not a signal a job can catch and go on from; one of {} or its number",
                SIGNALS.map(|(n, _)| n).join(", ")
            )
        })?;
        let lead_secs = match lead {
            None => DEFAULT_LEAD_SECS,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_LEAD_SECS && l.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    format!("{s:?}: @{l} must be whole seconds, 0 to {MAX_LEAD_SECS}")
                })?,
        };
        Ok(WarnSignal {
            number,
            name,
            lead_secs,
            batch_only,
        })
    }
}

/// The name and number of `sig` (`USR1`, `SIGUSR1`, `usr1`, `10`), if a job may ask for it.
fn signal_named(sig: &str) -> Option<(&'static str, i32)> {
    if let Ok(n) = sig.parse::<i32>() {
        if !sig.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return SIGNALS.iter().find(|(_, k)| *k == n).copied();
    }
    let upper = sig.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(n, _)| *n == bare).copied()
}

impl fmt::Display for WarnSignal {
    /// The canonical form: `B:USR1@120`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.batch_only {
            f.write_str("B:")?;
        }
        write!(f, "{}@{}", self.name, self.lead_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_forms_parse() {
        let w = WarnSignal::parse("B:USR1@120").unwrap();
        assert_eq!(
            w,
            WarnSignal {
                number: 10,
                name: "USR1",
                lead_secs: 120,
                batch_only: true
            }
        );
        assert_eq!(w.to_string(), "B:USR1@120");
        let w = WarnSignal::parse("sigusr2").unwrap();
        assert_eq!((w.number, w.lead_secs, w.batch_only), (12, 60, false));
        assert_eq!(WarnSignal::parse("10@0").unwrap().name, "USR1");
        assert_eq!(WarnSignal::parse("b:TERM@65535").unwrap().lead_secs, 65_535);
        assert_eq!(WarnSignal::parse(" SIGHUP@5 ").unwrap().number, 1);
    }

    #[test]
    fn what_cannot_warn_is_refused_with_the_reason() {
        for (bad, says) in [
            ("", "empty"),
            ("KILL", "not a signal"),
            ("9", "not a signal"),
            ("STOP@10", "not a signal"),
            ("SEGV", "not a signal"),
            ("+10", "not a signal"),
            ("USR1@-1", "whole seconds"),
            ("USR1@65536", "whole seconds"),
            ("USR1@+5", "whole seconds"),
            ("USR1@1.5", "whole seconds"),
            ("R:USR1", "reservation"),
            ("X:USR1", "unknown prefix"),
            ("ＵＳＲ1", "not a signal"),
        ] {
            let e = WarnSignal::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
