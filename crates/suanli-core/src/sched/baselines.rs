//! The strong baselines, run as their peers run: Slurm (multifactor priority, EASY backfill,
//! the earliest expected start across centers) and Tiresias (discretised two-dimensional
//! least-attained-service with preemption).

use std::cmp::Reverse;
use std::ops::Bound;

use suanli_types::{CenterId, JobId, PriorityClass, Timestamp};

use crate::queue::Key;
use crate::sched::memo::{Pass, Settled};
use crate::sched::preempt::{PREEMPT_TRIES, Victims};
use crate::sched::scoring::Scored;
use crate::{Core, Placement};

impl Core {
    /// A job's Tiresias level: how many of the thresholds its attained service (cards x
    /// seconds over its ended attempts, plus the running one so far) has crossed.
    pub(super) fn level(&self, job: JobId, now: Timestamp) -> usize {
        let mut attained = self.attained.get(&job).copied().unwrap_or(0);
        if let Some(r) = self.runs.get(&job) {
            attained += r.cards as u64 * (now.millis_since(r.started) as u64 / 1000);
        }
        self.config
            .tiresias_thresholds
            .iter()
            .filter(|t| attained >= **t)
            .count()
    }

    /// The class's pending jobs by Slurm's multifactor priority, highest first (ties: FIFO).
    fn slurm_order(&self, class: PriorityClass, now: Timestamp) -> Vec<Key> {
        let w = self.config.slurm;
        let cards: u64 = self
            .fleet
            .centers
            .values()
            .flat_map(|c| &c.pools)
            .map(|p| p.total_cards())
            .sum();
        let weight = |t| {
            self.tstate
                .get(t)
                .map_or(1, |s: &crate::sched::TenantState| s.policy.weight.max(1))
                as f64
        };
        let tenants = self.queue.tenants(class);
        let total_weight: f64 = tenants.keys().map(weight).sum();
        let mut out: Vec<(f64, Key)> = Vec::with_capacity(self.queue.class(class).len());
        for (tenant, keys) in tenants {
            // Usage and share as fractions of the network: factor 2^(-usage / share).
            let share = weight(tenant) / total_weight.max(1.0);
            let usage = self.share_key(tenant, now) * weight(tenant);
            let fair = w.fair_share * (-usage / share.max(1e-12)).exp2();
            for key in keys {
                let Some(e) = self.queue.at(class, key) else {
                    continue;
                };
                let age = now.millis_since(e.job.submitted_at) as f64 / 1000.0;
                let age = (age / w.max_age_secs.max(1) as f64).min(1.0);
                let size = e.job.spec.total_cards() as f64 / cards.max(1) as f64;
                out.push((w.age * age + fair + w.size * size.min(1.0), *key));
            }
        }
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out.into_iter().map(|(_, k)| k).collect()
    }

    /// [`crate::Policy::Slurm`] for one class. Returns true to end the whole pass.
    pub(super) fn class_slurm(
        &mut self,
        class: PriorityClass,
        now: Timestamp,
        pass: &mut Pass,
    ) -> bool {
        let mut watch = Settled::new(self.queue.shapes(class), &pass.memo, false);
        let mut free = self.fleet.free_online_cards();
        if watch.all() || self.queue.class(class).is_empty() {
            return false;
        }
        if free == 0 {
            return true;
        }
        for key in self.slurm_order(class, now) {
            pass.examined += 1;
            if pass.examined > self.config.max_examined_per_pass || free == 0 {
                return true;
            }
            let Some(shape) = self.queue.at(class, &key).map(|e| e.shape) else {
                continue;
            };
            match self.decide_easy(class, key, now, pass) {
                Some(p) => {
                    free = free.saturating_sub(p.alloc.total_cards());
                    pass.placed.push(p);
                }
                None => {
                    if watch.update(&shape, self.queue.shapes(class), &pass.memo, false) {
                        return false;
                    }
                }
            }
        }
        false
    }

    /// One job under EASY backfill: start it at the pool where it starts earliest if that is
    /// now (reservations respected: it must end before a pool's reservation to run ahead of
    /// it), else reserve that pool for it unless another job holds its reservation.
    fn decide_easy(
        &mut self,
        class: PriorityClass,
        key: Key,
        now: Timestamp,
        pass: &mut Pass,
    ) -> Option<Placement> {
        let entry = self.queue.at(class, &key)?;
        if pass.memo.get(&entry.shape).is_some_and(|m| m.blocked) {
            return None;
        }
        let shape = entry.shape;
        let walltime = entry.job.spec.walltime;
        let need = self.need(&entry.job.spec, entry.mask);
        let mut cands = self.candidates(&need, &entry.job.tenant, now, Some(&mut *pass));
        if cands.is_empty() {
            pass.memo.entry(shape).or_default().blocked = true;
            return None;
        }
        cands.sort_by(|a, b| {
            (a.expected_start, a.center, a.pool).cmp(&(b.expected_start, b.center, b.pool))
        });
        if cands[0].fits_now {
            let uid = cands[0].uid;
            let choice = self.choose(&need, &cands[0], &cands[1..], now, pass);
            pass.est.remove(&uid);
            return Some(self.place(class, key, choice, now, Vec::new()));
        }
        if !cands.iter().any(|s| s.free_now) {
            // Jobs of this shape behind it fit nowhere either (they are not given reservations
            // of their own: EASY reserves for the first blocked job).
            pass.memo.entry(shape).or_default().blocked = true;
        }
        let (uid, at) = (cands[0].uid, cands[0].expected_start);
        if let std::collections::hash_map::Entry::Vacant(v) = pass.reservations.entry(uid) {
            v.insert((at, at.plus_secs(walltime)));
            entry.note.set(uid, at, 0, 0);
        }
        None
    }

