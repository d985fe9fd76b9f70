//! One game across many processes: gateways that hold client connections, shards that run the game, NATS between
//! them, and the same [`Logic`] code as an embedded server.
//!
//! ```text
//!  clients ──TCP──► gateway ─┐                 ┌─► shard (Logic on its logic thread)
//!  clients ──TCP──► gateway ─┼── NATS (pk.*) ──┼─► shard
//!                            └─ frames as bytes, one message per destination per batch ─┘
//! ```
//!
//! - A **gateway** is a `packet-runtime` server whose IO hook ([`gateway`]) answers the packets the game's own hook
//!   answers (ping, echo), checks every other frame against the protocol (known client-to-server id, size limit,
//!   rate and idle limits: all the runtime's per-session limits hold there) and forwards it undecoded to the shard
//!   its session is bound to. Frames from shards are copied once into one pooled block and queued to every
//!   recipient.
//! - A **shard** runs the game's `Logic` on a server started with `start_remote`: its sessions are remote
//!   ([`packet_runtime::RemoteLink`], one link per gateway, in [`shard`]). A broadcast encodes once, and what one
//!   logic batch sends to one gateway leaves as one NATS message carrying each frame once with its recipients.
//! - **Membership** ([`membership`]): heartbeats, a live table, and the refusal to join a cluster built from another
//!   protocol ([`ClusterError::FingerprintMismatch`]).
//! - **Routing**: a new session goes to a shard by rendezvous hashing over the live shards; `Context::hand_over`
//!   moves a session to the owner of a key, recorded in the cluster's JetStream KV bucket so that every gateway
//!   finds the same owner ([`gateway`] resolves it; [`subjects`] lists the keys).
//!
//! The wire format is in [`envelope`] and docs/CLUSTER.md.

pub mod credentials;
pub mod envelope;
pub mod gateway;
mod hash;
pub mod membership;
mod outbound;
pub mod shard;
pub mod subjects;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use packet_runtime::{Logic, Protocol};

pub use credentials::{NatsAuth, NatsTls, Secret};
pub use gateway::GatewayHandle;
pub use membership::{CLUSTER_VERSION, Heartbeat, NodeState, Roles};
pub use shard::ShardHandle;

use membership::{Incompatible, Membership, Seen};
use outbound::Outbound;
use subjects::Subjects;

/// How long a starting node listens for answers to its who-is-there before it decides it is alone or compatible.
const HELLO_WAIT: Duration = Duration::from_millis(300);

/// How long a receiver waits for the heartbeat of a sender it has not recorded yet before it drops the sender's
/// envelope as unannounced. A node announces (a flushed heartbeat) before it sends work, and NATS delivers one
/// connection's messages in order, but heartbeats are recorded by another task than the one reading envelopes.
const ANNOUNCE_GRACE: Duration = Duration::from_millis(250);

/// Where the cluster is, how a node proves itself to NATS, and how it detects failures. Its `Debug` shows no
/// secret (passwords and tokens are [`Secret`]s).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:port` or `host:port`); several for failover.
    pub urls: Vec<String>,
    /// The cluster's name: several clusters share one NATS under different names.
    pub name: String,
    /// A node not heard from for this long is dead. Heartbeats go out three times per timeout. Default 3 s.
    pub failure_timeout: Duration,
    /// How long this node may be without its NATS connection before it gives up the sessions it holds: a gateway
    /// tells its clients `"lost connection to the game servers"` and closes them, a shard ends its sessions.
    /// Until then everything waits in bounded buffers (see docs/CLUSTER.md, faults) and is delivered when the
    /// connection is back. Default 12 s: a broker outage of up to 10 s is survived (reconnection is retried every
    /// 500 ms at most, and detection takes up to one heartbeat interval).
    pub outage_limit: Duration,
    /// How this node authenticates to NATS. Default none. The broker's permissions should give each cluster's
    /// credentials its own subjects only (docs/SECURITY.md, docs/nats-cluster-permissions.conf).
    pub auth: NatsAuth,
    /// TLS to NATS. Default off (unless a URL is `tls://`).
    pub tls: NatsTls,
}

impl ClusterConfig {
    /// A cluster `name` on the NATS servers `urls`, with the default failure timeout.
    pub fn new(urls: impl IntoIterator<Item = impl Into<String>>, name: impl Into<String>) -> Self {
        ClusterConfig {
            urls: urls.into_iter().map(Into::into).collect(),
            name: name.into(),
            failure_timeout: Duration::from_secs(3),
            outage_limit: Duration::from_secs(12),
            auth: NatsAuth::None,
            tls: NatsTls::default(),
        }
    }
}

