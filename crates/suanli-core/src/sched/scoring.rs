//! Candidate pools for a job: the hard filters with the tenant's quota, expected starts from
//! the release timelines and reservations, the suanli score, and the rejected centers.

use std::sync::Arc;

use suanli_types::{CenterId, Money, TenantId, Timestamp};

use crate::filter::{Mode, Need};
use crate::fleet::Center;
use crate::queue::{Entry, FxSet};
use crate::sched::memo::{Pass, Queued};
use crate::sched::{FAR, vendor_of};
use crate::{Candidate, Core, PendingJob, Policy};

/// A candidate pool while scoring; borrows the fleet, so it costs no allocation.
pub(super) struct Scored<'a> {
    pub(super) center: &'a CenterId,
    pub(super) pool: usize,
    pub(super) uid: u32,
    pub(super) chip: Option<usize>,
    pub(super) tflops: u32,
    pub(super) price: Money,
    pub(super) cost_per_hour: Money,
    pub(super) cost_total: Money,
    pub(super) expected_start: Timestamp,
    pub(super) score_milli: i64,
    pub(super) fits_now: bool,
    /// The pool has the nodes free now (a reservation may still keep the job out).
    pub(super) free_now: bool,
    pub(super) borrowed: bool,
    /// The tenant has no quota for this pool's family (no center was excluded by quota).
    pub(super) quota_free: bool,
    /// A model job's expected run time there (see [`Candidate::expected_run_secs`]).
    pub(super) run_secs: Option<u64>,
}

/// A decision made while borrowing the fleet, owned so the fleet can then be changed.
pub(super) struct Choice {
    pub(super) center: CenterId,
    pub(super) pool: usize,
    pub(super) chip: Option<usize>,
    pub(super) borrowed: bool,
    pub(super) chosen: Candidate,
    pub(super) others: Vec<Candidate>,
    pub(super) rejected: Arc<[crate::Rejection]>,
}

/// See [`Core::standing`].
pub(crate) struct Standing {
    /// The pool it waits for, with its expected start there.
    pub best: Candidate,
    pub fitting: Option<Candidate>,
    /// Queued ahead of it there.
    pub queued: Queued,
}

/// Other candidates kept in a decision record.
pub(super) const OTHERS_KEPT: usize = 5;

impl Core {
    /// Does the pool have `n` nodes with `k` free cards (`total` = k x n) now?
    pub(super) fn free_ok_pool(
        &self,
        center: &CenterId,
        pool: usize,
        (k, n, total): (u32, u32, u64),
    ) -> bool {
        let p = &self.fleet.centers[center].pools[pool];
        p.free_cards >= total && p.nodes_with_free(k) >= n
    }

