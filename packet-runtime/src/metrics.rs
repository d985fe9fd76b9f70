//! Server counters. Written with relaxed atomics (they are statistics, not synchronisation); the session driver
//! adds its per-poll totals once per poll instead of once per frame to keep cache lines quiet. With
//! `ServerBuilder::export_metrics`, the same events are also recorded through the `metrics` facade
//! ([`crate::export`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::close::CloseKind;
use crate::export::Exported;
use crate::pool::PoolStats;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_rejected: AtomicU64,
    pub(crate) connections_unadmitted: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    pub(crate) tls_handshake_failures: AtomicU64,
    /// Connections in a TLS or WebSocket handshake (`transport::Admission`).
    pub(crate) handshakes_pending: AtomicU64,
    pub(crate) frames_in: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) write_calls: AtomicU64,
    pub(crate) frames_dropped: AtomicU64,
    pub(crate) queue_overflows: AtomicU64,
    pub(crate) closes: [AtomicU64; CloseKind::ALL.len()],
    /// Events in the logic thread's bounded inbox when it last took a batch, and the most ever seen.
    pub(crate) inbox_depth: AtomicU64,
    pub(crate) inbox_peak: AtomicU64,
    /// Times a session stopped being read because the inbox was full.
    pub(crate) inbox_stalls: AtomicU64,
    /// The `metrics` facade handles, when the server exports (`ServerBuilder::export_metrics`).
    pub(crate) export: Option<Exported>,
}

impl Metrics {
    pub(crate) fn new(export: Option<Exported>) -> Self {
        Metrics { export, ..Metrics::default() }
    }

    /// A connection became a session (a local one, or a remote one bound to this shard).
    pub(crate) fn opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
        if let Some(export) = &self.export {
            export.sessions.increment(1.0);
            export.connections.increment(1);
        }
    }

    /// A session [`opened`](Self::opened) ended for `kind`, `dropped` of its queued frames unwritten.
    pub(crate) fn ended(&self, kind: CloseKind, dropped: u64) {
        self.dropped(dropped);
        self.connections_open.fetch_sub(1, Relaxed);
        self.closed(kind);
        if let Some(export) = &self.export {
            export.sessions.decrement(1.0);
        }
    }

    /// `count` queued frames discarded because their session closed first.
    pub(crate) fn dropped(&self, count: u64) {
        self.frames_dropped.fetch_add(count, Relaxed);
        if let Some(export) = &self.export {
            export.frames_dropped.increment(count);
        }
    }

    /// A connection refused at `max_connections` or `max_connections_per_address`.
    pub(crate) fn rejected(&self) {
        self.connections_rejected.fetch_add(1, Relaxed);
        if let Some(export) = &self.export {
            export.rejected.increment(1);
        }
    }

    /// A TLS handshake failed or passed its deadline: the connection never became a session.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Relaxed);
        if let Some(export) = &self.export {
            export.tls_handshake_failures.increment(1);
        }
    }

    pub(crate) fn queue_overflow(&self) {
        self.queue_overflows.fetch_add(1, Relaxed);
        if let Some(export) = &self.export {
            export.overflows.increment(1);
        }
    }

    pub(crate) fn closed(&self, kind: CloseKind) {
        self.closes[kind as usize].fetch_add(1, Relaxed);
        if let Some(export) = &self.export {
            export.closed(kind);
        }
    }

    pub(crate) fn snapshot(&self, pool: PoolStats) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Relaxed);
        MetricsSnapshot {
            connections_open: get(&self.connections_open),
            connections_total: get(&self.connections_total),
            connections_rejected: get(&self.connections_rejected),
            connections_unadmitted: get(&self.connections_unadmitted),
            auth_pending: 0,
            accept_errors: get(&self.accept_errors),
            tls_handshake_failures: get(&self.tls_handshake_failures),
            handshakes_pending: get(&self.handshakes_pending),
            frames_in: get(&self.frames_in),
            frames_out: get(&self.frames_out),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            write_calls: get(&self.write_calls),
            frames_dropped: get(&self.frames_dropped),
            queue_overflows: get(&self.queue_overflows),
            closes: CloseKind::ALL.iter().map(|&kind| (kind, get(&self.closes[kind as usize]))).collect(),
            inbox_depth: get(&self.inbox_depth),
            inbox_peak: get(&self.inbox_peak),
            inbox_stalls: get(&self.inbox_stalls),
            pool,
        }
    }
}

/// A point-in-time copy of a server's counters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Sessions whose socket is open now.
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Connections closed at once because `max_connections` was reached.
    pub connections_rejected: u64,
    /// Accepted connections that closed before the game heard of them: a required handshake refused or never
    /// sent ([`crate::handshake`]). `Logic::on_connect` and `on_disconnect` ran for the other
    /// `connections_total - connections_unadmitted`.
    pub connections_unadmitted: u64,
    /// Connections waiting to authenticate now (at most `AuthLimits::max_pending`).
    pub auth_pending: u64,
    /// Failed `accept` calls (each followed by a backoff when resources are exhausted).
    pub accept_errors: u64,
    /// TLS handshakes that failed or passed their deadline (the `tls` feature); none became a session.
    pub tls_handshake_failures: u64,
    /// Connections in a TLS or WebSocket handshake now: they count toward `max_connections` with the sessions.
    pub handshakes_pending: u64,
    /// Frames received and accepted.
    pub frames_in: u64,
    /// Frames written.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// `write_vectored` calls the session drivers made (including those the socket refused as full), so
    /// `frames_out / write_calls` is how many frames one write carried on average.
    pub write_calls: u64,
    /// Queued frames discarded because their session closed first.
    pub frames_dropped: u64,
    /// Sends refused because a session's queue was over its limit (each closes that session).
    pub queue_overflows: u64,
    /// Sessions closed, by reason: one entry per kind, in the order of [`CloseKind::ALL`]. A `Vec`, so that a new
    /// kind does not change the field's type.
    pub closes: Vec<(CloseKind, u64)>,
    /// Events (connections, packets) waiting in the logic thread's bounded inbox, or with room reserved there, when
    /// it last took a batch (at most `inbox_capacity`).
    pub inbox_depth: u64,
    /// The most events ever seen waiting in the bounded inbox.
    pub inbox_peak: u64,
    /// Times a session stopped being read because the inbox was full (backpressure).
    pub inbox_stalls: u64,
    /// The server's message pool.
    pub pool: PoolStats,
}

impl MetricsSnapshot {
    /// Sessions closed for `kind`.
    pub fn closed(&self, kind: CloseKind) -> u64 {
        // `closes` is built from `CloseKind::ALL`, which lists the kinds in declaration order.
        self.closes[kind as usize].1
    }
}
