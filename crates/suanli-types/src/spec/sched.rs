//! When a job may start, as sbatch says it: dependencies (`--dependency`), a start time
//! (`--begin`) and job arrays (`--array`). Pure parsers; the lifecycle decides with them.

use std::fmt;

use crate::time::{Timestamp, days_from_civil};
use crate::{JobId, JobState};

/// Times without a zone (`--begin=15:00`, `2026-12-03T15:00`) are in the network's local time,
/// China Standard Time (UTC+08:00); `Z` or `+HH:MM` after the time names another zone.
pub const LOCAL_OFFSET_SECS: i64 = 8 * 3600;

/// At most this many tasks in one array (Slurm's default `MaxArraySize` is 1001).
pub const MAX_ARRAY_TASKS: usize = 1000;
/// Task ids are 0 to this.
pub const MAX_ARRAY_INDEX: u32 = 999_999;

/// One kind of dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DepKind {
    /// The parent has started (or ended without starting).
    After,
    /// The parent has ended, however.
    AfterAny,
    /// The parent succeeded.
    AfterOk,
    /// The parent ended without succeeding (failed, cancelled, timed out).
    AfterNotOk,
    /// No earlier job of the same name and tenant is unfinished, and none is placed or running.
    Singleton,
}

impl DepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DepKind::After => "after",
            DepKind::AfterAny => "afterany",
            DepKind::AfterOk => "afterok",
            DepKind::AfterNotOk => "afternotok",
            DepKind::Singleton => "singleton",
        }
    }

    /// Where a condition on a parent in `state` stands.
    pub fn verdict(self, state: JobState) -> Verdict {
        let ended = state.is_terminal();
        match self {
            DepKind::After if ended || state == JobState::Running => Verdict::Met,
            DepKind::AfterAny if ended => Verdict::Met,
            DepKind::AfterOk if state == JobState::Succeeded => Verdict::Met,
            DepKind::AfterOk if ended => Verdict::Never,
            DepKind::AfterNotOk if state == JobState::Succeeded => Verdict::Never,
            DepKind::AfterNotOk if ended => Verdict::Met,
            _ => Verdict::Waiting,
        }
    }
}

/// Where one condition stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Waiting,
    /// Can never be met: the parent ended the other way.
    Never,
}

/// One condition: a kind and, except for `singleton`, a parent job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepTerm {
    pub kind: DepKind,
    pub job: Option<JobId>,
}

/// A `--dependency` list: all of its terms (`,`), or any of them (`?`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub any: bool,
    pub terms: Vec<DepTerm>,
}

/// The most parent jobs a submit may name (an array counts once; its tasks are added).
pub const MAX_PARENTS: usize = 100;

