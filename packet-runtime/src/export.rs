//! Exporting a server's figures through the [`metrics`] facade: [`MetricsExport`], the builder setting
//! (`ServerBuilder::export_metrics`), and the handles it resolves once at start.
//!
//! Off by default. Off, the hot paths pay one branch on an `Option` per frame and nothing else; on, every handle
//! (one per packet and direction, per close kind, ...) is resolved when the server starts, so recording is never a
//! lookup, a key or an allocation per frame. The busiest figures, frames per packet and bytes, are not recorded
//! through the recorder at all on the IO threads: the driver adds frames per packet in runs ([`PacketRun`]: a poll
//! that reads many frames of one packet adds them once) to the runtime's own counters, an array of atomics per
//! direction, and bytes to the counters it keeps anyway; a sampler task copies them into the recorder's counters
//! (`Counter::absolute`) every `sample_every`, with the pool gauges. Everything else (sessions, closes, handler and
//! batch times, the inbox) is recorded where it happens.
//!
//! The application installs the recorder (any `metrics` recorder: the demo uses `metrics-exporter-prometheus`)
//! *before* it starts the server: handles resolved without a recorder record nothing. What this module must never
//! do: record per frame with a lookup, or allocate on a hot path.
//!
//! | metric | kind | labels | where it is recorded |
//! |---|---|---|---|
//! | `packet_sessions` | gauge | | a session opened / ended (driver; a shard's remote sessions) |
//! | `packet_connections_total` | counter | | a connection became a session |
//! | `packet_connections_rejected_total` | counter | | `max_connections` or `max_connections_per_address` |
//! | `packet_tls_handshake_failures_total` | counter | | a TLS handshake failed or passed its deadline (`tls` feature) |
//! | `packet_frames_in_total` | counter | `packet` | every complete frame read (`unknown`: not a client-to-server id); sampled |
//! | `packet_frames_out_total` | counter | `packet` | every frame written whole (server-to-client packets); sampled |
//! | `packet_bytes_in_total`, `packet_bytes_out_total` | counter | | bytes read and written; sampled |
//! | `packet_handler_seconds` | histogram | `packet` | `Logic::on_packet`, on the logic thread |
//! | `packet_logic_batch_seconds` | histogram | | one batch of the logic thread (events, then the outbox flush) |
//! | `packet_logic_inbox_depth` | gauge | | the bounded inbox when the logic thread takes a batch |
//! | `packet_closes_total` | counter | `reason` | a session ended, by [`CloseKind::as_str`] |
//! | `packet_frames_dropped_total` | counter | | queued frames discarded because their session closed |
//! | `packet_send_queue_overflows_total` | counter | | a session cut off for not draining its queue |
//! | `packet_pool_blocks_outstanding`, `packet_pool_bytes_retained` | gauge | | sampled |
//! | `packet_build_info` | gauge (1) | `version`, `fingerprint` | at start |
//!
//! Every metric also carries the setting's own labels ([`MetricsExport::label`]). A `packet` label takes the names of
//! one direction only, so no series exists that cannot count: frames in are the client-to-server packets, and an
//! id that is not one of them is `unknown` (as [`DecodeError::UnknownId`](crate::DecodeError::UnknownId) calls a
//! server-to-client id sent by a client); frames out are the server-to-client packets.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, SharedString};

use crate::close::CloseKind;
use crate::{Direction, PacketInfo, Protocol};

/// The buckets of `packet_handler_seconds` and `packet_logic_batch_seconds`, in seconds: 1 us to 100 ms, about
/// three per decade. The exporter is configured with them (buckets are the exporter's business in the `metrics`
/// facade); the demo does it in its metrics module.
pub const HANDLER_BUCKETS: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
];

/// The label value for a frame whose id the protocol does not have.
pub const UNKNOWN_PACKET: &str = "unknown";

/// The names of every metric a server exports, in the order of the table in the module docs (a dashboard or an
/// alert can be checked against it).
pub const METRIC_NAMES: &[&str] = &[
    SESSIONS,
    CONNECTIONS,
    REJECTED,
    TLS_HANDSHAKE_FAILURES,
    FRAMES_IN,
    FRAMES_OUT,
    BYTES_IN,
    BYTES_OUT,
    HANDLER,
    BATCH,
    INBOX_DEPTH,
    CLOSES,
    FRAMES_DROPPED,
    OVERFLOWS,
    POOL_OUTSTANDING,
    POOL_RETAINED,
    BUILD_INFO,
];

