//! The gateway: holds client connections, enforces every per-session limit (it is a `packet-runtime` server), and
//! passes frames between clients and shards as bytes.
//!
//! - Client to shard: [`GatewayIo::on_frame`] runs on the session's IO thread for every frame of a known
//!   client-to-server id. Ids the game's hook answers itself (`IoHandler::local_ids`: ping, echo) are decoded and
//!   answered here; every other frame is numbered (`seq`, per session) and appended to the open envelope for the
//!   session's shard, undecoded.
//! - Shard to clients: one task takes this node's envelopes. A `SEND` is copied once into one pooled block and queued
//!   to each listed session; `CLOSE` closes a session after what was queued before it.
//! - Hand-over (`MOVE`): the session's frames are held from then on; the old shard gives back (`BOUNCE`) the ones it
//!   got but did not handle; the new owner of the key is read from (or recorded in) the cluster's KV bucket; once
//!   every bounced frame is back, the new shard gets `ARRIVE`, the bounced frames, then the held ones, in order, and
//!   the old one a `CLOSED` (handed over) that ends the session there.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures_util::StreamExt;
use packet_runtime::server::{BadFrameAction, ServerBuilder};
use packet_runtime::session::BadFrame;
use packet_runtime::{
    CloseReason, Context, Encoded, FrameAction, IoAction, IoHandler, Logic, MessagePool, MetricsSnapshot, PoolConfig,
    Protocol, ServerHandle, Session, SessionId, ShutdownHandle, ShutdownReport,
};

use crate::envelope::{self, Op};
use crate::hash::IdMap;
use crate::membership::{hash_key, rendezvous};
use crate::outbound::Dest;
use crate::subjects::owner_key;
use crate::{ClusterError, Core, NodeEvent, Receipts, Roles};

/// The notice for a client whose packets cannot be passed on because the link to its shard is congested.
const OVERLOADED: &str = "server overloaded";

/// The notice for every client when this gateway gives up on the cluster: NATS unreachable for the outage limit,
/// or this gateway was declared dead by the others (fenced).
const CUT_OFF: &str = "lost connection to the game servers";

/// Bits of a session id taken by the gateway's own counter; the node number is above them.
const COUNTER_BITS: u32 = crate::shard::GATEWAY_SHIFT;

/// A running gateway. Stop it like a server: [`shutdown`](Self::shutdown), then [`join`](Self::join).
pub struct GatewayHandle<P: Protocol> {
    server: ServerHandle<P>,
    gateway: Arc<Gateway<P>>,
}

impl<P: Protocol> std::fmt::Debug for GatewayHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHandle").field("local_addr", &self.server.local_addr()).finish_non_exhaustive()
    }
}

impl<P: Protocol> GatewayHandle<P> {
    /// The address clients connect to.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.local_addr()
    }

    /// The gateway's counters (its client connections).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.server.metrics()
    }

    /// Sessions bound to `shard` now.
    pub fn sessions_on(&self, shard: u64) -> usize {
        self.gateway.by_remote.read().unwrap_or_else(|e| e.into_inner()).values().filter(|s| s.shard() == shard).count()
    }

    /// Starts the ordered shutdown: clients get the close notice of the builder the gateway was started with (if it
    /// has one), then are closed.
    pub fn shutdown(&self) {
        self.server.shutdown();
    }

    /// SIGINT/SIGTERM start the shutdown; a second signal exits with status 130.
    #[cfg(unix)]
    pub fn watch_signals(&self) -> std::io::Result<()> {
        self.server.watch_signals()
    }

    /// For a node that is both shard and gateway: SIGINT/SIGTERM drain `shard` first (its players are handed to
    /// the other shards through this gateway, so their connections stay up), then shut this gateway down. A second
    /// signal exits at once with status 130, at any point.
    #[cfg(unix)]
    pub fn watch_signals_after(&self, shard: &crate::ShardHandle<P>) -> std::io::Result<()> {
        let drain = shard.drain_handle();
        self.server.watch_signals_then(move || async move { drain.run().await })
    }

    /// Waits for the shutdown to finish.
    pub fn join(self) -> ShutdownReport {
        self.server.join()
    }
}

type Notice<P> = dyn Fn(&Session<P>, &str) + Send + Sync;

