//! The API's rate and size limits: what the hub's config sets ([`Limits`]), token buckets kept
//! per key ([`Buckets`], pure: the time is an argument), and the hub's [`Guard`] that applies
//! them to failed authentications (per source address), to every authenticated request (per
//! token) and to the site protocol (per center). See `docs/SECURITY.md`, "The API's limits".

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use suanli_store::Principal;
use suanli_types::{CenterId, Role};

use crate::error::HubError;
use crate::metrics::Metrics;

/// A token bucket's shape: `burst` requests at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub burst: u32,
    pub per_second: f64,
}

/// The API's limits, from the hub's config. The defaults are far above what a site agent sends
/// (at most 200 events and about 1 MiB per batch, a heartbeat per interval, one long poll).
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Failed authentications per source address (IPv6: per /64); over it, 429 without looking
    /// the token up.
    pub auth_failures: Rate,
    /// Requests per token (every authenticated request).
    pub per_token: Rate,
    /// Site-protocol requests per center, whichever of its tokens sends them.
    pub per_site: Rate,
    /// Events in one `POST /v1/site/events` batch; more is 413.
    pub events_per_batch: usize,
    /// Bytes of one site-agent body (heartbeat, event batch); more is 413.
    pub site_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            auth_failures: Rate {
                burst: 300,
                per_second: 5.0,
            },
            per_token: Rate {
                burst: 2_000,
                per_second: 200.0,
            },
            per_site: Rate {
                burst: 1_000,
                per_second: 100.0,
            },
            events_per_batch: 1_000,
            site_body_bytes: 8 << 20,
        }
    }
}

/// A refusal: how long until the next request can pass, and whether this is the first refusal
/// since the key last passed (worth one log line; the rest of a flood is not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
    pub first: bool,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    refusing: bool,
}

/// Keys past which full buckets (keys quiet long enough to have refilled) are forgotten.
const KEYS_BEFORE_PRUNING: usize = 10_000;

/// One token bucket per key, all of one [`Rate`]; a key seen for the first time has a full one.
#[derive(Debug)]
pub struct Buckets<K> {
    rate: Rate,
    buckets: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub fn new(rate: Rate) -> Buckets<K> {
        Buckets {
            rate,
            buckets: HashMap::new(),
        }
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * self.rate.per_second).min(f64::from(self.rate.burst))
    }

    fn wait(&self, tokens: f64) -> Duration {
        if self.rate.per_second <= 0.0 {
            return Duration::from_secs(3600);
        }
        Duration::from_secs_f64(((1.0 - tokens) / self.rate.per_second).max(0.0))
    }

    /// Takes a token for `key` at `now`, or says how long until one is there.
    pub fn take(&mut self, key: &K, now: Instant) -> Result<(), Refused> {
        if self.buckets.len() >= KEYS_BEFORE_PRUNING && !self.buckets.contains_key(key) {
            self.prune(now);
        }
        let full = Bucket {
            tokens: f64::from(self.rate.burst),
            at: now,
            refusing: false,
        };
        let b = *self.buckets.get(key).unwrap_or(&full);
        let tokens = self.refilled(&b, now);
        let (next, result) = if tokens >= 1.0 {
            let next = Bucket {
                tokens: tokens - 1.0,
                at: now,
                refusing: false,
            };
            (next, Ok(()))
        } else {
            let refused = Refused {
                retry_after: self.wait(tokens),
                first: !b.refusing,
            };
            let next = Bucket {
                tokens,
                at: now,
                refusing: true,
            };
            (next, Err(refused))
        };
        self.buckets.insert(key.clone(), next);
        result
    }

    /// A refusal if `key` has no token at `now`; nothing is taken either way.
    pub fn refusing(&mut self, key: &K, now: Instant) -> Option<Refused> {
        let b = *self.buckets.get(key)?;
        let tokens = self.refilled(&b, now);
        if tokens >= 1.0 {
            return None;
        }
        let retry_after = self.wait(tokens);
        self.buckets.insert(
            key.clone(),
            Bucket {
                tokens,
                at: now,
                refusing: true,
            },
        );
        Some(Refused {
            retry_after,
            first: !b.refusing,
        })
    }

    /// Forgets the keys whose buckets are full again: they behave as new ones.
    fn prune(&mut self, now: Instant) {
        let burst = f64::from(self.rate.burst);
        let rate = self.rate;
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens + elapsed * rate.per_second < burst
        });
    }
}

/// The key of a source address: the address itself (IPv4, IPv4-mapped IPv6), or the /64 of an
/// IPv6 address (one host commonly holds a whole /64).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The hub's limits in force, and the buckets they fill; refusals are counted in the metrics.
pub struct Guard {
    pub limits: Limits,
    failures: Mutex<Buckets<IpAddr>>,
    tokens: Mutex<Buckets<String>>,
    sites: Mutex<Buckets<CenterId>>,
    metrics: Arc<Metrics>,
}

