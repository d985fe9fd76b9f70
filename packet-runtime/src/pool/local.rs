//! The per-thread L1 caches: a few blocks per class and pool, refilled from and spilled to the global free list in
//! batches.
//!
//! The logic lives on [`LocalCache`], an ordinary object, so the loom model tests can drive several caches against
//! one pool; the thread-local (`CACHES`, not compiled under loom) only picks this thread's cache for a pool.

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::Relaxed;

use super::stats::LocalCounters;
use super::{BlockHeader, BlockPtr, CLASS_COUNT, LOCAL_CAPACITY_MAX, PoolShared};

/// The counters of one cache, registered with its pool so `stats()` can read them.
pub(crate) struct LocalStats {
    classes: [LocalCounters; CLASS_COUNT],
}

/// A registered [`LocalStats`]. Valid until the cache unbinds, which removes it under the pool's `locals` lock.
pub(crate) struct LocalStatsPtr(NonNull<LocalStats>);

// SAFETY: it only gives access to atomics (`LocalCounters`), which any thread may read.
unsafe impl Send for LocalStatsPtr {}

impl LocalStatsPtr {
    /// # Safety
    /// The caller holds the owning pool's `locals` lock and found `self` registered there.
    pub(crate) unsafe fn counters(&self, class: usize) -> &LocalCounters {
        // SAFETY: per the contract, the cache is bound, hence alive and not moving.
        unsafe { &self.0.as_ref().classes[class] }
    }
}

/// One thread's cache of one pool's blocks. Not `Sync`: only its thread touches the blocks; other threads only read
/// its counters through the pool's registry.
pub(crate) struct LocalCache {
    /// The pool this cache is bound to. A bound cache holds one reference on the pool's shared state.
    pool: Cell<Option<NonNull<PoolShared>>>,
    /// Per class, a stack of cached blocks; `stats.classes[class].cached` is its height. Each holds a pool
    /// reference, like any block outside the global list.
    blocks: [[Cell<*mut BlockHeader>; LOCAL_CAPACITY_MAX]; CLASS_COUNT],
    stats: LocalStats,
}

impl LocalCache {
    pub(crate) const fn new() -> LocalCache {
        LocalCache {
            pool: Cell::new(None),
            blocks: [const { [const { Cell::new(ptr::null_mut()) }; LOCAL_CAPACITY_MAX] }; CLASS_COUNT],
            stats: LocalStats { classes: [const { LocalCounters::new() }; CLASS_COUNT] },
        }
    }

    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn pool(&self) -> Option<NonNull<PoolShared>> {
        self.pool.get()
    }

    /// Binds this (unbound) cache to `pool`.
    ///
    /// # Safety
    /// `pool` is alive (the caller holds a handle or a block of it) and `self` does not move until [`flush`] unbinds
    /// it: the pool keeps a pointer to its counters.
    ///
    /// [`flush`]: LocalCache::flush
    pub(crate) unsafe fn bind(&self, pool: NonNull<PoolShared>) {
        debug_assert!(self.pool.get().is_none());
        // SAFETY: per the contract.
        let shared = unsafe { pool.as_ref() };
        shared.add_refs(1);
        let mut locals = shared.locals.lock().unwrap_or_else(|e| e.into_inner());
        locals.push(LocalStatsPtr(NonNull::from(&self.stats)));
        drop(locals);
        self.pool.set(Some(pool));
    }

    #[inline]
    fn bound(&self) -> NonNull<PoolShared> {
        match self.pool.get() {
            Some(pool) => pool,
            None => unreachable!("local cache used while unbound"),
        }
    }

    /// Hands out a unique block of `class` of the bound pool.
    #[inline]
    pub(crate) fn acquire(&self, class: usize) -> NonNull<BlockHeader> {
        let counters = &self.stats.classes[class];
        let n = counters.cached.load(Relaxed);
        if n > 0 {
            let raw = self.blocks[class][n - 1].get();
            counters.cached.store(n - 1, Relaxed);
            LocalCounters::bump(&counters.l1_hits);
            // SAFETY: slots below `cached` hold blocks (never null).
            let block = unsafe { NonNull::new_unchecked(raw) };
            PoolShared::reset(block);
            return block;
        }
        self.refill(class)
    }

    /// Empty L1: take a batch from the global list (handing out the first), else allocate.
    #[inline(never)]
    fn refill(&self, class: usize) -> NonNull<BlockHeader> {
        let pool = self.bound();
        // SAFETY: a bound cache holds a reference on its pool.
        let shared = unsafe { pool.as_ref() };
        let counters = &self.stats.classes[class];
        if let Some(queue) = shared.queue(class)
            && let Some(BlockPtr(first)) = queue.pop()
        {
            let batch = shared.classes[class].batch;
            let mut n = 0;
            while n + 1 < batch {
                let Some(BlockPtr(block)) = queue.pop() else { break };
                self.blocks[class][n].set(block.as_ptr());
                n += 1;
            }
            // The popped blocks now live outside the global list: one reference each.
            shared.add_refs(n + 1);
            counters.cached.store(n, Relaxed);
            LocalCounters::bump(&counters.global_hits);
            PoolShared::reset(first);
            return first;
        }
        LocalCounters::bump(&counters.misses);
        PoolShared::allocate(pool, class)
    }