/// The gateway's state, shared by its IO hook (IO threads) and its envelope task.
pub(crate) struct Gateway<P: Protocol> {
    core: Arc<Core>,
    pool: MessagePool,
    header: packet_runtime::frame::HeaderKind,
    by_id: RwLock<IdMap<SessionId, Arc<Relayed<P>>>>,
    by_remote: RwLock<IdMap<u64, Arc<Relayed<P>>>>,
    counter: AtomicU64,
    notice: Box<Notice<P>>,
    router: Option<Box<Router<P>>>,
    /// Set once the server runs: a fenced gateway shuts itself down.
    shutdown: std::sync::OnceLock<ShutdownHandle>,
}

/// One client connection and where its frames go.
struct Relayed<P: Protocol> {
    remote: u64,
    session: Session<P>,
    addr: String,
    route: Mutex<Route>,
}

impl<P: Protocol> Relayed<P> {
    fn route(&self) -> std::sync::MutexGuard<'_, Route> {
        self.route.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn shard(&self) -> u64 {
        self.route().shard
    }
}

struct Route {
    shard: u64,
    /// The last sequence number given to one of the session's frames.
    seq: u64,
    /// Frames up to this one were handled by the shards before the current one: a `MOVE` that reports a lower
    /// `last_seq` (a shard that handled none of its own yet reports 0) expects no bounces for them.
    base: u64,
    moving: Option<Moving>,
    /// The client left during a hand-over: tell the new shard once it has the session.
    closed: Option<CloseReason>,
}

struct Moving {
    from: u64,
    /// The new owner, once the key is resolved.
    to: Option<u64>,
    last_seq: u64,
    /// The last frame sent to the old shard: `last_seq + 1 ..= upto` come back as bounces.
    upto: u64,
    state: Vec<u8>,
    bounced: BTreeMap<u64, Vec<u8>>,
    held: Vec<(u64, Vec<u8>)>,
}

/// Picks the shard for a new session among the live ones (sorted by node id, never empty): the session (its id
/// and peer address are known at connect time) and the live shards. Returning a node not in the list is treated as
/// the default pick.
pub type Router<P> = dyn Fn(&Session<P>, &[u64]) -> u64 + Send + Sync;

/// The default [`Router`]: rendezvous hashing of the session's gateway-assigned id over the live shards, so
/// sessions spread evenly and every gateway would agree.
pub fn route_by_session_id(remote: u64, live: &[u64]) -> Option<u64> {
    rendezvous(remote, live)
}

/// A WebSocket listener for a gateway's browsers, beside its TCP listener (the `websocket` feature).
#[cfg(feature = "websocket")]
pub type Web = (std::net::TcpListener, packet_runtime::transport::websocket::WebSocketConfig);
/// Without the `websocket` feature, a gateway has no WebSocket listener.
#[cfg(not(feature = "websocket"))]
pub type Web = std::convert::Infallible;

pub(crate) fn start<P: Protocol, H: IoHandler<P>>(
    core: Arc<Core>,
    builder: ServerBuilder<P>,
    hook: H,
    notice: impl Fn(&Session<P>, &str) + Send + Sync + 'static,
    router: Option<Box<Router<P>>>,
    web: Option<Web>,
) -> Result<GatewayHandle<P>, ClusterError> {
    let pool = MessagePool::new(PoolConfig::default());
    let gateway = Arc::new(Gateway {
        core: Arc::clone(&core),
        pool: pool.clone(),
        header: builder.settings().header,
        by_id: RwLock::new(IdMap::default()),
        by_remote: RwLock::new(IdMap::default()),
        counter: AtomicU64::new(0),
        notice: Box::new(notice),
        router,
        shutdown: std::sync::OnceLock::new(),
    });
    let subscription = core
        .runtime
        .block_on(core.client.subscribe(core.subjects.gateway(core.node)))
        .map_err(|e| ClusterError::Connect { urls: "(connected)".into(), reason: e.to_string() })?;
    core.runtime.spawn(Arc::clone(&gateway).run(subscription));
    let events = Arc::downgrade(&gateway);
    core.on_event(move |event| {
        let Some(gateway) = events.upgrade() else { return };
        match event {
            NodeEvent::Lost(node) => gateway.shard_lost(node),
            NodeEvent::Outage => gateway.cut_off(),
            NodeEvent::Fenced => {
                gateway.cut_off();
                if let Some(shutdown) = gateway.shutdown.get() {
                    shutdown.shutdown();
                }
            }
        }
    });
    let local = hook.local_ids().to_vec();
    let io = GatewayIo { gateway: Arc::clone(&gateway), inner: hook, local };
    let builder = builder.pool(pool).tick(None).io_handler(io);
    // Announced before the listener takes a client: a shard takes envelopes only from announced gateways, and the
    // heartbeat leaves ahead of the first OPEN on this node's one NATS connection.
    core.runtime.block_on(core.announce(Roles { gateway: true, shard: false }));
    let server = match web {
        #[cfg(feature = "websocket")]
        Some((listener, config)) => builder.start_with_websocket(Relay(PhantomData), listener, config)?,
        #[cfg(not(feature = "websocket"))]
        Some(never) => match never {},
        None => builder.start(Relay(PhantomData))?,
    };
    let _ = gateway.shutdown.set(server.shutdown_handle());
    Ok(GatewayHandle { server, gateway })
}

