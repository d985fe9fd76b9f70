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
//! `--addr 127.0.0.1:0` reports the port it got). With `--metrics-addr ADDR` it first prints `metrics listening on
//! ADDR` and serves `/metrics`, `/healthz` and `/readyz` there ([`crate::metrics`]). With `--web ADDR` it prints
//! `web listening on ADDR` right after `listening on` ([`crate::web`]). Logs go to stderr (`RUST_LOG`, default
//! `info`). On Ctrl-C or SIGTERM it shuts down in order and prints a summary; a second signal exits at once with
//! status 130. In a cluster (`--nats`) a node declared dead by the others exits 3.
//!
//! It lives in the library, not in `main.rs`, so that the benchmark's contender (`bench`'s `game_server`) runs
//! exactly this with a counting allocator and a statistics probe around it, while the `server` binary carries
//! neither.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use demo_protocol::GameProtocol;
use packet_runtime::transport::tls::TlsConfig;
use packet_runtime::{CloseKind, MetricsExport, Protocol, ServerConfig, ShutdownReport};

use crate::metrics::{MetricsEndpoint, default_node_name};
use crate::{GameIo, ServerOptions};
use demo_protocol::proto::SKick;
use demo_protocol::token::TokenKey;
use packet_cluster::{Cluster, ClusterConfig};
use packet_runtime::Session;
use tracing_subscriber::EnvFilter;

/// The demo game server: login, rooms, movement, chat, ping and echo over the compact frame header.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on [default: 127.0.0.1:7777]. Port 0 picks a free port (printed in the `listening on`
    /// line). Not with `--role shard`, which opens no listener.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Also serve browsers on this address: the browser demo at `/` over plain HTTP, the game's WebSocket endpoint
    /// at `/ws` (prints `web listening on ADDR`; port 0 picks a free port).
    #[arg(long)]
    web: Option<SocketAddr>,
    /// With `--web`: the only `Origin`s allowed to open a WebSocket (comma-separated, e.g.
    /// `https://game.example`); default any.
    #[arg(long, value_delimiter = ',', requires = "web")]
    web_origin: Vec<String>,
    /// Join a cluster over these NATS servers (comma-separated, for failover) instead of running embedded.
    #[arg(long, value_delimiter = ',')]
    nats: Vec<String>,
    /// What this process does in the cluster: hold client connections, run the game, or both.
    #[arg(long, value_enum, requires = "nats")]
    role: Option<Role>,
    /// The cluster's name: several clusters can share one NATS server.
    #[arg(long, default_value = "demo", requires = "nats")]
    cluster: String,
    /// A cluster node not heard from for this long is considered dead (e.g. `3s`).
    #[arg(long, default_value = "3s", value_parser = parse_duration, requires = "nats")]
    failure_timeout: humantime::Duration,
    /// Without its NATS connection for this long, a node gives up its sessions (a gateway tells its clients
    /// "lost connection to the game servers"); shorter outages are waited out (e.g. `12s`).
    #[arg(long, default_value = "12s", value_parser = parse_duration, requires = "nats")]
    outage_limit: humantime::Duration,
    /// NATS credentials and TLS (`--nats-creds`, `--nats-user`, `--nats-tls-ca`, ...): [`crate::nats_auth`].
    #[command(flatten)]
    nats_auth: crate::nats_auth::NatsAuthArgs,
    /// IO worker threads, at least 1 [default: the number of CPUs].
    #[arg(long)]
    workers: Option<usize>,
    /// Connections beyond this many are closed at once; 0 for no limit.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Largest frame accepted from a client, in bytes, header included: 4 to 65535 (the compact header's u16 size).
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
    /// Serve Prometheus metrics (`/metrics`), `/healthz` and `/readyz` over HTTP on this address (port 0 picks a
    /// free port, printed in the `metrics listening on` line). Off without it.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Require the version handshake: every client's first frame must be a hello with the protocol's fingerprint
    /// (docs/PROTOCOL.md); others are refused with `S_KICK` naming both fingerprints. Off by default (a hello is
    /// answered, not required).
    #[arg(long)]
    handshake: bool,
    /// Check login tokens: the secret (at least 16 bytes; one trailing newline is ignored) is read from this file,
    /// never from the command line. Every client's first packet (after the hello, with `--handshake`) must then be
    /// a `C_LOGIN` carrying a token signed for its name that has not expired (`bots --auth-secret-file` mints them);
    /// others are kicked with the reason before the game hears of them, and so are clients that do not log in
    /// within 5 s.
    #[arg(long)]
    auth_secret_file: Option<std::path::PathBuf>,
    /// With `--web` and `--auth-secret-file`: serve `GET /dev-token?name=NAME` on the web listener, a token for
    /// anyone who asks, so that the browser demo can log in. Development only.
    #[arg(long, requires_all = ["web", "auth_secret_file"])]
    dev_tokens: bool,
    /// This node's name in a cluster: the `node` label of every metric [default: host:pid].
    #[arg(long, requires = "nats")]
    node: Option<String>,
    /// Serve TLS instead of clear text on every listener (the TCP address; https and wss with `--web`; a gateway's
    /// listeners) with this certificate chain: PEM, the server's certificate first. SIGHUP reloads it and the key
    /// without a restart.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// `--role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    /// Accept clients and forward their packets to shards.
    Gateway,
    /// Run the game for clients of the cluster's gateways; no listener.
    Shard,
    /// Both in one process.
    Both,
}