const SESSIONS: &str = "packet_sessions";
const CONNECTIONS: &str = "packet_connections_total";
const REJECTED: &str = "packet_connections_rejected_total";
const TLS_HANDSHAKE_FAILURES: &str = "packet_tls_handshake_failures_total";
const FRAMES_IN: &str = "packet_frames_in_total";
const FRAMES_OUT: &str = "packet_frames_out_total";
const BYTES_IN: &str = "packet_bytes_in_total";
const BYTES_OUT: &str = "packet_bytes_out_total";
const HANDLER: &str = "packet_handler_seconds";
const BATCH: &str = "packet_logic_batch_seconds";
const INBOX_DEPTH: &str = "packet_logic_inbox_depth";
const CLOSES: &str = "packet_closes_total";
const FRAMES_DROPPED: &str = "packet_frames_dropped_total";
const OVERFLOWS: &str = "packet_send_queue_overflows_total";
const POOL_OUTSTANDING: &str = "packet_pool_blocks_outstanding";
const POOL_RETAINED: &str = "packet_pool_bytes_retained";
const BUILD_INFO: &str = "packet_build_info";

/// The `# HELP` text of each metric.
const DESCRIPTIONS: &[(&str, &str)] = &[
    (SESSIONS, "Client sessions this server holds (on a shard: the sessions bound to it)."),
    (CONNECTIONS, "Connections that became sessions."),
    (REJECTED, "Connections refused at max_connections or max_connections_per_address."),
    (TLS_HANDSHAKE_FAILURES, "TLS handshakes that failed or passed their deadline (no session was made)."),
    (FRAMES_IN, "Complete frames received, by packet name (unknown: not a client-to-server packet id)."),
    (FRAMES_OUT, "Frames written whole, by packet name."),
    (BYTES_IN, "Bytes received from clients."),
    (BYTES_OUT, "Bytes written to clients."),
    (HANDLER, "Time Logic::on_packet took on the logic thread, by packet name."),
    (BATCH, "Time the logic thread took for one batch of events, its outbox flush included."),
    (INBOX_DEPTH, "Events waiting in the logic thread's bounded inbox when it last took a batch."),
    (CLOSES, "Sessions closed, by reason (the close kind in snake_case)."),
    (FRAMES_DROPPED, "Queued frames discarded because their session closed first."),
    (OVERFLOWS, "Sessions cut off because their send queue stayed over its limit."),
    (POOL_OUTSTANDING, "Message pool blocks handed out and not yet returned."),
    (POOL_RETAINED, "Bytes the message pool keeps for reuse."),
    (BUILD_INFO, "Always 1: the build's version and protocol fingerprint as labels."),
];

/// The metrics setting of a server (`ServerBuilder::export_metrics`): extra labels, the version
/// `packet_build_info` reports, how often the pool gauges are sampled.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsExport {
    labels: Vec<(String, String)>,
    version: String,
    sample_every: Duration,
}

impl fmt::Debug for MetricsExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsExport")
            .field("labels", &self.labels)
            .field("version", &self.version)
            .field("sample_every", &self.sample_every)
            .finish()
    }
}

impl Default for MetricsExport {
    fn default() -> Self {
        MetricsExport::new()
    }
}

impl MetricsExport {
    /// Default [`sample_every`](Self::sample_every): 1 s.
    pub const DEFAULT_SAMPLE_EVERY: Duration = Duration::from_secs(1);

