//! [`MessagePool`]: size-classed blocks for encoded frames, recycled through a per-thread L1 cache in front of a
//! bounded, lock-free global free list per class.
//!
//! # What the pool owns
//! Blocks (see the layout in `block.rs`): an intrusive header (refcount, owning pool, frame length) followed by the
//! frame bytes. [`PacketPtr`](crate::PacketPtr) and [`PacketBuilder`](crate::PacketBuilder) are handles to blocks;
//! the pool never hands a block to two owners and never lets a reader see bytes past the current frame's length.
//!
//! ```text
//!  acquire ──► L1 (this thread, this pool) ──empty──► global ArrayQueue ──empty──► allocator
//!  release ──► L1 ──full: spill half──────────────► global ArrayQueue ──full───► allocator (freed)
//! ```
//!
//! - **Size classes**: [`CLASS_SIZES`]. A request beyond the largest class is a plain allocation with the same
//!   header, counted in [`PoolStats::oversize`] and freed, not pooled, on release.
//! - **Global free list**: one `crossbeam_queue::ArrayQueue` per class, capped by
//!   [`PoolConfig::global_cap`]. A block released into a full list goes back to the allocator, so memory after
//!   a burst comes back down to the caps. (A bounded array queue, not a Treiber stack: no ABA.)
//! - **L1**: each thread keeps, per pool (up to 4 pools per thread), at most [`PoolConfig::local_cap`] blocks
//!   per class. An empty L1 refills half its capacity from the global list in one go; a full one spills half.
//!   A thread that exits gives its L1 blocks back (a thread-local destructor, registered when the thread binds
//!   its first cache). The caches themselves live in a `const`-initialised thread-local without a destructor, so
//!   an access is an offset from the thread pointer, with neither a lazy-init nor a registration check.
//! - **Hot path**: [`PacketBuilder::with_capacity_in`](crate::PacketBuilder::with_capacity_in) and the return of a
//!   block inline a slot lookup (the four slots' pool keys share a cache line) and a pop or push on the L1 stack,
//!   touching only this thread's memory, the block header and, on release, the pool's `handles` count. Binding,
//!   refills, spills, oversize blocks and abandoned pools are out of line.
//!
//! # Pool lifetime
//! A block finds its pool through a raw pointer in its header. The pool's shared state is reference counted
//! (`refs`): one reference for all [`MessagePool`] handles together, one per block that exists outside the global
//! free lists (handed out, or in some thread's L1), and one per thread-local cache bound to the pool. Blocks in a
//! global free list hold none, which breaks the cycle: when the last reference goes, the shared state is freed and
//! frees the blocks still in its free lists. So a user-built pool can be dropped while packets from it are alive:
//! they keep its shared state (not its free lists' memory) alive and return to it, or are freed, when dropped.
//! The hot path never touches `refs`: only moves between the global list and the allocator or an L1 do, in batches.
//! When the last handle is dropped, the global lists are emptied at once, and blocks released later are freed
//! instead of cached; L1 blocks of such a pool stay with their thread until it exits or needs the cache slot.
//! [`MessagePool::global`] is a handle that is never dropped.
//!
//! # Statistics
//! [`MessagePool::stats`] sums per-thread counters (written without read-modify-write by their owner) and the
//! shared ones: hits per level, misses, outstanding blocks, retained bytes. `outstanding` returns to 0 when every
//! packet and builder of the pool is dropped.

mod block;
#[cfg(not(packet_loom))]
mod local;
#[cfg(packet_loom)]
pub(crate) mod local;
mod size_class;
mod stats;

use core::fmt;
use core::ptr::NonNull;

use crate::loom::FreeList;
use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

pub(crate) use block::{BlockHeader, BlockPtr, HEADER_SIZE, OVERSIZE, data_ptr};
use local::LocalStatsPtr;
pub use size_class::{CLASS_COUNT, CLASS_SIZES};
pub use stats::{ClassStats, PoolStats};
use stats::{SharedCounters, Sums};

/// The most blocks a thread's L1 cache can hold per class and pool; [`PoolConfig::local_cap`] is clamped to it.
pub const LOCAL_CAPACITY_MAX: usize = 32;