    /// [`crate::Policy::Tiresias`] for one class: levels first, FIFO within a level. Returns
    /// true to end the whole pass.
    pub(super) fn class_tiresias(
        &mut self,
        class: PriorityClass,
        now: Timestamp,
        pass: &mut Pass,
    ) -> bool {
        let preempting = self.config.preemption;
        let mut watch = Settled::new(self.queue.shapes(class), &pass.memo, preempting);
        if watch.all() {
            return false;
        }
        // Most pending jobs never ran (level 0, in FIFO order); the few that were preempted
        // carry what they attained and go after them, by level.
        let mut demoted: Vec<(usize, Key)> = self
            .attained
            .keys()
            .filter_map(|&id| {
                let e = self.queue.get(id)?;
                let level = self.level(id, now);
                (e.job.spec.priority == class && level > 0).then_some((level, (e.job.seq, id)))
            })
            .collect();
        demoted.sort_unstable();
        let skip: crate::queue::FxSet<Key> = demoted.iter().map(|(_, k)| *k).collect();
        let mut demoted = demoted.into_iter();
        let mut cursor: Option<Key> = None;
        loop {
            // Level 0 in FIFO order by a cursor (the pass usually ends long before the queue
            // does), then the demoted jobs.
            let next = if cursor.is_some_and(|c| c.0 == u64::MAX) {
                None
            } else {
                let q = self.queue.class(class);
                let range = match cursor {
                    Some(c) => q.range((Bound::Excluded(c), Bound::Unbounded)),
                    None => q.range(..),
                };
                let mut found = None;
                // (Jobs preempted in this pass are demoted and wait for the next.)
                for (k, _) in range {
                    if !skip.contains(k)
                        && (!self.attained.contains_key(&k.1) || self.level(k.1, now) == 0)
                    {
                        found = Some(*k);
                        break;
                    }
                }
                found
            };
            let (level, key) = match next {
                Some(k) => {
                    cursor = Some(k);
                    (0, k)
                }
                None => {
                    cursor = Some((u64::MAX, JobId(i64::MAX)));
                    match demoted.next() {
                        Some(d) => d,
                        None => return false,
                    }
                }
            };
            pass.examined += 1;
            if pass.examined > self.config.max_examined_per_pass {
                return true;
            }
            let Some(shape) = self.queue.at(class, &key).map(|e| e.shape) else {
                continue;
            };
            match self.decide_las(class, key, level, now, pass) {
                Some(p) => pass.placed.push(p),
                None => {
                    if watch.update(&shape, self.queue.shapes(class), &pass.memo, preempting) {
                        return false;
                    }
                }
            }
        }
    }

    /// One job under Tiresias: the first pool in center order that fits now; if none does,
    /// evict running jobs of a lower level (more attained service) to make room.
    fn decide_las(
        &mut self,
        class: PriorityClass,
        key: Key,
        level: usize,
        now: Timestamp,
        pass: &mut Pass,
    ) -> Option<Placement> {
        let entry = self.queue.at(class, &key)?;
        let shape = entry.shape;
        let preempting = self.config.preemption;
        if pass
            .memo
            .get(&shape)
            .is_some_and(|m| m.blocked && (m.no_victims || !preempting))
        {
            return None;
        }
        let need = self.need(&entry.job.spec, entry.mask);
        let fit = (need.k, need.n, need.total);
        let mut cands = self.candidates(&need, &entry.job.tenant, now, None);
        if let Some(i) = cands.iter().position(|s| s.fits_now) {
            let chosen = cands.remove(i);
            let uid = chosen.uid;
            let choice = self.choose(&need, &chosen, &cands, now, pass);
            pass.est.remove(&uid);
            return Some(self.place(class, key, choice, now, Vec::new()));
        }
        let m = pass.memo.entry(shape).or_default();
        m.blocked = true;
        if cands.is_empty() {
            m.no_victims = true;
        }
        if !preempting || m.no_victims || pass.preemptions >= self.config.max_preemptions_per_pass {
            return None;
        }
        // The pools with the most free cards need the fewest victims.
        let free_of = |s: &Scored| self.fleet.centers[s.center].pools[s.pool].free_cards;
        cands.sort_by_key(|s| (Reverse(free_of(s)), s.center, s.pool));
        let top: Vec<(CenterId, usize, u32, bool)> = cands
            .iter()
            .take(PREEMPT_TRIES)
            .map(|s| (s.center.clone(), s.pool, s.uid, false))
            .collect();
        drop(cands);
        let rule = Victims::Tiresias { level };
        let Some((i, victims)) = self.find_victims(&top, rule, fit, now) else {
            pass.memo.entry(shape).or_default().no_victims = true;
            return None;
        };
        pass.preemptions += victims.len();
        let (center, pool, uid, _) = top[i].clone();
        self.last_preempt.insert(uid, now);
        pass.est.remove(&uid);
        let entry = self.queue.at(class, &key).expect("still pending");
        let need = self.need(&entry.job.spec, entry.mask);
        let mut cands = self.candidates(&need, &entry.job.tenant, now, None);
        let at = cands
            .iter()
            .position(|s| *s.center == center && s.pool == pool)
            .expect("the pool the victims made room in");
        let chosen = cands.remove(at);
        let choice = self.choose(&need, &chosen, &cands, now, pass);
        Some(self.place(class, key, choice, now, victims))
    }
}
