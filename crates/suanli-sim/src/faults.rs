//! Center faults of a run: failures (`--fail-center C@T[+D]`) and drains
//! (`--drain-center C@T[+D]`), and the virtual-time actions they expand to.
//!
//! `T` and `D` are durations from the trace's start (the first submit), as a job's walltime is
//! written: `90`, `90s`, `30m`, `2h`, `1h30m`, `2d`. Without `+D` the center never comes back.

use std::fmt;

use suanli_types::CenterId;
use suanli_types::spec::parse_duration;

/// What happens to the center at the fault's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The center goes offline with its site: its running attempts are lost (their leases run
    /// out without a report) and it gets no new work until it comes back.
    Fail,
    /// The operator drains the center with requeue: every attempt there is handed back and
    /// queued again, and it gets no new work until it is undrained.
    Drain,
}

/// One fault of one center.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub center: CenterId,
    /// Virtual time of the fault, in ms from the trace's start.
    pub at_ms: i64,
    /// How long the center stays out, in ms; `None`: for good.
    pub for_ms: Option<i64>,
}

impl Fault {
    /// Parses `C@T[+D]`.
    pub fn parse(kind: FaultKind, s: &str) -> Result<Fault, String> {
        let (center, when) = s.rsplit_once('@').ok_or_else(|| {
            format!("{s:?}: expected CENTER@TIME[+DURATION], e.g. sz-ascend@2h+30m")
        })?;
        if center.is_empty() {
            return Err(format!("{s:?}: no center before '@'"));
        }
        let (at, back) = match when.split_once('+') {
            Some((at, d)) => (at, Some(d)),
            None => (when, None),
        };
        let ms = |d: &str| -> Result<i64, String> {
            let secs = parse_duration(d).map_err(|e| format!("{s:?}: {e}"))?;
            i64::try_from(secs)
                .ok()
                .and_then(|x| x.checked_mul(1000))
                .ok_or_else(|| format!("{s:?}: {d:?} is too long"))
        };
        Ok(Fault {
            kind,
            center: CenterId::new(center),
            at_ms: ms(at)?,
            for_ms: back.map(ms).transpose()?,
        })
    }

    /// When the center comes back, if it does.
    pub fn until_ms(&self) -> Option<i64> {
        self.for_ms.map(|d| self.at_ms.saturating_add(d))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            FaultKind::Fail => "fails",
            FaultKind::Drain => "drained",
        };
        write!(f, "{} {what} at {} s", self.center, self.at_ms / 1000)?;
        match self.for_ms {
            Some(d) => write!(f, " for {} s", d / 1000),
            None => write!(f, " for good"),
        }
    }
}

/// What the engine does to a center (by index) at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// The site stops: its last heartbeat lists what it runs, and it takes no new work.
    Fail(usize),
    /// The site is back and takes work again.
    Recover(usize),
    Drain(usize),
    Undrain(usize),
    /// A tick of the hub after the leases of a failure ran out: the sites that are up
    /// heartbeat, and attempts whose lease ran out are lost.
    Expire,
}

/// The actions of `faults` (center indexes from `index`) in time order (stable: faults in the
/// order given); a failure's attempts are found lost one lease (`lease_ms`) after it.
pub(crate) fn timeline(
    faults: &[Fault],
    index: impl Fn(&CenterId) -> usize,
    lease_ms: i64,
) -> Vec<(i64, Action)> {
    let mut out = Vec::new();
    for f in faults {
        let c = index(&f.center);
        match f.kind {
            FaultKind::Fail => {
                out.push((f.at_ms, Action::Fail(c)));
                out.push((f.at_ms.saturating_add(lease_ms + 1), Action::Expire));
                if let Some(t) = f.until_ms() {
                    out.push((t, Action::Recover(c)));
                }
            }
            FaultKind::Drain => {
                out.push((f.at_ms, Action::Drain(c)));
                if let Some(t) = f.until_ms() {
                    out.push((t, Action::Undrain(c)));
                }
            }
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_center_time_and_duration() {
        let f = Fault::parse(FaultKind::Fail, "sz-ascend@2h+30m").unwrap();
        assert_eq!(f.center, CenterId::new("sz-ascend"));
        assert_eq!((f.at_ms, f.for_ms), (7_200_000, Some(1_800_000)));
        assert_eq!(f.until_ms(), Some(9_000_000));
        let g = Fault::parse(FaultKind::Drain, "gz@90").unwrap();
        assert_eq!((g.at_ms, g.for_ms, g.until_ms()), (90_000, None, None));
        assert_eq!(g.to_string(), "gz drained at 90 s for good");
        for bad in ["gz", "@2h", "gz@", "gz@2x", "gz@2h+", "gz@2h+1y"] {
            assert!(Fault::parse(FaultKind::Fail, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeline_orders_actions_and_finds_lost_attempts_one_lease_later() {
        let faults = [
            Fault::parse(FaultKind::Fail, "a@1h+1h").unwrap(),
            Fault::parse(FaultKind::Drain, "b@30m").unwrap(),
        ];
        let idx = |c: &CenterId| usize::from(c.as_str() == "b");
        let t = timeline(&faults, idx, 60_000);
        assert_eq!(
            t,
            vec![
                (1_800_000, Action::Drain(1)),
                (3_600_000, Action::Fail(0)),
                (3_660_001, Action::Expire),
                (7_200_000, Action::Recover(0)),
            ]
        );
    }
}