/// How many blocks a pool keeps per size class.
///
/// Built from [`PoolConfig::default`] and adjusted per class by block size, so that the number of classes (and
/// their sizes) can change without breaking code that configures a pool:
///
/// ```
/// use packet_runtime::pool::{MessagePool, PoolConfig};
///
/// // Keep more small blocks; never pool the blocks that hold frames of 2 KiB.
/// let config = PoolConfig::default().global_cap(100, 16_384).global_cap(2048, 0);
/// assert_eq!(config.global_cap_for(100), 16_384);
/// assert_eq!(config.global_cap_for(2048), 0);
/// let pool = MessagePool::new(config);
/// # drop(pool);
/// ```
///
/// A `block_size` names the class that serves frames of that many bytes (header included): the smallest class at
/// least that big (see [`CLASS_SIZES`]). Sizes beyond the largest class are never pooled, so they name no class.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Cap of each class's global free list, in blocks. Beyond it a released block is freed. 0 disables pooling
    /// for the class (every acquisition allocates, unless an L1 cache serves it).
    global_capacity: [usize; CLASS_COUNT],
    /// Cap of each class's per-thread L1 cache, in blocks (at most [`LOCAL_CAPACITY_MAX`]). 0 disables the L1.
    local_capacity: [usize; CLASS_COUNT],
}

impl Default for PoolConfig {
    /// At most about 1 MiB per class in each global list (64 KiB blocks: 16), and a few KiB per thread in L1.
    fn default() -> Self {
        PoolConfig { global_capacity: [8192, 2048, 512, 128, 16], local_capacity: [32, 32, 16, 8, 2] }
    }
}

impl PoolConfig {
    /// The same caps for every class: `global` blocks in each global free list, `local` in each per-thread L1
    /// cache (clamped to [`LOCAL_CAPACITY_MAX`] when the pool is built). 0 disables that level.
    pub fn uniform_caps(mut self, global: usize, local: usize) -> Self {
        self.global_capacity = [global; CLASS_COUNT];
        self.local_capacity = [local; CLASS_COUNT];
        self
    }

    /// Caps the global free list of the class serving frames of `block_size` bytes at `blocks` (0: not pooled
    /// globally). A size beyond the largest class changes nothing: such frames are never pooled.
    pub fn global_cap(mut self, block_size: usize, blocks: usize) -> Self {
        if let Some(class) = size_class::class_for(block_size) {
            self.global_capacity[class] = blocks;
        }
        self
    }

    /// Caps the per-thread L1 cache of the class serving frames of `block_size` bytes at `blocks` (clamped to
    /// [`LOCAL_CAPACITY_MAX`]; 0: no L1 for the class). A size beyond the largest class changes nothing.
    pub fn local_cap(mut self, block_size: usize, blocks: usize) -> Self {
        if let Some(class) = size_class::class_for(block_size) {
            self.local_capacity[class] = blocks;
        }
        self
    }

    /// The global free-list cap of the class serving frames of `block_size` bytes; 0 beyond the largest class.
    pub fn global_cap_for(&self, block_size: usize) -> usize {
        size_class::class_for(block_size).map_or(0, |class| self.global_capacity[class])
    }

    /// The per-thread L1 cap (as configured, before clamping) of the class serving frames of `block_size` bytes;
    /// 0 beyond the largest class.
    pub fn local_cap_for(&self, block_size: usize) -> usize {
        size_class::class_for(block_size).map_or(0, |class| self.local_capacity[class])
    }
}

/// Keeps `refs` on a cache line of its own: it is written on every global-list and allocator move, while the
/// fields around it are read on every release.
#[repr(align(64))]
struct CacheAligned<T>(T);

struct ClassShared {
    /// The global free list; `None` when its capacity is 0.
    free: Option<FreeList<BlockPtr>>,
    counters: SharedCounters,
    local_capacity: usize,
    /// Blocks moved per L1 refill or spill.
    batch: usize,
}

/// The state every handle, block and bound L1 cache of one pool shares. Freed when `refs` reaches 0.
pub(crate) struct PoolShared {
    refs: CacheAligned<AtomicUsize>,
    /// `MessagePool` handles alive. When it reaches 0 the free lists are emptied and later releases free blocks.
    handles: AtomicUsize,
    classes: [ClassShared; CLASS_COUNT],
    oversize: SharedCounters,
    /// Counters of the thread-local caches bound to this pool, read by `stats()`. Entries are removed (and their
    /// counts folded into `classes`) under this lock before the cache's memory goes away.
    locals: Mutex<Vec<LocalStatsPtr>>,
    config: PoolConfig,
}

