//! PacketPtr vs Arc<[u8]> vs Bytes (clone + drop), pool vs allocator (acquire + release, same and cross thread),
//! and encoding into a PacketPtr vs BytesMut + header.
//!
//! `cargo bench -p packet-runtime --bench packet -- --measurement-time 2`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use crossbeam_queue::ArrayQueue;
use packet_runtime::{Compact, FrameHeader, MessagePool, Packet, PacketBuilder, PacketPtr, PoolConfig};
use prost::Message;

#[path = "../tests/common/mod.rs"]
mod common;
use common::Move;

fn clone_drop(c: &mut Criterion) {
    let pool = MessagePool::new(PoolConfig::default());
    let packet = PacketPtr::encode_in::<Compact, _>(&pool, &Move::sample()).unwrap();
    let arc: Arc<[u8]> = Arc::from(&packet[..]);
    let bytes = Bytes::copy_from_slice(&packet[..]);
    let mut group = c.benchmark_group("clone_drop");
    group.bench_function("PacketPtr", |b| b.iter(|| drop(black_box(black_box(&packet).clone()))));
    group.bench_function("Arc<[u8]>", |b| b.iter(|| drop(black_box(black_box(&arc).clone()))));
    group.bench_function("Bytes", |b| b.iter(|| drop(black_box(black_box(&bytes).clone()))));
    group.finish();
}

fn acquire_release(c: &mut Criterion) {
    let pool = MessagePool::new(PoolConfig::default());
    let mut group = c.benchmark_group("acquire_release_256");
    group
        .bench_function("pool", |b| b.iter(|| drop(black_box(PacketBuilder::with_capacity_in(&pool, black_box(256))))));
    group
        .bench_function("Vec::with_capacity", |b| b.iter(|| drop(black_box(Vec::<u8>::with_capacity(black_box(256))))));
    group.finish();

    // Cross-thread: acquire here, release on another thread, handed over through a pre-allocated ring. The
    // measured time is the acquiring thread's, for `iters` buffers (the releasing thread runs concurrently).
    let mut group = c.benchmark_group("acquire_release_256_cross_thread");
    group.bench_function("pool", |b| {
        b.iter_custom(|iters| cross_thread(iters, || PacketBuilder::with_capacity_in(&pool, 256)))
    });
    group.bench_function("Vec::with_capacity", |b| {
        b.iter_custom(|iters| cross_thread(iters, || Vec::<u8>::with_capacity(256)))
    });
    group.finish();
}

fn cross_thread<T: Send>(iters: u64, make: impl Fn() -> T + Sync) -> Duration {
    let ring = ArrayQueue::<T>::new(256);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut received = 0;
            while received < iters {
                match ring.pop() {
                    Some(item) => {
                        drop(item);
                        received += 1;
                    }
                    None => std::thread::yield_now(),
                }
            }
        });
        let start = Instant::now();
        for _ in 0..iters {
            let mut item = make();
            while let Err(back) = ring.push(item) {
                item = back;
                std::thread::yield_now();
            }
        }
        start.elapsed()
    })
}

fn encode(c: &mut Criterion) {
    let pool = MessagePool::new(PoolConfig::default());
    let msg = Move::sample();
    let mut group = c.benchmark_group("encode_64B");
    group.bench_function("PacketPtr::encode_in", |b| {
        b.iter(|| drop(black_box(PacketPtr::encode_in::<Compact, _>(&pool, black_box(&msg)).unwrap())))
    });
    group.bench_function("BytesMut+encode+header", |b| {
        b.iter(|| {
            let msg = black_box(&msg);
            let payload_len = msg.encoded_len();
            let frame_len = Compact::LEN + payload_len;
            let mut buf = BytesMut::with_capacity(frame_len);
            buf.put_u16_le(frame_len as u16);
            buf.put_u16_le(Move::ID);
            msg.encode(&mut buf).unwrap();
            drop(black_box(buf.freeze()))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = clone_drop, acquire_release, encode
}
criterion_main!(benches);