    /// Takes back a block of `class` of the bound pool.
    ///
    /// # Safety
    /// The caller owns `block` exclusively (with its pool reference) and it belongs to the bound pool.
    #[inline]
    pub(crate) unsafe fn release(&self, class: usize, block: NonNull<BlockHeader>) {
        let pool = self.bound();
        // SAFETY: a bound cache holds a reference on its pool.
        let shared = unsafe { pool.as_ref() };
        let counters = &self.stats.classes[class];
        LocalCounters::bump(&counters.releases);
        let capacity = shared.classes[class].local_capacity;
        if capacity == 0 || shared.is_abandoned() {
            // SAFETY: we own the block and its reference; our binding keeps the pool alive afterwards.
            unsafe { PoolShared::push_global(pool, class, &[block], 0) };
            return;
        }
        let mut n = counters.cached.load(Relaxed);
        if n == capacity {
            n = self.spill(class, shared.classes[class].batch, n);
        }
        self.blocks[class][n].set(block.as_ptr());
        counters.cached.store(n + 1, Relaxed);
    }

    /// Moves the `count` coldest (bottom) of the `n` cached blocks of `class` to the global list; returns the new
    /// height.
    #[inline(never)]
    fn spill(&self, class: usize, count: usize, n: usize) -> usize {
        let pool = self.bound();
        let stack = &self.blocks[class];
        let mut out = [NonNull::<BlockHeader>::dangling(); LOCAL_CAPACITY_MAX];
        for (slot, cell) in out.iter_mut().zip(&stack[..count]) {
            // SAFETY: slots below the height hold blocks (never null).
            *slot = unsafe { NonNull::new_unchecked(cell.get()) };
        }
        for i in count..n {
            stack[i - count].set(stack[i].get());
        }
        let height = n - count;
        self.stats.classes[class].cached.store(height, Relaxed);
        // SAFETY: the blocks left the cache, so we own them and their references; our binding keeps the pool alive.
        unsafe { PoolShared::push_global(pool, class, &out[..count], 0) };
        height
    }

    /// Gives every cached block back to the global list and unbinds: the counters are folded into the pool's and
    /// the cache's reference is dropped (which may free a pool whose handles are all gone).
    pub(crate) fn flush(&self) {
        let Some(pool) = self.pool.get() else { return };
        for class in 0..CLASS_COUNT {
            let n = self.stats.classes[class].cached.load(Relaxed);
            if n > 0 {
                self.spill(class, n, n);
            }
        }
        // SAFETY: our binding keeps the pool alive until `release_refs` below.
        let shared = unsafe { pool.as_ref() };
        let mut locals = shared.locals.lock().unwrap_or_else(|e| e.into_inner());
        let me = NonNull::from(&self.stats);
        locals.retain(|entry| entry.0 != me);
        for (class, local) in self.stats.classes.iter().enumerate() {
            shared.classes[class].counters.fold(local);
        }
        drop(locals);
        self.pool.set(None);
        // SAFETY: the binding's reference is ours; `pool` is not used afterwards.
        unsafe { PoolShared::release_refs(pool, 1) };
    }
}

impl Drop for LocalCache {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Caches for up to this many pools per thread; further pools bypass the L1.
#[cfg(not(loom))]
const SLOTS: usize = 4;

#[cfg(not(loom))]
struct LocalCaches([LocalCache; SLOTS]);

#[cfg(not(loom))]
impl LocalCaches {
    /// Finds a cache for `pool`: a free one, or one whose pool has no handles left (flushed first).
    #[cold]
    #[inline(never)]
    fn bind_slot(&self, pool: NonNull<PoolShared>) -> Option<&LocalCache> {
        // SAFETY: the caller holds a handle or a block of `pool`.
        if unsafe { pool.as_ref() }.is_abandoned() {
            return None;
        }
        let slot = self.0.iter().find(|slot| slot.pool().is_none()).or_else(|| {
            let stale = self.0.iter().find(|slot| {
                // SAFETY: a bound cache holds a reference on its pool.
                slot.pool().is_some_and(|p| unsafe { p.as_ref() }.is_abandoned())
            })?;
            stale.flush();
            Some(stale)
        })?;
        // SAFETY: `pool` is alive (see above) and a thread-local never moves while the thread runs; its destructor
        // flushes (unbinds) every cache.
        unsafe { slot.bind(pool) };
        Some(slot)
    }
}

#[cfg(not(loom))]
thread_local! {
    // `const` init: no lazy-initialisation check on access, only the destructor-registration state.
    static CACHES: LocalCaches = const { LocalCaches([const { LocalCache::new() }; SLOTS]) };
}

/// Runs `f` with this thread's cache for `pool`, binding one if needed. `None` (and `f` not called) when the thread
/// has no cache to offer: its thread-locals are being destroyed, every slot serves a live pool, or `pool` has no
/// handles left.
#[cfg(not(loom))]
#[inline]
pub(super) fn with_cache<R>(pool: NonNull<PoolShared>, f: impl FnOnce(&LocalCache) -> R) -> Option<R> {
    CACHES
        .try_with(|caches| {
            let slot = match caches.0.iter().find(|slot| slot.pool.get() == Some(pool)) {
                Some(slot) => slot,
                None => caches.bind_slot(pool)?,
            };
            Some(f(slot))
        })
        .ok()
        .flatten()
}