impl PoolShared {
    /// Adds a reference. The caller holds one already (a handle, a block or a bound cache), so nothing can be
    /// freed concurrently and `Relaxed` suffices, as in `Arc::clone`.
    #[inline]
    fn add_refs(&self, n: usize) {
        let old = self.refs.0.fetch_add(n, Ordering::Relaxed);
        if old > isize::MAX as usize {
            std::process::abort();
        }
    }

    /// Drops `n` references; frees the shared state when they were the last.
    ///
    /// # Safety
    /// The caller owns `n` references on `pool` and does not use `pool` afterwards.
    unsafe fn release_refs(pool: NonNull<PoolShared>, n: usize) {
        if n == 0 {
            return;
        }
        // SAFETY: the caller's references keep the state alive until this decrement.
        let shared = unsafe { pool.as_ref() };
        // Release: our earlier uses of the pool (pushes, counter updates) happen before the free below.
        if shared.refs.0.fetch_sub(n, Ordering::Release) != n {
            return;
        }
        // Acquire: pairs with every other owner's Release decrement (our decrement is in the release sequence of
        // each, and this load reads it), so all their uses happen before the free. A load rather than an `Acquire`
        // fence, as `Arc` does under ThreadSanitizer: the same guarantee at the same cost, and ThreadSanitizer, which
        // does not model fences, sees it (docs/SAFETY.md).
        shared.refs.0.load(Ordering::Acquire);
        // SAFETY: the count reached 0: nobody else references the state, which was created by `Box::into_raw`.
        drop(unsafe { Box::from_raw(pool.as_ptr()) });
    }

    #[inline]
    fn queue(&self, class: usize) -> Option<&FreeList<BlockPtr>> {
        self.classes[class].free.as_ref()
    }

    /// Whether every `MessagePool` handle is gone. `Relaxed`: a stale `false` only parks a block in a cache or free
    /// list a little longer; both are emptied when the state is freed.
    #[inline]
    fn is_abandoned(&self) -> bool {
        self.handles.load(Ordering::Relaxed) == 0
    }

    /// Hands out a unique block with room for at least `cap` bytes. Inlined into the caller: the fast path is a
    /// pop from this thread's L1; everything else is out of line.
    #[inline]
    pub(crate) fn acquire(pool: NonNull<PoolShared>, cap: usize) -> NonNull<BlockHeader> {
        let Some(class) = size_class::class_for(cap) else {
            return Self::acquire_oversize(pool, cap);
        };
        #[cfg(not(packet_loom))]
        if let Some(block) = local::acquire_fast(pool, class) {
            return block;
        }
        Self::acquire_slow(pool, class)
    }

    /// An acquisition the L1 fast path could not serve: bind a cache and refill it, or go to the global list.
    #[inline(never)]
    fn acquire_slow(pool: NonNull<PoolShared>, class: usize) -> NonNull<BlockHeader> {
        #[cfg(not(packet_loom))]
        if let Some(block) = local::with_cache(pool, |cache| cache.acquire(class)) {
            return block;
        }
        Self::acquire_global(pool, class)
    }

    #[cold]
    fn acquire_oversize(pool: NonNull<PoolShared>, cap: usize) -> NonNull<BlockHeader> {
        let Ok(cap) = u32::try_from(cap) else {
            panic!("a packet block of {cap} bytes exceeds the 4 GiB limit of a frame");
        };
        // SAFETY: the caller holds a handle, so the state is alive.
        let shared = unsafe { pool.as_ref() };
        SharedCounters::bump(&shared.oversize.misses);
        shared.add_refs(1);
        block::allocate(pool, OVERSIZE, cap)
    }

    /// Acquisition without an L1 cache: the global list, else the allocator.
    fn acquire_global(pool: NonNull<PoolShared>, class: usize) -> NonNull<BlockHeader> {
        // SAFETY: the caller holds a handle, so the state is alive.
        let shared = unsafe { pool.as_ref() };
        if let Some(block) = shared.pop_global(class, 1) {
            SharedCounters::bump(&shared.classes[class].counters.global_hits);
            Self::reset(block);
            return block;
        }
        SharedCounters::bump(&shared.classes[class].counters.misses);
        Self::allocate(pool, class)
    }

    /// Allocates a fresh block of `class`, counting it in `refs`.
    fn allocate(pool: NonNull<PoolShared>, class: usize) -> NonNull<BlockHeader> {
        // SAFETY: the caller holds a reference, so the state is alive.
        unsafe { pool.as_ref() }.add_refs(1);
        block::allocate(pool, class as u8, CLASS_SIZES[class] as u32)
    }

