//! What the bots measure: counters per bot, merged at the end, and one latency histogram fed by every bot.
//!
//! Never prints: the report module renders, the progress line reads [`LiveCounters`].
//!
//! A histogram per bot would cost tens of KiB each (3 significant figures up to a minute), so bots buffer samples
//! in a small [`LatencySink`] and add them in batches to one of a few shared histograms ([`Latency`]); the
//! shards are merged once, at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, from 1 µs to this; longer ones saturate.
const LATENCY_MAX_US: u64 = 60_000_000;
/// Samples a bot buffers before taking a shard's lock.
const SINK_BATCH: usize = 256;

/// Counters of one bot, or of all bots once merged. Only messages sent after the warmup count, and only replies
/// and deliveries of such messages.
///
/// Sessions balance: `connected + relogins - disconnects = connected_at_end`, bot by bot and so for the fleet.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Bots started.
    pub bots: u64,
    /// Bots that connected, logged in and entered their room.
    pub connected: u64,
    /// Bots connected (and in their room) when the run stopped.
    pub connected_at_end: u64,
    /// Sessions that ended before the run did: kicked, closed by the server, given up after the timeout without a
    /// reply, or ended by a packet the bot could not decode. Once per session; the cause is in `errors`.
    pub disconnects: u64,
    /// Sessions started again after a disconnect (`relogin`): connected, logged in and back in the room.
    pub relogins: u64,
    /// Attempts to log in again that failed (the cause is in `errors` too); each is retried after a backoff.
    pub relogin_failures: u64,
    /// Requests outstanding when their session ended early, never to be answered; counted while measuring.
    pub abandoned: u64,
    /// Scenario messages sent (C_ECHO, C_CHAT or C_MOVE).
    pub sent: u64,
    /// Replies to a bot's own requests: S_ECHO, its own S_CHAT, or the S_PONG after a C_MOVE.
    pub replies: u64,
    /// Broadcasts received: every S_CHAT (chat) or S_MOVE (move) at every receiver. 0 for echo.
    pub deliveries: u64,
    /// Deliveries a lossless server owes: each chat sent times the members of the sender's room. 0 unless chat.
    pub expected_deliveries: u64,
    /// Packets received outside the measurement (setup replies, spawns, warmup traffic, …).
    pub other_received: u64,
    /// Failures, by kind.
    pub errors: Errors,
}

impl Counters {
    /// Adds another bot's counters.
    pub fn merge(&mut self, other: &Counters) {
        self.bots += other.bots;
        self.connected += other.connected;
        self.connected_at_end += other.connected_at_end;
        self.disconnects += other.disconnects;
        self.relogins += other.relogins;
        self.relogin_failures += other.relogin_failures;
        self.abandoned += other.abandoned;
        self.sent += other.sent;
        self.replies += other.replies;
        self.deliveries += other.deliveries;
        self.expected_deliveries += other.expected_deliveries;
        self.other_received += other.other_received;
        self.errors.merge(&other.errors);
    }
}

/// Failures by kind, one count each time one happens. Without `relogin` a bot stops at its first failure, so each
/// bot contributes at most one; with it, every kick, close, timeout and failed attempt to log in again counts.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// The TCP connection could not be established.
    pub connect_failed: u64,
    /// The server refused the login or the room (`success = false`).
    pub rejected: u64,
    /// The server closed the connection (or it was reset) while the bot was running.
    pub closed_by_server: u64,
    /// The server sent S_KICK, by reason.
    pub kicked: BTreeMap<String, u64>,
    /// The server sent a frame or packet the bot could not decode, or a reply it could not interpret.
    pub decode: u64,
    /// A request (or the login) got no reply within the timeout.
    pub timeouts: u64,
}

impl Errors {
    /// Every failure counted.
    pub fn total(&self) -> u64 {
        self.connect_failed
            + self.rejected
            + self.closed_by_server
            + self.kicked.values().sum::<u64>()
            + self.decode
            + self.timeouts
    }

