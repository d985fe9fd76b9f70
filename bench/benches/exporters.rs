//! What recording one packet costs with each Prometheus exporter the runtime could use: the `metrics` facade with
//! `metrics-exporter-prometheus` (what `ServerBuilder::export_metrics` records into, through handles resolved at
//! start) against `prometheus-client` (its own registry, handles taken once from a `Family`), the same series and
//! buckets in both. "One packet" is what the runtime records for a handled chat line: its frame in, a frame out,
//! and its handler time. Then the cost of a scrape (rendering ~90 series) and, for the facade's histogram, of
//! draining recorded samples into buckets (the exporter's upkeep; `prometheus-client` buckets at record time).
//! After the groups it prints heap allocations per packet for each, counted with a counting allocator.
//!
//! `cargo bench -p bench --bench exporters -- --measurement-time 2`   (results: docs/OPERATIONS.md)

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use packet_runtime::export::HANDLER_BUCKETS;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter as PcCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram as PcHistogram;
use prometheus_client::registry::Registry;

struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to `System` unchanged; counting has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The demo's packets per direction: each gets its series, as the runtime registers them.
const PACKETS_IN: usize = 7;
const PACKETS_OUT: usize = 12;

/// One packet's handles with the facade and the Prometheus exporter.
struct Facade {
    handle: PrometheusHandle,
    frame_in: metrics::Counter,
    frame_out: metrics::Counter,
    handler: metrics::Histogram,
}

fn facade() -> Facade {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("packet_handler_seconds".into()), HANDLER_BUCKETS)
        .expect("buckets")
        .build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let mut first = None;
        for i in 0..PACKETS_IN.max(PACKETS_OUT) {
            let name = format!("P{i}");
            let handles = (
                metrics::counter!("packet_frames_in_total", "packet" => name.clone()),
                metrics::counter!("packet_frames_out_total", "packet" => name.clone()),
                metrics::histogram!("packet_handler_seconds", "packet" => name),
            );
            handles.0.increment(1);
            handles.1.increment(1);
            handles.2.record(0.000_01);
            first.get_or_insert(handles);
        }
        // The handles hold their storage, and `handle` the registry: the recorder itself may go.
        let (frame_in, frame_out, handler) = first.expect("handles");
        Facade { handle, frame_in, frame_out, handler }
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct PacketLabel {
    packet: String,
}

/// The same with `prometheus-client`.
struct Client {
    registry: Registry,
    frame_in: PcCounter,
    frame_out: PcCounter,
    handler: PcHistogram,
}

fn client() -> Client {
    let mut registry = Registry::default();
    let frames_in = Family::<PacketLabel, PcCounter>::default();
    let frames_out = Family::<PacketLabel, PcCounter>::default();
    let handler =
        Family::<PacketLabel, PcHistogram>::new_with_constructor(|| PcHistogram::new(HANDLER_BUCKETS.iter().copied()));
    registry.register("packet_frames_in", "Frames in.", frames_in.clone());
    registry.register("packet_frames_out", "Frames out.", frames_out.clone());
    registry.register("packet_handler_seconds", "Handler time.", handler.clone());
    for i in 0..PACKETS_IN.max(PACKETS_OUT) {
        let label = PacketLabel { packet: format!("P{i}") };
        frames_in.get_or_create(&label).inc();
        frames_out.get_or_create(&label).inc();
        handler.get_or_create(&label).observe(0.000_01);
    }
    let label = PacketLabel { packet: "P0".into() };
    Client {
        frame_in: frames_in.get_or_create_owned(&label),
        frame_out: frames_out.get_or_create_owned(&label),
        handler: handler.get_or_create_owned(&label),
        registry,
    }
}

/// A handler time in the range the demo's handlers take, varied so that the buckets differ.
fn seconds(i: u64) -> f64 {
    0.000_002 * (1 + (i % 50)) as f64
}

/// Samples recorded between the facade's upkeeps (it drains its histograms into buckets then, and frees their
/// sample blocks); 5 s of a busy logic thread is far more.
const UPKEEP_EVERY: u64 = 4_096;

fn per_packet(c: &mut Criterion) {
    let f = facade();
    let p = client();
    let mut group = c.benchmark_group("record_one_packet");
    group.bench_function("metrics-exporter-prometheus", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut i = 0;
            while i < iters {
                let chunk = UPKEEP_EVERY.min(iters - i);
                let start = Instant::now();
                for j in i..i + chunk {
                    f.frame_in.increment(1);
                    f.frame_out.increment(1);
                    f.handler.record(black_box(seconds(j)));
                }
                spent += start.elapsed();
                f.handle.run_upkeep();
                i += chunk;
            }
            spent
        })
    });
    group.bench_function("prometheus-client", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            p.frame_in.inc();
            p.frame_out.inc();
            p.handler.observe(black_box(seconds(i)));
        })
    });
    group.finish();

    let mut group = c.benchmark_group("counter_increment");
    group.bench_function("metrics-exporter-prometheus", |b| b.iter(|| black_box(&f.frame_in).increment(1)));
    group.bench_function("prometheus-client", |b| b.iter(|| black_box(&p.frame_in).inc()));
    group.finish();

    let mut group = c.benchmark_group("histogram_record");
    group.bench_function("metrics-exporter-prometheus", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut i = 0;
            while i < iters {
                let chunk = UPKEEP_EVERY.min(iters - i);
                let start = Instant::now();
                for j in i..i + chunk {
                    f.handler.record(black_box(seconds(j)));
                }
                spent += start.elapsed();
                f.handle.run_upkeep();
                i += chunk;
            }
            spent
        })
    });
    group.bench_function("prometheus-client", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            p.handler.observe(black_box(seconds(i)));
        })
    });
    group.finish();

    // The other half of the facade's histogram: its upkeep buckets the samples (per sample, amortised).
    let mut group = c.benchmark_group("histogram_drain_per_sample");
    group.bench_function("metrics-exporter-prometheus", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut i = 0;
            while i < iters {
                let chunk = UPKEEP_EVERY.min(iters - i);
                for j in i..i + chunk {
                    f.handler.record(seconds(j));
                }
                let start = Instant::now();
                f.handle.run_upkeep();
                spent += start.elapsed();
                i += chunk;
            }
            spent
        })
    });
    group.finish();

    let mut group = c.benchmark_group("render_scrape");
    group.bench_function("metrics-exporter-prometheus", |b| b.iter(|| black_box(f.handle.render())));
    group.bench_function("prometheus-client", |b| {
        b.iter(|| {
            let mut out = String::new();
            encode(&mut out, &p.registry).expect("encodes");
            black_box(out)
        })
    });
    group.finish();
}

/// Heap allocations per recorded packet, over `n` packets (upkeep included for the facade, as in a server).
fn allocations_per_packet() {
    let n = 1_000_000u64;
    let f = facade();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..n {
        f.frame_in.increment(1);
        f.frame_out.increment(1);
        f.handler.record(seconds(i));
        if i % UPKEEP_EVERY == 0 {
            f.handle.run_upkeep();
        }
    }
    let facade_allocs = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let p = client();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..n {
        p.frame_in.inc();
        p.frame_out.inc();
        p.handler.observe(seconds(i));
    }
    let client_allocs = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "allocations per packet over {n}: metrics-exporter-prometheus {:.4}, prometheus-client {:.4}",
        facade_allocs as f64 / n as f64,
        client_allocs as f64 / n as f64
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    per_packet(&mut c);
    c.final_summary();
    allocations_per_packet();
}