    /// No extra labels, this runtime's version, sampled figures copied every second.
    pub fn new() -> Self {
        MetricsExport {
            labels: Vec::new(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            sample_every: MetricsExport::DEFAULT_SAMPLE_EVERY,
        }
    }

    /// A label every metric of this server carries (a cluster node's `role`, say). A label the recorder adds to
    /// everything (the demo's `node`) belongs to the recorder instead.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// The `version` label of `packet_build_info`. Default: this runtime's version; an application passes its own.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// How often the sampled figures (frames per packet, bytes, the pool gauges) are copied into the recorder, on
    /// an IO thread (one snapshot of the pool each time). Default 1 s: a scrape may be that far behind for them.
    pub fn sample_every(mut self, period: Duration) -> Self {
        self.sample_every = period.max(Duration::from_millis(1));
        self
    }

    /// The sampling period of the pool gauges.
    pub fn sample_period(&self) -> Duration {
        self.sample_every
    }
}

/// Every handle a server records into, resolved once at start.
pub(crate) struct Exported {
    /// The client-to-server packet ids, sorted: `frames_in[i]` and `handler[i]` belong to `in_ids[i]`, their last
    /// entry to [`UNKNOWN_PACKET`].
    in_ids: Box<[u16]>,
    frames_in: Box<[Counter]>,
    handler: Box<[Histogram]>,
    /// The same for the server-to-client packets and `frames_out`.
    out_ids: Box<[u16]>,
    frames_out: Box<[Counter]>,
    /// What the drivers counted per packet, copied into `frames_in` and `frames_out` by [`sample`](Self::sample).
    counted_in: Box<[AtomicU64]>,
    counted_out: Box<[AtomicU64]>,
    pub(crate) sessions: Gauge,
    pub(crate) connections: Counter,
    pub(crate) rejected: Counter,
    pub(crate) tls_handshake_failures: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    pub(crate) batch: Histogram,
    pub(crate) inbox_depth: Gauge,
    closes: Box<[Counter]>,
    pub(crate) frames_dropped: Counter,
    pub(crate) overflows: Counter,
    pub(crate) pool_outstanding: Gauge,
    pub(crate) pool_retained: Gauge,
    pub(crate) sample_every: Duration,
}

impl fmt::Debug for Exported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exported")
            .field("in", &self.in_ids.len())
            .field("out", &self.out_ids.len())
            .finish_non_exhaustive()
    }
}

