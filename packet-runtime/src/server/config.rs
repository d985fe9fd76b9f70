//! Server settings and their defaults. Every limit is on unless turned off explicitly.

use std::time::Duration;

use crate::frame::HeaderKind;
use crate::handshake::HandshakeConfig;
use crate::server::AuthLimits;

/// A per-session packet rate limit: a token bucket refilled at `per_second`, holding at most `burst` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained packets per second.
    pub per_second: u32,
    /// Packets that may arrive at once after a quiet period.
    pub burst: u32,
}

/// Everything a [`ServerBuilder`](super::ServerBuilder) configures. See the builder methods for the meaning and
/// the defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// IO worker threads.
    pub workers: usize,
    /// Connections beyond this are closed at once and counted as rejected. `None`: unlimited.
    pub max_connections: Option<usize>,
    /// Connections from one IP address beyond this are refused like those beyond `max_connections` (with the
    /// close notice for `AddressFull`). `None`: no per-address limit (players behind one NAT share an address).
    pub max_connections_per_address: Option<usize>,
    /// Largest accepted frame, header included.
    pub max_frame: usize,
    /// Bytes a session may have queued and not drained for longer than `send_queue_grace` before it is cut off as
    /// a slow consumer. A burst may take the queue up to [`SEND_QUEUE_BURST_FACTOR`](Self::SEND_QUEUE_BURST_FACTOR)
    /// times this; a send past that cuts the session off at once.
    pub send_queue_limit: usize,
    /// How long a session's queue may stay over `send_queue_limit`: a recipient that has not drained back under it
    /// by then does not read fast enough.
    pub send_queue_grace: Duration,
    /// A session that sends nothing for this long is closed. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Kernel send buffer of each accepted socket (`SO_SNDBUF`; Linux doubles the value for its bookkeeping). With
    /// `send_queue_limit` (times the burst factor), the memory one session can pin. `None`: the kernel's default (autotuned up to
    /// `net.ipv4.tcp_wmem`'s maximum, 4 MiB by default).
    pub send_buffer: Option<usize>,
    /// Events the IO threads may have waiting for the logic thread (connections and packets). A session whose next
    /// packet finds it full stops being read until there is room; the accept loop waits likewise. The inbox's slots
    /// are allocated once, when the server starts (so forwarding a packet never allocates).
    pub inbox_capacity: usize,
    /// Period of `Logic::on_tick`. `None`: no ticks.
    pub tick: Option<Duration>,
    /// Per-session packet rate limit. `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Per-session limit on bytes read: `per_second` bytes a second, bursts of `burst` bytes (raised to at least
    /// one read, 8 KiB). `None`: unlimited.
    pub byte_rate_limit: Option<RateLimit>,
    /// Frame header layout.
    pub header: HeaderKind,
    /// How long a closing session may take to flush its queue before its socket is closed anyway.
    pub close_flush_timeout: Duration,
    /// How long `shutdown` waits for sessions to close before the logic thread gives up on them.
    pub shutdown_timeout: Duration,
    /// First and last delay after an accept error caused by exhausted resources (EMFILE, ENFILE, ENOBUFS, ENOMEM);
    /// doubles in between.
    pub accept_backoff: (Duration, Duration),
    /// The version handshake: whether every session must open with a hello, and the version string the server
    /// answers with (see [`crate::handshake`]).
    pub handshake: HandshakeConfig,
    /// The limits of connections that have not authenticated yet, with an authentication hook
    /// ([`ServerBuilder::authenticate`](super::ServerBuilder::authenticate)).
    pub auth: AuthLimits,
}

/// The defaults, each written once: [`Default`] uses them, and so can applications that expose the settings (as
/// command-line defaults, say) without repeating the numbers.
impl ServerConfig {
    /// Default [`max_connections`](Self::max_connections) limit.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    /// Default [`max_frame`](Self::max_frame): 16 KiB.
    pub const DEFAULT_MAX_FRAME: usize = 16 * 1024;
    /// Default [`send_queue_limit`](Self::send_queue_limit): 1 MiB.
    pub const DEFAULT_SEND_QUEUE_LIMIT: usize = 1024 * 1024;
    /// Default [`send_queue_grace`](Self::send_queue_grace): 1 s.
    pub const DEFAULT_SEND_QUEUE_GRACE: Duration = Duration::from_secs(1);
    /// How far over `send_queue_limit` a burst may take a session's queue (while its recipient drains it): the
    /// hard bound, a send past which cuts the session off at once.
    pub const SEND_QUEUE_BURST_FACTOR: usize = 4;
    /// Default [`inbox_capacity`](Self::inbox_capacity): 8,192 events.
    pub const DEFAULT_INBOX_CAPACITY: usize = 8_192;
    /// Default [`send_buffer`](Self::send_buffer): 256 KiB.
    pub const DEFAULT_SEND_BUFFER: usize = 256 * 1024;
    /// Default [`idle_timeout`](Self::idle_timeout): 60 s.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default [`tick`](Self::tick) period: 50 ms.
    pub const DEFAULT_TICK: Duration = Duration::from_millis(50);
    /// Default [`rate_limit`](Self::rate_limit): 1,000 packets/s, bursts of 2,000.
    pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit { per_second: 1_000, burst: 2_000 };
    /// Default [`byte_rate_limit`](Self::byte_rate_limit): 4 MiB/s, bursts of 8 MiB: far above what a game client
    /// sends, far below what the packet limit alone allows (1,000 frames of 16 KiB a second).
    pub const DEFAULT_BYTE_RATE_LIMIT: RateLimit = RateLimit { per_second: 4 << 20, burst: 8 << 20 };
    /// Default [`close_flush_timeout`](Self::close_flush_timeout): 3 s.
    pub const DEFAULT_CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(3);
    /// Default [`shutdown_timeout`](Self::shutdown_timeout): 10 s.
    pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`accept_backoff`](Self::accept_backoff): 10 ms doubling up to 1 s.
    pub const DEFAULT_ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

    /// Default [`workers`](Self::workers): the number of CPUs (2 if it cannot be read). A function, not a constant:
    /// it depends on the machine.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            workers: ServerConfig::default_workers(),
            max_connections: Some(ServerConfig::DEFAULT_MAX_CONNECTIONS),
            max_connections_per_address: None,
            max_frame: ServerConfig::DEFAULT_MAX_FRAME,
            send_queue_limit: ServerConfig::DEFAULT_SEND_QUEUE_LIMIT,
            send_queue_grace: ServerConfig::DEFAULT_SEND_QUEUE_GRACE,
            send_buffer: Some(ServerConfig::DEFAULT_SEND_BUFFER),
            idle_timeout: Some(ServerConfig::DEFAULT_IDLE_TIMEOUT),
            inbox_capacity: ServerConfig::DEFAULT_INBOX_CAPACITY,
            tick: Some(ServerConfig::DEFAULT_TICK),
            rate_limit: Some(ServerConfig::DEFAULT_RATE_LIMIT),
            byte_rate_limit: Some(ServerConfig::DEFAULT_BYTE_RATE_LIMIT),
            header: HeaderKind::Compact,
            close_flush_timeout: ServerConfig::DEFAULT_CLOSE_FLUSH_TIMEOUT,
            shutdown_timeout: ServerConfig::DEFAULT_SHUTDOWN_TIMEOUT,
            accept_backoff: ServerConfig::DEFAULT_ACCEPT_BACKOFF,
            handshake: HandshakeConfig::default(),
            auth: AuthLimits::default(),
        }
    }
}