    /// Pops one block from the global list, taking `refs_taken` pool references for it (1, or 0 when the caller
    /// counts a batch itself). The caller resets the block before handing it out.
    #[inline]
    fn pop_global(&self, class: usize, refs_taken: usize) -> Option<NonNull<BlockHeader>> {
        let BlockPtr(block) = self.queue(class)?.pop()?;
        // The queue's push/pop pair orders the previous owner's writes before ours.
        if refs_taken > 0 {
            self.add_refs(refs_taken);
        }
        Some(block)
    }

    /// Resets a recycled block for its new, unique owner.
    #[inline]
    pub(crate) fn reset(block: NonNull<BlockHeader>) {
        // SAFETY: the block came out of a free list or cache, so the caller owns it exclusively.
        let header = unsafe { &mut *block.as_ptr() };
        // Relaxed: the block is not shared yet; whatever later shares it (a channel, a spawn) synchronises.
        header.refs.store(1, Ordering::Relaxed);
        header.len = 0;
        header.header_len = 0;
    }

    /// Takes back a block whose last handle is gone.
    ///
    /// # Safety
    /// The caller owns `block` exclusively (its refcount reached 0, or it is an unfrozen builder's) and does not
    /// use it afterwards.
    #[inline]
    pub(crate) unsafe fn release(block: NonNull<BlockHeader>) {
        // SAFETY: the caller owns the block; its header is initialised.
        let (pool, class) = unsafe {
            let header = block.as_ref();
            (header.pool, header.class)
        };
        // `< CLASS_COUNT` rather than `!= OVERSIZE`: the same test, and it lets the fast path index by class unchecked.
        #[cfg(not(packet_loom))]
        let block = if usize::from(class) >= CLASS_COUNT {
            block
        } else {
            // SAFETY: the caller owns the block and its pool reference; `pool` and `class` are its own.
            match unsafe { local::release_fast(pool, usize::from(class), block) } {
                Ok(()) => return,
                Err(block) => block,
            }
        };
        // SAFETY: per the contract; ownership passes on.
        unsafe { Self::release_slow(block, pool, class) };
    }

    /// A release the L1 fast path could not take: an oversize block, no cache bound yet, a full L1 (spill), a
    /// disabled one or an abandoned pool.
    ///
    /// # Safety
    /// As for [`release`](Self::release); `pool` and `class` are the block's.
    #[inline(never)]
    unsafe fn release_slow(block: NonNull<BlockHeader>, pool: NonNull<PoolShared>, class: u8) {
        if class == OVERSIZE {
            // SAFETY: the block's reference keeps the state alive.
            SharedCounters::bump(&unsafe { pool.as_ref() }.oversize.releases);
            // SAFETY: the caller owns the block and its pool reference.
            unsafe { Self::free_block(block) };
            return;
        }
        let class = class as usize;
        #[cfg(not(packet_loom))]
        // SAFETY: ownership of the block passes to the cache.
        if local::with_cache(pool, |cache| unsafe { cache.release(class, block) }).is_some() {
            return;
        }
        // SAFETY: the caller owns the block and its pool reference.
        unsafe { Self::release_global(pool, class, block) };
    }

    /// Release without an L1 cache.
    ///
    /// # Safety
    /// The caller owns `block` (of `pool`, class `class`) and the pool reference it holds.
    unsafe fn release_global(pool: NonNull<PoolShared>, class: usize, block: NonNull<BlockHeader>) {
        // SAFETY: the block's reference keeps the state alive.
        let shared = unsafe { pool.as_ref() };
        SharedCounters::bump(&shared.classes[class].counters.releases);
        // SAFETY: as above; the block's reference is the one handed over.
        unsafe { Self::push_global(pool, class, &[block], 0) };
    }

