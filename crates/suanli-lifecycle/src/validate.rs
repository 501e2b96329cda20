//! A site's report checked against the hub's own record of the attempt, pure.
//!
//! A site reports when an attempt started and ended and how many card-seconds it ran; the hub
//! bills from that. A site may be wrong (a skewed clock) or lying (a stolen token), so every
//! report is held against what the hub knows itself: when it placed the attempt, when it
//! received the start, when it receives the report, how many cards it placed and the job's wall
//! time. A report is refused ([`InvalidReport`]) when
//!
//! - a time lies outside `[placement - skew, receipt + skew]`;
//! - it ends before it starts;
//! - the run it claims is longer than the wall time plus the kill grace;
//! - it claims more card-seconds than the placed cards over the run it claims allow.
//!
//! What is metered ([`Metered`]) is then taken from the hub's record: from the start the hub
//! recorded (a reported start, checked when it arrived) if it has one, to the reported end,
//! clamped to that start plus the wall time and kill grace; card-seconds at most the placed cards
//! over that run. So no report meters more than `cards x (wall time + kill grace)`, nor a time
//! outside `[placement - skew, receipt + skew]` (so no line lands in a month outside the
//! attempt's). The price row is the one in force at the hub's own record of the start, never
//! before the placement (see `Lifecycle::bill_attempt`).

use suanli_types::Timestamp;

/// How far a site's report may stray from the hub's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportBounds {
    /// Clock skew allowed between a site and the hub, each way.
    pub skew_ms: i64,
    /// How long a site may take, past the wall time, to stop an attempt.
    pub kill_grace_ms: i64,
}

impl Default for ReportBounds {
    /// Two minutes of skew, one minute of kill grace (the agent's default grace is 10 s).
    fn default() -> ReportBounds {
        ReportBounds {
            skew_ms: 120_000,
            kill_grace_ms: 60_000,
        }
    }
}

/// What the hub itself knows of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptFacts {
    pub placed_at: Timestamp,
    /// The start as the hub recorded it, if a start was reported.
    pub started: Option<Timestamp>,
    /// The job's wall time, in seconds.
    pub walltime_secs: u64,
    /// Cards placed.
    pub cards: u32,
}

/// What a site claims of an ended attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    pub card_seconds: u64,
}

/// What the hub meters for an ended attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metered {
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    pub card_seconds: u64,
}

/// Why a report is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReport {
    #[error(
        "{what} {at} is outside the attempt's window [{from}, {until}] (placed at {placed_at}, \
         received at {received}, {skew_secs} s of clock skew allowed)"
    )]
    OutOfWindow {
        what: &'static str,
        at: Timestamp,
        from: Timestamp,
        until: Timestamp,
        placed_at: Timestamp,
        received: Timestamp,
        skew_secs: i64,
    },
    #[error("ended_at {ended_at} is before started_at {started_at}")]
    EndsBeforeStart {
        started_at: Timestamp,
        ended_at: Timestamp,
    },
    #[error(
        "the report says the attempt ran {ran_secs} s, more than its wall time of {walltime_secs} s \
         and {grace_secs} s of kill grace"
    )]
    TooLong {
        ran_secs: i64,
        walltime_secs: u64,
        grace_secs: i64,
    },
    #[error(
        "{card_seconds} card-seconds reported; {cards} cards placed for the {ran_secs} s reported \
         allow at most {most}"
    )]
    TooManyCardSeconds {
        card_seconds: u64,
        cards: u32,
        ran_secs: i64,
        most: u64,
    },
}

impl AttemptFacts {
    /// The times a report may name: `[placement - skew, receipt + skew]`.
    fn window(&self, received: Timestamp, b: &ReportBounds) -> (Timestamp, Timestamp) {
        let from = Timestamp(self.placed_at.0.saturating_sub(b.skew_ms));
        let until = Timestamp(received.0.saturating_add(b.skew_ms));
        (from, until)
    }

    fn in_window(
        &self,
        what: &'static str,
        at: Timestamp,
        received: Timestamp,
        b: &ReportBounds,
    ) -> Result<(), InvalidReport> {
        let (from, until) = self.window(received, b);
        if at < from || at > until {
            return Err(InvalidReport::OutOfWindow {
                what,
                at,
                from,
                until,
                placed_at: self.placed_at,
                received,
                skew_secs: b.skew_ms / 1000,
            });
        }
        Ok(())
    }

    /// The longest run billed: wall time plus kill grace, in milliseconds.
    fn longest_ms(&self, b: &ReportBounds) -> i64 {
        let wall = i64::try_from(self.walltime_secs).unwrap_or(i64::MAX);
        wall.saturating_mul(1000)
            .saturating_add(b.kill_grace_ms.max(0))
    }

