//! After warm-up, encoding, sharing (100 holders per packet) and dropping 1,000,000 packets performs no heap
//! allocation, on one thread and across two.
//!
//! The counting `#[global_allocator]` (the `alloc-counter` crate) counts only on threads inside a `ThreadWindow`,
//! so the test harness and the other test in this binary do not disturb the counts.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use alloc_counter::{CountingAllocator, ThreadWindow};
use common::Move;
use crossbeam_queue::ArrayQueue;
use packet_runtime::{Compact, MessagePool, PacketBuilder, PacketPtr, PoolConfig};

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
    static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
    let window = ThreadWindow::open(&ALLOCATIONS);
    for _ in 0..PACKETS {
        fan_out(PacketPtr::encode_in::<Compact, _>(&pool, &msg).unwrap(), &mut holders);
    }
    let counted = window.close();
    assert_eq!(counted.allocations, 0, "{}", counted.report());
    holders.clear();
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0);
    assert_eq!(stats.total.acquisitions(), (WARM_UP + PACKETS) as u64);
    assert!(stats.total.misses <= 2, "{stats:?}");
}

#[test]
fn encode_on_one_thread_drop_on_another_allocates_nothing() {
    const RING: usize = 1024;
    static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
    let pool = MessagePool::new(PoolConfig::default());
    // Everything that can be in flight: the ring, the holders, both threads' L1 caches.
    prefill(&pool, RING + HOLDERS + 2 * 64 + 64);
    let ring = ArrayQueue::<PacketPtr>::new(RING);
    let msg = Move::sample();

    let counted = std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut window = None;
            for i in 0..WARM_UP + PACKETS {
                if i == WARM_UP {
                    window = Some(ThreadWindow::open(&ALLOCATIONS));
                }
                let mut packet = PacketPtr::encode_in::<Compact, _>(&pool, &msg).unwrap();
                while let Err(back) = ring.push(packet) {
                    packet = back;
                    std::thread::yield_now();
                }
            }
            window.expect("opened after the warm-up").close()
        });
        let consumer = s.spawn(|| {
            let mut holders: Vec<Option<PacketPtr>> = (0..HOLDERS).map(|_| None).collect();
            let mut received = 0;
            let mut window = None;
            while received < WARM_UP + PACKETS {
                let Some(packet) = ring.pop() else {
                    std::thread::yield_now();
                    continue;
                };
                if received == WARM_UP {
                    window = Some(ThreadWindow::open(&ALLOCATIONS));
                }
                fan_out(packet, &mut holders);
                received += 1;
            }
            // The last holders are dropped here, on the consumer thread.
            for holder in holders.iter_mut() {
                *holder = None;
            }
            window.expect("opened after the warm-up").close()
        });
        [producer.join().expect("producer"), consumer.join().expect("consumer")]
    });
    assert_eq!(ALLOCATIONS.load(Relaxed), 0, "{}\n{}", counted[0].report(), counted[1].report());
    assert_eq!(pool.stats().outstanding(), 0);
}