/// Joining or running a cluster failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// No NATS server could be reached.
    #[error("cannot connect to NATS at {urls}: {reason} (is nats-server running? start one with `nats-server -js`)")]
    Connect {
        /// The URLs tried.
        urls: String,
        /// Why.
        reason: String,
    },
    /// NATS refused this node's credentials (an authorization violation): wrong or missing user, password, token
    /// or credentials file.
    #[error(
        "NATS at {urls} refused this node's credentials ({reason}): check the user and password, token or \
         credentials file the node was given (the demo: --nats-creds, or --nats-user with --nats-password-file or \
         NATS_PASSWORD)"
    )]
    Authorization {
        /// The URLs tried.
        urls: String,
        /// What the broker said.
        reason: String,
    },
    /// A credentials or TLS file (or a secret's environment variable) is unusable. Names it and what is wrong,
    /// never what it holds.
    #[error("{source_name} {reason}")]
    Credentials {
        /// The file (`NATS credentials file PATH`, `secret file PATH`, ...) or environment variable.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// JetStream (the KV bucket of node numbers and key owners) failed.
    #[error("JetStream KV: {0} (the NATS server must run with JetStream enabled: `nats-server -js`)")]
    Kv(String),
    /// A node of the cluster was built from another protocol.
    #[error(
        "protocol fingerprint mismatch: this node is {ours:016x}, node {node:016x} of the cluster is {theirs:016x}; \
         every node of a cluster must be built from the same protocol (see docs/CLUSTER.md, rolling out a protocol \
         change)"
    )]
    FingerprintMismatch {
        /// This node's fingerprint.
        ours: u64,
        /// The other node's.
        theirs: u64,
        /// The other node.
        node: u64,
    },
    /// A node of the cluster speaks another cluster protocol version.
    #[error("cluster protocol version mismatch: this node speaks {ours}, node {node:016x} speaks {theirs}")]
    VersionMismatch {
        /// This node's version.
        ours: u8,
        /// The other node's.
        theirs: u8,
        /// The other node.
        node: u64,
    },
    /// The cluster name is not usable in subjects.
    #[error("invalid cluster name {0:?}: use 1 to 64 letters, digits, '-' or '_'")]
    InvalidName(String),
    /// Starting a server (listener, threads) failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ClusterError {
    /// Whether this is a protocol or version mismatch: the demo exits with status 2 for these.
    pub fn is_mismatch(&self) -> bool {
        matches!(self, ClusterError::FingerprintMismatch { .. } | ClusterError::VersionMismatch { .. })
    }
}

/// A node's cluster counters, shared by its tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) publish_failed: AtomicU64,
    pub(crate) congested: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) slow_consumer: AtomicU64,
    pub(crate) fenced: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) unannounced: AtomicU64,
    /// `packet_cluster_nats_messages_total{direction="in"}` and `{direction="out"}`: envelopes received and
    /// published, through the `metrics` facade (no-ops without a recorder).
    pub(crate) nats_in: NatsCounter,
    pub(crate) nats_out: NatsCounter,
}

/// A `metrics` counter of NATS messages; a no-op by default.
#[derive(Debug)]
pub(crate) struct NatsCounter(pub(crate) metrics::Counter);

impl Default for NatsCounter {
    fn default() -> Self {
        NatsCounter(metrics::Counter::noop())
    }
}

impl NatsCounter {
    /// The counter of `direction` (`in` or `out`) in the recorder installed now; described once.
    fn registered(direction: &'static str) -> Self {
        metrics::describe_counter!(
            "packet_cluster_nats_messages_total",
            "Cluster envelopes this node received (in) or published (out) over NATS; heartbeats not counted."
        );
        NatsCounter(metrics::counter!("packet_cluster_nats_messages_total", "direction" => direction))
    }
}

