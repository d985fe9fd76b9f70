//! Pool statistics: cheap counters on the hot path, summed into a [`PoolStats`] snapshot on demand.
//!
//! Counters are `core` atomics with `Relaxed` ordering: they are statistics, nothing synchronises through them (so
//! they also stay out of the loom model). A thread's local cache owns its counters and bumps them with a plain
//! load + store (no read-modify-write, no shared cache line); the pool's shared counters, used by the paths that
//! bypass a local cache, take a `fetch_add`.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::size_class::{CLASS_COUNT, CLASS_SIZES};

/// Counters for one size class, shared by every thread (read-modify-write).
#[derive(Debug, Default)]
pub(crate) struct SharedCounters {
    pub(crate) l1_hits: AtomicU64,
    pub(crate) global_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) releases: AtomicU64,
}

impl SharedCounters {
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn fold(&self, local: &LocalCounters) {
        self.l1_hits.fetch_add(local.l1_hits.swap(0, Relaxed), Relaxed);
        self.global_hits.fetch_add(local.global_hits.swap(0, Relaxed), Relaxed);
        self.misses.fetch_add(local.misses.swap(0, Relaxed), Relaxed);
        self.releases.fetch_add(local.releases.swap(0, Relaxed), Relaxed);
    }
}

/// Counters for one size class of one thread's local cache. Only the owning thread writes them.
#[derive(Debug)]
pub(crate) struct LocalCounters {
    pub(crate) l1_hits: AtomicU64,
    pub(crate) global_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) releases: AtomicU64,
    /// Blocks currently in the local cache (also its fill level).
    pub(crate) cached: AtomicUsize,
}

impl LocalCounters {
    pub(crate) const fn new() -> Self {
        LocalCounters {
            l1_hits: AtomicU64::new(0),
            global_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            releases: AtomicU64::new(0),
            cached: AtomicUsize::new(0),
        }
    }

    /// Owner-only increment: a load and a store compile to plain moves, unlike `fetch_add`.
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
    }
}

/// A snapshot of one size class (or of the oversize allocations, or of the totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Data capacity of a block of this class in bytes (0 for oversize and totals).
    pub block_size: usize,
    /// Acquisitions served by the calling thread's local (L1) cache.
    pub l1_hits: u64,
    /// Acquisitions served by the global free list.
    pub global_hits: u64,
    /// Acquisitions that had to allocate.
    pub misses: u64,
    /// Blocks handed out and not yet returned (builders and packets alive).
    pub outstanding: u64,
    /// Blocks kept for reuse, in local caches and the global free list.
    pub retained: u64,
    /// Bytes kept for reuse (block headers included).
    pub bytes_retained: u64,
}

impl ClassStats {
    /// Acquisitions of any kind.
    pub fn acquisitions(&self) -> u64 {
        self.l1_hits + self.global_hits + self.misses
    }

    fn add(&mut self, other: &ClassStats) {
        self.l1_hits += other.l1_hits;
        self.global_hits += other.global_hits;
        self.misses += other.misses;
        self.outstanding += other.outstanding;
        self.retained += other.retained;
        self.bytes_retained += other.bytes_retained;
    }
}

/// A snapshot of a [`MessagePool`](super::MessagePool)'s counters.
///
/// Exact when the pool is quiescent; while other threads work it is a consistent-enough view for monitoring (each
/// counter is read once, and `outstanding` is clamped at 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// One entry per size class, in [`CLASS_SIZES`] order.
    pub classes: [ClassStats; CLASS_COUNT],
    /// Requests larger than the largest class: plain allocations, freed on release.
    pub oversize: ClassStats,
    /// The sum of the classes and the oversize allocations.
    pub total: ClassStats,
}

impl PoolStats {
    /// Blocks handed out and not yet returned, over all classes. 0 once every packet and builder is dropped.
    pub fn outstanding(&self) -> u64 {
        self.total.outstanding
    }
}

/// Raw per-class sums gathered by the pool before they become a [`ClassStats`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Sums {
    pub(crate) l1_hits: u64,
    pub(crate) global_hits: u64,
    pub(crate) misses: u64,
    pub(crate) releases: u64,
    pub(crate) retained: u64,
}

impl Sums {
    pub(crate) fn add_shared(&mut self, c: &SharedCounters) {
        self.l1_hits += c.l1_hits.load(Relaxed);
        self.global_hits += c.global_hits.load(Relaxed);
        self.misses += c.misses.load(Relaxed);
        self.releases += c.releases.load(Relaxed);
    }

    pub(crate) fn add_local(&mut self, c: &LocalCounters) {
        self.l1_hits += c.l1_hits.load(Relaxed);
        self.global_hits += c.global_hits.load(Relaxed);
        self.misses += c.misses.load(Relaxed);
        self.releases += c.releases.load(Relaxed);
        self.retained += c.cached.load(Relaxed) as u64;
    }

    pub(crate) fn finish(self, block_size: usize, header_size: usize) -> ClassStats {
        let acquired = self.l1_hits + self.global_hits + self.misses;
        ClassStats {
            block_size,
            l1_hits: self.l1_hits,
            global_hits: self.global_hits,
            misses: self.misses,
            outstanding: acquired.saturating_sub(self.releases),
            retained: self.retained,
            bytes_retained: self.retained * (block_size + header_size) as u64,
        }
    }
}

pub(crate) fn snapshot(classes: [Sums; CLASS_COUNT], oversize: Sums, header_size: usize) -> PoolStats {
    let mut stats = PoolStats::default();
    for (i, sums) in classes.into_iter().enumerate() {
        stats.classes[i] = sums.finish(CLASS_SIZES[i], header_size);
        let class = stats.classes[i];
        stats.total.add(&class);
    }
    stats.oversize = oversize.finish(0, header_size);
    let oversize = stats.oversize;
    stats.total.add(&oversize);
    stats
}
