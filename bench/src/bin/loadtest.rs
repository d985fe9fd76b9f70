//! `loadtest`: the demo server side by side with a hand-written baseline and a raw byte echo, driven by the same
//! load generator (the `bots` library), each contender a child process on loopback, one at a time.
//!
//! ```text
//! cargo build --release -p bench --bins
//! cargo run --release -p bench --bin loadtest                  # table on stdout, chart in docs/benchmarks.svg
//! cargo run --release -p bench --bin loadtest -- --json        # one JSON object
//! cargo run --release -p bench --bin loadtest -- --quick       # seconds; what CI runs (bench/tests/loadtest.rs)
//! ```
//!
//! Contenders (binaries next to this one, or in `--bin-dir`):
//! - `server`: the demo server with the probe installed (the `game_server` binary), `--rate-limit 0
//!   --max-connections 0 --idle-timeout 0`;
//! - `server-metrics`: the same with `--metrics-addr 127.0.0.1:0` (metrics recorded and served, nobody scraping:
//!   the cost per message of recording; a scrape's own cost is in `benches/exporters.rs`);
//! - `baseline --mode send` and `baseline --mode batched`: tokio + tokio-util `LengthDelimitedCodec` + prost;
//! - `raw_echo`: read, write back; the limit of the echo scenario (it cannot take part in chat).
//!
//! Scenarios: `echo` (N connections, S-byte payload, W requests in flight each; a delivered message is an S_ECHO)
//! and `chat` (N clients in rooms of R, W chats in flight each; a delivered message is an S_CHAT at a member). For
//! every run: delivered messages per second, latency p50/p99 (echo round trip; chat send to delivery), the server's
//! CPU seconds and heap allocations over the measured time (SIGUSR1 `probe:` lines, `/proc/<pid>/stat`), its peak
//! RSS (`/proc/<pid>/status` VmHWM), and each contender's throughput relative to `server`. With `--runs N` the
//! figures are medians over N runs, contenders interleaved. Then `idle`: N idle connections (logged in, in rooms of
//! 100) to `server` and to the batched baseline, RSS per connection beyond the process before them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use bench::probe::{self, ProcessStats};
use bots::bot::{BotConfig, Scenario};
use bots::fleet::{self, FleetConfig, Mark};
use bots::stats::LiveCounters;
use clap::Parser;
use demo_protocol::{GameProtocol, ServerPacket, proto};
use packet_runtime::Client;
use serde::{Deserialize, Serialize};

/// Side-by-side benchmark of the demo server, a hand-written baseline and a raw echo.
#[derive(Debug, Parser)]
#[command(name = "loadtest")]
struct Args {
    /// A few seconds in all: tiny loads, one run, 50 idle connections, no chart unless --chart is given.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Runs per contender and scenario; the report shows medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Measured time per run.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured sending time before each run's measurement.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Echo: connections.
    #[arg(long, default_value_t = 100)]
    echo_clients: usize,
    /// Echo: payload bytes.
    #[arg(long, default_value_t = 64)]
    echo_payload: usize,
    /// Echo: requests in flight per connection.
    #[arg(long, default_value_t = 32)]
    echo_in_flight: usize,
    /// Chat: clients.
    #[arg(long, default_value_t = 200)]
    chat_clients: usize,
    /// Chat: clients per room.
    #[arg(long, default_value_t = 100)]
    chat_room_size: usize,
    /// Chat: chats in flight per client.
    #[arg(long, default_value_t = 4)]
    chat_in_flight: usize,
    /// Idle connections for the memory measurement; 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    idle_connections: usize,
    /// Where the contenders' binaries are [default: next to this one].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Write the SVG chart here [default: docs/benchmarks.svg, none with --quick].
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Only these contenders (comma-separated names, e.g. server,baseline-batched).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Run nothing: print the table (and draw the chart, with --chart) of a report saved with --json.
    #[arg(long)]
    from_json: Option<PathBuf>,
}

/// One server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Contender {
    Server,
    ServerMetrics,
    BaselineSend,
    BaselineBatched,
    RawEcho,
}

impl Contender {
    const ALL: [Contender; 5] = [
        Contender::Server,
        Contender::ServerMetrics,
        Contender::BaselineSend,
        Contender::BaselineBatched,
        Contender::RawEcho,
    ];