    /// Returns `blocks` (all of class `class`, each holding a pool reference) to the global list, freeing those that
    /// do not fit, then drops their references. `extra_refs` more references the caller owns are dropped with them.
    ///
    /// # Safety
    /// The caller owns every block in `blocks`, their references, and `extra_refs` more; it does not use `pool`
    /// afterwards unless it holds yet another reference.
    unsafe fn push_global(pool: NonNull<PoolShared>, class: usize, blocks: &[NonNull<BlockHeader>], extra_refs: usize) {
        // SAFETY: the blocks' references keep the state alive until `release_refs` below.
        let shared = unsafe { pool.as_ref() };
        let mut refs = extra_refs;
        for &block in blocks {
            let kept =
                !shared.is_abandoned() && shared.queue(class).is_some_and(|queue| queue.push(BlockPtr(block)).is_ok());
            if !kept {
                // SAFETY: the caller owns the block; it is freed here and never used again.
                unsafe { block::deallocate(block) };
            }
            // A block in the global list holds no reference; a freed block neither.
            refs += 1;
        }
        // The pushed blocks are visible in the queue before the references go, so a last reference dropped here
        // frees the state together with them (the state's `Drop` empties the lists).
        // SAFETY: the caller owns these references.
        unsafe { Self::release_refs(pool, refs) };
    }

    /// Frees a block to the allocator and drops its pool reference.
    ///
    /// # Safety
    /// The caller owns `block` and its reference; neither is used afterwards.
    unsafe fn free_block(block: NonNull<BlockHeader>) {
        // SAFETY: the caller owns the block.
        let pool = unsafe { block.as_ref().pool };
        // SAFETY: as above.
        unsafe { block::deallocate(block) };
        // SAFETY: the block's reference is ours to drop.
        unsafe { Self::release_refs(pool, 1) };
    }

    /// Frees every block in the global lists (they hold no references).
    fn drain(&self) {
        for class in 0..CLASS_COUNT {
            if let Some(queue) = self.queue(class) {
                while let Some(BlockPtr(block)) = queue.pop() {
                    // SAFETY: a block in the free list is owned by the list, which we just took it from.
                    unsafe { block::deallocate(block) };
                }
            }
        }
    }

    fn stats(&self) -> PoolStats {
        let mut classes = [Sums::default(); CLASS_COUNT];
        let mut oversize = Sums::default();
        oversize.add_shared(&self.oversize);
        // Held while reading so no local cache folds its counts (moving them from local to shared) mid-snapshot.
        let locals = self.locals.lock().unwrap_or_else(|e| e.into_inner());
        for (class, sums) in classes.iter_mut().enumerate() {
            sums.add_shared(&self.classes[class].counters);
            sums.retained += self.queue(class).map_or(0, |q| q.len()) as u64;
            for local in locals.iter() {
                // SAFETY: a registered cache stays alive (and registered) until it removes itself under this lock.
                sums.add_local(unsafe { local.counters(class) });
            }
        }
        drop(locals);
        stats::snapshot(classes, oversize, HEADER_SIZE)
    }
}

impl Drop for PoolShared {
    fn drop(&mut self) {
        // Every other block holds a reference, so only the free lists' blocks are left.
        self.drain();
    }
}

/// A pool of frame blocks. Cheap to clone (a handle); see the module docs for the design.
///
/// ```
/// use packet_runtime::pool::{MessagePool, PoolConfig};
/// use packet_runtime::PacketBuilder;
///
/// let pool = MessagePool::new(PoolConfig::default());
/// let mut frame = PacketBuilder::with_capacity_in(&pool, 16);
/// frame.extend_from_slice(&[6, 0, 1, 0, 0xAA, 0xBB]);
/// let packet = frame.freeze();
/// assert_eq!(pool.stats().outstanding(), 1);
/// drop(packet);
/// assert_eq!(pool.stats().outstanding(), 0);
/// ```
pub struct MessagePool {
    shared: NonNull<PoolShared>,
}

// SAFETY: the shared state is only accessed through atomics, lock-free queues of `Send` block pointers and a mutex.
unsafe impl Send for MessagePool {}
// SAFETY: as above: every method takes `&self` and synchronises internally.
unsafe impl Sync for MessagePool {}

impl MessagePool {
    /// A new pool with its own free lists and counters.
    pub fn new(config: PoolConfig) -> MessagePool {
        let classes = core::array::from_fn(|class| {
            let global = config.global_capacity[class];
            let local_capacity = config.local_capacity[class].min(LOCAL_CAPACITY_MAX);
            ClassShared {
                free: (global > 0).then(|| FreeList::new(global)),
                counters: SharedCounters::default(),
                local_capacity,
                batch: local_capacity.div_ceil(2),
            }
        });
        let shared = Box::new(PoolShared {
            refs: CacheAligned(AtomicUsize::new(1)),
            handles: AtomicUsize::new(1),
            classes,
            oversize: SharedCounters::default(),
            locals: Mutex::new(Vec::new()),
            config,
        });
        MessagePool { shared: NonNull::from(Box::leak(shared)) }
    }

