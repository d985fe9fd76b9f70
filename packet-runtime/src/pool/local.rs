//! The per-thread L1 caches: a few blocks per class and pool, refilled from and spilled to the global free list in
//! batches.
//!
//! The logic lives on [`LocalCache`], an ordinary object, so the loom model tests can drive several caches against
//! one pool; the thread-local (`CACHES`, not compiled under loom) only picks this thread's cache for a pool.
//!
//! # The hot path
//! [`acquire_fast`] and [`release_fast`] are what every acquisition and release of a pooled block runs first: a
//! lookup of the pool among this thread's slot keys (one cache line), then a push or pop on that cache's stack.
//! `CACHES` has no destructor, so reaching it is a plain thread-local address (no registration-state check); the
//! destructor that gives the blocks back at thread exit lives on a separate thread-local, `EXIT_FLUSH`, which only
//! the cold binding path touches (and so registers). Everything else (binding a cache, refill, spill, a full or
//! disabled L1, an abandoned pool) falls through to the out-of-line slow paths.

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
///
/// No `Drop`: whoever owns a cache [`flush`](Self::flush)es it before it goes (`ExitFlush` for the thread-local
/// ones, the model tests for theirs), so that the thread-local holding the caches needs no destructor.
pub(crate) struct LocalCache {
    /// The pool this cache is bound to. A bound cache holds one reference on the pool's shared state.
    pool: Cell<Option<NonNull<PoolShared>>>,
    /// Per class, the bound pool's L1 capacity (its configuration never changes), so a release need not read the
    /// pool's shared state to know whether the stack is full. 0 while unbound.
    capacity: [Cell<usize>; CLASS_COUNT],
    /// Per class, a stack of cached blocks; `stats.classes[class].cached` is its height. Each holds a pool
    /// reference, like any block outside the global list.
    blocks: [[Cell<*mut BlockHeader>; LOCAL_CAPACITY_MAX]; CLASS_COUNT],
    stats: LocalStats,
}

impl LocalCache {
    pub(crate) const fn new() -> LocalCache {
        LocalCache {
            pool: Cell::new(None),
            capacity: [const { Cell::new(0) }; CLASS_COUNT],
            blocks: [const { [const { Cell::new(ptr::null_mut()) }; LOCAL_CAPACITY_MAX] }; CLASS_COUNT],
            stats: LocalStats { classes: [const { LocalCounters::new() }; CLASS_COUNT] },
        }
    }

    #[cfg_attr(packet_loom, allow(dead_code))]
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
        for (capacity, class) in self.capacity.iter().zip(&shared.classes) {
            capacity.set(class.local_capacity);
        }
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
        match self.pop(class) {
            Some(block) => block,
            None => self.refill(class),
        }
    }

    /// The fast part of [`acquire`](Self::acquire): the top cached block of `class`, if any.
    #[inline]
    fn pop(&self, class: usize) -> Option<NonNull<BlockHeader>> {
        let counters = &self.stats.classes[class];
        let n = counters.cached.load(Relaxed);
        if n == 0 {
            return None;
        }
        let raw = self.blocks[class][n - 1].get();
        counters.cached.store(n - 1, Relaxed);
        LocalCounters::bump(&counters.l1_hits);
        // SAFETY: slots below `cached` hold blocks (never null).
        let block = unsafe { NonNull::new_unchecked(raw) };
        PoolShared::reset(block);
        Some(block)
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

    /// The fast part of [`release`](Self::release): caches `block` if the stack of `class` has room and the pool
    /// still has handles; otherwise hands `block` back for the slow path.
    ///
    /// # Safety
    /// The caller owns `block` exclusively (with its pool reference) and it belongs to the bound pool, `pool`.
    #[cfg_attr(packet_loom, allow(dead_code))]
    #[inline]
    unsafe fn push(
        &self,
        pool: NonNull<PoolShared>,
        class: usize,
        block: NonNull<BlockHeader>,
    ) -> Result<(), NonNull<BlockHeader>> {
        let counters = &self.stats.classes[class];
        let n = counters.cached.load(Relaxed);
        // A full stack (capacity 0 included) needs a spill, or no caching at all.
        if n >= self.capacity[class].get() {
            return Err(block);
        }
        // SAFETY: the block's pool reference keeps the bound pool alive.
        if unsafe { pool.as_ref() }.is_abandoned() {
            return Err(block);
        }
        LocalCounters::bump(&counters.releases);
        self.blocks[class][n].set(block.as_ptr());
        counters.cached.store(n + 1, Relaxed);
        Ok(())
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
        for capacity in &self.capacity {
            capacity.set(0);
        }
        self.pool.set(None);
        // SAFETY: the binding's reference is ours; `pool` is not used afterwards.
        unsafe { PoolShared::release_refs(pool, 1) };
    }
}

/// Caches for up to this many pools per thread; further pools bypass the L1.
#[cfg(not(packet_loom))]
const SLOTS: usize = 4;

/// This thread's caches. No `Drop` (see [`ExitFlush`]), so the thread-local holding it needs no destructor
/// registration and an access compiles to a thread-pointer offset.
#[cfg(not(packet_loom))]
struct LocalCaches {
    /// `caches[i].pool()`, mirrored side by side so the lookup of the hot path reads one cache line instead of
    /// one per slot. Written only by `bind_slot` and `ExitFlush`, together with the cache's own binding.
    pools: [Cell<Option<NonNull<PoolShared>>>; SLOTS],
    caches: [LocalCache; SLOTS],
}