    fn name(self) -> &'static str {
        match self {
            Contender::Server => "server",
            Contender::ServerMetrics => "server-metrics",
            Contender::BaselineSend => "baseline-send",
            Contender::BaselineBatched => "baseline-batched",
            Contender::RawEcho => "raw-echo",
        }
    }

    fn command(self, bin_dir: &Path) -> Command {
        const SERVER: &[&str] =
            &["--rate-limit", "0", "--max-connections", "0", "--idle-timeout", "0", "--send-queue-limit", "16777216"];
        const SERVER_METRICS: &[&str] = &[
            "--rate-limit",
            "0",
            "--max-connections",
            "0",
            "--idle-timeout",
            "0",
            "--send-queue-limit",
            "16777216",
            "--metrics-addr",
            "127.0.0.1:0",
        ];
        let (bin, args): (&str, &[&str]) = match self {
            // The demo game with the probe installed (`game_server.rs`); reported under the name `server`.
            Contender::Server => ("game_server", SERVER),
            Contender::ServerMetrics => ("game_server", SERVER_METRICS),
            Contender::BaselineSend => ("baseline", &["--mode", "send"]),
            Contender::BaselineBatched => ("baseline", &["--mode", "batched"]),
            Contender::RawEcho => ("raw_echo", &[]),
        };
        let mut command = Command::new(bin_dir.join(bin));
        command.args(["--addr", "127.0.0.1:0"]).args(args);
        command
    }

    fn serves(self, scenario: Scenario) -> bool {
        self != Contender::RawEcho || scenario == Scenario::Echo
    }
}

/// A contender's process, its address, and the `probe:` lines it prints.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    probes: std_mpsc::Receiver<ProcessStats>,
}

impl ServerProcess {
    fn start(contender: Contender, bin_dir: &Path) -> Result<Self, String> {
        let mut child = contender
            .command(bin_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {} from {}: {e}", contender.name(), bin_dir.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let (addr_tx, addr_rx) = std_mpsc::channel();
        let (probe_tx, probes) = std_mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = addr_tx.send(addr.trim().to_owned());
                } else if let Some(stats) = ProcessStats::parse_line(&line) {
                    let _ = probe_tx.send(stats);
                }
            }
        });
        let mut process = ServerProcess { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)), probes };
        match addr_rx.recv_timeout(Duration::from_secs(10)).ok().and_then(|a| a.parse().ok()) {
            Some(addr) => process.addr = addr,
            None => {
                process.kill();
                return Err(format!("{} did not print its address", contender.name()));
            }
        }
        Ok(process)
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn signal(&self, signal: libc::c_int) {
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else { return };
        // SAFETY: `kill` takes plain integers; `pid` is our own child, not yet reaped (we hold its `Child`).
        unsafe { libc::kill(pid, signal) };
    }

    /// Asks for a `probe:` line and waits for it.
    fn probe(&self) -> Option<ProcessStats> {
        while self.probes.try_recv().is_ok() {}
        self.signal(libc::SIGUSR1);
        self.probes.recv_timeout(Duration::from_secs(5)).ok()
    }

    /// SIGTERM, then waits for the exit and its last `probe:` line.
    fn stop(mut self) -> Option<ProcessStats> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return self.probes.try_iter().last();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: a contender did not exit within 15 s of SIGTERM; killed");
        self.kill();
        None
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One measured run of one contender.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Sample {
    /// Delivered messages per second: S_ECHO replies (echo) or S_CHAT at every member (chat).
    msgs_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    /// Server CPU seconds (user + system) over the measured time.
    cpu_secs: f64,
    /// Server CPU microseconds per delivered message.
    cpu_us_per_msg: f64,
    /// Server peak RSS (VmHWM), MiB.
    peak_rss_mib: f64,
    /// Server heap allocation calls per delivered message over the measured time.
    allocs_per_msg: f64,
    /// Messages delivered in the measured time.
    delivered: f64,
    /// Bots that failed (timeouts, closes, kicks, ...).
    errors: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

impl Sample {
    fn median_of(samples: &[Sample]) -> Sample {
        let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        Sample {
            msgs_per_sec: m(|s| s.msgs_per_sec),
            p50_us: m(|s| s.p50_us),
            p99_us: m(|s| s.p99_us),
            cpu_secs: m(|s| s.cpu_secs),
            cpu_us_per_msg: m(|s| s.cpu_us_per_msg),
            peak_rss_mib: m(|s| s.peak_rss_mib),
            allocs_per_msg: m(|s| s.allocs_per_msg),
            delivered: m(|s| s.delivered),
            errors: samples.iter().map(|s| s.errors).fold(0.0, f64::max),
        }
    }
}

/// A scenario's load.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Load {
    scenario: Scenario,
    clients: usize,
    room_size: usize,
    in_flight: usize,
    payload: usize,
}