impl Guard {
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Guard {
        Guard {
            failures: Mutex::new(Buckets::new(limits.auth_failures)),
            tokens: Mutex::new(Buckets::new(limits.per_token)),
            sites: Mutex::new(Buckets::new(limits.per_site)),
            limits,
            metrics,
        }
    }

    /// Counts a failed authentication from `from` (`reason`: `no_token`, `unknown_token`):
    /// `why` while the address is within its limit, `rate_limited` once it is over. Logged with
    /// the address, never the token.
    pub fn failed(&self, from: IpAddr, reason: &'static str, why: HubError) -> HubError {
        let key = source_key(from);
        let taken = lock(&self.failures).take(&key, Instant::now());
        match taken {
            Ok(()) => {
                self.metrics.auth_failed(reason);
                tracing::warn!(address = %from, reason = %why, "authentication failed");
                why
            }
            Err(r) => self.auth_limited(from, r),
        }
    }

    /// `Some` while `from` is over its failed-authentication limit: an unknown token from it is
    /// then refused without a store lookup.
    pub fn auth_refused(&self, from: IpAddr) -> Option<HubError> {
        let r = lock(&self.failures).refusing(&source_key(from), Instant::now())?;
        Some(self.auth_limited(from, r))
    }

    fn auth_limited(&self, from: IpAddr, r: Refused) -> HubError {
        self.metrics.auth_failed("rate_limited");
        if r.first {
            tracing::warn!(
                address = %from,
                retry_after_secs = r.retry_after.as_secs_f64().ceil() as u64,
                "too many failed authentications from this address: refusing its unknown \
                 tokens for a while (further refusals are not logged)"
            );
        }
        HubError::RateLimited(r.retry_after)
    }

    /// Admits one request of the token whose hash is `token` (and, for a site token, of its
    /// center), or refuses it.
    pub fn admit(&self, token: &str, p: &Principal) -> Result<(), HubError> {
        let now = Instant::now();
        let by_token = lock(&self.tokens).take(&token.to_string(), now);
        let refused = match (by_token, p.role, &p.center) {
            (Err(r), ..) => Some((r, "token")),
            (Ok(()), Role::Site, Some(center)) => lock(&self.sites)
                .take(center, now)
                .err()
                .map(|r| (r, "site")),
            _ => None,
        };
        match refused {
            None => Ok(()),
            Some((r, per)) => {
                self.metrics.rate_limited(per);
                if r.first {
                    tracing::warn!(
                        principal = %p.name,
                        center = ?p.center,
                        per,
                        "request rate over the limit: refusing for a while (further refusals \
                         are not logged)"
                    );
                }
                Err(HubError::RateLimited(r.retry_after))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 3,
        per_second: 2.0,
    };

    #[test]
    fn a_bucket_lets_a_burst_through_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Buckets::new(RATE);
        for _ in 0..3 {
            b.take(&"a", t0).unwrap();
        }
        let r = b.take(&"a", t0).unwrap_err();
        assert_eq!(r.retry_after, Duration::from_millis(500));
        assert!(r.first);
        // A flood is refused quietly after the first refusal.
        assert!(!b.take(&"a", t0).unwrap_err().first);
        let r = b.refusing(&"a", t0).unwrap();
        assert_eq!(r.retry_after, Duration::from_millis(500));
        assert!(!r.first);
        // Other keys are not affected.
        b.take(&"b", t0).unwrap();
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.refusing(&"a", t1), None);
        b.take(&"a", t1).unwrap();
        assert!(b.take(&"a", t1).unwrap_err().first);
        // Refilling stops at the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            b.take(&"a", t2).unwrap();
        }
        assert!(b.take(&"a", t2).is_err());
    }

    #[test]
    fn a_rate_of_zero_never_refills() {
        let t0 = Instant::now();
        let mut b = Buckets::new(Rate {
            burst: 1,
            per_second: 0.0,
        });
        b.take(&1, t0).unwrap();
        let later = t0 + Duration::from_secs(86_400);
        assert_eq!(
            b.take(&1, later).unwrap_err().retry_after,
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn quiet_keys_are_forgotten_when_many() {
        let t0 = Instant::now();
        let mut b = Buckets::new(RATE);
        for k in 0..KEYS_BEFORE_PRUNING {
            b.take(&k, t0).unwrap();
        }
        assert_eq!(b.buckets.len(), KEYS_BEFORE_PRUNING);
        // One key stays busy; the others refill within two seconds.
        let t1 = t0 + Duration::from_secs(2);
        for _ in 0..3 {
            b.take(&0, t1).unwrap();
        }
        b.take(&usize::MAX, t1).unwrap();
        assert_eq!(b.buckets.len(), 2, "the busy key and the new one");
        assert!(b.take(&0, t1).is_err(), "the busy key kept its state");
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
