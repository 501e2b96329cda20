//! The pending queue: one FIFO per priority class, keyed by `(seq, job)`, with an id index,
//! each tenant's FIFO (for fair share) and the wall times pending per job shape (so a pass can
//! tell when a class is settled).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64};

use suanli_types::{JobId, Money, PriorityClass, TenantId, Timestamp};

use crate::PendingJob;
use crate::filter::chip_mask;

/// What makes two pending jobs interchangeable for "does it fit anywhere now".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Shape {
    pub mask: u64,
    pub k: u32,
    pub n: u32,
    pub max_price: Option<Money>,
    /// Tenants with quotas are judged alone (their quota differs).
    pub quota_tenant: Option<TenantId>,
    /// A job that names a model may use only the pools where it is certified.
    pub model: Option<String>,
    /// A job that names centers may run only there.
    pub centers: Vec<suanli_types::CenterId>,
    /// A job that reads datasets may run only where they reside.
    pub datasets: Vec<String>,
}

/// A shape's small id, interned by the queue at insert: memos and settled sets key on it, so a
/// pass hashes four bytes per job instead of the whole shape. Ids are never reused (a queue sees
/// few distinct shapes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Sid(u32);

/// FxHash (as in rustc): fast for the small keys of the per-pass memos.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;
pub(crate) type FxSet<K> = HashSet<K, BuildHasherDefault<Fx>>;

/// Position of a pending job inside its class.
pub(crate) type Key = (u64, JobId);

/// A pending job with what the filters precompute once per job.
#[derive(Debug)]
pub(crate) struct Entry {
    pub job: PendingJob,
    /// See [`chip_mask`].
    pub mask: u64,
    pub shape: Sid,
    /// Where the last pass that looked at the job left it waiting.
    pub note: WaitNote,
}

/// Where a pass left a job waiting: the pool (uid, 0 for none), its expected start there, and
/// the jobs and work queued ahead of it there. Written through a shared reference while a pass
/// reads the queue (relaxed atomics: the core is used from one thread at a time).
#[derive(Debug, Default)]
pub(crate) struct WaitNote {
    pool_jobs: AtomicU64,
    start_ms: AtomicI64,
    card_secs: AtomicU64,
}

impl WaitNote {
    pub fn set(&self, uid: u32, start: Timestamp, jobs_ahead: u32, card_secs_ahead: u64) {
        self.pool_jobs
            .store((uid as u64) << 32 | jobs_ahead as u64, Relaxed);
        self.start_ms.store(start.0, Relaxed);
        self.card_secs.store(card_secs_ahead, Relaxed);
    }