impl Dependency {
    /// Parses `afterok:12:13,afterany:14`, `afterok:5?afternotok:6`, `singleton`. Mixing `,`
    /// and `?` is refused, as sbatch refuses it.
    pub fn parse(s: &str) -> Result<Dependency, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty dependency list".into());
        }
        let (any, sep) = match (s.contains(','), s.contains('?')) {
            (true, true) => {
                return Err(format!(
                    "{s:?} mixes `,` (all of) and `?` (any of); use one of them"
                ));
            }
            (false, true) => (true, '?'),
            _ => (false, ','),
        };
        let mut terms = Vec::new();
        for part in s.split(sep) {
            let part = part.trim();
            let mut fields = part.split(':');
            let kind = match fields.next().unwrap_or_default() {
                "after" => DepKind::After,
                "afterany" => DepKind::AfterAny,
                "afterok" => DepKind::AfterOk,
                "afternotok" => DepKind::AfterNotOk,
                "singleton" => DepKind::Singleton,
                "aftercorr" | "afterburstbuffer" => {
                    return Err(format!(
                        "{part:?}: this dependency type is not supported; use after, afterany, \
                         afterok, afternotok or singleton"
                    ));
                }
                other => {
                    return Err(format!(
                        "{part:?}: unknown dependency type {other:?}; expected after, afterany, \
                         afterok, afternotok or singleton"
                    ));
                }
            };
            let ids: Vec<&str> = fields.collect();
            if kind == DepKind::Singleton {
                if !ids.is_empty() {
                    return Err(format!("{part:?}: singleton takes no job ids"));
                }
                terms.push(DepTerm { kind, job: None });
                continue;
            }
            if ids.is_empty() {
                return Err(format!(
                    "{part:?}: expected {}:JOB_ID[:JOB_ID...]",
                    kind.as_str()
                ));
            }
            for id in ids {
                // `after:ID+MINUTES` is Slurm's delay after the start; not supported.
                let n: i64 = id.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("{part:?}: {id:?} is not a job id (a positive number)")
                })?;
                terms.push(DepTerm {
                    kind,
                    job: Some(JobId(n)),
                });
            }
        }
        // The hub stores a dependency on an array as one on each of its tasks.
        if terms.len() > MAX_ARRAY_TASKS + MAX_PARENTS {
            return Err(format!(
                "at most {} dependencies",
                MAX_ARRAY_TASKS + MAX_PARENTS
            ));
        }
        Ok(Dependency { any, terms })
    }

    /// The parent jobs named, in order, without repeats.
    pub fn parents(&self) -> Vec<JobId> {
        let mut out: Vec<JobId> = Vec::new();
        for t in &self.terms {
            if let Some(j) = t.job
                && !out.contains(&j)
            {
                out.push(j);
            }
        }
        out
    }

    pub fn singleton(&self) -> bool {
        self.terms.iter().any(|t| t.kind == DepKind::Singleton)
    }
}

impl fmt::Display for DepTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.job {
            Some(j) => write!(f, "{}:{j}", self.kind.as_str()),
            None => f.write_str(self.kind.as_str()),
        }
    }
}

impl fmt::Display for Dependency {
    /// One term per parent: `afterok:5,afterok:6,singleton` (`?` between them for any of).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.any { "?" } else { "," };
        let terms: Vec<String> = self.terms.iter().map(DepTerm::to_string).collect();
        f.write_str(&terms.join(sep))
    }
}

