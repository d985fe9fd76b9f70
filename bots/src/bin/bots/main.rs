//! `bots`: the load generator for the demo game server.
//!
//! ```text
//! cargo run --release -p bots -- --addr 127.0.0.1:7777 --clients 500 --room-size 50 \
//!     --scenario chat --duration 30s
//! ```
//!
//! `--help` documents every flag. The report goes to stdout (a table, or one JSON object with `--json`); the live
//! progress line goes to stderr when it is a terminal, and `--status-every 1s` prints a plain status line there
//! instead, for logs. Ctrl-C stops early and still reports; a second Ctrl-C exits at once. Exits with status 1 when
//! no client could connect, 2 on bad flags.
//!
//! With `--relogin` a bot that is kicked, disconnected or left without replies logs in again and goes on (see
//! `bots::bot`); the progress line, the status lines and the report count disconnects, kicks by reason and
//! re-logins, so a rolling restart can be watched from here:
//!
//! ```text
//! bots --addr 127.0.0.1:7777,127.0.0.1:7778 --clients 1000 --rate 10 --duration 10m --relogin --status-every 1s
//! status 41.0s: connected 988/1000 | sent 409102 | ... | disconnects 12 | relogins 0 | kicked 12 (game server lost 12)
//! ```
//!
//! # Layout
//! The bots themselves live in the library (`bots`: `bot`, `fleet`, `stats`), which the benchmark
//! harness (`bench`'s `loadtest`) reuses; only this file prints.
//! - `args`: the command line.
//! - `report`: the end-of-run report, as a table or JSON.

mod args;
mod report;
#[cfg(test)]
mod tests;

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Notify;

use args::Args;
use bots::bot::{BotConfig, BotTls};
use bots::fleet::{self, FleetConfig};
use bots::stats::LiveCounters;
use report::Report;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = args.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let mut addrs = Vec::new();
    for one in args.addr.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match resolve(one) {
            Ok(addr) => addrs.push(addr),
            Err(e) => {
                eprintln!("error: cannot resolve --addr {one}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if addrs.is_empty() {
        eprintln!("error: --addr names no address");
        return ExitCode::from(2);
    }
    let auth_key = match args.auth_secret_file.as_deref().map(demo_protocol::token::TokenKey::from_file).transpose() {
        Ok(key) => key,
        Err(why) => {
            eprintln!("error: --auth-secret-file: {why}");
            return ExitCode::from(2);
        }
    };
    let tls = match &args.tls_ca {
        Some(path) => match packet_runtime::transport::tls::roots_from_pem_file(path) {
            Ok(roots) => Some(BotTls {
                config: packet_runtime::transport::tls::client_config(roots),
                server_name: args.tls_server_name.clone(),
            }),
            Err(e) => {
                eprintln!("error: --tls-ca: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let config = FleetConfig {
        bot: BotConfig {
            addrs,
            name_prefix: args.name_prefix.clone(),
            scenario: args.scenario,
            room_size: args.room_size as usize,
            rate: args.rate,
            in_flight: args.in_flight as usize,
            payload: args.payload,
            timeout: args.timeout,
            mirror: false,
            relogin: args.relogin,
            handshake: args.handshake,
            auth: auth_key,
            tls,
        },
        clients: args.clients as usize,
        duration: args.duration,
        warmup: args.warmup,
        connect_parallel: args.connect_parallel as usize,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let show_progress = !args.json && std::io::stderr().is_terminal();
    let result = runtime.block_on(async {
        let live = Arc::new(LiveCounters::default());
        let progress = show_progress.then(|| spawn_progress(Arc::clone(&live), config.clients as u64, args.relogin));
        let status = (!args.status_every.is_zero())
            .then(|| tokio::spawn(print_status(Arc::clone(&live), config.clients as u64, args.status_every)));
        let stop = Arc::new(Notify::new());
        tokio::spawn(watch_ctrl_c(Arc::clone(&stop)));
        let result = fleet::run(&config, live, async move { stop.notified().await }).await;
        if let Some((bar, task)) = progress {
            task.abort();
            bar.finish_and_clear();
        }
        if let Some(task) = status {
            task.abort();
        }
        result
    });
    let report = Report::new(&config, &result);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    if report.connected == 0 {
        eprintln!("error: no client could connect to {}", args.addr);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn resolve(addr: &str) -> std::io::Result<SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or_else(|| std::io::Error::other("no address"))
}

/// First Ctrl-C: stop the run (the report follows). Second: exit at once, since tokio keeps the signal handler
/// installed and the default action would never come.
async fn watch_ctrl_c(stop: Arc<Notify>) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    eprintln!("stopping: draining the bots for the report (Ctrl-C again to exit now)");
    // `notify_one` stores a permit, so a stop requested before the fleet waits is not lost.
    stop.notify_one();
    if tokio::signal::ctrl_c().await.is_ok() {
        std::process::exit(130);
    }
}

/// `--status-every`: a status line on stderr every `period` until aborted.
async fn print_status(live: Arc<LiveCounters>, clients: u64, period: Duration) {
    let start = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval_at(start + period, period);
    loop {
        ticker.tick().await;
        eprintln!("{}", report::status_line(start.elapsed(), &live.snapshot(), &live.kicks(), clients));
    }
}

/// The live progress line on stderr: connected bots, send and receive rates, errors, and with `relogin` (or once
/// any session was lost) disconnects, re-logins and kicks. Updated twice a second.
fn spawn_progress(live: Arc<LiveCounters>, clients: u64, relogin: bool) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("valid template"));
    let task_bar = bar.clone();
    let task = tokio::spawn(async move {
        const PERIOD: Duration = Duration::from_millis(500);
        let mut ticker = tokio::time::interval(PERIOD);
        let mut last = live.snapshot();
        loop {
            ticker.tick().await;
            let now = live.snapshot();
            let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / PERIOD.as_secs_f64();
            let mut line = format!(
                "connected {}/{clients} | sent {:.0} msg/s | received {:.0} /s | errors {}",
                now.connected,
                rate(now.sent, last.sent),
                rate(now.received, last.received),
                now.errors
            );
            if relogin || now.disconnects > 0 {
                line = format!("{line} | {}", report::sessions(&now, &live.kicks()));
            }
            task_bar.set_message(line);
            task_bar.tick();
            last = now;
        }
    });
    (bar, task)
}