    /// The process-wide pool with the default configuration, used by [`PacketPtr::encode`](crate::PacketPtr::encode).
    #[cfg(not(packet_loom))]
    pub fn global() -> &'static MessagePool {
        static GLOBAL: std::sync::OnceLock<MessagePool> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(|| MessagePool::new(PoolConfig::default()))
    }

    /// The configuration the pool was built with.
    pub fn config(&self) -> &PoolConfig {
        &self.inner().config
    }

    /// A snapshot of the pool's counters.
    pub fn stats(&self) -> PoolStats {
        self.inner().stats()
    }

    /// Frees every block in the global free lists (not the per-thread caches). Useful after a burst when the
    /// caps are generous.
    pub fn trim(&self) {
        self.inner().drain();
    }

    /// Allocates blocks of the class serving frames of `block_size` bytes (header included) into its global free
    /// list until it holds `blocks`, or the class's [`PoolConfig::global_cap`]; returns how many it holds. A pool
    /// otherwise allocates a block whenever more are in use at once (in flight, and in threads' L1 caches) than ever
    /// before, however long it has run; reserved ahead of a load, a pool allocates none until the load needs more
    /// than the reserve. A size beyond the largest class reserves nothing: such frames are never pooled.
    ///
    /// ```
    /// use packet_runtime::pool::{MessagePool, PoolConfig};
    /// use packet_runtime::PacketBuilder;
    ///
    /// let pool = MessagePool::new(PoolConfig::default());
    /// assert_eq!(pool.reserve(64, 100), 100);
    /// let held: Vec<_> = (0..100).map(|_| PacketBuilder::with_capacity_in(&pool, 64)).collect();
    /// assert_eq!(pool.stats().total.misses, 0);
    /// # drop(held);
    /// ```
    pub fn reserve(&self, block_size: usize, blocks: usize) -> usize {
        let Some(class) = size_class::class_for(block_size) else { return 0 };
        let shared = self.inner();
        let Some(queue) = shared.queue(class) else { return 0 };
        let wanted = blocks.min(shared.config.global_capacity[class]);
        while queue.len() < wanted {
            // Counted in `refs` while outside the list, as every block is; `push_global` drops that reference.
            let block = PoolShared::allocate(self.shared, class);
            // SAFETY: the block was just allocated, so we own it and its reference; this handle keeps the pool
            // alive, and not abandoned, so the block is kept unless the list filled up meanwhile (then it is freed).
            unsafe { PoolShared::push_global(self.shared, class, &[block], 0) };
        }
        queue.len()
    }

    /// Binds the calling thread's L1 cache of this pool now instead of at the thread's first acquisition or release,
    /// which allocates (the pool registers the cache's counters): for threads that must not allocate once they
    /// work, a server's IO threads.
    pub(crate) fn bind_thread_cache(&self) {
        #[cfg(not(packet_loom))]
        let _ = local::with_cache(self.shared, |_| ());
    }

    /// Whether `self` and `other` are handles to the same pool.
    pub fn same_pool(&self, other: &MessagePool) -> bool {
        self.shared == other.shared
    }

    #[inline]
    fn inner(&self) -> &PoolShared {
        // SAFETY: a handle holds a reference (through `handles`), so the state is alive.
        unsafe { self.shared.as_ref() }
    }

    /// Acquires a unique block with room for `cap` bytes.
    #[inline]
    pub(crate) fn acquire_block(&self, cap: usize) -> NonNull<BlockHeader> {
        PoolShared::acquire(self.shared, cap)
    }
}

impl Clone for MessagePool {
    fn clone(&self) -> Self {
        // Relaxed: this handle keeps the count above 0, as in `Arc::clone`.
        let old = self.inner().handles.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            std::process::abort();
        }
        MessagePool { shared: self.shared }
    }
}

impl Drop for MessagePool {
    fn drop(&mut self) {
        // AcqRel: the last handle's drain must see the free lists as the other handles' threads left them.
        if self.inner().handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // Nobody can acquire any more: give the cached blocks back now rather than when the last packet goes.
        self.inner().drain();
        // SAFETY: the handles' reference is ours to drop, and `self` is not used afterwards.
        unsafe { PoolShared::release_refs(self.shared, 1) };
    }
}