    /// Adds another bot's failures.
    pub fn merge(&mut self, other: &Errors) {
        self.connect_failed += other.connect_failed;
        self.rejected += other.rejected;
        self.closed_by_server += other.closed_by_server;
        for (reason, n) in &other.kicked {
            *self.kicked.entry(reason.clone()).or_default() += n;
        }
        self.decode += other.decode;
        self.timeouts += other.timeouts;
    }
}

/// Counters the progress line reads while the bots run. Approximate by design (relaxed atomics).
#[derive(Debug, Default)]
pub struct LiveCounters {
    connected: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    disconnects: AtomicU64,
    relogins: AtomicU64,
    /// S_KICKs by reason. A lock, not atomics: kicks are rare, and their reasons are not known in advance.
    kicks: Mutex<BTreeMap<String, u64>>,
}

/// A reading of [`LiveCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LiveSnapshot {
    /// Bots connected right now.
    pub connected: u64,
    /// Messages sent so far (warmup included).
    pub sent: u64,
    /// Packets received so far (all kinds).
    pub received: u64,
    /// Failures so far.
    pub errors: u64,
    /// Sessions that ended early so far (see [`Counters::disconnects`]).
    pub disconnects: u64,
    /// Sessions started again so far (see [`Counters::relogins`]).
    pub relogins: u64,
    /// S_KICKs received so far, all reasons.
    pub kicked: u64,
}

// Relaxed everywhere: the counters are statistics, read for display; no other memory is published through them.
impl LiveCounters {
    pub fn connected(&self) {
        self.connected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn disconnected(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    pub fn received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A session ended before the run did (it was counted [`disconnected`](Self::disconnected) too).
    pub fn lost(&self) {
        self.disconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// A bot logged in again and is back in its room.
    pub fn relogged_in(&self) {
        self.relogins.fetch_add(1, Ordering::Relaxed);
        self.connected();
    }

    /// A bot got S_KICK with this reason.
    pub fn kicked(&self, reason: &str) {
        let mut kicks = self.kicks.lock().unwrap_or_else(PoisonError::into_inner);
        match kicks.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                kicks.insert(reason.to_owned(), 1);
            }
        }
    }

    /// S_KICKs so far, by reason.
    pub fn kicks(&self) -> BTreeMap<String, u64> {
        self.kicks.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> LiveSnapshot {
        let kicked = self.kicks.lock().unwrap_or_else(PoisonError::into_inner).values().sum();
        LiveSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            disconnects: self.disconnects.load(Ordering::Relaxed),
            relogins: self.relogins.load(Ordering::Relaxed),
            kicked,
        }
    }
}

/// The latency histograms every bot feeds, sharded to keep lock contention negligible.
#[derive(Debug, Clone)]
pub struct Latency {
    shards: Arc<[Mutex<Histogram<u64>>]>,
}

impl Latency {
    /// `shards` histograms (at least one).
    pub fn new(shards: usize) -> Self {
        Latency { shards: (0..shards.max(1)).map(|_| Mutex::new(new_histogram())).collect() }
    }

    /// A buffer for one bot, feeding shard `bot % shards`.
    pub fn sink(&self, bot: usize) -> LatencySink {
        LatencySink { latency: self.clone(), shard: bot % self.shards.len(), buf: Vec::with_capacity(SINK_BATCH) }
    }

    /// Every sample recorded so far (flushed sinks only), in microseconds.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            all.add(&*shard).expect("shards share the bounds");
        }
        all
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds")
}

/// One bot's buffered latency samples. Flushes when full and when dropped.
#[derive(Debug)]
pub struct LatencySink {
    latency: Latency,
    shard: usize,
    buf: Vec<u64>,
}

impl LatencySink {
    /// Records one latency in nanoseconds (stored in microseconds, at least 1).
    pub fn record_ns(&mut self, ns: u64) {
        self.buf.push((ns / 1_000).max(1));
        if self.buf.len() == SINK_BATCH {
            self.flush();
        }
    }