/// What a node counted about its cluster traffic. Nothing is dropped without being counted here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Envelopes published.
    pub published: u64,
    /// Publishes NATS refused (disconnected, for example); their envelopes are lost.
    pub publish_failed: u64,
    /// Operations refused because their destination already had `PENDING_LIMIT` (32 MiB) waiting: on a gateway the
    /// session is closed, on a shard the batch for that gateway is dropped.
    pub congested: u64,
    /// Envelopes missing in the sequence from a sender (lost in NATS, which is at-most-once).
    pub gaps: u64,
    /// Envelopes or operations that did not decode (the rest of the envelope is dropped).
    pub refused: u64,
    /// Slow-consumer events from the NATS client: the broker or client dropped messages for this node.
    pub slow_consumer: u64,
    /// Envelopes dropped because their sender was declared dead before (fenced: it was paused or cut off, and its
    /// sessions are someone else's now).
    pub fenced: u64,
    /// Control operations (close, hand over, bounce) from a shard for a session bound to another shard now:
    /// dropped by the gateway, so no session is served by two shards.
    pub stale: u64,
    /// Envelopes dropped because their sender never announced itself in this cluster in the role it acted in: a
    /// shard takes work only from gateways heard with the cluster's fingerprint, a gateway only from such shards.
    pub unannounced: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ClusterStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClusterStats {
            published: get(&self.published),
            publish_failed: get(&self.publish_failed),
            congested: get(&self.congested),
            gaps: get(&self.gaps),
            refused: get(&self.refused),
            slow_consumer: get(&self.slow_consumer),
            fenced: get(&self.fenced),
            stale: get(&self.stale),
            unannounced: get(&self.unannounced),
        }
    }
}

/// The receiving side of envelopes, one per node part (gateway, shard): reads a message's header, refuses (and
/// counts) what does not parse, and counts a gap in a sender's sequence numbers.
#[derive(Debug)]
pub(crate) struct Receipts {
    stats: Arc<Counters>,
    last_seq: hash::IdMap<u64, u64>,
}

impl Receipts {
    pub(crate) fn new(stats: Arc<Counters>) -> Self {
        Receipts { stats, last_seq: hash::IdMap::default() }
    }

    /// The message in `payload`, its operations still to read; `None` (counted) if it is not one.
    pub(crate) fn open<'a>(&mut self, payload: &'a [u8]) -> Option<envelope::Message<'a>> {
        let message = match envelope::Message::parse(payload) {
            Ok(message) => message,
            Err(error) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "envelope refused");
                return None;
            }
        };
        self.stats.nats_in.0.increment(1);
        let sender = message.sender;
        let last = self.last_seq.insert(sender, message.seq).unwrap_or(0);
        if last != 0 && message.seq != last + 1 {
            self.stats.gaps.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                sender = format_args!("{sender:016x}"),
                expected = last + 1,
                got = message.seq,
                "envelope gap"
            );
        }
        Some(message)
    }

    /// An operation of an opened message did not decode: the rest of it is dropped, counted.
    pub(crate) fn refused(&self, error: &envelope::EnvelopeError) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%error, "rest of an envelope dropped");
    }
}

/// What a node's parts are told about the cluster by its membership task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeEvent {
    /// Another node was not heard for the failure timeout: it is dead (and fenced) for this node.
    Lost(u64),
    /// This node was declared dead by the others (it was paused or cut off for longer than the failure timeout):
    /// its sessions are theirs now. It ends every session it holds and shuts down; it may rejoin under a new id.
    Fenced,
    /// This node has been without its NATS connection for the outage limit: it ends the sessions it holds.
    Outage,
}

/// Told of every [`NodeEvent`].
type EventCallback = Box<dyn Fn(NodeEvent) + Send + Sync>;

/// What a node knows of the cluster now ([`Cluster::view`]); valid from any thread, for as long as it is kept.
#[derive(Debug, Clone)]
pub struct ClusterView {
    core: Arc<Core>,
}

impl ClusterView {
    /// Shards heard within the failure timeout and taking new work (not draining), this node's own included.
    pub fn live_shards(&self) -> usize {
        self.core.membership.live_shards().len()
    }

    /// Whether this node announced that it is leaving (its shard drains).
    pub fn is_draining(&self) -> bool {
        self.core.draining.load(Ordering::Relaxed)
    }
}

/// What the gateway and shard parts of a node share.
pub(crate) struct Core {
    pub(crate) client: async_nats::Client,
    pub(crate) subjects: Subjects,
    pub(crate) kv: kv::Store,
    pub(crate) membership: Membership,
    pub(crate) outbound: Arc<Outbound>,
    pub(crate) stats: Arc<Counters>,
    pub(crate) node: u64,
    roles: AtomicU8,
    pub(crate) draining: Arc<std::sync::atomic::AtomicBool>,
    /// Set once this node learns it was declared dead: from then on it takes nothing in and sends no heartbeat.
    pub(crate) fenced: std::sync::atomic::AtomicBool,
    outage_limit: Duration,
    /// Called with every [`NodeEvent`] (the gateway closes the sessions of a lost shard, for example).
    on_event: Mutex<Vec<EventCallback>>,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("node", &format_args!("{:016x}", self.node)).finish_non_exhaustive()
    }
}