fn parse_duration(text: &str) -> Result<humantime::Duration, humantime::DurationError> {
    if text.trim() == "0" { Ok(Duration::ZERO.into()) } else { text.parse() }
}

impl Args {
    fn options(&self) -> ServerOptions {
        let defaults = ServerOptions::default();
        ServerOptions {
            addr: self.addr.unwrap_or(defaults.addr),
            workers: self.workers.unwrap_or(defaults.workers),
            max_connections: (self.max_connections > 0).then_some(self.max_connections),
            max_frame: self.max_frame,
            send_queue_limit: self.send_queue_limit,
            idle_timeout: (!self.idle_timeout.is_zero()).then_some(*self.idle_timeout),
            tick: (self.tick_ms > 0).then(|| Duration::from_millis(self.tick_ms)),
            rate_limit: (self.rate_limit > 0).then_some(self.rate_limit),
            export: self.metrics_addr.map(|_| MetricsExport::new().version(env!("CARGO_PKG_VERSION"))),
            handshake: self.handshake,
            // Read in `main`, where a file that cannot be used exits with status 2.
            auth: None,
            tls: None,
        }
    }
}

/// `options` for one part of a clustered node: its metrics carry `role` (a `--role both` process runs a gateway and
/// a shard, whose series would otherwise be one).
fn with_role(options: &ServerOptions, role: &str) -> ServerOptions {
    ServerOptions { export: options.export.clone().map(|export| export.label("role", role)), ..options.clone() }
}