    /// Adds the buffered samples to the shared histogram.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut shard = self.latency.shards[self.shard].lock().unwrap_or_else(PoisonError::into_inner);
        for &us in &self.buf {
            shard.saturating_record(us);
        }
        drop(shard);
        self.buf.clear();
    }
}

impl Drop for LatencySink {
    fn drop(&mut self) {
        // A short, uncontended lock: never blocks for long.
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_merge_into_one_histogram() {
        let latency = Latency::new(3);
        for bot in 0..5 {
            let mut sink = latency.sink(bot);
            for i in 0..300 {
                sink.record_ns((i + 1) * 1_000);
            }
        }
        let all = latency.merged();
        assert_eq!(all.len(), 1_500);
        assert_eq!(all.max(), 300);
        assert_eq!(latency.sink(0).buf.capacity(), SINK_BATCH);
    }

    #[test]
    fn sub_microsecond_latency_counts_as_one() {
        let latency = Latency::new(1);
        latency.sink(0).record_ns(10);
        assert_eq!(latency.merged().min(), 1);
    }

    #[test]
    fn counters_merge_adds_kick_reasons() {
        let mut a = Counters { sent: 1, ..Counters::default() };
        a.errors.kicked.insert("spam".into(), 1);
        let mut b = Counters { sent: 2, ..Counters::default() };
        b.errors.kicked.insert("spam".into(), 2);
        b.errors.timeouts = 1;
        a.merge(&b);
        assert_eq!(a.sent, 3);
        assert_eq!(a.errors.kicked["spam"], 3);
        assert_eq!(a.errors.total(), 4);
    }

    #[test]
    fn counters_merge_adds_sessions_lost_and_regained() {
        // A bot kicked twice and back both times, one kicked and lost at the end, one that never lost its session.
        let mut twice = Counters {
            bots: 1,
            connected: 1,
            connected_at_end: 1,
            disconnects: 2,
            relogins: 2,
            relogin_failures: 1,
            abandoned: 3,
            ..Counters::default()
        };
        twice.errors.kicked.insert("game server lost".into(), 2);
        twice.errors.connect_failed = 1;
        let mut lost = Counters { bots: 1, connected: 1, disconnects: 1, abandoned: 1, ..Counters::default() };
        lost.errors.kicked.insert("server shutting down".into(), 1);
        let steady = Counters { bots: 1, connected: 1, connected_at_end: 1, ..Counters::default() };
        let mut fleet = Counters::default();
        for bot in [&twice, &lost, &steady] {
            fleet.merge(bot);
        }
        assert_eq!(
            (fleet.bots, fleet.connected, fleet.connected_at_end, fleet.disconnects, fleet.relogins),
            (3, 3, 2, 3, 2)
        );
        assert_eq!((fleet.relogin_failures, fleet.abandoned), (1, 4));
        assert_eq!(fleet.connected + fleet.relogins - fleet.disconnects, fleet.connected_at_end, "sessions balance");
        let kicked = BTreeMap::from([("game server lost".to_owned(), 2), ("server shutting down".to_owned(), 1)]);
        assert_eq!(fleet.errors.kicked, kicked);
        assert_eq!(fleet.errors.total(), 4);
    }

    #[test]
    fn live_counters_follow_kicks_and_relogins() {
        let live = LiveCounters::default();
        live.connected();
        live.connected();
        live.disconnected();
        live.lost();
        live.kicked("game server lost");
        live.error();
        live.relogged_in();
        live.kicked("game server lost");
        live.kicked("server shutting down");
        let s = live.snapshot();
        assert_eq!((s.connected, s.disconnects, s.relogins, s.kicked, s.errors), (2, 1, 1, 3, 1));
        let kicks = BTreeMap::from([("game server lost".to_owned(), 2), ("server shutting down".to_owned(), 1)]);
        assert_eq!(live.kicks(), kicks);
    }
}