impl Core {
    fn heartbeat(&self) -> Heartbeat {
        let bits = self.roles.load(Ordering::Relaxed);
        Heartbeat {
            version: CLUSTER_VERSION,
            node: self.node,
            roles: Roles { gateway: bits & 1 != 0, shard: bits & 2 != 0 },
            fingerprint: self.membership.fingerprint,
            state: if self.draining.load(Ordering::Relaxed) { NodeState::Draining } else { NodeState::Live },
        }
    }

    /// Adds a role and announces it at once (a shard is routable when this returns and the broker has it).
    pub(crate) async fn announce(&self, roles: Roles) {
        let bits = u8::from(roles.gateway) | u8::from(roles.shard) << 1;
        self.roles.fetch_or(bits, Ordering::Relaxed);
        let beat = self.heartbeat();
        let _ = self.membership.observe(&beat);
        self.publish_now(self.subjects.heartbeat(), beat.encode()).await;
    }

    /// This node takes no new sessions or keys from now on: a heartbeat says so at once (flushed, so that the
    /// gateways know before this node hands anything over), and every later one.
    pub(crate) async fn leave(&self) {
        self.draining.store(true, Ordering::Relaxed);
        let beat = self.heartbeat();
        let _ = self.membership.observe(&beat);
        self.publish_now(self.subjects.heartbeat(), beat.encode()).await;
    }

    /// Publishes and flushes, waiting at most a failure timeout: without a broker (an outage), a shutdown must not
    /// hang on its announcement.
    async fn publish_now(&self, subject: String, payload: Vec<u8>) {
        let sent = async {
            let _ = self.client.publish(subject, payload.into()).await;
            let _ = self.client.flush().await;
        };
        if tokio::time::timeout(self.membership.failure_timeout, sent).await.is_err() {
            tracing::warn!("NATS did not take an announcement within the failure timeout; going on without it");
        }
    }

    pub(crate) fn on_event(&self, callback: impl Fn(NodeEvent) + Send + Sync + 'static) {
        self.on_event.lock().unwrap_or_else(|e| e.into_inner()).push(Box::new(callback));
    }

    fn emit(&self, event: NodeEvent) {
        for callback in self.on_event.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            callback(event);
        }
    }

    /// Whether to drop a message from `sender`, which acts as a shard (`shard`) or as a gateway: this node is
    /// fenced, or it fenced the sender, or the sender never announced that role in this cluster (with its
    /// fingerprint). Counted (`fenced`, `unannounced`).
    pub(crate) async fn refuses(&self, sender: u64, shard: bool) -> bool {
        if self.fenced.load(Ordering::Relaxed) {
            self.stats.fenced.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        match self.membership.admits(sender, shard, ANNOUNCE_GRACE).await {
            membership::Standing::Member => false,
            membership::Standing::Fenced => {
                self.stats.fenced.fetch_add(1, Ordering::Relaxed);
                true
            }
            membership::Standing::Unknown => {
                self.stats.unannounced.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    sender = format_args!("{sender:016x}"),
                    role = if shard { "shard" } else { "gateway" },
                    "envelope from a node that never announced itself in this role dropped"
                );
                true
            }
        }
    }

    /// This node was declared dead by the others: said once, loudly, and told to both parts.
    fn fence_self(&self, why: &str) {
        if !self.fenced.swap(true, Ordering::Relaxed) {
            tracing::error!(
                node = format_args!("{:016x}", self.node),
                why,
                "fenced out of the cluster: the others declared this node dead, so its sessions are theirs now; \
                 ending every session here and shutting down (restart it to rejoin under a new node id)"
            );
            self.emit(NodeEvent::Fenced);
        }
    }
}

/// A node's membership of a cluster: the NATS connection, its node id, heartbeats. Start a gateway, a shard or both
/// on it.
pub struct Cluster<P: Protocol> {
    core: Arc<Core>,
    runtime: Option<tokio::runtime::Runtime>,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> std::fmt::Debug for Cluster<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &format_args!("{:016x}", self.core.node)).finish_non_exhaustive()
    }
}