/// The gateway's logic thread has little to do: every frame is forwarded or answered on the IO threads. The
/// goodbye when the gateway itself shuts down is the runtime's close notice (`ServerBuilder::close_notice`), like
/// every other close the gateway's runtime starts.
struct Relay<P: Protocol>(PhantomData<fn() -> P>);

impl<P: Protocol> Logic for Relay<P> {
    type Protocol = P;

    fn on_packet(&mut self, _: &mut Context<'_, P>, session: &Session<P>, packet: P::ClientToServer) {
        use packet_runtime::PacketSet;
        tracing::debug!(session = %session.id(), packet = packet.name(), "local packet not answered by the hook");
    }
}

/// The gateway's IO hook: wraps the game's own.
pub struct GatewayIo<P: Protocol, H> {
    gateway: Arc<Gateway<P>>,
    inner: H,
    local: Vec<u16>,
}

impl<P: Protocol, H> std::fmt::Debug for GatewayIo<P, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayIo").field("local", &self.local).finish_non_exhaustive()
    }
}

impl<P: Protocol, H: IoHandler<P>> IoHandler<P> for GatewayIo<P, H> {
    fn local_ids(&self) -> &[u16] {
        &self.local
    }

    fn on_open(&self, session: &Session<P>) {
        let gateway = &self.gateway;
        if gateway.core.fenced.load(Ordering::Relaxed) {
            (gateway.notice)(session, CUT_OFF);
            session.close();
            return;
        }
        let shards = gateway.core.membership.live_shards();
        let remote = gateway.core.node << COUNTER_BITS | (gateway.counter.fetch_add(1, Ordering::Relaxed) + 1);
        let Some(default) = route_by_session_id(remote, &shards) else {
            (gateway.notice)(session, "no game server available");
            session.close();
            return;
        };
        let shard = match &gateway.router {
            Some(router) => Some(router(session, &shards)).filter(|pick| shards.contains(pick)).unwrap_or(default),
            None => default,
        };
        let relayed = Arc::new(Relayed {
            remote,
            session: session.clone(),
            addr: session.peer().to_string(),
            route: Mutex::new(Route { shard, seq: 0, base: 0, moving: None, closed: None }),
        });
        gateway.by_id.write().unwrap_or_else(|e| e.into_inner()).insert(session.id(), Arc::clone(&relayed));
        gateway.by_remote.write().unwrap_or_else(|e| e.into_inner()).insert(remote, Arc::clone(&relayed));
        let open = Op::Open { session: remote, addr: &relayed.addr };
        if gateway.core.outbound.append(Dest::Shard(shard), |buf| envelope::put_op(buf, &open)).is_err() {
            gateway.by_id.write().unwrap_or_else(|e| e.into_inner()).remove(&session.id());
            gateway.by_remote.write().unwrap_or_else(|e| e.into_inner()).remove(&remote);
            (gateway.notice)(session, OVERLOADED);
            session.close();
        }
    }

