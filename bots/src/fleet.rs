//! Runs a fleet of bots through the phases of a run and collects what they measured. Never prints: the caller
//! shows progress from [`LiveCounters`] and renders the [`FleetResult`].
//!
//! ```text
//!  Setup ── every bot ready ──► Run (warmup, then measured) ── duration over ──► Drain ── every bot settled,
//!                                                                                          then quiet ──► Stop
//! ```
//! A stop request (Ctrl-C) jumps to `Drain` (from `Setup`: straight to `Stop`), so a report still follows. When no
//! bot could connect, `Setup` goes straight to `Stop` too.
//! `Drain` waits until no bot has a request in flight (at most the bot timeout), then until no packet arrived for
//! [`QUIET`], so that broadcasts of the last messages reach every receiver before the bots disconnect.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, watch};

use crate::bot::{self, BotConfig, Clock, FleetLink, Phase};
use crate::stats::{Counters, Latency, LiveCounters};

/// How long no packet may arrive before a drained fleet is considered quiet.
pub const QUIET: Duration = Duration::from_millis(100);

/// How to run the fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// What every bot does.
    pub bot: BotConfig,
    /// Number of bots.
    pub clients: usize,
    /// Measured sending time, after the warmup.
    pub duration: Duration,
    /// Sending time before measuring starts.
    pub warmup: Duration,
    /// Connection attempts in progress at once.
    pub connect_parallel: usize,
}

/// What a run measured.
#[derive(Debug)]
pub struct FleetResult {
    /// Every bot's counters, merged.
    pub counters: Counters,
    /// Round-trip (echo, move) or delivery (chat) latencies in microseconds.
    pub latency: Histogram<u64>,
    /// From the end of the warmup to the start of the drain: the time the counted messages were sent in.
    pub measured: Duration,
    /// Whether the run was stopped early.
    pub interrupted: bool,
}

/// A moment of the run an observer is told about (see [`run_marked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The warmup is over: messages sent from now on are counted.
    MeasureStart,
    /// The measured time is over: no new requests from now on (the drain follows).
    MeasureEnd,
}

/// Runs `config.clients` bots to completion. `stop` ends the run early when it completes.
pub async fn run(config: &FleetConfig, live: Arc<LiveCounters>, stop: impl Future<Output = ()>) -> FleetResult {
    run_marked(config, live, stop, |_| {}).await
}

/// [`run`], calling `mark` at the start and the end of the measured time (both or neither; not after a stop).
/// `mark` runs on the fleet's control task: it may take a few milliseconds (the benchmark harness samples the
/// server process there), not longer.
pub async fn run_marked(
    config: &FleetConfig,
    live: Arc<LiveCounters>,
    stop: impl Future<Output = ()>,
    mut mark: impl FnMut(Mark),
) -> FleetResult {
    let clients = config.clients;
    let rooms = clients.div_ceil(config.bot.room_size.max(1));
    let (phase, phase_rx) = watch::channel(Phase::Setup);
    let (ready, mut ready_rx) = watch::channel(0usize);
    let (settled, mut settled_rx) = watch::channel(0usize);
    let link = FleetLink {
        clock: Arc::new(Clock::new()),
        phase: phase_rx,
        ready: Arc::new(ready),
        settled: Arc::new(settled),
        live: Arc::clone(&live),
        connecting: Arc::new(Semaphore::new(config.connect_parallel.max(1))),
        rooms: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
    };
    let latency = Latency::new(16);
    let bot_config = Arc::new(config.bot.clone());
    let bots: Vec<_> = (0..clients)
        .map(|index| tokio::spawn(bot::run(index, Arc::clone(&bot_config), link.clone(), latency.sink(index))))
        .collect();

    tokio::pin!(stop);
    let mut interrupted = false;
    let mut measured = Duration::ZERO;
    tokio::select! {
        _ = ready_rx.wait_for(|&n| n >= clients) => {}
        () = &mut stop => interrupted = true,
    }
    // Nobody connected: nothing to measure, report at once.
    if !interrupted && live.snapshot().connected > 0 {
        link.clock.start_measuring(config.warmup);
        let started = Instant::now();
        let _ = phase.send(Phase::Run);
        tokio::select! {
            () = tokio::time::sleep(config.warmup) => {}
            () = &mut stop => interrupted = true,
        }
        if !interrupted {
            mark(Mark::MeasureStart);
            tokio::select! {
                () = tokio::time::sleep_until((started + config.warmup + config.duration).into()) => {}
                () = &mut stop => interrupted = true,
            }
        }
        // Before the mark's own time: the bots stop counting at the drain, which follows the mark.
        measured = started.elapsed().saturating_sub(config.warmup);
        if !interrupted {
            mark(Mark::MeasureEnd);
        }
        let _ = phase.send(Phase::Drain);
        let drain_deadline = tokio::time::Instant::now() + config.bot.timeout;
        tokio::select! {
            _ = settled_rx.wait_for(|&n| n >= clients) => {}
            () = tokio::time::sleep_until(drain_deadline) => {}
            () = &mut stop, if !interrupted => {}
        }
        wait_for_quiet(&live, drain_deadline).await;
    }
    let _ = phase.send(Phase::Stop);

    let mut counters = Counters::default();
    for bot in bots {
        match bot.await {
            Ok(bot_counters) => counters.merge(&bot_counters),
            Err(e) => panic!("a bot task failed: {e}"),
        }
    }
    FleetResult { counters, latency: latency.merged(), measured, interrupted }
}

/// Waits until no packet arrived for [`QUIET`], or until `deadline`.
async fn wait_for_quiet(live: &LiveCounters, deadline: tokio::time::Instant) {
    let mut before = live.snapshot().received;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(QUIET).await;
        let now = live.snapshot().received;
        if now == before {
            return;
        }
        before = now;
    }
}
