//! After warm-up, encoding, sharing (100 holders per packet) and dropping 1,000,000 packets performs no heap
//! allocation, on one thread and across two.
//!
//! A counting `#[global_allocator]` counts only on threads that switched counting on (a `const` thread-local that
//! names the counter to bump), so the test harness and the other test in this binary do not disturb the counts.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use common::Move;
use crossbeam_queue::ArrayQueue;
use packet_runtime::{Compact, MessagePool, PacketBuilder, PacketPtr, PoolConfig};

struct CountingAllocator;

thread_local! {
    /// The counter this thread's allocations go to, if it is inside a measured window.
    static COUNTING: Cell<Option<&'static AtomicUsize>> = const { Cell::new(None) };
}

fn note_allocation() {
    if let Ok(Some(counter)) = COUNTING.try_with(Cell::get) {
        counter.fetch_add(1, Relaxed);
    }
}

/// Counts this thread's allocations into `counter` until `stop_counting`.
fn start_counting(counter: &'static AtomicUsize) {
    COUNTING.with(|c| c.set(Some(counter)));
}

fn stop_counting() {
    COUNTING.with(|c| c.set(None));
}

// SAFETY: forwards every call to `System` unchanged; counting has no effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const PACKETS: usize = 1_000_000;
const HOLDERS: usize = 100;
const WARM_UP: usize = 10_000;

/// Shares `packet` with every holder (dropping what they held) and drops the original.
fn fan_out(packet: PacketPtr, holders: &mut [Option<PacketPtr>]) {
    for holder in holders.iter_mut() {
        *holder = Some(packet.clone());
    }
}

/// Makes sure the pool holds enough blocks of the first class for everything in flight.
fn prefill(pool: &MessagePool, blocks: usize) {
    let held: Vec<_> = (0..blocks).map(|_| PacketBuilder::with_capacity_in(pool, 64)).collect();
    drop(held);
}

#[test]
fn encode_share_drop_on_one_thread_allocates_nothing() {
    let pool = MessagePool::new(PoolConfig::default());
    let msg = Move::sample();
    let mut holders: Vec<Option<PacketPtr>> = (0..HOLDERS).map(|_| None).collect();
    for _ in 0..WARM_UP {
        fan_out(PacketPtr::encode_in::<Compact, _>(&pool, &msg).unwrap(), &mut holders);
    }
    static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
    start_counting(&ALLOCATIONS);
    for _ in 0..PACKETS {
        fan_out(PacketPtr::encode_in::<Compact, _>(&pool, &msg).unwrap(), &mut holders);
    }
    stop_counting();
    assert_eq!(ALLOCATIONS.load(Relaxed), 0);
    holders.clear();
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0);
    assert_eq!(stats.total.acquisitions(), (WARM_UP + PACKETS) as u64);
    assert!(stats.total.misses <= 2, "{stats:?}");
}

#[test]
fn encode_on_one_thread_drop_on_another_allocates_nothing() {
    const RING: usize = 1024;
    static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
    let pool = MessagePool::new(PoolConfig::default());
    // Everything that can be in flight: the ring, the holders, both threads' L1 caches.
    prefill(&pool, RING + HOLDERS + 2 * 64 + 64);
    let ring = ArrayQueue::<PacketPtr>::new(RING);
    let msg = Move::sample();

    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..WARM_UP + PACKETS {
                if i == WARM_UP {
                    start_counting(&ALLOCATIONS);
                }
                let mut packet = PacketPtr::encode_in::<Compact, _>(&pool, &msg).unwrap();
                while let Err(back) = ring.push(packet) {
                    packet = back;
                    std::thread::yield_now();
                }
            }
            stop_counting();
        });
        s.spawn(|| {
            let mut holders: Vec<Option<PacketPtr>> = (0..HOLDERS).map(|_| None).collect();
            let mut received = 0;
            while received < WARM_UP + PACKETS {
                let Some(packet) = ring.pop() else {
                    std::thread::yield_now();
                    continue;
                };
                if received == WARM_UP {
                    start_counting(&ALLOCATIONS);
                }
                fan_out(packet, &mut holders);
                received += 1;
            }
            // The last holders are dropped here, on the consumer thread.
            for holder in holders.iter_mut() {
                *holder = None;
            }
            stop_counting();
        });
    });
    assert_eq!(ALLOCATIONS.load(Relaxed), 0);
    assert_eq!(pool.stats().outstanding(), 0);
}