impl<P: Protocol> Cluster<P> {
    /// Connects to NATS, takes a node number, checks that the cluster speaks `P` (same fingerprint, same cluster
    /// version) and starts heartbeats. Blocking; call it from a plain thread.
    pub fn join(config: ClusterConfig) -> Result<Self, ClusterError> {
        if !subjects::valid_name(&config.name) {
            return Err(ClusterError::InvalidName(config.name));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("packet-cluster")
            .enable_all()
            .build()?;
        let core = runtime.block_on(connect(config, P::FINGERPRINT, runtime.handle().clone()))?;
        Ok(Cluster { core, runtime: Some(runtime), _protocol: PhantomData })
    }

    /// This node's id: unique in the cluster, never reused (a number from the cluster's KV bucket).
    pub fn node_id(&self) -> u64 {
        self.core.node
    }

    /// What this node counted about its cluster traffic.
    pub fn stats(&self) -> ClusterStats {
        self.core.stats.snapshot()
    }

    /// Whether the cluster declared this node dead while it was paused or cut off (see [`ClusterConfig`]'s
    /// failure timeout). A fenced node's gateway and shard shut down by themselves; the process should exit and be
    /// restarted, which rejoins under a new node id (the demo exits with status 3).
    pub fn fenced(&self) -> bool {
        self.core.fenced.load(Ordering::Relaxed)
    }

    /// A cheap, cloneable view of this node's place in the cluster, for health checks (the demo's `/readyz`).
    pub fn view(&self) -> ClusterView {
        ClusterView { core: Arc::clone(&self.core) }
    }

    /// Starts a shard running `logic` for sessions that gateways route here. `builder` gives the server's settings
    /// (tick, header, pool, shutdown timeout); it opens no listener. Returns once the shard is announced.
    pub fn start_shard<L: Logic<Protocol = P>>(
        &self,
        builder: packet_runtime::server::ServerBuilder<P>,
        logic: L,
    ) -> Result<ShardHandle<P>, ClusterError> {
        shard::start(Arc::clone(&self.core), builder, logic)
    }

    /// Starts a gateway: `builder`'s listener and limits, `hook` for the packets it answers itself
    /// ([`packet_runtime::IoHandler::local_ids`]) and for bad frames, `notice` to tell a client why it is being
    /// closed (the demo sends `S_KICK`). A `builder` with `ServerBuilder::tls` (feature `tls`) holds its clients
    /// over TLS, on every listener of the gateway.
    pub fn start_gateway<H: packet_runtime::IoHandler<P>>(
        &self,
        builder: packet_runtime::server::ServerBuilder<P>,
        hook: H,
        notice: impl Fn(&packet_runtime::Session<P>, &str) + Send + Sync + 'static,
    ) -> Result<GatewayHandle<P>, ClusterError> {
        gateway::start(Arc::clone(&self.core), builder, hook, notice, None, None)
    }

    /// [`start_gateway`](Self::start_gateway) with a WebSocket listener for browsers beside the TCP one (`web`:
    /// bound by the caller, and its settings): both kinds of client are relayed alike.
    #[cfg(feature = "websocket")]
    pub fn start_gateway_with_web<H: packet_runtime::IoHandler<P>>(
        &self,
        builder: packet_runtime::server::ServerBuilder<P>,
        hook: H,
        notice: impl Fn(&packet_runtime::Session<P>, &str) + Send + Sync + 'static,
        web: gateway::Web,
    ) -> Result<GatewayHandle<P>, ClusterError> {
        gateway::start(Arc::clone(&self.core), builder, hook, notice, None, Some(web))
    }

    /// [`start_gateway`](Self::start_gateway) with the application's choice of shard for each new session
    /// (`router` gets the session and the live shards, sorted; the default is
    /// [`gateway::route_by_session_id`]). Sessions move later by `Context::hand_over`.
    pub fn start_gateway_routed<H: packet_runtime::IoHandler<P>>(
        &self,
        builder: packet_runtime::server::ServerBuilder<P>,
        hook: H,
        notice: impl Fn(&packet_runtime::Session<P>, &str) + Send + Sync + 'static,
        router: impl Fn(&packet_runtime::Session<P>, &[u64]) -> u64 + Send + Sync + 'static,
    ) -> Result<GatewayHandle<P>, ClusterError> {
        gateway::start(Arc::clone(&self.core), builder, hook, notice, Some(Box::new(router)), None)
    }

    /// Leaves: stops heartbeats and the NATS tasks. Blocking; call after the gateway and shard handles joined.
    pub fn shutdown(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl<P: Protocol> Drop for Cluster<P> {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Never drop a runtime inside an async context.
            runtime.shutdown_background();
        }
    }
}

async fn connect(
    config: ClusterConfig,
    fingerprint: u64,
    runtime: tokio::runtime::Handle,
) -> Result<Arc<Core>, ClusterError> {
    let urls = config.urls.join(",");
    let connect_error = |reason: String| ClusterError::Connect { urls: urls.clone(), reason };
    let addrs: Vec<async_nats::ServerAddr> = config
        .urls
        .iter()
        .map(|url| url.parse::<async_nats::ServerAddr>().map_err(|e| connect_error(format!("{url}: {e}"))))
        .collect::<Result<_, _>>()?;
    let stats = Arc::new(Counters {
        nats_in: NatsCounter::registered("in"),
        nats_out: NatsCounter::registered("out"),
        ..Counters::default()
    });
    let events = Arc::clone(&stats);
    // Reconnections, counted from the client's `Connected` events after the first (see `Outbound`).
    let connects = Arc::new(AtomicU64::new(0));
    let epoch = Arc::new(AtomicU64::new(0));
    let (connected, reconnected) = (Arc::clone(&connects), Arc::clone(&epoch));
    // The last reason a connection attempt failed (the client retries in the background): an authorization
    // violation ends the join at once with a clear error instead of a connection that never comes up.
    let refused: Arc<Mutex<Option<String>>> = Arc::default();
    let last_failure = Arc::clone(&refused);
    let options = credentials::apply(async_nats::ConnectOptions::new(), &config.auth, &config.tls)?;
    let client = options
        .name(format!("packet-cluster/{}", config.name))
        // Replies (who-is-there answers, JetStream API and KV acknowledgements) come back under the cluster's own
        // prefix, so a broker's permissions can give each cluster exactly its own subjects (docs/SECURITY.md).
        .custom_inbox_prefix(subjects::inbox_prefix(&config.name))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        // Retry every 50 ms, doubling up to 500 ms (the client's default backs off to 4 s): an outage is survived
        // when the broker is back within the outage limit minus this, and a failover to another broker of a NATS
        // cluster takes one retry.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(50u64.saturating_mul(1 << attempts.min(4) as u64)).min(Duration::from_millis(500))
        })
        .event_callback(move |event| {
            let events = Arc::clone(&events);
            if matches!(event, async_nats::Event::Connected) && connected.fetch_add(1, Ordering::Relaxed) > 0 {
                reconnected.fetch_add(1, Ordering::Relaxed);
            }
            if let async_nats::Event::ClientError(async_nats::ClientError::Other(reason))
            | async_nats::Event::ServerError(async_nats::ServerError::Other(reason)) = &event
            {
                *last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
            }
            if let async_nats::Event::ServerError(async_nats::ServerError::AuthorizationViolation) = &event {
                *last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some("authorization violation".into());
            }
            async move {
                match event {
                    async_nats::Event::SlowConsumer(sid) => {
                        events.slow_consumer.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(subscription = sid, "NATS slow consumer: messages were dropped")
                    }
                    other => tracing::info!(event = %other, "NATS connection event"),
                }
            }
        })
        .connect(addrs.as_slice());
    // `retry_on_initial_connect` would wait forever: give up after a few seconds with a message saying what to start.
    let client = match tokio::time::timeout(Duration::from_secs(5), client).await {
        Ok(Ok(client)) => client,
        Ok(Err(error)) if error.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => {
            return Err(ClusterError::Authorization { urls: urls.clone(), reason: error.to_string() });
        }
        Ok(Err(error)) => return Err(connect_error(error.to_string())),
        Err(_) => return Err(connect_error("no answer within 5 s".into())),
    };
    let failure = || refused.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if client.connection_state() != async_nats::connection::State::Connected {
        // Give the first connection a moment (retry_on_initial_connect returns before it is up).
        for _ in 0..50 {
            if client.connection_state() == async_nats::connection::State::Connected {
                break;
            }
            if let Some(reason) = failure().filter(|r| r.contains("authorization violation")) {
                return Err(ClusterError::Authorization { urls: urls.clone(), reason });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if client.connection_state() != async_nats::connection::State::Connected {
            return Err(match failure() {
                Some(reason) if reason.contains("authorization violation") => {
                    ClusterError::Authorization { urls: urls.clone(), reason }
                }
                Some(reason) => connect_error(format!("not connected after 5 s (last failure: {reason})")),
                None => connect_error("not connected after 5 s".into()),
            });
        }
    }
    let jetstream = async_nats::jetstream::new(client.clone());
    let bucket = subjects::bucket(&config.name);
    let kv = open_bucket(&jetstream, &bucket).await?;
    let node = next_node_number(&kv).await?;
    let subjects = Subjects::new(&config.name);
    let membership = Membership::new(fingerprint, config.failure_timeout);
    check_compatible(&client, &subjects, &membership).await?;

    let core = Arc::new(Core {
        client: client.clone(),
        subjects: subjects.clone(),
        kv,
        membership,
        outbound: Arc::new(Outbound::new(node, Arc::clone(&stats), epoch)),
        stats,
        node,
        roles: AtomicU8::new(0),
        draining: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        fenced: std::sync::atomic::AtomicBool::new(false),
        outage_limit: config.outage_limit,
        on_event: Mutex::new(Vec::new()),
        runtime,
    });
    let outbound = Arc::clone(&core.outbound);
    tokio::spawn({
        let client = client.clone();
        let subjects = subjects.clone();
        async move { outbound.run(client, subjects).await }
    });
    spawn_membership(&core).await.map_err(|e| connect_error(e.to_string()))?;
    Ok(core)
}

/// The cluster's KV bucket, created if it is not there: with three replicas when JetStream is clustered (so that
/// losing one broker of a NATS cluster loses no owner record), with one on a single server (which refuses more).
/// A JetStream cluster still electing its leader answers with errors for a few seconds: retried for 15 s.
async fn open_bucket(jetstream: &async_nats::jetstream::Context, bucket: &str) -> Result<kv::Store, ClusterError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let error = match jetstream.get_key_value(bucket).await {
            Ok(kv) => return Ok(kv),
            Err(error) => error.to_string(),
        };
        for replicas in [3, 1] {
            let config =
                kv::Config { bucket: bucket.to_owned(), history: 1, num_replicas: replicas, ..Default::default() };
            match jetstream.create_key_value(config).await {
                Ok(kv) => {
                    tracing::info!(bucket, replicas, "created the cluster's KV bucket");
                    return Ok(kv);
                }
                Err(create) => tracing::debug!(bucket, replicas, error = %create, "creating the KV bucket failed"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClusterError::Kv(format!("opening or creating bucket {bucket}: {error}")));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Takes the next node number from the bucket's `node-seq` (compare-and-set, retried on a race). Numbers are never
/// handed out twice while the bucket lives, so session ids built from them are never reused.
async fn next_node_number(kv: &kv::Store) -> Result<u64, ClusterError> {
    for _ in 0..100 {
        let attempt = match kv.entry("node-seq").await.map_err(|e| ClusterError::Kv(e.to_string()))? {
            None => kv.create("node-seq", "1".into()).await.map(|_| 1).map_err(|e| e.to_string()),
            Some(entry) => {
                let last: u64 = std::str::from_utf8(&entry.value).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
                let next = last + 1;
                kv.update("node-seq", next.to_string().into(), entry.revision)
                    .await
                    .map(|_| next)
                    .map_err(|e| e.to_string())
            }
        };
        if let Ok(number) = attempt {
            return Ok(number);
        }
    }
    Err(ClusterError::Kv("could not take a node number after 100 attempts".into()))
}

/// Asks who is there and refuses a cluster of another protocol or cluster version. The answers seed `table`, so a
/// gateway routes to the shards that are up from its first connection on.
async fn check_compatible(
    client: &async_nats::Client,
    subjects: &Subjects,
    table: &Membership,
) -> Result<(), ClusterError> {
    let fingerprint = table.fingerprint;
    let inbox = client.new_inbox();
    let connect_error = |e: String| ClusterError::Connect { urls: "(connected)".into(), reason: e };
    let mut replies = client.subscribe(inbox.clone()).await.map_err(|e| connect_error(e.to_string()))?;
    client
        .publish_with_reply(subjects.hello(), inbox, bytes::Bytes::new())
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    let deadline = tokio::time::Instant::now() + HELLO_WAIT;
    while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, replies.next()).await {
        let Some(beat) = Heartbeat::decode(&reply.payload) else { continue };
        if beat.roles == (Roles { gateway: false, shard: false }) {
            // A node that has joined but not started a role yet: checked, not recorded as anything.
            if beat.fingerprint != fingerprint {
                return Err(ClusterError::FingerprintMismatch {
                    ours: fingerprint,
                    theirs: beat.fingerprint,
                    node: beat.node,
                });
            }
            continue;
        }
        match table.observe(&beat) {
            Ok(_) => {}
            Err(Incompatible::Fingerprint { node, theirs }) => {
                return Err(ClusterError::FingerprintMismatch { ours: fingerprint, theirs, node });
            }
            Err(Incompatible::Version { node, theirs }) => {
                return Err(ClusterError::VersionMismatch { ours: CLUSTER_VERSION, theirs, node });
            }
        }
    }
    Ok(())
}

/// Heartbeats out, heartbeats in, answers to who-is-there, fence notices, and the failure detector.
async fn spawn_membership(core: &Arc<Core>) -> Result<(), async_nats::SubscribeError> {
    let mut beats = core.client.subscribe(core.subjects.heartbeat()).await?;
    let mut hellos = core.client.subscribe(core.subjects.hello()).await?;
    let mut fences = core.client.subscribe(core.subjects.fence(core.node)).await?;
    let this = Arc::clone(core);
    tokio::spawn(async move {
        while let Some(message) = beats.next().await {
            let Some(beat) = Heartbeat::decode(&message.payload) else { continue };
            match this.membership.observe(&beat) {
                Ok(Seen::Recorded) => this.outbound.heard(beat.node),
                Ok(Seen::Fenced) => {
                    // A node this one declared dead is heard again (it was paused, or cut off): it must learn that
                    // its sessions are gone before it serves anything. One notice per heartbeat of its.
                    tracing::warn!(
                        node = format_args!("{:016x}", beat.node),
                        "a fenced node is heard again: telling it"
                    );
                    let notice = bytes::Bytes::copy_from_slice(&this.node.to_le_bytes());
                    let _ = this.client.publish(this.subjects.fence(beat.node), notice).await;
                }
                Err(incompatible) => {
                    tracing::error!(
                        ?incompatible,
                        "a node of another protocol or version is on this cluster's subjects"
                    )
                }
            }
        }
    });
    let this = Arc::clone(core);
    tokio::spawn(async move {
        while let Some(message) = hellos.next().await {
            if let Some(reply) = message.reply
                && !this.fenced.load(Ordering::Relaxed)
            {
                let _ = this.client.publish(reply, this.heartbeat().encode().into()).await;
            }
        }
    });
    let this = Arc::clone(core);
    tokio::spawn(async move {
        if let Some(message) = fences.next().await {
            let by = message.payload.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
            this.fence_self(&format!("node {:016x} says so", by.unwrap_or(0)));
        }
    });
    let this = Arc::clone(core);
    tokio::spawn(async move { this.detect_failures().await });
    Ok(())
}

impl Core {
    /// The failure detector: heartbeats out every `failure_timeout / 3`, silent nodes declared dead, and the cases
    /// where the silence is this node's own (it lost its NATS connection, or it was paused), in which it declares
    /// nobody dead.
    async fn detect_failures(&self) {
        let timeout = self.membership.failure_timeout;
        let mut ticker = tokio::time::interval(timeout / 3);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_tick = tokio::time::Instant::now();
        let mut disconnected_since: Option<tokio::time::Instant> = None;
        let mut outage_told = false;
        loop {
            ticker.tick().await;
            let away = last_tick.elapsed();
            last_tick = tokio::time::Instant::now();
            if self.fenced.load(Ordering::Relaxed) {
                return;
            }
            if away >= timeout {
                // This process did not run for a whole failure timeout (SIGSTOP, a VM pause, a stalled machine):
                // every node that kept running has declared it dead and taken its sessions.
                self.fence_self(&format!("this process did not run for {} ms", away.as_millis()));
                return;
            }
            let connected = self.client.connection_state() == async_nats::connection::State::Connected;
            if !connected {
                // Hearing nobody is this node's own silence: nobody is declared dead while it lasts, nor at once when
                // it ends. Past the outage limit, the sessions held here are given up (said once per outage).
                // The table stays as it was when the connection went: new sessions are still routed to the shards
                // that were live, and wait in the bounded buffers with everything else.
                self.membership.forgive();
                let since = *disconnected_since.get_or_insert(last_tick);
                if !outage_told && since.elapsed() >= self.outage_limit {
                    outage_told = true;
                    tracing::error!(
                        limit_ms = self.outage_limit.as_millis() as u64,
                        "NATS unreachable for the outage limit: ending the sessions this node holds"
                    );
                    self.emit(NodeEvent::Outage);
                }
                continue;
            }
            if self.roles.load(Ordering::Relaxed) != 0 {
                let beat = self.heartbeat();
                let _ = self.membership.observe(&beat);
                // Bounded: a publish waits when the client's buffer is full, and the detector must go on ticking.
                let publish = self.client.publish(self.subjects.heartbeat(), beat.encode().into());
                let _ = tokio::time::timeout(timeout / 3, publish).await;
            }
            if disconnected_since.take().is_some() {
                tracing::info!("NATS connection back: failure detection resumes");
                outage_told = false;
                self.membership.forgive();
                continue;
            }
            if away > timeout / 2 {
                // Away for a while, but less than a timeout: the others' heartbeats may still be unread. Give them
                // a timeout from now; whoever declared this node dead meanwhile sends a fence notice.
                self.membership.forgive();
                continue;
            }
            for dead in self.membership.expire(self.node) {
                tracing::warn!(
                    node = format_args!("{dead:016x}"),
                    "node lost (no heartbeat within the failure timeout); fenced for good"
                );
                self.outbound.forget(dead);
                self.emit(NodeEvent::Lost(dead));
            }
        }
    }
}
