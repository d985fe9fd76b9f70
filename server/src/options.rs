//! The server's settings and the one place a game server is assembled from them.
//!
//! The binary ([`cli`](crate::cli)) fills [`ServerOptions`] from its flags; the tests, the bots' tests and the soak
//! use the same [`ServerOptions::start`], so what they exercise is what the binary runs.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use packet_runtime::{RateLimit, Server, ServerBuilder, ServerHandle};

use demo_protocol::GameProtocol;

use crate::{Game, GameIo};

/// Settings of a game server. `Default` gives the binary's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 7777)),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_connections: Some(10_000),
            max_frame: 16 * 1024,
            send_queue_limit: 1024 * 1024,
            idle_timeout: Some(Duration::from_secs(60)),
            tick: Some(Duration::from_millis(50)),
            rate_limit: Some(1_000),
        }
    }
}

impl ServerOptions {
    /// The defaults with another address.
    pub fn with_addr(addr: SocketAddr) -> Self {
        ServerOptions { addr, ..ServerOptions::default() }
    }

    /// A server builder with these settings and the game's IO hook ([`GameIo`]).
    pub fn builder(&self) -> ServerBuilder<GameProtocol> {
        Server::<GameProtocol>::builder()
            .bind(self.addr)
            .workers(self.workers)
            .max_connections(self.max_connections)
            .max_frame(self.max_frame)
            .send_queue_limit(self.send_queue_limit)
            .idle_timeout(self.idle_timeout)
            .tick(self.tick)
            .rate_limit(self.rate_limit.map(|per_second| RateLimit { per_second, burst: per_second.saturating_mul(2) }))
            .io_handler(GameIo)
    }

    /// Binds and starts a server running a fresh [`Game`].
    pub fn start(&self) -> io::Result<ServerHandle<GameProtocol>> {
        self.builder().start(Game::new())
    }
}