    fn on_frame(&self, session: &Session<P>, id: u16, frame: &[u8]) -> FrameAction {
        if self.local.contains(&id) {
            return FrameAction::Decode;
        }
        let by_id = self.gateway.by_id.read().unwrap_or_else(|e| e.into_inner());
        // Not relayed: refused at open (no shard); its frames go nowhere.
        let Some(relayed) = by_id.get(&session.id()) else { return FrameAction::Taken };
        let mut route = relayed.route();
        route.seq += 1;
        let seq = route.seq;
        match &mut route.moving {
            Some(moving) => moving.held.push((seq, frame.to_vec())),
            None => {
                let shard = route.shard;
                let outbound = &self.gateway.core.outbound;
                if outbound
                    .append(Dest::Shard(shard), |buf| envelope::put_frame(buf, relayed.remote, seq, frame))
                    .is_err()
                {
                    // The shard's link is congested: this client's packet cannot be passed on, and dropping it
                    // would break its order. The session goes, told why.
                    (self.gateway.notice)(session, OVERLOADED);
                    session.close();
                }
            }
        }
        FrameAction::Taken
    }

    fn on_close(&self, session: &Session<P>, reason: &CloseReason) {
        let gateway = &self.gateway;
        let Some(relayed) = gateway.by_id.write().unwrap_or_else(|e| e.into_inner()).remove(&session.id()) else {
            return;
        };
        let mut route = relayed.route();
        if route.moving.is_some() {
            // Told to the new shard once the hand-over completes; kept findable for the bounces until then.
            route.closed = Some(reason.clone());
            return;
        }
        gateway.by_remote.write().unwrap_or_else(|e| e.into_inner()).remove(&relayed.remote);
        let (kind, detail) = (reason.kind().as_str(), reason.to_string());
        let closed = Op::Closed { session: relayed.remote, kind, detail: &detail };
        if gateway.core.outbound.append(Dest::Shard(route.shard), |buf| envelope::put_op(buf, &closed)).is_err() {
            tracing::error!(session = relayed.remote, "shard link congested: its shard is not told of this close");
        }
    }

    fn on_packet(&self, session: &Session<P>, packet: P::ClientToServer) -> IoAction<P::ClientToServer> {
        self.inner.on_packet(session, packet)
    }

    fn on_bad_frame(&self, session: &Session<P>, bad: &BadFrame) -> BadFrameAction {
        self.inner.on_bad_frame(session, bad)
    }
}

impl<P: Protocol> Gateway<P> {
    fn find(&self, remote: u64) -> Option<Arc<Relayed<P>>> {
        self.by_remote.read().unwrap_or_else(|e| e.into_inner()).get(&remote).cloned()
    }

    async fn run(self: Arc<Self>, mut subscription: async_nats::Subscriber) {
        let mut receipts = Receipts::new(Arc::clone(&self.core.stats));
        while let Some(message) = subscription.next().await {
            let Some(mut message) = receipts.open(&message.payload) else { continue };
            let sender = message.sender;
            // Only a node that announced itself as a shard of this cluster (its fingerprint) and is not fenced.
            if self.core.refuses(sender, true).await {
                continue;
            }
            // A session's frames of this message are handed to it at once (one command and one wake), after the
            // message or before a control operation for it, so its order holds.
            let mut staged: IdMap<u64, Vec<Encoded<P::ServerToClient>>> = IdMap::default();
            while let Some(op) = message.next() {
                match op {
                    Ok(Op::Send { frame, sessions }) => self.stage(&mut staged, frame, &sessions),
                    Ok(op) => {
                        if let Some(session) = op_session(&op)
                            && let Some(frames) = staged.remove(&session)
                        {
                            self.hand(session, &frames);
                        }
                        self.on_op(sender, op);
                    }
                    Err(error) => {
                        receipts.refused(&error);
                        break;
                    }
                }
            }
            for (session, frames) in staged {
                self.hand(session, &frames);
            }
        }
    }

