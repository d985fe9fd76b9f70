//! The server's settings and the one place a game server is assembled from them.
//!
//! The binary ([`cli`](crate::cli)) fills [`ServerOptions`] from its flags; the tests, the bots' tests and the soak
//! use the same [`ServerOptions::start`], so what they exercise is what the binary runs.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use packet_runtime::transport::tls::TlsConfig;
use packet_runtime::{
    HeaderKind, MetricsExport, RateLimit, Server, ServerBuilder, ServerConfig, ServerHandle, Verdict,
};

use demo_protocol::GameProtocol;
use demo_protocol::proto::CLogin;
use demo_protocol::token::TokenKey;

use crate::game::{NoticeLimits, close_notice};
use crate::{Game, GameIo};

/// Settings of a game server. `Default` gives the binary's defaults.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Address to listen on. Default `127.0.0.1:7777`; port 0 picks a free port.
    pub addr: SocketAddr,
    /// IO worker threads. Default: the number of CPUs.
    pub workers: usize,
    /// Connections beyond this are closed at once. Default 10,000; `None`: no limit.
    pub max_connections: Option<usize>,
    /// Largest frame accepted from a client, header included. Default 16 KiB.
    pub max_frame: usize,
    /// Bytes queued to one client before it is closed as a slow consumer. Default 1 MiB.
    pub send_queue_limit: usize,
    /// Close clients silent for this long. Default 60 s; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Period of the logic thread's tick. Default 50 ms; `None`: no ticks.
    pub tick: Option<Duration>,
    /// Packets per second one client may send (bursts of twice that); beyond it the client is closed. Default
    /// 1,000; `None`: no limit.
    pub rate_limit: Option<u32>,
    /// Record the server's figures through the `metrics` facade (`--metrics-addr`), with these settings. Default
    /// `None`: off.
    pub export: Option<MetricsExport>,
    /// Every client must open with the version handshake (its protocol fingerprint, `packet_runtime::handshake`);
    /// a mismatched or missing one is refused with the close notice. Default `false`: a hello is answered, not
    /// required, so clients that never send one keep working.
    pub handshake: bool,
    /// Check login tokens (`--auth-secret-file`): every client's first packet (after the hello, with `handshake`)
    /// must be a `C_LOGIN` whose `token` this key signed for its name and that has not expired
    /// (`demo_protocol::token`); others are refused with `S_KICK` saying why, before the game hears of them.
    /// Default `None`: the name-only login of the tutorials and the bots.
    pub auth: Option<TokenKey>,
    /// TLS instead of clear text on every listener the server opens (`--tls-cert`, `--tls-key`). Default `None`.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerOptions {
    /// The runtime's defaults ([`ServerConfig`]'s constants), on [`DEFAULT_ADDR`](Self::DEFAULT_ADDR).
    fn default() -> Self {
        ServerOptions {
            addr: ServerOptions::DEFAULT_ADDR,
            workers: ServerConfig::default_workers(),
            max_connections: Some(ServerConfig::DEFAULT_MAX_CONNECTIONS),
            max_frame: ServerConfig::DEFAULT_MAX_FRAME,
            send_queue_limit: ServerConfig::DEFAULT_SEND_QUEUE_LIMIT,
            idle_timeout: Some(ServerConfig::DEFAULT_IDLE_TIMEOUT),
            tick: Some(ServerConfig::DEFAULT_TICK),
            rate_limit: Some(ServerConfig::DEFAULT_RATE_LIMIT.per_second),
            export: None,
            handshake: false,
            auth: None,
            tls: None,
        }
    }
}

impl ServerOptions {
    /// The version string of the server's hello (`packet_runtime::handshake`).
    pub const VERSION: &'static str = concat!("packet-demo-server ", env!("CARGO_PKG_VERSION"));

    /// The demo server's own default address: `127.0.0.1:7777` (the one setting the runtime has no default for).
    pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7777));

    /// The defaults with another address.
    pub fn with_addr(addr: SocketAddr) -> Self {
        ServerOptions { addr, ..ServerOptions::default() }
    }

    /// A server builder with these settings and the game's IO hook ([`GameIo`]).
    pub fn builder(&self) -> ServerBuilder<GameProtocol> {
        let builder = Server::<GameProtocol>::builder();
        let builder = match &self.export {
            Some(export) => builder.export_metrics(export.clone()),
            None => builder,
        };
        let builder = match &self.tls {
            Some(tls) => builder.tls(tls.clone()),
            None => builder,
        };
        let builder = builder
            .bind(self.addr)
            .workers(self.workers)
            .max_connections(self.max_connections)
            .max_frame(self.max_frame)
            .send_queue_limit(self.send_queue_limit)
            .idle_timeout(self.idle_timeout)
            .tick(self.tick)
            .rate_limit(self.rate_limit.map(|per_second| RateLimit { per_second, burst: per_second.saturating_mul(2) }))
            // No packet limit (`--rate-limit 0`, for load tests) means no byte limit either; otherwise the runtime's.
            .byte_rate_limit(self.rate_limit.and(Some(ServerConfig::DEFAULT_BYTE_RATE_LIMIT)))
            .require_handshake(self.handshake)
            .server_version(ServerOptions::VERSION)
            .io_handler(GameIo)
            .close_notice(close_notice(NoticeLimits {
                packets_per_second: self.rate_limit,
                bytes_per_second: self.rate_limit.and(Some(ServerConfig::DEFAULT_BYTE_RATE_LIMIT.per_second)),
                idle_timeout: self.idle_timeout,
            }));
        match self.auth.clone() {
            // A token check is a few microseconds of HMAC: decided at once, on the session's IO thread.
            Some(key) => builder.authenticate(move |_request, login: CLogin| {
                let verdict = match key.verify(&login.name, &login.token) {
                    Ok(()) => Verdict::Accept,
                    Err(why) => Verdict::Refuse(why),
                };
                std::future::ready(verdict)
            }),
            None => builder,
        }
    }

    /// A fresh [`Game`] sized for these settings (its room listings are paged under [`max_frame`](Self::max_frame)).
    pub fn game(&self) -> Game {
        Game::with_frame_limit(self.max_frame)
    }

    /// Binds and starts a server running a fresh [`Game`].
    pub fn start(&self) -> io::Result<ServerHandle<GameProtocol>> {
        self.builder().start(self.game())
    }

    /// Checks for settings the runtime would not run as given (it clamps them silently): `workers` 0 runs one IO
    /// thread, a `max_frame` outside 4..=65,535 is clamped to what the compact header can describe, and a
    /// `rate_limit` over `u32::MAX / 2` cannot have the burst of twice that. Returns why, in words for a user.
    pub fn check(&self) -> Result<(), String> {
        let header = HeaderKind::Compact;
        if self.workers == 0 {
            return Err("--workers must be at least 1 (the runtime would run 1 IO thread for 0)".to_owned());
        }
        let (min, max) = (header.header_len(), header.max_frame_len());
        if !(min..=max).contains(&self.max_frame) {
            return Err(format!(
                "--max-frame {} is outside {min}..={max}: a compact frame header (u16 size) describes frames of \
                 {min} to {max} bytes, and the runtime would enforce {} instead",
                self.max_frame,
                self.max_frame.clamp(min, max)
            ));
        }
        if let Some(rate) = self.rate_limit
            && rate > u32::MAX / 2
        {
            return Err(format!(
                "--rate-limit {rate} is over {}: the burst (twice the rate) would not fit a u32",
                u32::MAX / 2
            ));
        }
        Ok(())
    }
}