    /// The most card-seconds `ms` of the placed cards make (rounded up to whole seconds).
    fn most_card_seconds(&self, ms: i64) -> u64 {
        let secs = u64::try_from(ms.max(0)).unwrap_or(0).div_ceil(1000);
        secs.saturating_mul(u64::from(self.cards))
    }
}

/// Clamps `at` into `[lo, hi]` (`lo` wins if they cross).
fn clamp(at: Timestamp, lo: Timestamp, hi: Timestamp) -> Timestamp {
    at.min(hi).max(lo)
}

/// Checks a reported start `at`, received at `received`; the start the hub records.
pub fn check_start(
    f: &AttemptFacts,
    at: Timestamp,
    received: Timestamp,
    b: &ReportBounds,
) -> Result<Timestamp, InvalidReport> {
    f.in_window("started at", at, received, b)?;
    Ok(at)
}

/// The time whose price row applies to a run from `started_at`: the hub's own record, never
/// before the placement.
pub fn priced_at(placed_at: Timestamp, started_at: Timestamp) -> Timestamp {
    started_at.max(placed_at)
}

/// Checks a reported end, received at `received`; what the hub meters for it.
pub fn check_finish(
    f: &AttemptFacts,
    c: &Claim,
    received: Timestamp,
    b: &ReportBounds,
) -> Result<Metered, InvalidReport> {
    f.in_window("started_at", c.started_at, received, b)?;
    f.in_window("ended_at", c.ended_at, received, b)?;
    if c.ended_at < c.started_at {
        return Err(InvalidReport::EndsBeforeStart {
            started_at: c.started_at,
            ended_at: c.ended_at,
        });
    }
    let ran_ms = c.ended_at.0.saturating_sub(c.started_at.0);
    let longest = f.longest_ms(b);
    if ran_ms > longest {
        return Err(InvalidReport::TooLong {
            ran_secs: ran_ms / 1000,
            walltime_secs: f.walltime_secs,
            grace_secs: b.kill_grace_ms / 1000,
        });
    }
    // One second of rounding on top of what the cards make over the claimed run.
    let most = f
        .most_card_seconds(ran_ms)
        .saturating_add(u64::from(f.cards));
    if c.card_seconds > most {
        return Err(InvalidReport::TooManyCardSeconds {
            card_seconds: c.card_seconds,
            cards: f.cards,
            ran_secs: ran_ms / 1000,
            most,
        });
    }
    let started_at = f.started.unwrap_or(c.started_at);
    let until = Timestamp(started_at.0.saturating_add(longest));
    let ended_at = clamp(c.ended_at, started_at, until);
    let card_seconds = c
        .card_seconds
        .min(f.most_card_seconds(ended_at.0 - started_at.0));
    Ok(Metered {
        started_at,
        ended_at,
        card_seconds,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MIN: i64 = 60_000;

    fn facts() -> AttemptFacts {
        AttemptFacts {
            placed_at: Timestamp(1_000 * MIN),
            started: Some(Timestamp(1_000 * MIN + 1_000)),
            walltime_secs: 900,
            cards: 2,
        }
    }

    fn claim(started_at: i64, ended_at: i64, card_seconds: u64) -> Claim {
        Claim {
            started_at: Timestamp(started_at),
            ended_at: Timestamp(ended_at),
            card_seconds,
        }
    }

    #[test]
    fn a_true_report_is_metered_as_reported() {
        let f = facts();
        let (s, e) = (f.placed_at.0 + 1_000, f.placed_at.0 + 6_000);
        let m = check_finish(
            &f,
            &claim(s, e, 10),
            Timestamp(e + 50),
            &ReportBounds::default(),
        );
        assert_eq!(
            m,
            Ok(Metered {
                started_at: Timestamp(s),
                ended_at: Timestamp(e),
                card_seconds: 10
            })
        );
    }

    #[test]
    fn a_start_thirty_days_back_is_refused() {
        let f = facts();
        let e = f.placed_at.0 + 6_000;
        let r = check_finish(
            &f,
            &claim(e - 30 * 24 * 60 * MIN, e, 10),
            Timestamp(e),
            &ReportBounds::default(),
        );
        assert!(
            matches!(
                r,
                Err(InvalidReport::OutOfWindow {
                    what: "started_at",
                    ..
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn an_end_past_the_receipt_is_refused() {
        let f = facts();
        let s = f.placed_at.0 + 1_000;
        let year_2030 = 1_893_456_000_000;
        let r = check_finish(
            &f,
            &claim(s, year_2030, 10),
            Timestamp(s + 5_000),
            &ReportBounds::default(),
        );
        assert!(
            matches!(
                r,
                Err(InvalidReport::OutOfWindow {
                    what: "ended_at",
                    ..
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn a_start_within_the_skew_is_priced_from_the_placement() {
        let f = AttemptFacts {
            started: None,
            ..facts()
        };
        let b = ReportBounds::default();
        // A minute before the placement: within the skew, so accepted and metered, but priced
        // from the placement (the price row in force then).
        let s = f.placed_at.0 - MIN;
        let e = f.placed_at.0 + 5_000;
        let m = check_finish(&f, &claim(s, e, 2 * 65), Timestamp(e), &b).unwrap();
        assert_eq!(m.started_at, Timestamp(s));
        assert_eq!(m.card_seconds, 2 * 65);
        assert_eq!(priced_at(f.placed_at, m.started_at), f.placed_at);
        assert_eq!(
            check_start(&f, Timestamp(s), Timestamp(e), &b),
            Ok(Timestamp(s))
        );
        // With a start on record, the run is metered from it.
        let mut on_record = f;
        on_record.started = Some(Timestamp(f.placed_at.0 + 1_000));
        let m = check_finish(&on_record, &claim(s, e, 2 * 65), Timestamp(e), &b).unwrap();
        assert_eq!(
            (m.started_at, m.card_seconds),
            (Timestamp(f.placed_at.0 + 1_000), 8)
        );
        let r = check_start(&f, Timestamp(f.placed_at.0 - 3 * MIN), Timestamp(e), &b);
        assert!(matches!(r, Err(InvalidReport::OutOfWindow { .. })), "{r:?}");
    }

    #[test]
    fn too_many_card_seconds_or_too_long_a_run_is_refused() {
        let f = facts();
        let b = ReportBounds::default();
        let (s, e) = (f.placed_at.0 + 1_000, f.placed_at.0 + 6_000);
        let r = check_finish(&f, &claim(s, e, 1_000), Timestamp(e), &b);
        assert!(
            matches!(r, Err(InvalidReport::TooManyCardSeconds { most: 12, .. })),
            "{r:?}"
        );
        let long = s + (900 + 61) * 1_000;
        let r = check_finish(&f, &claim(s, long, 10), Timestamp(long), &b);
        assert!(matches!(r, Err(InvalidReport::TooLong { .. })), "{r:?}");
        let r = check_finish(&f, &claim(e, s, 0), Timestamp(e), &b);
        assert!(
            matches!(r, Err(InvalidReport::EndsBeforeStart { .. })),
            "{r:?}"
        );
    }

    proptest! {
        /// Random reports on random attempts never panic, never meter more than the placed
        /// cards over the wall time and kill grace, and never meter a time outside
        /// `[placement, receipt]` (so never a month outside the attempt's).
        #[test]
        fn random_reports_bill_at_most_what_was_placed(
            placed in any::<i64>(),
            started in proptest::option::of(any::<i64>()),
            walltime_secs in prop_oneof![0u64..100_000, any::<u64>()],
            cards in 0u32..100_000,
            s in prop_oneof![any::<i64>(), -1_000_000i64..1_000_000],
            e in prop_oneof![any::<i64>(), -1_000_000i64..1_000_000],
            card_seconds in any::<u64>(),
            received in prop_oneof![any::<i64>(), 0i64..2_000_000],
            skew_ms in 0i64..1_000_000,
            kill_grace_ms in 0i64..1_000_000,
        ) {
            let f = AttemptFacts {
                placed_at: Timestamp(placed),
                started: started.map(Timestamp),
                walltime_secs,
                cards,
            };
            let b = ReportBounds { skew_ms, kill_grace_ms };
            // Times relative to the placement as often as absolute ones.
            let rel = |t: i64| if t.unsigned_abs() < 1_000_000 { placed.saturating_add(t) } else { t };
            let c = claim(rel(s), rel(e), card_seconds);
            let received = Timestamp(rel(received));
            if let Ok(m) = check_finish(&f, &c, received, &b) {
                let most = f.most_card_seconds(f.longest_ms(&b));
                prop_assert!(m.card_seconds <= most, "{m:?} over {most}");
                prop_assert!(m.card_seconds <= c.card_seconds);
                prop_assert!(m.started_at <= m.ended_at);
                prop_assert!(m.ended_at.0 - m.started_at.0 <= f.longest_ms(&b));
                let (from, until) = f.window(received, &b);
                // The start on record was checked when it arrived, against an earlier receipt.
                if f.started.is_none() {
                    prop_assert!(m.started_at >= from && m.started_at <= until, "{m:?}");
                    prop_assert!(m.ended_at >= from && m.ended_at <= until, "{m:?}");
                }
                prop_assert!(priced_at(f.placed_at, m.started_at) >= f.placed_at);
            }
            if let Ok(t) = check_start(&f, c.started_at, received, &b) {
                let (from, until) = f.window(received, &b);
                prop_assert!(t >= from && t <= until);
            }
        }
    }
}