    /// A `SEND`: the frame copied once into one pooled block, noted for each recipient.
    fn stage(&self, staged: &mut IdMap<u64, Vec<Encoded<P::ServerToClient>>>, frame: &[u8], sessions: &[u64]) {
        let encoded = match Encoded::<P::ServerToClient>::from_frame(&self.pool, self.header, frame) {
            Ok(encoded) => encoded,
            Err(error) => {
                self.core.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "a shard sent a frame that is not a server-to-client packet");
                return;
            }
        };
        for &session in sessions {
            staged.entry(session).or_default().push(encoded.clone());
        }
    }

    /// The session `remote`, if `sender` is the shard it is bound to. A shard that is not (the session was handed
    /// over, and that shard has not caught up) may not close or move it: refused and counted
    /// (`ClusterStats::stale`), so a session is never served by two shards.
    fn bound_to(&self, sender: u64, remote: u64) -> Option<Arc<Relayed<P>>> {
        let relayed = self.find(remote)?;
        if relayed.shard() != sender {
            self.core.stats.stale.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(session = remote, shard = format_args!("{sender:016x}"), "stale operation dropped");
            return None;
        }
        Some(relayed)
    }

    /// Queues a session's frames of one message to it. Any live shard may send to any session (a whisper from
    /// another shard, `Context::send_remote`); only its own shard may close or move it ([`bound_to`](Self::bound_to)).
    fn hand(&self, session: u64, frames: &[Encoded<P::ServerToClient>]) {
        if let Some(relayed) = self.find(session) {
            // Fails only for a closing session (or one over its queue limit, which closes it).
            let _ = relayed.session.send_encoded_all(frames);
        }
    }

    fn on_op(self: &Arc<Self>, sender: u64, op: Op<'_>) {
        match op {
            Op::Send { frame, sessions } => {
                let mut staged = IdMap::default();
                self.stage(&mut staged, frame, &sessions);
                for (session, frames) in staged {
                    self.hand(session, &frames);
                }
            }
            Op::Close { session, reason, .. } => {
                if let Some(relayed) = self.bound_to(sender, session) {
                    tracing::debug!(session = %relayed.session.id(), %reason, "closed by its shard");
                    relayed.session.close();
                }
            }
            Op::Move { session, last_seq, leaving, key, state } => {
                let Some(relayed) = self.bound_to(sender, session) else { return };
                if relayed.route().moving.is_some() {
                    // One hand-over at a time; the shard handed it over already and cannot do so again.
                    tracing::warn!(session, "a second hand-over of a session being handed over; ignored");
                    return;
                }
                {
                    let mut route = relayed.route();
                    let from = route.shard;
                    let upto = route.seq;
                    let last_seq = last_seq.max(route.base);
                    route.moving = Some(Moving {
                        from,
                        to: None,
                        last_seq,
                        upto,
                        state: state.to_vec(),
                        bounced: BTreeMap::new(),
                        held: Vec::new(),
                    });
                }
                let this = Arc::clone(self);
                let key = key.to_owned();
                self.core.runtime.spawn(async move {
                    let exclude = if leaving { Some(relayed.shard()) } else { None };
                    match resolve(&this.core, &key, exclude).await {
                        Some(owner) => {
                            let mut route = relayed.route();
                            if let Some(moving) = &mut route.moving {
                                moving.to = Some(owner);
                            }
                            this.try_complete(&relayed, &mut route);
                        }
                        None => {
                            // No live shard can take it: the last one is shutting down, or none is up. The old
                            // shard forgets it (as after a hand-over), the client is told and closed.
                            let from = relayed.route().moving.take().map(|moving| moving.from);
                            if let Some(from) = from {
                                let done = Op::Closed { session: relayed.remote, kind: "handed_over", detail: "" };
                                let _ =
                                    this.core.outbound.append(Dest::Shard(from), |buf| envelope::put_op(buf, &done));
                            }
                            let shutting_down =
                                leaving || from.is_some_and(|from| this.core.membership.is_draining(from));
                            let reason =
                                if shutting_down { "server shutting down" } else { "no game server available" };
                            (this.notice)(&relayed.session, reason);
                            relayed.session.close();
                        }
                    }
                });
            }
            Op::Bounce { session, seq, frame } => {
                let Some(relayed) = self.bound_to(sender, session) else { return };
                let mut route = relayed.route();
                if let Some(moving) = &mut route.moving {
                    moving.bounced.insert(seq, frame.to_vec());
                }
                self.try_complete(&relayed, &mut route);
            }
            other => tracing::warn!(?other, "operation for a shard sent to a gateway; ignored"),
        }
    }

    /// Finishes a hand-over once the new owner is known and every frame the old shard did not handle is back.
    fn try_complete(&self, relayed: &Relayed<P>, route: &mut Route) {
        let Some(moving) = &route.moving else { return };
        let Some(to) = moving.to else { return };
        if (moving.bounced.len() as u64) < moving.upto - moving.last_seq {
            return;
        }
        let moving = route.moving.take().expect("checked above");
        let remote = relayed.remote;
        let outbound = &self.core.outbound;
        // The old shard first: when both are one shard, it must drop the old session before the new one arrives.
        let done = Op::Closed { session: remote, kind: "handed_over", detail: "handed over" };
        let told_old = outbound.append(Dest::Shard(moving.from), |buf| envelope::put_op(buf, &done));
        let told_new = outbound.append(Dest::Shard(to), |buf| {
            envelope::put_op(buf, &Op::Arrive { session: remote, addr: &relayed.addr, state: &moving.state });
            for (seq, frame) in moving
                .bounced
                .iter()
                .map(|(seq, frame)| (*seq, frame))
                .chain(moving.held.iter().map(|(seq, frame)| (*seq, frame)))
            {
                envelope::put_frame(buf, remote, seq, frame);
            }
            if let Some(reason) = &route.closed {
                let detail = reason.to_string();
                envelope::put_op(buf, &Op::Closed { session: remote, kind: reason.kind().as_str(), detail: &detail });
            }
        });
        if told_old.is_err() || told_new.is_err() {
            (self.notice)(&relayed.session, OVERLOADED);
            relayed.session.close();
        }
        route.shard = to;
        route.base = moving.last_seq;
        if route.closed.is_some() {
            self.by_remote.write().unwrap_or_else(|e| e.into_inner()).remove(&remote);
        }
    }

    /// A shard stopped sending heartbeats: its players are told and disconnected, and so are those on their way to
    /// it (a hand-over to it that had not completed); everyone else stays.
    fn shard_lost(&self, shard: u64) {
        let lost: Vec<_> = self
            .by_remote
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|relayed| {
                let route = relayed.route();
                route.shard == shard || route.moving.as_ref().is_some_and(|moving| moving.to == Some(shard))
            })
            .cloned()
            .collect();
        for relayed in lost {
            (self.notice)(&relayed.session, "game server lost");
            relayed.session.close();
        }
    }

    /// This gateway gives up on the cluster (NATS gone for the outage limit, or fenced): every client is told why
    /// and closed. Their shards, if they hear of it at all, see them disconnect.
    fn cut_off(&self) {
        let all: Vec<_> = self.by_remote.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        if !all.is_empty() {
            tracing::warn!(sessions = all.len(), reason = CUT_OFF, "closing every client");
        }
        for relayed in all {
            (self.notice)(&relayed.session, CUT_OFF);
            relayed.session.close();
        }
    }
}