/// Runs the server the flags describe until a signal stops it; the exit status says how it ended. Exits the
/// process with status 2 on bad flags, and on values the runtime would not run as given (`--workers 0`,
/// `--max-frame` over 65535, ...), saying why: what the `server started` line reports is what runs.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let mut options = args.options();
    if let Err(why) = options.check() {
        Args::command().error(clap::error::ErrorKind::ValueValidation, why).exit();
    }
    if let Some(path) = &args.auth_secret_file {
        match TokenKey::from_file(path) {
            Ok(key) => options.auth = Some(key),
            Err(why) => Args::command().error(clap::error::ErrorKind::ValueValidation, why).exit(),
        }
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        match TlsConfig::from_pem_files(cert, key) {
            Ok(tls) => options.tls = Some(tls),
            Err(error) => Args::command().error(clap::error::ErrorKind::ValueValidation, error).exit(),
        }
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();

    print_packet_table();
    // Before any server starts: the runtime resolves its metric handles with the recorder installed here.
    let endpoint = match args.metrics_addr {
        Some(addr) => {
            let node = (!args.nats.is_empty()).then(|| args.node.clone().unwrap_or_else(default_node_name));
            match MetricsEndpoint::start(addr, node.as_deref()) {
                Ok(endpoint) => {
                    tracing::info!(addr = %endpoint.local_addr(), node, "metrics endpoint started");
                    println!("metrics listening on {}", endpoint.local_addr());
                    Some(endpoint)
                }
                Err(error) => {
                    eprintln!("error: cannot serve metrics on {addr}: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    if !args.nats.is_empty() {
        return run_clustered(&args, &options, endpoint.as_ref());
    }
    let web = match args.web.map(std::net::TcpListener::bind).transpose() {
        Ok(web) => web,
        Err(error) => {
            eprintln!("error: cannot listen on {} (--web): {error}", args.web.expect("bound only with --web"));
            return ExitCode::FAILURE;
        }
    };
    let web_addr = web.as_ref().and_then(|web| web.local_addr().ok());
    let started = match web {
        Some(web) => options.builder().start_with_websocket(
            options.game(),
            web,
            crate::web::config(&args.web_origin, options.auth.clone().filter(|_| args.dev_tokens)),
        ),
        None => options.start(),
    };
    let handle = match started {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", options.addr);
            return ExitCode::FAILURE;
        }
    };
    // Before announcing the address: a signal sent by whoever waits for that line must start the shutdown, not kill
    // the process with the default action.
    if let Err(error) = handle.watch_signals().and_then(|()| crate::tls::reload_on_sighup(&options)) {
        eprintln!("error: cannot install signal handlers: {error}");
        handle.shutdown();
        handle.join();
        return ExitCode::FAILURE;
    }
    let addr = handle.local_addr().expect("a TCP server has a local address");
    // `check` refused every value the runtime would change, so these are the values in effect.
    tracing::info!(
        %addr,
        workers = options.workers,
        max_connections = ?options.max_connections,
        max_frame = options.max_frame,
        send_queue_limit = options.send_queue_limit,
        idle_timeout = ?options.idle_timeout,
        tick = ?options.tick,
        rate_limit = ?options.rate_limit,
        handshake = if options.handshake { "required" } else { "optional" },
        auth = if options.auth.is_some() { "login tokens" } else { "none" },
        tls = options.tls.is_some(),
        "server started"
    );
    println!("listening on {addr}");
    if let Some(web) = web_addr {
        println!("web listening on {web}");
    }

    let report = handle.join();
    print_summary(&report);
    if report.logic_thread_panicked {
        eprintln!("error: the logic thread died");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `--nats`: a gateway, a shard or both, joined to the cluster. Exits 2 when the cluster runs another protocol.
fn run_clustered(args: &Args, options: &ServerOptions, endpoint: Option<&MetricsEndpoint>) -> ExitCode {
    let role = args.role.unwrap_or(Role::Both);
    if role == Role::Shard && args.web.is_some() {
        eprintln!("error: --web is for gateways: a shard (--role shard) opens no listener");
        return ExitCode::from(2);
    }
    if role == Role::Shard && args.tls_cert.is_some() {
        eprintln!("error: --tls-cert is for gateways: a shard (--role shard) opens no listener");
        return ExitCode::from(2);
    }
    if role == Role::Shard && args.addr.is_some() {
        eprintln!("error: --addr is for gateways: a shard (--role shard) opens no listener");
        return ExitCode::from(2);
    }
    let mut config = ClusterConfig::new(args.nats.iter().cloned(), args.cluster.clone());
    config.failure_timeout = *args.failure_timeout;
    config.outage_limit = *args.outage_limit;
    // Credentials: a file that cannot be used is a configuration error (2); a broker refusing them cannot join (1).
    if let Err(why) = args.nats_auth.apply(&mut config) {
        eprintln!("error: {why}");
        return ExitCode::from(2);
    }
    let cluster = match Cluster::<GameProtocol>::join(config) {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("error: {error}");
            let config_error = matches!(error, packet_cluster::ClusterError::Credentials { .. });
            return ExitCode::from(if error.is_mismatch() || config_error { 2 } else { 1 });
        }
    };
    tracing::info!(node = format_args!("{:016x}", cluster.node_id()), cluster = %args.cluster, ?role, "joined the cluster");
    if let Some(endpoint) = endpoint {
        // Work can reach this node only while some shard takes it; a shard that drains takes none.
        let view = cluster.view();
        endpoint.health().cluster_check(move || match (view.is_draining(), view.live_shards()) {
            (true, _) => Err("draining"),
            (false, 0) => Err("no shard live"),
            (false, _) => Ok(()),
        });
    }
    println!("node {:016x}", cluster.node_id());
    let shard = match role {
        Role::Shard | Role::Both => match cluster.start_shard(with_role(options, "shard").builder(), options.game()) {
            Ok(shard) => Some(shard),
            Err(error) => {
                eprintln!("error: cannot start the shard: {error}");
                return ExitCode::FAILURE;
            }
        },
        Role::Gateway => None,
    };
    if let Some(shard) = &shard {
        // On `both`, the gateway's handler drains the shard first (below).
        if role == Role::Shard
            && let Err(error) = shard.watch_signals()
        {
            eprintln!("error: cannot install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
        println!("shard ready");
    }
    let mut web_addr = None;
    let gateway = match role {
        Role::Gateway | Role::Both => {
            let notice = |session: &Session<GameProtocol>, reason: &str| {
                let _ = session.send(&SKick { reason: reason.to_owned() });
            };
            let web = match args.web.map(std::net::TcpListener::bind).transpose() {
                Ok(web) => web,
                Err(error) => {
                    eprintln!("error: cannot listen on {} (--web): {error}", args.web.expect("bound only with --web"));
                    return ExitCode::FAILURE;
                }
            };
            web_addr = web.as_ref().and_then(|web| web.local_addr().ok());
            let builder = with_role(options, "gateway").builder();
            let started = match web {
                Some(web) => cluster.start_gateway_with_web(
                    builder,
                    GameIo,
                    notice,
                    (web, crate::web::config(&args.web_origin, options.auth.clone().filter(|_| args.dev_tokens))),
                ),
                None => cluster.start_gateway(builder, GameIo, notice),
            };
            match started {
                Ok(gateway) => Some(gateway),
                Err(error) => {
                    eprintln!("error: cannot listen on {}: {error}", options.addr);
                    return ExitCode::FAILURE;
                }
            }
        }
        Role::Shard => None,
    };
    if let Some(gateway) = &gateway {
        let watched = match &shard {
            Some(shard) => gateway.watch_signals_after(shard),
            None => gateway.watch_signals(),
        };
        if let Err(error) = watched.and_then(|()| crate::tls::reload_on_sighup(options)) {
            eprintln!("error: cannot install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
        println!("listening on {}", gateway.local_addr().expect("a TCP gateway has a local address"));
        if let Some(web) = web_addr {
            println!("web listening on {web}");
        }
    }
    // One signal: the shard part drains (its players go to the other shards), then the gateway part shuts down.
    if let Some(shard) = shard {
        let report = shard.join();
        println!("shard:");
        print_summary(&report);
    }
    if let Some(gateway) = gateway {
        let report = gateway.join();
        println!("gateway:");
        print_summary(&report);
    }
    let stats = cluster.stats();
    println!(
        "cluster: {} envelopes published, {} publishes failed, {} congested, {} gaps (envelopes lost in NATS), \
         {} refused, {} slow-consumer events, {} from fenced nodes dropped, {} stale dropped, {} from unannounced \
         nodes dropped",
        stats.published,
        stats.publish_failed,
        stats.congested,
        stats.gaps,
        stats.refused,
        stats.slow_consumer,
        stats.fenced,
        stats.stale,
        stats.unannounced
    );
    let fenced = cluster.fenced();
    cluster.shutdown();
    if fenced {
        eprintln!(
            "error: this node was declared dead by the cluster (paused or cut off for longer than the failure \
             timeout) and ended its sessions; restart it to rejoin under a new node id"
        );
        return ExitCode::from(3);
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
        // Debug, not Eq: the TLS setting (`None` here) holds a certificate, which has no equality.
        assert_eq!(format!("{:?}", Args::parse_from(["server"]).options()), format!("{:?}", ServerOptions::default()));
    }
}