impl fmt::Debug for MessagePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessagePool").field("config", self.config()).finish_non_exhaustive()
    }
}

#[cfg(all(test, packet_loom))]
mod loom_tests {
    use super::local::LocalCache;
    use super::*;
    use crate::loom::{model, thread};
    use crate::{PacketBuilder, PacketPtr};

    fn pool(global: usize, local: usize) -> MessagePool {
        MessagePool::new(PoolConfig::default().uniform_caps(global, local))
    }

    fn packet(pool: &MessagePool) -> PacketPtr {
        let mut builder = PacketBuilder::with_capacity_in(pool, 8);
        builder.extend_from_slice(&[1, 2, 3]);
        builder.freeze()
    }

    /// Clones and drops racing on three threads return the block exactly once.
    #[test]
    fn loom_concurrent_clone_drop_returns_the_block_once() {
        model(|| {
            let pool = pool(4, 0);
            let original = packet(&pool);
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let mine = original.clone();
                    thread::spawn(move || {
                        let again = mine.clone();
                        assert_eq!(&again[..], &[1, 2, 3]);
                        drop(mine);
                        drop(again);
                    })
                })
                .collect();
            drop(original);
            for t in threads {
                t.join().unwrap();
            }
            let stats = pool.stats();
            assert_eq!(stats.outstanding(), 0);
            assert_eq!(stats.total.misses, 1);
            assert_eq!(stats.total.retained, 1, "returned exactly once");
        });
    }

    /// The encoder's thread keeps a clone while another thread drops; whichever is last returns the block.
    #[test]
    fn loom_last_drop_on_another_thread_than_the_encoder() {
        model(|| {
            let pool = pool(4, 0);
            let remote = pool.clone();
            let encoder = thread::spawn(move || packet(&remote));
            let packet = encoder.join().unwrap();
            let copy = packet.clone();
            let dropper = thread::spawn(move || drop(copy));
            drop(packet);
            dropper.join().unwrap();
            let stats = pool.stats();
            assert_eq!((stats.outstanding(), stats.total.retained), (0, 1));
        });
    }

    /// The last pool handle and the last packet are dropped on different threads: the pool's shared state is freed
    /// exactly once, after the block is back (or freed).
    #[test]
    fn loom_pool_dropped_while_its_last_packet_is_dropped_elsewhere() {
        model(|| {
            let pool = pool(4, 0);
            let packet = packet(&pool);
            let dropper = thread::spawn(move || drop(packet));
            drop(pool);
            dropper.join().unwrap();
        });
    }

    /// One thread's L1 spills and refills (batch of 1, capacity 2) while another thread acquires and releases
    /// through the global list: no block is lost or handed out twice.
    #[test]
    fn loom_l1_spill_and_refill_race_global_pops() {
        model(|| {
            let pool = pool(8, 2);
            let remote = pool.clone();
            let cached = thread::spawn(move || {
                let cache = LocalCache::new();
                // SAFETY: `remote` keeps the pool alive; `cache` stays in place until `flush` unbinds it.
                unsafe { cache.bind(remote.shared) };
                let blocks: Vec<_> = (0..3).map(|_| cache.acquire(0)).collect();
                for block in blocks {
                    // SAFETY: each block was acquired above and is released once.
                    unsafe { cache.release(0, block) };
                }
                let again = cache.acquire(0);
                // SAFETY: as above.
                unsafe { cache.release(0, again) };
                cache.flush();
            });
            for _ in 0..2 {
                let block = PoolShared::acquire_global(pool.shared, 0);
                // SAFETY: acquired above, released once.
                unsafe { PoolShared::release_global(pool.shared, 0, block) };
            }
            cached.join().unwrap();
            let stats = pool.stats();
            assert_eq!(stats.outstanding(), 0);
            assert_eq!(stats.classes[0].acquisitions(), 6);
            // The caps are never reached, so every block ever allocated is back in the global list, once.
            assert_eq!(stats.classes[0].retained, stats.classes[0].misses);
            let queue = pool.inner().queue(0).unwrap();
            let mut seen = Vec::new();
            while let Some(BlockPtr(block)) = queue.pop() {
                assert!(!seen.contains(&block), "a block is in the free list twice");
                seen.push(block);
            }
            for block in seen {
                assert!(queue.push(BlockPtr(block)).is_ok());
            }
        });
    }
}
