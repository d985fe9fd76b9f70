//! What a benchmarked server process reports about itself: heap allocations, CPU time and memory.
//!
//! Each server the `loadtest` harness compares (`game_server`, `baseline`, `raw_echo`) installs [`CountingAlloc`] as its
//! global allocator, calls [`report_on_sigusr1`] before announcing its address, and prints
//! [`ProcessStats::of_self`] as one [`ProcessStats::to_line`] line on stdout when it exits. The harness sends
//! `SIGUSR1` at the start and the end of the measured time and divides the difference in allocations by the
//! messages delivered in between.
//!
//! The counter is one relaxed atomic add per allocation (reallocations count as allocations; frees are not
//! counted). Setting `PROBE_COUNT_ALLOCS=0` in the environment turns the add off (a relaxed load and a branch
//! remain), which is how its cost was measured (see docs/BENCHMARKS.md).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Allocation calls so far (alloc, alloc_zeroed, realloc).
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Whether [`ALLOCATIONS`] is maintained.
static COUNTING: AtomicBool = AtomicBool::new(true);

/// The system allocator, counting allocation calls. Install with
/// `#[global_allocator] static ALLOC: bench::probe::CountingAlloc = bench::probe::CountingAlloc;`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

impl CountingAlloc {
    #[inline]
    fn count() {
        // Relaxed: a statistic; read only after the process has been told (by a signal) to report it.
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s guarantees hold;
// the counter touches no memory the allocator hands out.
unsafe impl GlobalAlloc for CountingAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count();
        // SAFETY: forwarded contract (non-zero size layout, guaranteed by our caller).
        unsafe { System.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count();
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count();
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`; forwarded contract for `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocation calls counted so far (0 when [`CountingAlloc`] is not the global allocator).
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Reads `PROBE_COUNT_ALLOCS`: `0` turns counting off. Call first thing in `main`.
pub fn configure_from_env() {
    if std::env::var_os("PROBE_COUNT_ALLOCS").is_some_and(|v| v == "0") {
        COUNTING.store(false, Ordering::Relaxed);
    }
}

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ProcessStats {
    /// Heap allocation calls since the start ([`CountingAlloc`]).
    pub allocations: u64,
    /// User + system CPU time since the start, seconds.
    pub cpu_secs: f64,
    /// Resident set size now, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size, KiB (`VmHWM`).
    pub peak_rss_kib: u64,
}

const LINE_PREFIX: &str = "probe:";

impl ProcessStats {
    /// This process, now.
    pub fn of_self() -> Self {
        let allocations = allocations();
        let cpu_secs = cpu_secs("self").unwrap_or(0.0);
        let (rss_kib, peak_rss_kib) = memory_kib("self").unwrap_or((0, 0));
        ProcessStats { allocations, cpu_secs, rss_kib, peak_rss_kib }
    }

    /// `probe: allocations=N cpu_secs=X rss_kib=N peak_rss_kib=N`, what the servers print.
    pub fn to_line(&self) -> String {
        format!(
            "{LINE_PREFIX} allocations={} cpu_secs={:.3} rss_kib={} peak_rss_kib={}",
            self.allocations, self.cpu_secs, self.rss_kib, self.peak_rss_kib
        )
    }

    /// Parses a [`to_line`](Self::to_line) line; `None` for any other line.
    pub fn parse_line(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix(LINE_PREFIX)?;
        let mut stats = ProcessStats::default();
        for field in rest.split_whitespace() {
            let (key, value) = field.split_once('=')?;
            match key {
                "allocations" => stats.allocations = value.parse().ok()?,
                "cpu_secs" => stats.cpu_secs = value.parse().ok()?,
                "rss_kib" => stats.rss_kib = value.parse().ok()?,
                "peak_rss_kib" => stats.peak_rss_kib = value.parse().ok()?,
                _ => {}
            }
        }
        Some(stats)
    }
}

/// User + system CPU seconds of process `pid` (`"self"` for this one), from `/proc/<pid>/stat`.
pub fn cpu_secs(pid: &str) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces and parentheses: the fields that follow start after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| io::Error::other("bad stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of stat(5); `after` starts at field 3.
    let ticks =
        |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or_else(|| io::Error::other("bad stat"));
    let total = ticks(11)? + ticks(12)?;
    Ok(total as f64 / clock_ticks_per_sec())
}

/// `(VmRSS, VmHWM)` of process `pid` in KiB, from `/proc/<pid>/status`.
pub fn memory_kib(pid: &str) -> io::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: `sysconf` only reads a configuration value; no pointers are involved.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Prints a [`ProcessStats`] line on stdout at every `SIGUSR1`, from a thread of its own. The handler is installed
/// when this returns, so call it before announcing the address.
pub fn report_on_sigusr1() -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    let mut signal = {
        let _context = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?
    };
    std::thread::Builder::new().name("probe".into()).spawn(move || {
        runtime.block_on(async move {
            while signal.recv().await.is_some() {
                println!("{}", ProcessStats::of_self().to_line());
            }
        });
    })?;
    Ok(())
}

/// The scaffolding the hand-written contenders (`baseline`, `raw_echo`) share, so they differ only in how they
/// serve a connection: a multi-thread runtime (`workers` threads, default the CPUs), the listener on `addr`
/// (`listening on ADDR` printed once the signal handlers are in place), one task per connection, SIGTERM or SIGINT
/// to stop, and the runtime shut down outside `block_on`. The caller prints its summary and the probe line.
pub fn serve_until_signal<F, Fut>(addr: std::net::SocketAddr, workers: Option<usize>, serve: F) -> io::Result<()>
where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio::signal::unix::{SignalKind, signal};

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers.max(1));
    }
    let runtime = builder.enable_all().build()?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        report_on_sigusr1()?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(serve(stream));
                    }
                    // EMFILE and friends: back off a little rather than spin.
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                },
                _ = terminate.recv() => return Ok(()),
                _ = interrupt.recv() => return Ok(()),
            }
        }
    });
    // Outside `block_on`: connections still open are dropped with their tasks.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trips() {
        let stats = ProcessStats { allocations: 12, cpu_secs: 1.5, rss_kib: 3000, peak_rss_kib: 4000 };
        assert_eq!(ProcessStats::parse_line(&stats.to_line()), Some(stats));
        assert_eq!(ProcessStats::parse_line("listening on 127.0.0.1:1"), None);
    }

    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::of_self();
        assert!(stats.rss_kib > 0 && stats.peak_rss_kib >= stats.rss_kib, "{stats:?}");
        assert!(cpu_secs("self").unwrap() >= 0.0);
    }
}
