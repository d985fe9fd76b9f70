//! Server settings and their defaults. Every limit is on unless turned off explicitly.

use std::time::Duration;

use crate::frame::HeaderKind;

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
    /// Largest accepted frame, header included.
    pub max_frame: usize,
    /// Bytes a session may have queued before it is closed as a slow consumer.
    pub send_queue_limit: usize,
    /// A session that sends nothing for this long is closed. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Period of `Logic::on_tick`. `None`: no ticks.
    pub tick: Option<Duration>,
    /// Per-session packet rate limit. `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Frame header layout.
    pub header: HeaderKind,
    /// How long a closing session may take to flush its queue before its socket is closed anyway.
    pub close_flush_timeout: Duration,
    /// How long `shutdown` waits for sessions to close before the logic thread gives up on them.
    pub shutdown_timeout: Duration,
    /// First and last delay after an accept error caused by exhausted resources (EMFILE, ENFILE, ENOBUFS, ENOMEM);
    /// doubles in between.
    pub accept_backoff: (Duration, Duration),
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_connections: Some(10_000),
            max_frame: 16 * 1024,
            send_queue_limit: 1024 * 1024,
            idle_timeout: Some(Duration::from_secs(60)),
            tick: Some(Duration::from_millis(50)),
            rate_limit: Some(RateLimit { per_second: 1_000, burst: 2_000 }),
            header: HeaderKind::Compact,
            close_flush_timeout: Duration::from_secs(3),
            shutdown_timeout: Duration::from_secs(10),
            accept_backoff: (Duration::from_millis(10), Duration::from_secs(1)),
        }
    }
}
