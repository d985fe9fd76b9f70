//! The `server` binary's command line and its whole life: flags, logging, the packet table, start, signals, the
//! `listening on` line, and the summary after an ordered shutdown.
//!
//! ```text
//! cargo run --release -p server -- --help
//! cargo run --release -p server                       # 127.0.0.1:7777, defaults below
//! RUST_LOG=debug cargo run --release -p server -- --addr 0.0.0.0:7777 --rate-limit 0
//! ```
//!
//! Prints the packet table and the protocol fingerprint, then `listening on ADDR` (the bound address, so
//! `--addr 127.0.0.1:0` reports the port it got). Logs go to stderr (`RUST_LOG`, default `info`). On Ctrl-C or
//! SIGTERM it shuts down in order and prints a summary; a second signal exits at once with status 130.
//!
//! It lives in the library, not in `main.rs`, so that the benchmark's contender (`bench`'s `game_server`) runs
//! exactly this with a counting allocator and a statistics probe around it, while the `server` binary carries
//! neither.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use demo_protocol::GameProtocol;
use packet_runtime::{CloseKind, Protocol, ServerConfig, ShutdownReport};

use crate::ServerOptions;
use tracing_subscriber::EnvFilter;

/// The demo game server: login, rooms, movement, chat, ping and echo over the compact frame header.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on. Port 0 picks a free port (printed in the `listening on` line).
    #[arg(long, default_value_t = ServerOptions::DEFAULT_ADDR)]
    addr: SocketAddr,
    /// IO worker threads [default: the number of CPUs].
    #[arg(long)]
    workers: Option<usize>,
    /// Connections beyond this many are closed at once; 0 for no limit.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Largest frame accepted from a client, in bytes, header included (at most 65535 with the compact header).
    #[arg(long, default_value_t = ServerConfig::DEFAULT_MAX_FRAME)]
    max_frame: usize,
    /// Bytes that may be queued to one client before it is closed as a slow consumer.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_SEND_QUEUE_LIMIT)]
    send_queue_limit: usize,
    /// Close a client that sends nothing for this long (e.g. `60s`, `5m`); `0` never closes idle clients.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_IDLE_TIMEOUT.into(), value_parser = parse_duration)]
    idle_timeout: humantime::Duration,
    /// Period of the game's tick in milliseconds; 0 for no ticks.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_TICK.as_millis() as u64)]
    tick_ms: u64,
    /// Packets per second one client may send (bursts of twice that) before it is closed; 0 for no limit.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_RATE_LIMIT.per_second)]
    rate_limit: u32,
}

fn parse_duration(text: &str) -> Result<humantime::Duration, humantime::DurationError> {
    if text.trim() == "0" { Ok(Duration::ZERO.into()) } else { text.parse() }
}

impl Args {
    fn options(&self) -> ServerOptions {
        let defaults = ServerOptions::default();
        ServerOptions {
            addr: self.addr,
            workers: self.workers.unwrap_or(defaults.workers),
            max_connections: (self.max_connections > 0).then_some(self.max_connections),
            max_frame: self.max_frame,
            send_queue_limit: self.send_queue_limit,
            idle_timeout: (!self.idle_timeout.is_zero()).then_some(*self.idle_timeout),
            tick: (self.tick_ms > 0).then(|| Duration::from_millis(self.tick_ms)),
            rate_limit: (self.rate_limit > 0).then_some(self.rate_limit),
        }
    }
}

/// Runs the server the flags describe until a signal stops it; the exit status says how it ended. Exits the
/// process on bad flags (clap prints why).
pub fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();

    print_packet_table();
    let options = args.options();
    let handle = match options.start() {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", options.addr);
            return ExitCode::FAILURE;
        }
    };
    // Before announcing the address: a signal sent by whoever waits for that line must start the shutdown, not kill
    // the process with the default action.
    if let Err(error) = handle.watch_signals() {
        eprintln!("error: cannot install signal handlers: {error}");
        handle.shutdown();
        handle.join();
        return ExitCode::FAILURE;
    }
    let addr = handle.local_addr().expect("a TCP server has a local address");
    tracing::info!(
        workers = options.workers,
        max_connections = ?options.max_connections,
        max_frame = options.max_frame,
        send_queue_limit = options.send_queue_limit,
        idle_timeout = ?options.idle_timeout,
        tick = ?options.tick,
        rate_limit = ?options.rate_limit,
        "server started"
    );
    println!("listening on {addr}");

    let report = handle.join();
    print_summary(&report);
    if report.logic_thread_panicked {
        eprintln!("error: the logic thread died");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn print_packet_table() {
    println!("protocol {} (fingerprint {:016x})", GameProtocol::NAME, GameProtocol::FINGERPRINT);
    println!("  {:>5}  {:<14} direction", "id", "name");
    for packet in GameProtocol::PACKETS {
        println!("  {:>5}  {:<14} {}", packet.id, packet.name, packet.direction);
    }
}

fn print_summary(report: &ShutdownReport) {
    let m = &report.metrics;
    println!("shutdown complete");
    println!(
        "  sessions:        {} accepted, {} closed, {} rejected",
        m.connections_total, report.sessions_closed, m.connections_rejected
    );
    println!("  frames in/out:   {} / {}", m.frames_in, m.frames_out);
    println!("  bytes in/out:    {} / {}", m.bytes_in, m.bytes_out);
    println!("  frames dropped:  {}", report.frames_dropped);
    let closes: Vec<String> = CloseKind::ALL
        .iter()
        .map(|&kind| (kind, m.closed(kind)))
        .filter(|&(_, count)| count > 0)
        .map(|(kind, count)| format!("{kind:?}={count}"))
        .collect();
    println!("  closes:          {}", if closes.is_empty() { "none".to_owned() } else { closes.join(", ") });
    println!("  handler panics:  {}", report.handler_panics);
    println!("  pool outstanding: {}", report.pool_outstanding);
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Args;
    use crate::ServerOptions;

    /// The flags' defaults come from the runtime's (and `ServerOptions`'): no flag means the library defaults.
    #[test]
    fn no_flags_give_the_default_options() {
        assert_eq!(Args::parse_from(["server"]).options(), ServerOptions::default());
    }
}