/// The session a control operation is about.
fn op_session(op: &Op<'_>) -> Option<u64> {
    match op {
        Op::Close { session, .. } | Op::Move { session, .. } | Op::Bounce { session, .. } => Some(*session),
        _ => None,
    }
}

/// The shard that owns `key`: the one recorded in the KV bucket if it is alive (and not `exclude`), else one placed
/// by rendezvous hashing over the live shards and recorded (compare-and-set, so every gateway agrees). `None` if no
/// shard is live.
async fn resolve(core: &Core, key: &str, exclude: Option<u64>) -> Option<u64> {
    let kv_key = owner_key(key);
    for _ in 0..20 {
        let mut live = core.membership.live_shards();
        // A shard that hands a session over because it is leaving is not a candidate, whether or not its leaving
        // heartbeat has been seen here yet.
        live.retain(|&shard| Some(shard) != exclude);
        let pick = rendezvous(hash_key(key), &live)?;
        let recorded = match core.kv.entry(&kv_key).await {
            Ok(entry) => entry,
            Err(error) => {
                tracing::warn!(%error, "owner lookup failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let written = match recorded {
            Some(entry) if entry.operation == async_nats::jetstream::kv::Operation::Put => {
                let owner = std::str::from_utf8(&entry.value).ok().and_then(|v| u64::from_str_radix(v, 16).ok());
                if let Some(owner) = owner.filter(|owner| live.contains(owner)) {
                    return Some(owner);
                }
                core.kv.update(&kv_key, format!("{pick:016x}").into(), entry.revision).await.is_ok()
            }
            Some(entry) => core.kv.update(&kv_key, format!("{pick:016x}").into(), entry.revision).await.is_ok(),
            None => core.kv.create(&kv_key, format!("{pick:016x}").into()).await.is_ok(),
        };
        if written {
            return Some(pick);
        }
        // Someone else recorded an owner first: read it.
    }
    None
}