/// Resolves a `--begin` value at `now`: `2026-12-03T15:00[:SS]`, `2026-12-03` (midnight),
/// `HH:MM[:SS]` (the next such time: today, or tomorrow if it has passed), `now`,
/// `now+N[seconds|minutes|hours|days|weeks]` (N seconds without a unit, as sbatch), and the
/// words `midnight`, `noon`, `today`, `tomorrow`. An absolute time may end in `Z` or `+HH:MM`;
/// without, it is China Standard Time ([`LOCAL_OFFSET_SECS`]).
pub fn resolve_begin(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    let s = s.trim();
    let bad = |why: &str| {
        format!(
            "{s:?}: {why}; expected YYYY-MM-DD[THH:MM[:SS]], HH:MM[:SS], now+N[seconds|minutes|hours|days]"
        )
    };
    // Every form is ASCII: anything else is refused before a byte offset could split a
    // character.
    if !s.is_ascii() {
        return Err(bad("only ASCII is read"));
    }
    let lower = s.to_ascii_lowercase();
    let local_day_start = |ms: i64| -> i64 {
        let local = ms.div_euclid(1000) + LOCAL_OFFSET_SECS;
        (local.div_euclid(86_400) * 86_400 - LOCAL_OFFSET_SECS) * 1000
    };
    if let Some(rest) = lower.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let rest = rest
            .strip_prefix('+')
            .ok_or_else(|| bad("after `now` comes `+N`"))?;
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (n, unit) = rest.split_at(digits);
        let n: u64 = n.parse().map_err(|_| bad("a number must follow `now+`"))?;
        let unit_secs: u64 = match unit {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            _ => return Err(bad(&format!("unknown unit {unit:?}"))),
        };
        let secs = n
            .checked_mul(unit_secs)
            .filter(|s| *s <= 366 * 86_400)
            .ok_or_else(|| bad("at most a year ahead"))?;
        return Ok(now.plus_secs(secs));
    }
    match lower.as_str() {
        "today" | "midnight" => {
            let start = local_day_start(now.0);
            return Ok(Timestamp(if lower == "today" {
                start
            } else {
                start + 86_400_000
            }));
        }
        "tomorrow" => return Ok(Timestamp(local_day_start(now.0) + 86_400_000)),
        "noon" => {
            let noon = local_day_start(now.0) + 12 * 3_600_000;
            return Ok(Timestamp(if noon <= now.0 {
                noon + 86_400_000
            } else {
                noon
            }));
        }
        _ => {}
    }
    let (body, offset) = zone(s).map_err(|w| bad(&w))?;
    let (date, time) = match body.split_once('T') {
        Some((d, t)) => (Some(d), Some(t)),
        None if body.contains(':') => (None, Some(body)),
        None => (Some(body), None),
    };
    let clock = match time {
        Some(t) => {
            let f: Vec<&str> = t.split(':').collect();
            if !(2..=3).contains(&f.len()) {
                return Err(bad("a time is HH:MM or HH:MM:SS"));
            }
            let num = |x: &str, max: i64| -> Result<i64, String> {
                x.parse::<i64>()
                    .ok()
                    .filter(|v| (0..=max).contains(v) && x.len() == 2)
                    .ok_or_else(|| bad(&format!("{x:?} is not a two-digit number up to {max}")))
            };
            num(f[0], 23)? * 3600 + num(f[1], 59)? * 60 + f.get(2).map_or(Ok(0), |x| num(x, 59))?
        }
        None => 0,
    };
    match date {
        Some(d) => {
            let f: Vec<&str> = d.split('-').collect();
            let parsed = (f.len() == 3 && f[0].len() == 4 && f[1].len() == 2 && f[2].len() == 2)
                .then(|| {
                    Some((
                        f[0].parse::<i64>().ok()?,
                        f[1].parse::<i64>().ok().filter(|m| (1..=12).contains(m))?,
                        f[2].parse::<i64>().ok().filter(|d| (1..=31).contains(d))?,
                    ))
                })
                .flatten();
            let (y, m, day) = parsed.ok_or_else(|| bad("a date is YYYY-MM-DD"))?;
            let days = days_from_civil(y, m, day);
            if y < 1970 || crate::time::civil_from_days(days) != (y, m as u32, day as u32) {
                return Err(bad("no such day"));
            }
            Ok(Timestamp((days * 86_400 + clock - offset) * 1000))
        }
        None => {
            // The next such time of day, in the zone given.
            let local_now = now.0.div_euclid(1000) + offset;
            let day = local_now.div_euclid(86_400) * 86_400;
            let mut at = day + clock;
            if at <= local_now {
                at += 86_400;
            }
            Ok(Timestamp((at - offset) * 1000))
        }
    }
}

/// Splits a trailing `Z` or `+HH:MM` / `-HH:MM` zone off a time: the rest and the offset in
/// seconds east of UTC (China Standard Time if none).
fn zone(s: &str) -> Result<(&str, i64), String> {
    if let Some(b) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Ok((b, 0));
    }
    if s.len() > 6 && s.contains('T') {
        let (b, z) = s.split_at(s.len() - 6);
        let sign = match z.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return Ok((s, LOCAL_OFFSET_SECS)),
        };
        let (h, m) = z[1..]
            .split_once(':')
            .ok_or_else(|| "a zone is +HH:MM".to_string())?;
        let h: i64 = h.parse().map_err(|_| "a zone is +HH:MM".to_string())?;
        let m: i64 = m.parse().map_err(|_| "a zone is +HH:MM".to_string())?;
        if h > 14 || m > 59 {
            return Err("a zone is at most +14:00".into());
        }
        return Ok((b, sign * (h * 3600 + m * 60)));
    }
    Ok((s, LOCAL_OFFSET_SECS))
}

