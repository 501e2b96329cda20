//! Queueing delays as a mergeable histogram: exact below 32 s, then 16 buckets per power of two,
//! so a quantile read from it is at most 1/16 (6.25%) above the exact one, and two hours' (or two
//! centers') histograms add up to the histogram of both.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// A histogram's buckets: most hours hold one or two, kept inline (a pass over the hours reads
/// them without following a pointer: that was a cache miss per hour with waits).
type Buckets = SmallVec<[(u16, u64); 2]>;

/// Waits in whole seconds, by bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitHistogram {
    /// (bucket, count), by bucket, no zero counts.
    buckets: Buckets,
    count: u64,
    sum_secs: u128,
    max_secs: u64,
}

const EXACT: u64 = 32;
const SUB: u32 = 16;

fn bucket(secs: u64) -> u16 {
    if secs < EXACT {
        return secs as u16;
    }
    let e = 63 - secs.leading_zeros(); // >= 5
    let m = (secs >> (e - 4)) & u64::from(SUB - 1);
    (EXACT as u32 + (e - 5) * SUB + m as u32) as u16
}

/// The largest wait a bucket holds.
fn upper(b: u16) -> u64 {
    let b = u64::from(b);
    if b < EXACT {
        return b;
    }
    let e = (b - EXACT) / u64::from(SUB) + 5;
    let m = (b - EXACT) % u64::from(SUB);
    ((u64::from(SUB) + m + 1) << (e - 4)) - 1
}

impl WaitHistogram {
    pub fn record(&mut self, secs: u64) {
        let b = bucket(secs);
        match self.buckets.binary_search_by_key(&b, |e| e.0) {
            Ok(i) => self.buckets[i].1 += 1,
            Err(i) => self.buckets.insert(i, (b, 1)),
        }
        self.count += 1;
        self.sum_secs += u128::from(secs);
        self.max_secs = self.max_secs.max(secs);
    }

    pub fn merge(&mut self, other: &WaitHistogram) {
        let mut merged = Buckets::with_capacity(self.buckets.len() + other.buckets.len());
        let (mut a, mut b) = (
            self.buckets.iter().peekable(),
            other.buckets.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    let e = (x.0, x.1 + y.1);
                    a.next();
                    b.next();
                    e
                }
                (Some(x), Some(y)) if x.0 < y.0 => *a.next().expect("peeked"),
                (Some(_), Some(_)) | (None, Some(_)) => *b.next().expect("peeked"),
                (Some(_), None) => *a.next().expect("peeked"),
                (None, None) => break,
            };
            merged.push(next);
        }
        self.buckets = merged;
        self.count += other.count;
        self.sum_secs += other.sum_secs;
        self.max_secs = self.max_secs.max(other.max_secs);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean wait in seconds, if any job waited.
    pub fn mean_secs(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_secs as f64 / self.count as f64)
    }

    /// How many waits were at most `secs` (exact when `secs` is a bucket's upper bound, as the
    /// release's classes 59, 599, 3599 and 21599 s are not: those count whole buckets, so a wait
    /// up to 1/16 longer may be counted in the class below).
    pub fn count_at_most(&self, secs: u64) -> u64 {
        let upto = bucket(secs);
        self.buckets
            .iter()
            .take_while(|(b, _)| *b <= upto)
            .map(|(_, n)| n)
            .sum()
    }

    /// The wait at or below which a share `p` (0 < p <= 1) of the jobs started: the "nearest
    /// rank" quantile, read as its bucket's upper bound (never above the longest wait seen).
    pub fn quantile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(upper(*b).min(self.max_secs));
            }
        }
        Some(self.max_secs)
    }
}

/// Many histograms added up in a flat array of buckets (what a query sums hours into); the
/// same counts as merging them, read back as a [`WaitHistogram`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WaitSum {
    buckets: Vec<u64>,
    count: u64,
    sum_secs: u128,
    max_secs: u64,
}

impl WaitSum {
    pub(crate) fn add(&mut self, h: &WaitHistogram) {
        if h.count == 0 {
            return;
        }
        for (b, n) in &h.buckets {
            let i = usize::from(*b);
            if self.buckets.len() <= i {
                self.buckets.resize(i + 1, 0);
            }
            self.buckets[i] += n;
        }
        self.count += h.count;
        self.sum_secs += h.sum_secs;
        self.max_secs = self.max_secs.max(h.max_secs);
    }

    pub(crate) fn merge(&mut self, o: &WaitSum) {
        if self.buckets.len() < o.buckets.len() {
            self.buckets.resize(o.buckets.len(), 0);
        }
        for (s, n) in self.buckets.iter_mut().zip(&o.buckets) {
            *s += n;
        }
        self.count += o.count;
        self.sum_secs += o.sum_secs;
        self.max_secs = self.max_secs.max(o.max_secs);
    }

    pub(crate) fn histogram(&self) -> WaitHistogram {
        WaitHistogram {
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(b, n)| (b as u16, *n))
                .collect(),
            count: self.count,
            sum_secs: self.sum_secs,
            max_secs: self.max_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn buckets_are_exact_below_32_s_and_ordered_above() {
        for s in 0..EXACT {
            assert_eq!(upper(bucket(s)), s);
        }
        let mut last = 0;
        for s in [32, 33, 47, 64, 100, 1000, 3600, 86_400, 10_000_000] {
            let b = bucket(s);
            assert!(b >= last);
            last = b;
            assert!(upper(b) >= s, "{s}");
        }
    }

    proptest! {
        /// A quantile is never below the exact nearest-rank one and at most 1/16 above it, and
        /// merging two histograms gives the histogram of all their waits.
        #[test]
        fn quantiles_are_within_a_sixteenth(waits in prop::collection::vec(0u64..2_000_000, 1..300),
                                            split in 0usize..300, p in 0.01f64..1.0) {
            let mut all = WaitHistogram::default();
            let (mut a, mut b) = (WaitHistogram::default(), WaitHistogram::default());
            for (i, w) in waits.iter().enumerate() {
                all.record(*w);
                if i < split { a.record(*w) } else { b.record(*w) }
            }
            let mut sum = WaitSum::default();
            sum.add(&a);
            sum.add(&b);
            a.merge(&b);
            prop_assert_eq!(&a, &all);
            prop_assert_eq!(&sum.histogram(), &all);
            let mut sorted = waits.clone();
            sorted.sort();
            let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let exact = sorted[rank - 1];
            let got = all.quantile(p).unwrap();
            prop_assert!(got >= exact, "{got} < {exact}");
            prop_assert!(got as f64 <= exact as f64 * (1.0 + 1.0 / 16.0) + 1.0, "{got} vs {exact}");
        }
    }
}
