//! The pending queue: one FIFO per priority class, keyed by `(seq, job)`, plus an id index.

use std::collections::BTreeMap;

use std::collections::BTreeSet;

use suanli_types::{JobId, PriorityClass, TenantId};

use crate::PendingJob;
use crate::filter::chip_mask;

/// Position of a pending job inside its class.
pub(crate) type Key = (u64, JobId);

/// A pending job with what the filters precompute once per job.
#[derive(Debug)]
pub(crate) struct Entry {
    pub job: PendingJob,
    /// See [`chip_mask`].
    pub mask: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Queue {
    /// Indexed by `PriorityClass::rank()`.
    classes: [BTreeMap<Key, Entry>; 3],
    index: BTreeMap<JobId, (PriorityClass, Key)>,
    /// Per class, each tenant's pending jobs in FIFO order (for fair share).
    tenants: [BTreeMap<TenantId, BTreeSet<Key>>; 3],
}

impl Queue {
    /// Adds a job, replacing a pending job with the same id.
    pub fn insert(&mut self, job: PendingJob) {
        self.remove(job.id);
        let class = job.spec.priority;
        let key = (job.seq, job.id);
        self.index.insert(job.id, (class, key));
        self.tenants[class.rank()]
            .entry(job.tenant.clone())
            .or_default()
            .insert(key);
        let mask = chip_mask(&job.spec);
        self.classes[class.rank()].insert(key, Entry { job, mask });
    }

    pub fn remove(&mut self, id: JobId) -> Option<PendingJob> {
        let (class, key) = self.index.get(&id).copied()?;
        self.remove_key(class, key)
    }

    /// Removes by position (after a scheduling pass has placed the job).
    pub fn remove_key(&mut self, class: PriorityClass, key: Key) -> Option<PendingJob> {
        let e = self.classes[class.rank()].remove(&key)?;
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