/// A `--array` value: task ids and how many may run at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArraySpec {
    /// Ascending, without repeats.
    pub tasks: Vec<u32>,
    /// `%N`: at most N tasks placed or running at once.
    pub limit: Option<u32>,
}

impl ArraySpec {
    /// Parses `0-99%10`, `1,3,5`, `0-15:4`, `1-3,7,10-20:5%2`.
    pub fn parse(s: &str) -> Result<ArraySpec, String> {
        let s = s.trim();
        let (list, limit) = match s.split_once('%') {
            Some((l, n)) => {
                let n: u32 = n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("{s:?}: after `%` comes how many tasks may run at once (1 or more)")
                })?;
                (l, Some(n))
            }
            None => (s, None),
        };
        if list.trim().is_empty() {
            return Err(format!(
                "{s:?}: expected task ids such as 0-99, 1,3,5 or 0-15:4"
            ));
        }
        let mut tasks = Vec::new();
        let num = |x: &str| -> Result<u32, String> {
            x.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_ARRAY_INDEX)
                .ok_or_else(|| format!("{s:?}: {x:?} is not a task id (0 to {MAX_ARRAY_INDEX})"))
        };
        for part in list.split(',') {
            let (range, step) = match part.split_once(':') {
                Some((r, st)) => {
                    let st = num(st)?;
                    if st == 0 {
                        return Err(format!("{s:?}: a step must be 1 or more"));
                    }
                    (r, st)
                }
                None => (part, 1),
            };
            let (lo, hi) = match range.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let n = num(range)?;
                    (n, n)
                }
            };
            if lo > hi {
                return Err(format!("{s:?}: range {range:?} runs backwards"));
            }
            let mut t = lo;
            while t <= hi {
                tasks.push(t);
                if tasks.len() > MAX_ARRAY_TASKS * 4 {
                    break;
                }
                t = match t.checked_add(step) {
                    Some(n) => n,
                    None => break,
                };
            }
        }
        tasks.sort_unstable();
        tasks.dedup();
        if tasks.len() > MAX_ARRAY_TASKS {
            return Err(format!(
                "{s:?}: {} tasks; an array has at most {MAX_ARRAY_TASKS}",
                tasks.len()
            ));
        }
        Ok(ArraySpec { tasks, limit })
    }

    pub fn min(&self) -> u32 {
        self.tasks.first().copied().unwrap_or(0)
    }

    pub fn max(&self) -> u32 {
        self.tasks.last().copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_parse() {
        let d = Dependency::parse("afterok:12:13,afterany:14,singleton").unwrap();
        assert!(!d.any);
        assert_eq!(d.terms.len(), 4);
        assert_eq!(d.parents(), vec![JobId(12), JobId(13), JobId(14)]);
        assert!(d.singleton());
        let d = Dependency::parse("afterok:5?afternotok:6").unwrap();
        assert!(d.any);
        assert_eq!(d.terms[1].kind, DepKind::AfterNotOk);
        assert_eq!(d.to_string(), "afterok:5?afternotok:6");
        let d = Dependency::parse("afterok:12:13,singleton").unwrap();
        assert_eq!(d.to_string(), "afterok:12,afterok:13,singleton");
        assert_eq!(Dependency::parse(&d.to_string()).unwrap(), d);
        for bad in [
            "",
            "afterok",
            "afterok:x",
            "afterok:0",
            "sometime:3",
            "singleton:4",
            "afterok:1,afterany:2?after:3",
            "aftercorr:3",
        ] {
            assert!(Dependency::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn verdicts_by_kind() {
        use DepKind::*;
        use JobState::*;
        assert_eq!(After.verdict(Queued), Verdict::Waiting);
        assert_eq!(After.verdict(Placed), Verdict::Waiting);
        assert_eq!(After.verdict(Running), Verdict::Met);
        assert_eq!(After.verdict(Cancelled), Verdict::Met);
        assert_eq!(AfterAny.verdict(Running), Verdict::Waiting);
        assert_eq!(AfterAny.verdict(Failed), Verdict::Met);
        assert_eq!(AfterOk.verdict(Succeeded), Verdict::Met);
        assert_eq!(AfterOk.verdict(Failed), Verdict::Never);
        assert_eq!(AfterOk.verdict(Cancelled), Verdict::Never);
        assert_eq!(AfterOk.verdict(TimedOut), Verdict::Never);
        assert_eq!(AfterOk.verdict(Running), Verdict::Waiting);
        assert_eq!(AfterNotOk.verdict(Succeeded), Verdict::Never);
        assert_eq!(AfterNotOk.verdict(TimedOut), Verdict::Met);
        assert_eq!(AfterNotOk.verdict(Queued), Verdict::Waiting);
    }

    #[test]
    fn begin_times_resolve() {
        // 2026-12-03T06:30:00Z = 14:30 in China.
        let now = Timestamp(days_from_civil(2026, 12, 3) * 86_400_000 + 6 * 3_600_000 + 1_800_000);
        let at = |s: &str| resolve_begin(s, now).map(|t| t.to_string());
        assert_eq!(at("now+5").unwrap(), "2026-12-03T06:30:05Z");
        assert_eq!(at("now+2hours").unwrap(), "2026-12-03T08:30:00Z");
        assert_eq!(at("now+1days").unwrap(), "2026-12-04T06:30:00Z");
        assert_eq!(at("now").unwrap(), "2026-12-03T06:30:00Z");
        assert_eq!(at("2026-12-03T15:00").unwrap(), "2026-12-03T07:00:00Z");
        assert_eq!(at("2026-12-03T15:00:30").unwrap(), "2026-12-03T07:00:30Z");
        assert_eq!(at("2026-12-03T15:00:30Z").unwrap(), "2026-12-03T15:00:30Z");
        assert_eq!(
            at("2026-12-03T15:00+01:00").unwrap(),
            "2026-12-03T14:00:00Z"
        );
        assert_eq!(at("2026-12-05").unwrap(), "2026-12-04T16:00:00Z");
        // Later today, and a time that passed: tomorrow.
        assert_eq!(at("16:00").unwrap(), "2026-12-03T08:00:00Z");
        assert_eq!(at("09:15").unwrap(), "2026-12-04T01:15:00Z");
        assert_eq!(at("tomorrow").unwrap(), "2026-12-03T16:00:00Z");
        // The resolved form reads back as itself.
        let r = at("now+90").unwrap();
        assert_eq!(at(&r).unwrap(), r);
        for bad in [
            "now+",
            "now-5",
            "now+5fortnights",
            "25:00",
            "2026-13-01",
            "2026-02-30",
            "soon",
            "now+400days",
            // Not ASCII: a byte offset inside `é` once panicked the reader.
            "Tabé12345",
            "2026-12-03T10:00+08:0é",
            "-001-01-01",
            "0999-01-01",
        ] {
            assert!(at(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn arrays_parse() {
        let a = ArraySpec::parse("0-99%10").unwrap();
        assert_eq!(
            (a.tasks.len(), a.limit, a.min(), a.max()),
            (100, Some(10), 0, 99)
        );
        assert_eq!(ArraySpec::parse("1,3,5").unwrap().tasks, vec![1, 3, 5]);
        assert_eq!(ArraySpec::parse("0-15:4").unwrap().tasks, vec![0, 4, 8, 12]);
        assert_eq!(
            ArraySpec::parse("5,1-3,3%2").unwrap(),
            ArraySpec {
                tasks: vec![1, 2, 3, 5],
                limit: Some(2)
            }
        );
        for bad in ["", "%2", "3-1", "0-5%0", "0-10:0", "x", "0-5000", "-1"] {
            assert!(ArraySpec::parse(bad).is_err(), "{bad:?}");
        }
    }
}