    /// (pool uid, expected start, jobs ahead, card-seconds ahead), if a pass left it waiting.
    pub fn get(&self) -> Option<(u32, Timestamp, u32, u64)> {
        let pj = self.pool_jobs.load(Relaxed);
        let uid = (pj >> 32) as u32;
        (uid != 0).then(|| {
            (
                uid,
                Timestamp(self.start_ms.load(Relaxed)),
                pj as u32,
                self.card_secs.load(Relaxed),
            )
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct Queue {
    /// Indexed by `PriorityClass::rank()`.
    classes: [BTreeMap<Key, Entry>; 3],
    index: BTreeMap<JobId, (PriorityClass, Key)>,
    /// Per class, each tenant's pending jobs in FIFO order (for fair share).
    tenants: [BTreeMap<TenantId, BTreeSet<Key>>; 3],
    /// Per class and shape, the wall times of the pending jobs (wall time -> count): a pass can
    /// tell when every job left in a class is settled.
    shapes: [FxMap<Sid, BTreeMap<u64, u32>>; 3],
    /// Every shape seen, with its id.
    intern: FxMap<Shape, Sid>,
}

impl Queue {
    /// Adds a job, replacing a pending job with the same id. `alone`: the tenant has quotas or
    /// vouchers, so its jobs are judged apart from others of the same shape.
    pub fn insert(&mut self, job: PendingJob, alone: bool) {
        self.remove(job.id);
        let class = job.spec.priority;
        let key = (job.seq, job.id);
        self.index.insert(job.id, (class, key));
        self.tenants[class.rank()]
            .entry(job.tenant.clone())
            .or_default()
            .insert(key);
        let mask = chip_mask(&job.spec);
        let shape = Shape {
            mask,
            k: job.spec.cards_per_node,
            n: job.spec.nodes,
            max_price: job.spec.max_price_per_card_hour,
            quota_tenant: alone.then(|| job.tenant.clone()),
            model: job.spec.model.clone(),
            centers: job.spec.centers.clone(),
            datasets: job.spec.datasets.clone(),
        };
        let next = Sid(self.intern.len() as u32);
        let shape = *self.intern.entry(shape).or_insert(next);
        *self.shapes[class.rank()]
            .entry(shape)
            .or_default()
            .entry(job.spec.walltime)
            .or_default() += 1;
        self.classes[class.rank()].insert(
            key,
            Entry {
                job,
                mask,
                shape,
                note: WaitNote::default(),
            },
        );
    }

    fn unshape(&mut self, class: PriorityClass, e: &Entry) {
        let map = &mut self.shapes[class.rank()];
        if let Some(w) = map.get_mut(&e.shape) {
            if let Some(c) = w.get_mut(&e.job.spec.walltime) {
                *c -= 1;
                if *c == 0 {
                    w.remove(&e.job.spec.walltime);
                }
            }
            if w.is_empty() {
                map.remove(&e.shape);
            }
        }
    }

    /// The shapes pending in a class, each with its jobs' wall times.
    pub fn shapes(&self, class: PriorityClass) -> &FxMap<Sid, BTreeMap<u64, u32>> {
        &self.shapes[class.rank()]
    }

    /// Re-files a tenant's jobs after it started or stopped being judged alone.
    pub fn refile_tenant(&mut self, tenant: &TenantId, alone: bool) {
        for class in PriorityClass::ALL {
            let keys: Vec<Key> = self.tenants[class.rank()]
                .get(tenant)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            for key in keys {
                if let Some(job) = self.remove_key(class, key) {
                    self.insert(job, alone);
                }
            }
        }
    }

    pub fn remove(&mut self, id: JobId) -> Option<PendingJob> {
        let (class, key) = self.index.get(&id).copied()?;
        self.remove_key(class, key)
    }

    /// Removes by position (after a scheduling pass has placed the job).
    pub fn remove_key(&mut self, class: PriorityClass, key: Key) -> Option<PendingJob> {
        let e = self.classes[class.rank()].remove(&key)?;
        self.unshape(class, &e);
        self.index.remove(&e.job.id);
        let per = &mut self.tenants[class.rank()];
        if let Some(set) = per.get_mut(&e.job.tenant) {
            set.remove(&key);
            if set.is_empty() {
                per.remove(&e.job.tenant);
            }
        }
        Some(e.job)
    }

    /// Per tenant, the class's jobs in FIFO order.
    pub fn tenants(&self, class: PriorityClass) -> &BTreeMap<TenantId, BTreeSet<Key>> {
        &self.tenants[class.rank()]
    }

    /// The entry at a position.
    pub fn at(&self, class: PriorityClass, key: &Key) -> Option<&Entry> {
        self.classes[class.rank()].get(key)
    }

    pub fn get(&self, id: JobId) -> Option<&Entry> {
        let (class, key) = self.index.get(&id)?;
        self.classes[class.rank()].get(key)
    }

    pub fn contains(&self, id: JobId) -> bool {
        self.index.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// The class's jobs in FIFO order.
    pub fn class(&self, class: PriorityClass) -> &BTreeMap<Key, Entry> {
        &self.classes[class.rank()]
    }

    /// Jobs ahead of `id`: (in its own class, in higher classes). Linear in the position; meant
    /// for one-off explanations.
    pub fn ahead(&self, id: JobId) -> Option<(usize, usize)> {
        let (class, key) = self.index.get(&id)?;
        let same = self.classes[class.rank()].range(..*key).count();
        let higher = self.classes[..class.rank()].iter().map(BTreeMap::len).sum();
        Some((same, higher))
    }

    /// Panics if the index and the class maps disagree; returns the pending ids.
    pub fn check(&self) -> impl Iterator<Item = JobId> + '_ {
        let total: usize = self.classes.iter().map(BTreeMap::len).sum();
        let per_tenant: usize = self
            .tenants
            .iter()
            .flat_map(|m| m.values())
            .map(BTreeSet::len)
            .sum();
        assert_eq!(
            per_tenant, total,
            "per-tenant index size differs from queues"
        );
        assert_eq!(
            total,
            self.index.len(),
            "pending index size differs from queues"
        );
        for (id, (class, key)) in &self.index {
            let e = self.classes[class.rank()]
                .get(key)
                .unwrap_or_else(|| panic!("pending job {id} missing from its class queue"));
            assert_eq!(e.job.id, *id, "pending index points at another job");
            assert_eq!(
                e.job.spec.priority, *class,
                "job {id} queued in the wrong class"
            );
        }
        self.index.keys().copied()
    }
}