impl Exported {
    /// Describes every metric and resolves every handle of a server of protocol `P`, with the recorder in effect
    /// now (the global one, or a local one around the server's start).
    pub(crate) fn register<P: Protocol>(settings: &MetricsExport) -> Exported {
        let sorted = |direction: Direction| {
            let mut packets: Vec<PacketInfo> =
                P::PACKETS.iter().copied().filter(|p| p.direction == direction).collect();
            packets.sort_by_key(|packet| packet.id);
            packets
        };
        let (incoming, outgoing) = (sorted(Direction::ClientToServer), sorted(Direction::ServerToClient));
        let base: Vec<Label> = settings.labels.iter().map(|(k, v)| Label::new(k.clone(), v.clone())).collect();
        metrics::with_recorder(|recorder| {
            for &(name, help) in DESCRIPTIONS {
                let name = KeyName::from_const_str(name);
                let help = SharedString::const_str(help);
                match name.as_str() {
                    HANDLER | BATCH => recorder.describe_histogram(name, None, help),
                    SESSIONS | INBOX_DEPTH | POOL_OUTSTANDING | POOL_RETAINED | BUILD_INFO => {
                        recorder.describe_gauge(name, None, help)
                    }
                    _ => recorder.describe_counter(name, None, help),
                }
            }
            let key = |name: &'static str, extra: &[(&'static str, String)]| {
                let mut labels = base.clone();
                labels.extend(extra.iter().map(|(k, v)| Label::new(*k, v.clone())));
                Key::from_parts(name, labels)
            };
            let counter = |name, extra: &[(&'static str, String)]| recorder.register_counter(&key(name, extra), &META);
            let gauge = |name, extra: &[(&'static str, String)]| recorder.register_gauge(&key(name, extra), &META);
            let histogram =
                |name, extra: &[(&'static str, String)]| recorder.register_histogram(&key(name, extra), &META);
            fn per_packet<T>(packets: &[PacketInfo], make: impl Fn(&[(&'static str, String)]) -> T) -> Box<[T]> {
                let names = packets.iter().map(|p| p.name).chain([UNKNOWN_PACKET]);
                names.map(|name| make(&[("packet", name.to_owned())])).collect()
            }
            let build_info = gauge(
                BUILD_INFO,
                &[("version", settings.version.clone()), ("fingerprint", format!("{:016x}", P::FINGERPRINT))],
            );
            build_info.set(1.0);
            let mut handler = per_packet(&incoming, |extra| histogram(HANDLER, extra)).into_vec();
            // An unknown id never reaches a handler: no series for it.
            *handler.last_mut().expect("unknown's entry") = Histogram::noop();
            Exported {
                in_ids: incoming.iter().map(|p| p.id).collect(),
                counted_in: (0..=incoming.len()).map(|_| AtomicU64::new(0)).collect(),
                counted_out: (0..=outgoing.len()).map(|_| AtomicU64::new(0)).collect(),
                frames_in: per_packet(&incoming, |extra| counter(FRAMES_IN, extra)),
                handler: handler.into_boxed_slice(),
                out_ids: outgoing.iter().map(|p| p.id).collect(),
                frames_out: per_packet(&outgoing, |extra| counter(FRAMES_OUT, extra)),
                sessions: gauge(SESSIONS, &[]),
                connections: counter(CONNECTIONS, &[]),
                rejected: counter(REJECTED, &[]),
                tls_handshake_failures: counter(TLS_HANDSHAKE_FAILURES, &[]),
                bytes_in: counter(BYTES_IN, &[]),
                bytes_out: counter(BYTES_OUT, &[]),
                batch: histogram(BATCH, &[]),
                inbox_depth: gauge(INBOX_DEPTH, &[]),
                closes: CloseKind::ALL
                    .iter()
                    .map(|kind| counter(CLOSES, &[("reason", kind.as_str().to_owned())]))
                    .collect(),
                frames_dropped: counter(FRAMES_DROPPED, &[]),
                overflows: counter(OVERFLOWS, &[]),
                pool_outstanding: gauge(POOL_OUTSTANDING, &[]),
                pool_retained: gauge(POOL_RETAINED, &[]),
                sample_every: settings.sample_every,
            }
        })
    }

    /// The index of packet `id` in the per-packet handles of `direction` ([`UNKNOWN_PACKET`]'s for an id that is
    /// not one of its packets).
    #[inline]
    fn index(&self, direction: Direction, id: u16) -> usize {
        let ids = match direction {
            Direction::ClientToServer => &self.in_ids,
            Direction::ServerToClient => &self.out_ids,
        };
        ids.binary_search(&id).unwrap_or(ids.len())
    }

    pub(crate) fn closed(&self, kind: CloseKind) {
        self.closes[kind as usize].increment(1);
    }

    /// `Logic::on_packet` for packet `id` took `seconds`.
    #[inline]
    pub(crate) fn handled(&self, id: u16, seconds: f64) {
        self.handler[self.index(Direction::ClientToServer, id)].record(seconds);
    }

    /// One frame of packet `id` received (a shard's remote sessions, one frame at a time).
    pub(crate) fn frame_in(&self, id: u16) {
        self.counted_in[self.index(Direction::ClientToServer, id)].fetch_add(1, Relaxed);
    }

    fn add(&self, run: &PacketRun) {
        if run.count == 0 {
            return;
        }
        let counted = match run.direction {
            Direction::ClientToServer => &self.counted_in,
            Direction::ServerToClient => &self.counted_out,
        };
        // Relaxed: statistics, read by the sampler; nothing is published through them.
        counted[run.index].fetch_add(run.count, Relaxed);
    }

    /// Copies what the drivers counted (frames per packet, and `bytes`: in, out) into the recorder's counters.
    pub(crate) fn sample(&self, bytes: (u64, u64)) {
        for (counter, counted) in self.frames_in.iter().zip(&self.counted_in) {
            counter.absolute(counted.load(Relaxed));
        }
        for (counter, counted) in self.frames_out.iter().zip(&self.counted_out) {
            counter.absolute(counted.load(Relaxed));
        }
        self.bytes_in.absolute(bytes.0);
        self.bytes_out.absolute(bytes.1);
    }
}

static META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Consecutive frames of one packet in one direction (frames in: client-to-server; out: server-to-client),
/// counted locally and added to its counter at once, when another packet comes or when the driver flushes its
/// counters at the end of a poll.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PacketRun {
    direction: Direction,
    id: u16,
    index: usize,
    count: u64,
}

impl PacketRun {
    pub(crate) const fn new(direction: Direction) -> Self {
        PacketRun { direction, id: 0, index: 0, count: 0 }
    }

    /// One more frame of packet `id`; the run before it is added to its counter when `id` is another packet's.
    #[inline]
    pub(crate) fn add(&mut self, exported: &Exported, id: u16) {
        if self.count > 0 && self.id == id {
            self.count += 1;
            return;
        }
        exported.add(self);
        *self = PacketRun { id, index: exported.index(self.direction, id), count: 1, ..*self };
    }

    /// Adds the run to its counter and starts over.
    pub(crate) fn take(&mut self, exported: &Exported) {
        exported.add(self);
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_go_from_one_microsecond_to_a_hundred_milliseconds_in_order() {
        assert_eq!(HANDLER_BUCKETS.first(), Some(&0.000_001));
        assert_eq!(HANDLER_BUCKETS.last(), Some(&0.1));
        assert!(HANDLER_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_metric_has_a_description_and_one_name() {
        let described: Vec<&str> = DESCRIPTIONS.iter().map(|(name, _)| *name).collect();
        assert_eq!(described, METRIC_NAMES);
        let mut sorted = METRIC_NAMES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), METRIC_NAMES.len());
    }
}