/// One line of the report: a contender in a scenario, medians over the runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    scenario: Scenario,
    contender: Contender,
    runs: usize,
    #[serde(flatten)]
    median: Sample,
    /// This contender's msgs/s divided by `server`'s.
    throughput_vs_server: f64,
    /// This contender's p99 divided by `server`'s.
    p99_vs_server: f64,
    samples: Vec<Sample>,
}

/// RSS of idle connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Idle {
    contender: Contender,
    connections: usize,
    connected: usize,
    rss_before_kib: u64,
    rss_after_kib: u64,
    /// (after - before) / connected, bytes.
    rss_per_connection_bytes: f64,
    /// Heap allocation calls the server made per connection during the setup (connect, login, enter room).
    allocs_per_connection: f64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Machine {
    nproc: usize,
    cpu_model: String,
    load_average_before: String,
    load_average_after: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Report {
    machine: Machine,
    quick: bool,
    runs: usize,
    warmup_secs: f64,
    duration_secs: f64,
    loads: Vec<Load>,
    results: Vec<Row>,
    idle: Vec<Idle>,
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.quick {
        args.runs = 1;
        args.duration = Duration::from_millis(400);
        args.warmup = Duration::from_millis(100);
        (args.echo_clients, args.echo_in_flight) = (4, 4);
        (args.chat_clients, args.chat_room_size, args.chat_in_flight) = (6, 3, 2);
        args.idle_connections = args.idle_connections.min(50);
    }
    if let Some(path) = &args.from_json {
        return replay(path, args.chart.as_deref());
    }
    let bin_dir = match args.bin_dir.clone().or_else(|| std::env::current_exe().ok()?.parent().map(Path::to_path_buf)) {
        Some(dir) => dir,
        None => {
            eprintln!("error: cannot tell where the contenders' binaries are; pass --bin-dir");
            return ExitCode::from(2);
        }
    };
    let contenders: Vec<Contender> = Contender::ALL
        .into_iter()
        .filter(|c| args.only.is_empty() || args.only.iter().any(|o| o == c.name()))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let load_before = load_average();
    let loads = [
        Load {
            scenario: Scenario::Echo,
            clients: args.echo_clients,
            room_size: args.echo_clients.max(1),
            in_flight: args.echo_in_flight,
            payload: args.echo_payload,
        },
        Load {
            scenario: Scenario::Chat,
            clients: args.chat_clients,
            room_size: args.chat_room_size,
            in_flight: args.chat_in_flight,
            payload: 0,
        },
    ];
    let mut samples: BTreeMap<(usize, Contender), Vec<Sample>> = BTreeMap::new();
    for run in 0..args.runs {
        for (index, load) in loads.iter().enumerate() {
            for &contender in contenders.iter().filter(|c| c.serves(load.scenario)) {
                if !args.json {
                    eprintln!("run {}/{}: {:?} against {}", run + 1, args.runs, load.scenario, contender.name());
                }
                match measure(&runtime, &args, &bin_dir, contender, load) {
                    Ok(sample) => samples.entry((index, contender)).or_default().push(sample),
                    Err(error) => {
                        eprintln!("error: {error}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
    }
    let results = rows(&loads, samples);
    let mut idle = Vec::new();
    if args.idle_connections > 0 {
        for contender in [Contender::Server, Contender::BaselineBatched].into_iter().filter(|c| contenders.contains(c))
        {
            if !args.json {
                eprintln!("idle: {} connections to {}", args.idle_connections, contender.name());
            }
            match runtime.block_on(measure_idle(&bin_dir, contender, args.idle_connections)) {
                Ok(figure) => idle.push(figure),
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let report = Report {
        machine: Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: cpu_model(),
            load_average_before: load_before,
            load_average_after: load_average(),
        },
        quick: args.quick,
        runs: args.runs,
        warmup_secs: args.warmup.as_secs_f64(),
        duration_secs: args.duration.as_secs_f64(),
        loads: loads.to_vec(),
        results,
        idle,
    };
    let chart = args.chart.clone().or_else(|| (!args.quick).then(|| PathBuf::from("docs/benchmarks.svg")));
    if let Some(path) = &chart
        && let Err(error) = chart::draw(path, &report.results)
    {
        eprintln!("error: cannot draw {}: {error}", path.display());
        return ExitCode::FAILURE;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("serialisable"));
    } else {
        print_table(&report);
        if let Some(path) = &chart {
            println!("chart: {}", path.display());
        }
    }
    ExitCode::SUCCESS
}

/// `--from-json`: the table and the chart of a saved report.
fn replay(path: &Path, chart: Option<&Path>) -> ExitCode {
    let report: Report = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(chart) = chart
        && let Err(error) = chart::draw(chart, &report.results)
    {
        eprintln!("error: cannot draw {}: {error}", chart.display());
        return ExitCode::FAILURE;
    }
    print_table(&report);
    ExitCode::SUCCESS
}

/// One run: start the contender, drive it, stop it.
fn measure(
    runtime: &tokio::runtime::Runtime,
    args: &Args,
    bin_dir: &Path,
    contender: Contender,
    load: &Load,
) -> Result<Sample, String> {
    let process = ServerProcess::start(contender, bin_dir)?;
    let pid = process.pid();
    let config = FleetConfig {
        bot: BotConfig {
            addrs: vec![process.addr],
            name_prefix: "bot".into(),
            scenario: load.scenario,
            room_size: load.room_size,
            rate: 0.0,
            in_flight: load.in_flight,
            payload: load.payload,
            timeout: Duration::from_secs(10),
            mirror: contender == Contender::RawEcho,
            relogin: false,
            handshake: false,
            auth: None,
            tls: None,
        },
        clients: load.clients,
        duration: args.duration,
        warmup: args.warmup,
        connect_parallel: 64,
    };
    let mut start = None;
    let mut end = None;
    let result = runtime.block_on(fleet::run_marked(
        &config,
        Arc::new(LiveCounters::default()),
        std::future::pending(),
        |mark| {
            // The CPU reading first: the probe line the server prints costs it a little CPU.
            let cpu = probe::cpu_secs(&pid).unwrap_or(0.0);
            let stats = process.probe();
            match mark {
                Mark::MeasureStart => start = Some((cpu, stats)),
                Mark::MeasureEnd => end = Some((cpu, stats)),
            }
        },
    ));
    let (_, peak_kib) = probe::memory_kib(&pid).unwrap_or((0, 0));
    let exit = process.stop();
    if exit.is_none() {
        eprintln!("warning: {} printed no probe line at exit", contender.name());
    }
    let c = &result.counters;
    let delivered = match load.scenario {
        Scenario::Chat | Scenario::Move => c.deliveries,
        Scenario::Echo => c.replies,
    } as f64;
    let secs = result.measured.as_secs_f64().max(1e-9);
    let (Some((cpu0, Some(s0))), Some((cpu1, Some(s1)))) = (start, end) else {
        return Err(format!("{}: no probe readings around the measured time", contender.name()));
    };
    let cpu_secs = cpu1 - cpu0;
    let per_msg = |x: f64| if delivered > 0.0 { x / delivered } else { 0.0 };
    Ok(Sample {
        msgs_per_sec: delivered / secs,
        p50_us: result.latency.value_at_quantile(0.5) as f64,
        p99_us: result.latency.value_at_quantile(0.99) as f64,
        cpu_secs,
        cpu_us_per_msg: per_msg(cpu_secs * 1e6),
        peak_rss_mib: peak_kib as f64 / 1024.0,
        allocs_per_msg: per_msg(s1.allocations.saturating_sub(s0.allocations) as f64),
        delivered,
        errors: c.errors.total() as f64,
    })
}

fn rows(loads: &[Load], samples: BTreeMap<(usize, Contender), Vec<Sample>>) -> Vec<Row> {
    let mut rows = Vec::new();
    for (index, load) in loads.iter().enumerate() {
        let server = samples.get(&(index, Contender::Server)).map(|s| Sample::median_of(s));
        for ((_, contender), runs) in samples.iter().filter(|((i, _), _)| *i == index) {
            let median = Sample::median_of(runs);
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
            let (throughput_vs_server, p99_vs_server) = match &server {
                Some(server) => (ratio(median.msgs_per_sec, server.msgs_per_sec), ratio(median.p99_us, server.p99_us)),
                None => (0.0, 0.0),
            };
            rows.push(Row {
                scenario: load.scenario,
                contender: *contender,
                runs: runs.len(),
                median,
                throughput_vs_server,
                p99_vs_server,
                samples: runs.clone(),
            });
        }
    }
    rows
}

/// Opens `connections` idle sessions (logged in, in rooms of 100) and reads the server's RSS before and after.
async fn measure_idle(bin_dir: &Path, contender: Contender, connections: usize) -> Result<Idle, String> {
    let process = ServerProcess::start(contender, bin_dir)?;
    let pid = process.pid();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_before_kib, _) = probe::memory_kib(&pid).map_err(|e| e.to_string())?;
    let allocs_before = process.probe().map_or(0, |s| s.allocations);
    let addr = process.addr;
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let permits = Arc::clone(&permits);
            tokio::spawn(async move {
                let _permit = permits.acquire().await.expect("never closed");
                idle_client(addr, i).await.ok()
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(connections);
    for task in tasks {
        if let Ok(Some(client)) = task.await {
            clients.push(client);
        }
    }
    // Let the server finish writing the spawns and settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_after_kib, _) = probe::memory_kib(&pid).map_err(|e| e.to_string())?;
    let allocs_after = process.probe().map_or(0, |s| s.allocations);
    let connected = clients.len();
    drop(clients);
    tokio::task::spawn_blocking(move || process.stop()).await.map_err(|e| e.to_string())?;
    let per = |x: f64| if connected > 0 { x / connected as f64 } else { 0.0 };
    Ok(Idle {
        contender,
        connections,
        connected,
        rss_before_kib,
        rss_after_kib,
        rss_per_connection_bytes: per(rss_after_kib.saturating_sub(rss_before_kib) as f64 * 1024.0),
        allocs_per_connection: per(allocs_after.saturating_sub(allocs_before) as f64),
    })
}

/// Connects, logs in, enters room `index / 100` and waits for the answer; the connection then stays idle.
async fn idle_client(addr: SocketAddr, index: usize) -> Result<Client<GameProtocol>, packet_runtime::ClientError> {
    let mut client = Client::<GameProtocol>::connect(addr).await?;
    client.queue(&proto::CLogin { name: format!("idle-{index}"), ..Default::default() })?;
    client.queue(&proto::CEnterRoom { room_id: (index / 100) as u32 })?;
    client.flush().await?;
    loop {
        if let ServerPacket::SEnterRoom(_) = client.recv().await? {
            return Ok(client);
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_default()
}

fn print_table(report: &Report) {
    let m = &report.machine;
    println!(
        "machine: {} CPUs ({}); load average {} before, {} after",
        m.nproc, m.cpu_model, m.load_average_before, m.load_average_after
    );
    println!(
        "{} run(s) per contender, medians; {:.1} s warmup + {:.1} s measured each",
        report.runs, report.warmup_secs, report.duration_secs
    );
    for load in &report.loads {
        println!(
            "{:?}: {} clients, rooms of {}, {} in flight{}",
            load.scenario,
            load.clients,
            load.room_size,
            load.in_flight,
            if load.scenario == Scenario::Echo { format!(", {} B payload", load.payload) } else { String::new() }
        );
    }
    println!();
    println!(
        "{:<6} {:<17} {:>11} {:>9} {:>8} {:>8} {:>7} {:>9} {:>9} {:>10} {:>6}",
        "scen.",
        "contender",
        "msgs/s",
        "vs server",
        "p50 µs",
        "p99 µs",
        "CPU s",
        "CPU µs/m",
        "peak MiB",
        "allocs/msg",
        "errors"
    );
    for row in &report.results {
        let s = &row.median;
        println!(
            "{:<6} {:<17} {:>11.0} {:>8.2}x {:>8.0} {:>8.0} {:>7.2} {:>9.2} {:>9.1} {:>10.3} {:>6}",
            format!("{:?}", row.scenario).to_lowercase(),
            row.contender.name(),
            s.msgs_per_sec,
            row.throughput_vs_server,
            s.p50_us,
            s.p99_us,
            s.cpu_secs,
            s.cpu_us_per_msg,
            s.peak_rss_mib,
            s.allocs_per_msg,
            s.errors
        );
    }
    println!();
    for row in report.results.iter().filter(|r| r.contender != Contender::Server && r.throughput_vs_server > 0.0) {
        println!(
            "server / {:<17} {:<5} throughput {:.2}x, p99 {:.2}x, CPU per message {:.2}x",
            row.contender.name(),
            format!("{:?}", row.scenario).to_lowercase(),
            1.0 / row.throughput_vs_server,
            if row.p99_vs_server > 0.0 { 1.0 / row.p99_vs_server } else { 0.0 },
            report
                .results
                .iter()
                .find(|r| r.scenario == row.scenario && r.contender == Contender::Server)
                .map_or(0.0, |server| server.median.cpu_us_per_msg / row.median.cpu_us_per_msg.max(1e-12)),
        );
    }
    for idle in &report.idle {
        println!(
            "idle   {:<17} {} of {} connections: RSS {} KiB -> {} KiB, {:.0} B per connection, {:.1} allocations each",
            idle.contender.name(),
            idle.connected,
            idle.connections,
            idle.rss_before_kib,
            idle.rss_after_kib,
            idle.rss_per_connection_bytes,
            idle.allocs_per_connection
        );
    }
}

mod chart {
    //! The SVG chart: one panel per scenario and measure (throughput, p99), one bar per contender.

    use std::path::Path;

    use plotters::prelude::*;

    use super::{Contender, Row};

    const COLORS: [RGBColor; 5] = [
        RGBColor(31, 119, 180),
        RGBColor(23, 190, 207),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
    ];

    type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

    pub(super) fn draw(path: &Path, rows: &[Row]) -> Result<(), Box<dyn std::error::Error>> {
        bench::fonts::register()?;
        let mut scenarios: Vec<_> = rows.iter().map(|r| r.scenario).collect();
        scenarios.dedup();
        let root = SVGBackend::new(path, (540 * scenarios.len().max(1) as u32, 760)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((2, scenarios.len().max(1)));
        for (i, scenario) in scenarios.iter().enumerate() {
            let of: Vec<&Row> = rows.iter().filter(|r| r.scenario == *scenario).collect();
            let name = format!("{scenario:?}").to_lowercase();
            panel(&panels[i], &of, &format!("{name}: delivered msgs/s (median, higher is better)"), |r| {
                r.median.msgs_per_sec
            })?;
            panel(
                &panels[scenarios.len() + i],
                &of,
                &format!("{name}: p99 latency, µs (median, lower is better)"),
                |r| r.median.p99_us,
            )?;
        }
        root.present()?;
        Ok(())
    }

    fn panel(
        area: &Area<'_>,
        rows: &[&Row],
        title: &str,
        value: fn(&Row) -> f64,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let names: Vec<&str> = rows.iter().map(|r| r.contender.name()).collect();
        let top = rows.iter().map(|r| value(r)).fold(0.0, f64::max).max(1.0) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(70)
            .build_cartesian_2d((0..rows.len()).into_segmented(), 0f64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(rows.len())
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => names.get(*i).map_or(String::new(), |n| (*n).to_owned()),
                _ => String::new(),
            })
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        for (i, row) in rows.iter().enumerate() {
            let color = COLORS[Contender::ALL.iter().position(|c| *c == row.contender).unwrap_or(0) % COLORS.len()];
            chart.draw_series(Histogram::vertical(&chart).style(color.filled()).margin(12).data([(i, value(row))]))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn flags_are_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