    /// Every online pool that passes the hard filters and the tenant's quota, with whether it
    /// fits now (respecting reservations when `pass` is given) and its expected start.
    pub(super) fn candidates<'a>(
        &'a self,
        need: &Need,
        tenant: &TenantId,
        now: Timestamp,
        pass: Option<&mut Pass>,
    ) -> Vec<Scored<'a>> {
        let mut out = Vec::new();
        self.candidates_into(&mut out, need, tenant, now, pass);
        out
    }

    /// [`candidates`](Core::candidates) into a buffer whose allocation is reused.
    pub(super) fn candidates_into<'a>(
        &'a self,
        out: &mut Vec<Scored<'a>>,
        need: &Need,
        tenant: &TenantId,
        now: Timestamp,
        mut pass: Option<&mut Pass>,
    ) {
        out.clear();
        let walltime = need.spec.walltime;
        let state = self
            .tstate
            .get(tenant)
            .filter(|t| !t.policy.quotas.is_empty());
        let pays = self
            .tstate
            .get(tenant)
            .map(|t| &t.policy.pays_bp)
            .filter(|m| !m.is_empty());
        for c in self.fleet.centers.values().filter(|c| c.online) {
            if !need.center_ok(&c.id) {
                continue;
            }
            for (pi, p) in c.pools.iter().enumerate() {
                if !need.static_ok(p) {
                    continue;
                }
                let (family, tflops) = vendor_of(p.chip);
                let mut borrowed = false;
                let quota_free = state.is_none();
                if let Some(q) = state.and_then(|t| t.policy.quotas.get(family)) {
                    let used = state
                        .and_then(|t| t.running_cards.get(family))
                        .copied()
                        .unwrap_or(0) as u64;
                    let after = used + need.total;
                    if after > q.nominal as u64 + q.borrow_limit as u64 {
                        continue;
                    }
                    borrowed = after > q.nominal as u64;
                }
                let free_now = need.free_ok(p);
                let (fits_now, expected_start) = self.start_at(
                    pass.as_deref_mut(),
                    c,
                    pi,
                    free_now,
                    (need.k, need.n),
                    walltime,
                    now,
                );
                let mut cost_per_hour = need.cost(p);
                if let Some(bp) = pays.and_then(|m| m.get(&p.sku)) {
                    cost_per_hour = cost_per_hour.mul_div(*bp as i64, 10_000);
                }
                let run_secs = need.run_secs(p);
                out.push(Scored {
                    center: &c.id,
                    pool: pi,
                    uid: p.uid,
                    chip: p.chip,
                    tflops,
                    price: p.price,
                    cost_per_hour,
                    cost_total: cost_per_hour.mul_div(run_secs.unwrap_or(walltime) as i64, 3600),
                    expected_start,
                    score_milli: 0,
                    fits_now,
                    free_now,
                    borrowed,
                    quota_free,
                    run_secs,
                });
            }
        }
    }

    /// Whether a job of `k` x `n` cards and `walltime` fits pool `pi` of `c` now (`free_now`:
    /// the nodes are free) and when it is expected to start there: now if it fits, else when
    /// running jobs' wall-time limits free the nodes, after the pool's reservation, plus the work
    /// this pass left waiting there ahead of it (by wall-time limits, spread over the pool's
    /// cards). Without `pass`, only running jobs count.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_at(
        &self,
        pass: Option<&mut Pass>,
        c: &Center,
        pi: usize,
        free_now: bool,
        (k, n): (u32, u32),
        walltime: u64,
        now: Timestamp,
    ) -> (bool, Timestamp) {
        let p = &c.pools[pi];
        let (resv, queued) = pass.as_ref().map_or((None, None), |ps| {
            (
                ps.reservations.get(&p.uid).copied(),
                ps.queued.get(&p.uid).copied(),
            )
        });
        let ends = now.plus_secs(walltime);
        if free_now && resv.is_none_or(|(start, _)| ends <= start) {
            return (true, now);
        }
        let mut start = match pass {
            Some(ps) => *ps
                .est
                .entry(p.uid)
                .or_default()
                .entry((k, n))
                .or_insert_with(|| self.estimate_start(&c.id, pi, k, n, now)),
            None => self.estimate_start(&c.id, pi, k, n, now),
        };
        if let Some((_, resv_end)) = resv {
            start = start.max(resv_end);
        }
        if let Some(q) = queued {
            start = start.plus_millis(q.delay_ms(p.total_cards()));
        }
        (false, start)
    }

    /// The record of a candidate for decisions and quotes.
    pub(super) fn candidate(&self, s: &Scored) -> Candidate {
        let c = &self.fleet.centers[s.center];
        let p = &c.pools[s.pool];
        Candidate {
            center: s.center.clone(),
            sku: p.sku.clone(),
            price_per_card_hour: s.price,
            cost_per_hour: s.cost_per_hour,
            cost_total: s.cost_total,
            free_cards: c.sku_free(&p.sku),
            expected_start: s.expected_start,
            score_milli: s.score_milli,
            expected_run_secs: s.run_secs,
        }
    }

    pub(super) fn choose(
        &self,
        need: &Need,
        chosen: &Scored,
        rest: &[Scored],
        now: Timestamp,
        pass: &mut Pass,
    ) -> Choice {
        let refs: Vec<&Scored> = rest.iter().collect();
        self.choose_refs(need, chosen, &refs, now, pass)
    }

    /// Everything the decision records, made while the fleet is borrowed.
    pub(super) fn choose_refs(
        &self,
        need: &Need,
        chosen: &Scored,
        rest: &[&Scored],
        now: Timestamp,
        pass: &mut Pass,
    ) -> Choice {
        // Under the suanli policy every online pool that passes the static filters is a
        // candidate, so the rejected centers depend only on the job's shape, unless the tenant's
        // quota excluded some.
        let shareable = self.config.policy == Policy::Suanli && chosen.quota_free;
        let mut cand = self.candidate(chosen);
        cand.expected_start = now;
        let mut have: FxSet<&CenterId> = rest.iter().map(|s| s.center).collect();
        have.insert(chosen.center);
        Choice {
            center: chosen.center.clone(),
            pool: chosen.pool,
            chip: chosen.chip,
            borrowed: chosen.borrowed,
            chosen: cand,
            others: rest
                .iter()
                .take(OTHERS_KEPT)
                .map(|s| self.candidate(s))
                .collect(),
            rejected: self.rejections(need, &have, pass, shareable),
        }
    }

    /// The suanli score; fills `score_milli`.
    pub(super) fn score(&self, cands: &mut [Scored], walltime: u64, now: Timestamp) {
        let w = self.config.weights;
        let cheapest = cands.iter().map(|s| s.cost_total.0).min().unwrap_or(0);
        let least = cands.iter().map(|s| s.tflops).min().unwrap_or(1).max(1);
        for s in cands.iter_mut() {
            let cost = if cheapest > 0 {
                s.cost_total.0 as f64 / cheapest as f64 - 1.0
            } else if s.cost_total.0 > 0 {
                1.0
            } else {
                0.0
            };
            let wait =
                s.expected_start.millis_since(now) as f64 / (walltime.max(60) as f64 * 1000.0);
            let fit = s.tflops as f64 / least as f64 - 1.0;
            let score = w.cost * cost + w.wait * wait + w.fit * fit;
            s.score_milli = (score * 1000.0).round().clamp(-1e15, 1e15) as i64;
        }
    }

    /// When `n` nodes with `k` free cards will be free in the pool, if running jobs end at their
    /// wall-time limits.
    pub(super) fn estimate_start(
        &self,
        center: &CenterId,
        pool: usize,
        k: u32,
        n: u32,
        now: Timestamp,
    ) -> Timestamp {
        let p = &self.fleet.centers[center].pools[pool];
        let mut count = p.nodes_with_free(k);
        if count >= n {
            return now;
        }
        let Some(events) = self.pool_runs.get(&p.uid) else {
            return Timestamp(now.0 + FAR);
        };
        // Free cards of the nodes the releases touch so far (usually few): no copy of the pool.
        let mut touched: Vec<(u32, u32)> = Vec::new();
        for &(end, node, cards, _) in events {
            let i = node as usize;
            let Some(nd) = p.nodes.get(i) else {
                continue;
            };
            let slot = match touched.iter().position(|(t, _)| *t == node) {
                Some(s) => s,
                None => {
                    touched.push((node, nd.free()));
                    touched.len() - 1
                }
            };
            let before = touched[slot].1;
            let after = (before + cards).min(nd.capacity);
            touched[slot].1 = after;
            if before < k && after >= k {
                count += 1;
                if count >= n {
                    return end.max(now);
                }
            }
        }
        Timestamp(now.0 + FAR)
    }

    /// Every center not in `have`, with its reason (as of now).
    pub(super) fn rejections(
        &self,
        need: &Need,
        have: &FxSet<&CenterId>,
        pass: &mut Pass,
        shareable: bool,
    ) -> Arc<[crate::Rejection]> {
        let key = (
            need.mask(),
            need.k,
            need.n,
            need.spec.max_price_per_card_hour,
            need.spec.model.clone(),
            need.spec.centers.clone(),
        );
        if shareable && let Some(r) = pass.shared_rejections.get(&key) {
            return r.clone();
        }
        let never = pass.never.entry(key.clone()).or_insert_with(|| {
            self.fleet
                .centers
                .values()
                .filter_map(|c| {
                    crate::filter::evaluate(c, need, Mode::Ever)
                        .err()
                        .map(|r| (c.id.clone(), r.render(need)))
                })
                .collect()
        });
        let mut out = Vec::new();
        for c in self.fleet.centers.values() {
            // Shareable: the candidates are exactly the online centers that pass the static
            // filters (`have` may hold only the best few of them).
            let candidate = if shareable {
                c.online && !never.contains_key(&c.id)
            } else {
                have.contains(&c.id)
            };
            if candidate {
                continue;
            }
            let reason = match never.get(&c.id) {
                Some(r) => r.clone(),
                None => match crate::filter::evaluate(c, need, Mode::Now) {
                    Err(r) => r.render(need),
                    Ok(_) => "over the tenant's quota for this chip family".to_string(),
                },
            };
            out.push(crate::Rejection {
                center: c.id.clone(),
                reason,
            });
        }
        let out: Arc<[crate::Rejection]> = out.into();
        if shareable {
            pass.shared_rejections.insert(key, out.clone());
        }
        out
    }

    /// Where the last pass that looked at a pending job left it waiting (its pool, expected
    /// start and the work queued ahead of it there), and the best pool that fits it now (with the
    /// last pass's reservations), if that is another. None if no pass left it waiting, or if it
    /// fits now at the pool it waits for (the next pass places it).
    pub(crate) fn standing(&self, entry: &Entry, now: Timestamp) -> Option<Standing> {
        let (uid, start, jobs, card_secs) = entry.note.get()?;
        let need = self.need(&entry.job.spec, entry.mask);
        let mut pass = Pass {
            reservations: self.waiting.reservations.clone(),
            ..Pass::default()
        };
        let mut cands = self.candidates(&need, &entry.job.tenant, now, Some(&mut pass));
        let at = cands.iter().position(|s| s.uid == uid)?;
        if cands[at].fits_now {
            return None;
        }
        if self.config.policy == Policy::Suanli {
            self.score(&mut cands, need.spec.walltime, now);
        } else {
            for s in cands.iter_mut() {
                s.score_milli = s.cost_per_hour.0;
            }
        }
        let fitting = cands
            .iter()
            .filter(|s| s.fits_now)
            .min_by(|a, b| {
                (a.score_milli, a.center, a.pool).cmp(&(b.score_milli, b.center, b.pool))
            })
            .map(|s| self.candidate(s));
        let mut best = self.candidate(&cands[at]);
        best.expected_start = start;
        Some(Standing {
            best,
            fitting,
            queued: Queued { card_secs, jobs },
        })
    }

    /// Price and expected start at every center that could take the job now or later, best
    /// first by the configured policy's score, and why the others cannot.
    pub(crate) fn quote_job(
        &self,
        job: &PendingJob,
        now: Timestamp,
    ) -> (Vec<Candidate>, Vec<crate::Rejection>) {
        let need = self.need(&job.spec, crate::filter::chip_mask(&job.spec));
        let mut cands = self.candidates(&need, &job.tenant, now, None);
        self.score(&mut cands, job.spec.walltime, now);
        cands.sort_by(|a, b| {
            (a.score_milli, a.center, a.pool).cmp(&(b.score_milli, b.center, b.pool))
        });
        let have: FxSet<&CenterId> = cands.iter().map(|s| s.center).collect();
        let rejected = self
            .rejections(&need, &have, &mut Pass::default(), false)
            .to_vec();
        (cands.iter().map(|s| self.candidate(s)).collect(), rejected)
    }
}
