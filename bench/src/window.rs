//! One measured window of a client load against a server process: what `web_bench`, `tls_bench` and `ws_crates`
//! share. `CLIENTS` client tasks connect and get ready; after a warm-up, the window counts what they receive and the
//! CPU time the server process and this one (the load generator, which shares the CPUs) spend meanwhile.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One window: messages per second, server CPU per message and load generator CPU per message (µs).
pub type Run = (f64, f64, f64);

/// What a client task of a window is handed: where to count what it receives, when to stop, and the barrier to wait
/// at once it is connected (the window starts when every client is).
#[derive(Debug, Clone)]
pub struct Load {
    /// Messages received, counted by every client.
    pub counted: Arc<AtomicU64>,
    /// Set when the window is over.
    pub stop: Arc<AtomicBool>,
    /// Every client and the window wait here once connected.
    pub ready: Arc<tokio::sync::Barrier>,
}

/// Spawns `clients` tasks made by `client(index, load)` on `runtime`, waits until all are ready and `warmup` more,
/// then measures for `seconds`: what they counted and the CPU of the process `server_pid` and of this one. The tasks
/// are aborted after, and the server given half a second to see the connections go.
pub fn measure<F>(
    runtime: &tokio::runtime::Runtime,
    server_pid: u32,
    clients: usize,
    warmup: Duration,
    seconds: u64,
    mut client: impl FnMut(usize, Load) -> F,
) -> Run
where
    F: Future<Output = ()> + Send + 'static,
{
    let load = Load {
        counted: Arc::new(AtomicU64::new(0)),
        stop: Arc::new(AtomicBool::new(false)),
        ready: Arc::new(tokio::sync::Barrier::new(clients + 1)),
    };
    let tasks: Vec<_> = (0..clients).map(|i| runtime.spawn(client(i, load.clone()))).collect();
    runtime.block_on(load.ready.wait());
    std::thread::sleep(warmup);
    let (start_count, start_cpu, start_self) =
        (load.counted.load(Ordering::Relaxed), cpu(server_pid), cpu(std::process::id()));
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let (count, elapsed) = (load.counted.load(Ordering::Relaxed) - start_count, started.elapsed().as_secs_f64());
    let (server_cpu, self_cpu) = (cpu(server_pid) - start_cpu, cpu(std::process::id()) - start_self);
    load.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }
    std::thread::sleep(Duration::from_millis(500));
    let per = |cpu: f64| cpu * 1e6 / count.max(1) as f64;
    (count as f64 / elapsed, per(server_cpu), per(self_cpu))
}

/// The median (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// CPU seconds process `pid` has used (0 if it cannot be read).
fn cpu(pid: u32) -> f64 {
    crate::probe::cpu_secs(&pid.to_string()).unwrap_or(0.0)
}
