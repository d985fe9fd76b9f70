//! Soak test: the demo server in-process under a mixed, churning load for a long time, watching memory.
//!
//! ```text
//! cargo run --release -p bench --bin soak -- --duration 30m --clients 300 --churn-per-sec 20
//! ```
//!
//! The server is the real one (`ServerOptions::start`: `Game` + `GameIo`, its own message pool, so
//! `handle.metrics().pool` counts exactly the server's blocks). `--clients` client slots run in the same process; each
//! slot connects, logs in, enters a room (`--room-size` slots per room) and sends a mix of C_CHAT, C_MOVE and C_ECHO
//! (`--actions-per-sec` each) while a reader task drains and checks what comes back. After a random lifetime averaging
//! `clients / churn-per-sec` seconds the slot drops its connection (half of them abruptly, half after a clean
//! write shutdown) and starts over, so about `--churn-per-sec` clients leave and join every second.
//!
//! Every `--sample-every` one line: process RSS (`VmRSS` of `/proc/self/status`), the pool's outstanding blocks, open
//! sessions, sessions created, frames in/out, errors. At the end the load stops, the server idles with no clients
//! (pool outstanding must be 0), shuts down, and a summary compares the RSS at the end of the load with the RSS after
//! the warm-up (goal: within 10%). The exit status is 0 only if every goal held and no client saw an error.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clap::Parser;
use demo_protocol::proto::{CChat, CEcho, CEnterRoom, CLogin, CMove, PosInfo};
use demo_protocol::{GameProtocol, ServerPacket};
use packet_runtime::{Client, CloseKind};
use server::ServerOptions;

/// Counts live heap bytes (allocated minus freed), so that a growing RSS can be told apart: live bytes growing is a
/// leak; RSS growing over flat live bytes is the allocator holding freed memory (fragmentation, per-thread arenas).
struct LiveBytes;