#[cfg(not(packet_loom))]
impl LocalCaches {
    /// The cache bound to `pool`, if this thread has one.
    #[inline]
    fn find(&self, pool: NonNull<PoolShared>) -> Option<&LocalCache> {
        let slot = self.pools.iter().position(|key| key.get() == Some(pool))?;
        Some(&self.caches[slot])
    }

    /// Finds a cache for `pool`: a free one, or one whose pool has no handles left (flushed first). `None` when
    /// the thread's exit flush has run (or is running): a cache bound now would never give its blocks back.
    #[cold]
    #[inline(never)]
    fn bind_slot(&self, pool: NonNull<PoolShared>) -> Option<&LocalCache> {
        // First access registers `EXIT_FLUSH`'s destructor; `Err` once it has started.
        EXIT_FLUSH.try_with(|_| ()).ok()?;
        // SAFETY: the caller holds a handle or a block of `pool`.
        if unsafe { pool.as_ref() }.is_abandoned() {
            return None;
        }
        let slot = self.caches.iter().position(|cache| cache.pool().is_none()).or_else(|| {
            let stale = self.caches.iter().position(|cache| {
                // SAFETY: a bound cache holds a reference on its pool.
                cache.pool().is_some_and(|p| unsafe { p.as_ref() }.is_abandoned())
            })?;
            self.pools[stale].set(None);
            self.caches[stale].flush();
            Some(stale)
        })?;
        let cache = &self.caches[slot];
        // SAFETY: `pool` is alive (see above) and a thread-local never moves while the thread runs; `ExitFlush`
        // (registered above) flushes (unbinds) every cache before the thread's memory goes.
        unsafe { cache.bind(pool) };
        self.pools[slot].set(Some(pool));
        Some(cache)
    }
}

/// Flushes every cache of the thread when the thread exits, giving the L1 blocks back to their pools.
#[cfg(not(packet_loom))]
struct ExitFlush;

#[cfg(not(packet_loom))]
impl Drop for ExitFlush {
    fn drop(&mut self) {
        // `CACHES` has no destructor, so it is still there. A release from a later thread-local destructor finds
        // no key and no slot to bind (`bind_slot` sees this destructor started), and takes the global path.
        CACHES.with(|caches| {
            for (key, cache) in caches.pools.iter().zip(&caches.caches) {
                key.set(None);
                cache.flush();
            }
        });
    }
}

#[cfg(not(packet_loom))]
thread_local! {
    // `const` init and no destructor: an access is the thread pointer plus an offset, with no lazy-initialisation
    // or registration check.
    static CACHES: LocalCaches = const {
        LocalCaches { pools: [const { Cell::new(None) }; SLOTS], caches: [const { LocalCache::new() }; SLOTS] }
    };
    // Carries the thread-exit flush of `CACHES`. Touched only when a cache is bound.
    static EXIT_FLUSH: ExitFlush = const { ExitFlush };
}

/// Runs `f` on this thread's caches.
///
/// `CACHES.with(f)` directly would do the same, but with the fast paths' closures LLVM keeps `LocalKey::with` out
/// of line (a call per acquisition and release); with a closure that only returns the address, it folds into a
/// thread-pointer offset.
#[cfg(not(packet_loom))]
#[inline(always)]
fn with_caches<R>(f: impl FnOnce(&LocalCaches) -> R) -> R {
    let caches = CACHES.with(core::ptr::from_ref);
    // SAFETY: the address of this thread's `CACHES`, which has no destructor, so it stays valid until the thread's
    // thread-local memory is freed, after the thread ran its last code. The reference does not outlive this call
    // and, `LocalCaches` being `!Sync`, cannot reach another thread.
    f(unsafe { &*caches })
}

/// A cached block of `class` of `pool` from this thread's L1, if it has one: the whole fast path of an acquisition.
#[cfg(not(packet_loom))]
#[inline]
pub(super) fn acquire_fast(pool: NonNull<PoolShared>, class: usize) -> Option<NonNull<BlockHeader>> {
    with_caches(|caches| caches.find(pool)?.pop(class))
}

/// Caches `block` (of `pool`, class `class`) in this thread's L1 if its cache there has room: the whole fast path
/// of a release. `Err` hands the block back for the slow path.
///
/// # Safety
/// The caller owns `block` exclusively (with its pool reference); it belongs to `pool` and class `class`.
#[cfg(not(packet_loom))]
#[inline]
pub(super) unsafe fn release_fast(
    pool: NonNull<PoolShared>,
    class: usize,
    block: NonNull<BlockHeader>,
) -> Result<(), NonNull<BlockHeader>> {
    with_caches(|caches| match caches.find(pool) {
        // SAFETY: per the contract; `find` matched the block's own pool.
        Some(cache) => unsafe { cache.push(pool, class, block) },
        None => Err(block),
    })
}

/// Runs `f` with this thread's cache for `pool`, binding one if needed. `None` (and `f` not called) when the thread
/// has no cache to offer: its exit flush has started, every slot serves a live pool, or `pool` has no handles left.
/// The slow path: [`acquire_fast`] and [`release_fast`] serve the common case.
#[cfg(not(packet_loom))]
pub(super) fn with_cache<R>(pool: NonNull<PoolShared>, f: impl FnOnce(&LocalCache) -> R) -> Option<R> {
    CACHES.with(|caches| {
        let cache = match caches.find(pool) {
            Some(cache) => cache,
            None => caches.bind_slot(pool)?,
        };
        Some(f(cache))
    })
}