static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counter is only statistics.
unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as u64, Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as u64, Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from this allocator, which is `System`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as u64, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(new_size as u64, Relaxed);
            LIVE_BYTES.fetch_sub(layout.size() as u64, Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: LiveBytes = LiveBytes;

fn live_kib() -> u64 {
    LIVE_BYTES.load(Relaxed) / 1024
}

/// Runs the demo server in-process under a churning mixed load and reports memory over time.
#[derive(Debug, Parser)]
#[command(name = "soak")]
struct Args {
    /// How long the load runs (warm-up included), e.g. 30m.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Client slots connected at any time (minus those between two connections).
    #[arg(long, default_value_t = 300)]
    clients: u32,
    /// Connections closed and opened per second, on average.
    #[arg(long, default_value_t = 20.0)]
    churn_per_sec: f64,
    /// Packets per second each client sends (a mix of chat, move and echo).
    #[arg(long, default_value_t = 2.0)]
    actions_per_sec: f64,
    /// Client slots per room.
    #[arg(long, default_value_t = 50)]
    room_size: u32,
    /// The RSS after this long is the baseline the end is compared with.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Sampling period.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    sample_every: Duration,
    /// IO threads of the server (the clients get as many of their own).
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

/// What the clients count, shared by all of them.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    packets_sent: AtomicU64,
    packets_received: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    fn error(&self, what: &'static str) {
        *self.errors.lock().unwrap_or_else(|e| e.into_inner()).entry(what).or_default() += 1;
    }

    fn error_total(&self) -> u64 {
        self.errors.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }
}

/// A small xorshift generator: the lifetimes and the action mix need no quality, only no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options =
        ServerOptions { workers: args.workers, ..ServerOptions::with_addr(SocketAddr::from(([127, 0, 0, 1], 0))) };
    let handle = match options.start() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("soak: server failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = handle.local_addr().expect("tcp address");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .thread_name("soak-client")
        .enable_all()
        .build()
        .expect("client runtime");
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mean_life = f64::from(args.clients) / args.churn_per_sec.max(0.001);
    println!(
        "soak: server on {addr}; {} clients, churn {}/s (mean life {mean_life:.1} s), {} packets/s each, rooms of {}, \
         {:?} (warm-up {:?})",
        args.clients, args.churn_per_sec, args.actions_per_sec, args.room_size, args.duration, args.warmup
    );
    let mut slots = Vec::new();
    for slot in 0..args.clients {
        let (counters, stop) = (Arc::clone(&counters), Arc::clone(&stop));
        let room = slot / args.room_size.max(1);
        let period = Duration::from_secs_f64(1.0 / args.actions_per_sec.max(0.01));
        slots.push(runtime.spawn(run_slot(addr, slot, room, mean_life, period, counters, stop)));
    }

    let started = Instant::now();
    let mut baseline: Option<u64> = None;
    let mut last_rss = 0;
    let mut pool_under_load = Vec::new();
    let mut live_samples = Vec::new();
    let mut baseline_live = 0;
    let mut next_sample = started + args.sample_every;
    println!(
        "{:>7} {:>9} {:>9} {:>9} {:>9} {:>6} {:>9} {:>11} {:>11} {:>6}",
        "t_s", "rss_kib", "live_kib", "pool_out", "pool_kib", "open", "created", "frames_in", "frames_out", "errors"
    );
    while started.elapsed() < args.duration {
        std::thread::sleep(next_sample.saturating_duration_since(Instant::now()));
        next_sample += args.sample_every;
        let metrics = handle.metrics();
        let rss = rss_kib();
        last_rss = rss;
        pool_under_load.push(metrics.pool.outstanding());
        let live = live_kib();
        live_samples.push(live);
        println!(
            "{:>7.0} {:>9} {:>9} {:>9} {:>9} {:>6} {:>9} {:>11} {:>11} {:>6}",
            started.elapsed().as_secs_f64(),
            rss,
            live,
            metrics.pool.outstanding(),
            metrics.pool.total.bytes_retained / 1024,
            metrics.connections_open,
            metrics.connections_total,
            metrics.frames_in,
            metrics.frames_out,
            counters.error_total()
        );
        if baseline.is_none() && started.elapsed() >= args.warmup {
            baseline = Some(rss);
            baseline_live = live_kib();
            println!("soak: warm-up over; baseline RSS {rss} KiB, live heap {baseline_live} KiB");
        }
    }

    // Stop the load and let every client leave; the idle server must hold no pool blocks.
    stop.store(true, Relaxed);
    runtime.block_on(async {
        for slot in slots {
            let _ = tokio::time::timeout(Duration::from_secs(30), slot).await;
        }
    });
    let drained = Instant::now();
    while handle.metrics().connections_open > 0 && drained.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let idle = handle.metrics();
    handle.shutdown();
    let report = handle.join();
    drop(runtime);

    let baseline = baseline.unwrap_or(last_rss);
    let ratio = last_rss as f64 / baseline.max(1) as f64;
    let half = pool_under_load.len() / 2;
    let avg = |s: &[u64]| if s.is_empty() { 0.0 } else { s.iter().sum::<u64>() as f64 / s.len() as f64 };
    let (first_half, second_half) = (avg(&pool_under_load[..half]), avg(&pool_under_load[half..]));
    let errors = counters.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    println!("--- summary ---");
    println!("duration:                  {:?}", started.elapsed());
    println!("RSS after warm-up:         {baseline} KiB");
    println!("RSS at the end of load:    {last_rss} KiB");
    println!("ratio end / warm-up:       {ratio:.3} (goal <= 1.10)");
    let last_live = live_samples.last().copied().unwrap_or(0);
    println!(
        "live heap after warm-up {baseline_live} KiB, at the end of load {last_live} KiB (ratio {:.3}), max {} KiB",
        last_live as f64 / baseline_live.max(1) as f64,
        live_samples.iter().max().copied().unwrap_or(0)
    );
    println!(
        "pool outstanding under load: min {} max {} mean first half {first_half:.1}, second half {second_half:.1}",
        pool_under_load.iter().min().copied().unwrap_or(0),
        pool_under_load.iter().max().copied().unwrap_or(0)
    );
    println!("pool outstanding idle (no clients): {}", idle.pool.outstanding());
    println!("pool outstanding after shutdown:    {}", report.pool_outstanding);
    println!(
        "sessions created: {} (client connections {}), sessions closed (on_disconnect ran): {}",
        report.metrics.connections_total,
        counters.connections.load(Relaxed),
        report.sessions_closed
    );
    println!(
        "packets: client sent {}, client received {}; server frames in {}, out {}, dropped {}",
        counters.packets_sent.load(Relaxed),
        counters.packets_received.load(Relaxed),
        report.metrics.frames_in,
        report.metrics.frames_out,
        report.frames_dropped
    );
    let closes: Vec<String> = CloseKind::ALL
        .iter()
        .map(|&kind| (kind, report.metrics.closed(kind)))
        .filter(|&(_, n)| n > 0)
        .map(|(kind, n)| format!("{kind:?} {n}"))
        .collect();
    println!("server closes by reason: {}", closes.join(", "));
    println!("handler panics: {}", report.handler_panics);
    println!("client errors: {}", if errors.is_empty() { "none".to_string() } else { format!("{errors:?}") });
    let ok = ratio <= 1.10
        && idle.pool.outstanding() == 0
        && report.pool_outstanding == 0
        && errors.is_empty()
        && report.handler_panics == 0
        && report.sessions_closed == report.metrics.connections_total;
    println!("result: {}", if ok { "PASS" } else { "FAIL" });
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// One client slot: connect, log in, enter the room, send the mix for a random lifetime, leave; again until `stop`.
async fn run_slot(
    addr: SocketAddr,
    slot: u32,
    room: u32,
    mean_life: f64,
    period: Duration,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (u64::from(slot) + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    // Start spread over a second per hundred clients, so the first wave is not one burst of logins.
    tokio::time::sleep(Duration::from_millis(u64::from(slot) * 10)).await;
    let mut generation = 0u64;
    while !stop.load(Relaxed) {
        generation += 1;
        let life = Duration::from_secs_f64(mean_life * (0.5 + rng.unit()));
        let name = format!("s{slot}g{generation}");
        if let Err(what) = one_life(addr, &name, room, life, period, &mut rng, &counters, &stop).await {
            counters.error(what);
            // Do not spin on a failing server.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[allow(clippy::too_many_arguments)] // one client's life: everything it needs, spelled out
async fn one_life(
    addr: SocketAddr,
    name: &str,
    room: u32,
    life: Duration,
    period: Duration,
    rng: &mut Rng,
    counters: &Arc<Counters>,
    stop: &AtomicBool,
) -> Result<(), &'static str> {
    let guard = Duration::from_secs(30);
    let mut client = match tokio::time::timeout(guard, Client::<GameProtocol>::connect(addr)).await {
        Ok(Ok(client)) => client,
        _ => return Err("connect"),
    };
    counters.connections.fetch_add(1, Relaxed);
    client.send(&CLogin { name: name.into(), ..Default::default() }).await.map_err(|_| "send login")?;
    match tokio::time::timeout(guard, client.recv()).await {
        Ok(Ok(ServerPacket::SLogin(reply))) if reply.success => {}
        _ => return Err("login"),
    }
    client.send(&CEnterRoom { room_id: room }).await.map_err(|_| "send enter")?;
    // Broadcasts from the room may already arrive before S_ENTER_ROOM; the reader takes everything from here on.
    let (mut reader, mut writer) = client.into_split();
    let reader_counters = Arc::clone(counters);
    let reader = tokio::spawn(async move {
        loop {
            match reader.recv().await {
                Ok(ServerPacket::SKick(_)) => return Err("kicked"),
                Ok(_) => {
                    reader_counters.packets_received.fetch_add(1, Relaxed);
                }
                Err(_) => return Ok(()),
            }
        }
    });
    let end = Instant::now() + life;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = 0u64;
    while Instant::now() < end && !stop.load(Relaxed) && !reader.is_finished() {
        ticker.tick().await;
        let pick = rng.next() % 10;
        let result = if pick < 4 {
            writer.send(&CChat { msg: format!("{name} says {sent}") }).await
        } else if pick < 8 {
            let c = sent as f32;
            writer.send(&CMove { pos: Some(PosInfo { x: c, y: -c, z: 1.0, yaw: 0.5 }) }).await
        } else {
            writer.send(&CEcho { data: vec![(sent & 0xFF) as u8; 64] }).await
        };
        result.map_err(|_| "send")?;
        sent += 1;
        counters.packets_sent.fetch_add(1, Relaxed);
    }
    if reader.is_finished() {
        return match reader.await {
            Ok(Err(what)) => Err(what),
            _ => Err("closed by the server"),
        };
    }
    if rng.next().is_multiple_of(2) {
        // A clean leave: shut the write side, let the server close, drain until it does.
        let _ = writer.shutdown().await;
        match tokio::time::timeout(guard, reader).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(what))) => Err(what),
            _ => Err("no close after shutdown"),
        }
    } else {
        // An abrupt leave: drop the socket with whatever is unread.
        reader.abort();
        Ok(())
    }
}
