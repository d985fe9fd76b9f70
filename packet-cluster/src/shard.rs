//! The shard: the game's `Logic` for sessions whose connections gateways hold.
//!
//! One task takes the envelopes addressed to this node and turns them into the runtime's remote-session calls
//! (`open`, `arrive`, `packet`, `closed`); the logic thread sees the events of an embedded server. Everything the
//! logic sends goes through one [`ShardLink`] per gateway, which at the end of each logic batch writes one message
//! for that gateway: each distinct frame once, with the list of its recipients there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use packet_runtime::server::ServerBuilder;
use packet_runtime::session::CloseKind;
use packet_runtime::transport::PeerAddr;
use packet_runtime::{
    CloseReason, HandOver, Logic, MetricsSnapshot, PacketPtr, Protocol, RemoteDirectory, RemoteId, RemoteLink,
    RemoteSessions, ServerHandle, Session, ShutdownHandle, ShutdownReport,
};

use crate::envelope::{self, Op};
use crate::hash::IdMap;
use crate::outbound::{Dest, Outbound};
use crate::{ClusterError, Core, NodeEvent, Receipts, Roles};

/// A running shard. Stop it like a server: [`shutdown`](Self::shutdown), then [`join`](Self::join).
pub struct ShardHandle<P: Protocol> {
    server: ServerHandle<P>,
    sessions: RemoteSessions<P>,
    core: Arc<Core>,
    by_gateway: Arc<Mutex<HashMap<u64, usize>>>,
}

impl<P: Protocol> std::fmt::Debug for ShardHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardHandle").finish_non_exhaustive()
    }
}

impl<P: Protocol> ShardHandle<P> {
    /// The shard's counters (sessions open are the remote sessions it serves).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.server.metrics()
    }

    /// Remote sessions this shard serves now.
    pub fn session_count(&self) -> u64 {
        self.sessions.open_count()
    }

    /// Sessions this shard serves now, per gateway node id (gateways with none are not listed). A gateway found
    /// dead drops to none at once: each of its sessions is disconnected here, once.
    pub fn sessions_by_gateway(&self) -> HashMap<u64, usize> {
        self.by_gateway.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts the ordered shutdown, draining the shard: it announces first that it takes no new sessions or keys
    /// (gateways stop routing to it, and re-place the keys it owned), then `Logic::on_shutdown` runs, where the game
    /// hands its sessions over to the other shards (the demo: every player to its room's new owner); the rest are
    /// closed through their gateways. Blocking for the announcement (one NATS flush).
    pub fn shutdown(&self) {
        self.core.runtime.block_on(self.core.leave());
        self.sessions.shutdown();
    }

    /// SIGINT/SIGTERM start the shutdown as [`shutdown`](Self::shutdown) does (the leaving announcement, then the
    /// drain); a second signal exits with status 130. On a node that is also a gateway, use
    /// [`GatewayHandle::watch_signals_after`](crate::GatewayHandle::watch_signals_after) instead, which drains this
    /// shard before the gateway goes.
    #[cfg(unix)]
    pub fn watch_signals(&self) -> std::io::Result<()> {
        let core = Arc::clone(&self.core);
        self.server.watch_signals_then(move || async move { core.leave().await })
    }

    /// What drains this shard from a task: the leaving announcement, the shutdown, and the wait for its end.
    pub(crate) fn drain_handle(&self) -> Drain {
        Drain { core: Arc::clone(&self.core), shutdown: self.server.shutdown_handle() }
    }

    /// Waits for the shutdown to finish.
    pub fn join(self) -> ShutdownReport {
        self.server.join()
    }
}

/// Drains a shard and waits until it is done (its logic thread exited: every session handed over or closed).
pub(crate) struct Drain {
    core: Arc<Core>,
    shutdown: ShutdownHandle,
}

impl Drain {
    pub(crate) async fn run(self) {
        self.core.leave().await;
        self.shutdown.shutdown();
        self.shutdown.finished().await;
    }
}

pub(crate) fn start<P: Protocol, L: Logic<Protocol = P>>(
    core: Arc<Core>,
    builder: ServerBuilder<P>,
    logic: L,
) -> Result<ShardHandle<P>, ClusterError> {
    let links = Arc::new(Links {
        outbound: Arc::clone(&core.outbound),
        leaving: Arc::clone(&core.draining),
        links: Mutex::new(HashMap::new()),
    });
    let directory: Arc<dyn RemoteDirectory> = links.clone();
    let (server, sessions) = builder.remote_directory(directory).start_remote(logic)?;
    let subject = core.subjects.shard(core.node);
    let subscription = core
        .runtime
        .block_on(core.client.subscribe(subject))
        .map_err(|e| ClusterError::Connect { urls: "(connected)".into(), reason: e.to_string() })?;
    let by_gateway = Arc::new(Mutex::new(HashMap::new()));
    let inbound = Inbound {
        by_gateway: Arc::clone(&by_gateway),
        host: sessions.clone(),
        links,
        sessions: IdMap::default(),
        receipts: Receipts::new(Arc::clone(&core.stats)),
        core: Arc::clone(&core),
    };
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    core.on_event(move |event| {
        let _ = events_tx.send(event);
    });
    core.runtime.spawn(inbound.run(subscription, events_rx));
    core.runtime.block_on(core.announce(Roles { gateway: false, shard: true }));
    Ok(ShardHandle { server, sessions, core, by_gateway })
}

/// The task that feeds gateways' envelopes to the logic thread.
struct Inbound<P: Protocol> {
    host: RemoteSessions<P>,
    links: Arc<Links>,
    sessions: IdMap<RemoteId, Session<P>>,
    /// Envelope headers and per-gateway sequence numbers (a gap is a lost message).
    receipts: Receipts,
    core: Arc<Core>,
    /// `sessions` counted per gateway, for [`ShardHandle::sessions_by_gateway`].
    by_gateway: Arc<Mutex<HashMap<u64, usize>>>,
}

impl<P: Protocol> Inbound<P> {
    fn insert(&mut self, id: RemoteId, session: Session<P>) {
        if self.sessions.insert(id, session).is_none() {
            *self.by_gateway.lock().unwrap_or_else(|e| e.into_inner()).entry(id >> GATEWAY_SHIFT).or_default() += 1;
        }
    }

    fn remove(&mut self, id: RemoteId) -> Option<Session<P>> {
        let session = self.sessions.remove(&id)?;
        let mut counts = self.by_gateway.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&(id >> GATEWAY_SHIFT)) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&(id >> GATEWAY_SHIFT));
            }
        }
        Some(session)
    }

    async fn run(
        mut self,
        mut subscription: async_nats::Subscriber,
        mut events: tokio::sync::mpsc::UnboundedReceiver<NodeEvent>,
    ) {
        loop {
            tokio::select! {
                message = subscription.next() => match message {
                    Some(message) => self.on_message(&message.payload).await,
                    None => return,
                },
                Some(event) = events.recv() => match event {
                    NodeEvent::Lost(node) => self.end_sessions(|id| id >> GATEWAY_SHIFT == node, "gateway lost"),
                    NodeEvent::Outage => self.end_sessions(|_| true, "NATS unreachable for the outage limit"),
                    NodeEvent::Fenced => {
                        // The gateways dropped these sessions when they declared this node dead; the game learns it
                        // now, then the shard stops (nothing more will reach it under this node id).
                        self.end_sessions(|_| true, "this shard was fenced out of the cluster");
                        self.host.shutdown();
                    }
                },
            }
        }
    }

    /// Sessions that can no longer be served from here (their gateway was lost, or this shard is cut off) are
    /// disconnected, once each (the demo: the others in their rooms get `S_DESPAWN`). Their frames still in flight,
    /// if any arrive, find no session.
    fn end_sessions(&mut self, which: impl Fn(RemoteId) -> bool, why: &str) {
        let lost: Vec<RemoteId> = self.sessions.keys().copied().filter(|&id| which(id)).collect();
        if lost.is_empty() {
            return;
        }
        tracing::warn!(sessions = lost.len(), why, "sessions end");
        for id in lost {
            if let Some(session) = self.remove(id) {
                let reason = CloseReason::Relayed { kind: CloseKind::Io, detail: why.to_owned() };
                self.host.closed(&session, reason);
            }
        }
    }

    async fn on_message(&mut self, payload: &[u8]) {
        let Some(mut message) = self.receipts.open(payload) else { return };
        let gateway = message.sender;
        // Work only from a node that announced itself as a gateway of this cluster (its fingerprint) and is live.
        if self.core.refuses(gateway, false).await {
            return;
        }
        let link: Arc<dyn RemoteLink> = self.links.to(gateway);
        while let Some(op) = message.next() {
            match op {
                Ok(Op::Open { session, addr }) => {
                    let peer = PeerAddr::Remote { gateway, addr: addr.to_owned() };
                    let opened = self.host.open(Arc::clone(&link), session, peer);
                    self.insert(session, opened);
                }
                Ok(Op::Arrive { session, addr, state }) => {
                    let peer = PeerAddr::Remote { gateway, addr: addr.to_owned() };
                    let arrived = self.host.arrive(Arc::clone(&link), session, peer, state.to_vec());
                    self.insert(session, arrived);
                }
                Ok(Op::Frame { session, seq, frame }) => {
                    if let Some(target) = self.sessions.get(&session) {
                        // A frame that does not decode closes the session through its gateway (or bounces, if it was
                        // handed over); nothing more to do here.
                        let _ = self.host.packet(target, seq, frame);
                    }
                }
                Ok(Op::Closed { session, kind, detail }) => {
                    if let Some(closed) = self.remove(session) {
                        self.host.closed(&closed, close_reason(kind, detail));
                    }
                }
                Ok(other) => tracing::warn!(?other, "operation for a gateway sent to a shard; ignored"),
                Err(error) => {
                    self.receipts.refused(&error);
                    break;
                }
            }
        }
    }
}

/// The runtime's [`CloseReason`] for a close a gateway reported.
pub(crate) fn close_reason(kind: &str, detail: &str) -> CloseReason {
    match CloseKind::from_name(kind) {
        Some(CloseKind::PeerClosed) => CloseReason::PeerClosed,
        Some(CloseKind::IdleTimeout) => CloseReason::IdleTimeout,
        Some(CloseKind::SlowConsumer) => CloseReason::SlowConsumer,
        Some(CloseKind::RateLimited) => CloseReason::RateLimited,
        Some(CloseKind::HandlerPanic) => CloseReason::HandlerPanic,
        Some(CloseKind::Closed) => CloseReason::Closed,
        Some(CloseKind::ServerShutdown) => CloseReason::ServerShutdown,
        Some(CloseKind::HandedOver) => CloseReason::HandedOver,
        Some(kind) => CloseReason::Relayed { kind, detail: detail.to_owned() },
        None => CloseReason::Relayed { kind: CloseKind::Io, detail: format!("{kind}: {detail}") },
    }
}

/// The shard's links, one per gateway, created on first use: by a gateway's first message, or by a send to one of
/// its sessions (a session id names its gateway: [`GATEWAY_SHIFT`]).
pub(crate) struct Links {
    outbound: Arc<Outbound>,
    leaving: Arc<std::sync::atomic::AtomicBool>,
    links: Mutex<HashMap<u64, Arc<ShardLink>>>,
}

/// A session id's gateway node number is the id shifted right by this much (see `gateway`).
pub(crate) const GATEWAY_SHIFT: u32 = 40;

impl Links {
    fn to(&self, gateway: u64) -> Arc<ShardLink> {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(links.entry(gateway).or_insert_with(|| {
            Arc::new(ShardLink::new(gateway, Arc::clone(&self.outbound), Arc::clone(&self.leaving)))
        }))
    }
}

impl RemoteDirectory for Links {
    fn link(&self, session: RemoteId) -> Option<Arc<dyn RemoteLink>> {
        let gateway = session >> GATEWAY_SHIFT;
        (gateway != 0).then(|| self.to(gateway) as Arc<dyn RemoteLink>)
    }
}

/// What a shard sends to one gateway, batched per logic batch.
pub(crate) struct ShardLink {
    gateway: u64,
    outbound: Arc<Outbound>,
    /// Set once this shard drains (its node's flag).
    leaving: Arc<std::sync::atomic::AtomicBool>,
    batch: Mutex<Batch>,
}

#[derive(Default)]
struct Batch {
    entries: Vec<Entry>,
    /// The latest entry carrying each frame (by block address), to add recipients to it.
    by_frame: IdMap<usize, usize>,
    /// Each session's latest entry in this batch: a frame joins an entry only after it, so order per session holds.
    last_of: IdMap<RemoteId, usize>,
}

enum Entry {
    Send {
        frame: PacketPtr,
        sessions: Vec<RemoteId>,
    },
    /// A control operation, already encoded.
    Op(Vec<u8>),
}

impl ShardLink {
    pub(crate) fn new(gateway: u64, outbound: Arc<Outbound>, leaving: Arc<std::sync::atomic::AtomicBool>) -> Self {
        ShardLink { gateway, outbound, leaving, batch: Mutex::new(Batch::default()) }
    }

    fn batch(&self) -> std::sync::MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn control(&self, session: RemoteId, op: &Op<'_>) {
        let mut encoded = Vec::new();
        envelope::put_op(&mut encoded, op);
        let mut batch = self.batch();
        batch.entries.push(Entry::Op(encoded));
        let at = batch.entries.len() - 1;
        batch.last_of.insert(session, at);
    }
}

impl RemoteLink for ShardLink {
    fn frames(&self, session: RemoteId, frames: &mut Vec<PacketPtr>) {
        let mut batch = self.batch();
        let batch = &mut *batch;
        for frame in frames.drain(..) {
            let key = frame.as_slice().as_ptr() as usize;
            let after = batch.last_of.get(&session).copied();
            let at = match batch.by_frame.get(&key) {
                Some(&at) if after.is_none_or(|last| at > last) => {
                    if let Entry::Send { sessions, .. } = &mut batch.entries[at] {
                        sessions.push(session);
                    }
                    at
                }
                _ => {
                    batch.entries.push(Entry::Send { frame, sessions: vec![session] });
                    let at = batch.entries.len() - 1;
                    batch.by_frame.insert(key, at);
                    at
                }
            };
            batch.last_of.insert(session, at);
        }
    }

    fn close(&self, session: RemoteId, reason: &CloseReason, abort: bool) {
        self.control(session, &Op::Close { session, abort, reason: &reason.to_string() });
    }

    fn hand_over(&self, session: RemoteId, hand_over: HandOver) {
        let leaving = self.leaving.load(std::sync::atomic::Ordering::Relaxed);
        let op =
            Op::Move { session, last_seq: hand_over.last_seq, leaving, key: &hand_over.key, state: &hand_over.state };
        self.control(session, &op);
    }

    fn bounce(&self, session: RemoteId, seq: u64, frame: PacketPtr) {
        self.control(session, &Op::Bounce { session, seq, frame: frame.as_slice() });
    }

    fn flush(&self) {
        let entries = {
            let mut batch = self.batch();
            if batch.entries.is_empty() {
                return;
            }
            batch.by_frame.clear();
            batch.last_of.clear();
            std::mem::take(&mut batch.entries)
        };
        let appended = self.outbound.append(Dest::Gateway(self.gateway), |buf| {
            for entry in &entries {
                match entry {
                    Entry::Send { frame, sessions } => envelope::put_send(buf, frame.as_slice(), sessions),
                    Entry::Op(encoded) => buf.extend_from_slice(encoded),
                }
            }
        });
        if appended.is_err() {
            // Counted (`ClusterStats::congested`); the gateway will see a gap in nothing (the message was never
            // numbered), so say it loudly here.
            tracing::error!(
                gateway = format_args!("{:016x}", self.gateway),
                "link to gateway congested: batch dropped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use packet_runtime::{MessagePool, PacketBuilder, PoolConfig};

    fn frame(pool: &MessagePool, tag: u8) -> PacketPtr {
        let mut builder = PacketBuilder::with_capacity_in(pool, 4);
        builder.extend_from_slice(&[4, 0, tag, 0]);
        builder.freeze()
    }

    /// What one flush of `link` wrote: its operations, as (code, frame tag or session, recipients).
    fn sent(outbound: &Outbound) -> Vec<String> {
        let mut pending = outbound.take_for_test();
        let messages = pending.remove(&Dest::Gateway(7)).expect("a message for gateway 7");
        assert_eq!(messages.len(), 1, "one message per gateway per flush");
        let mut message = crate::envelope::Message::parse(&messages[0]).unwrap();
        let mut ops = Vec::new();
        while let Some(op) = message.next() {
            ops.push(match op.unwrap() {
                Op::Send { frame, sessions } => format!("send {} to {sessions:?}", frame[2]),
                Op::Close { session, .. } => format!("close {session}"),
                other => format!("{other:?}"),
            });
        }
        ops
    }

    #[test]
    fn a_frame_for_many_sessions_is_carried_once_with_its_recipients() {
        let pool = MessagePool::new(PoolConfig::default());
        let outbound = Arc::new(Outbound::new(1, Arc::default(), Arc::default()));
        let link = ShardLink::new(7, Arc::clone(&outbound), Arc::default());
        let (a, b, c) = (frame(&pool, 1), frame(&pool, 2), frame(&pool, 3));
        link.frames(10, &mut vec![a.clone(), b.clone()]);
        link.frames(11, &mut vec![a.clone(), c]);
        link.close(10, &CloseReason::Closed, false);
        link.frames(12, &mut vec![a]);
        link.flush();
        assert_eq!(sent(&outbound), ["send 1 to [10, 11, 12]", "send 2 to [10]", "send 3 to [11]", "close 10"]);
    }

    #[test]
    fn sharing_a_frame_never_reorders_a_sessions_frames() {
        let pool = MessagePool::new(PoolConfig::default());
        let outbound = Arc::new(Outbound::new(1, Arc::default(), Arc::default()));
        let link = ShardLink::new(7, Arc::clone(&outbound), Arc::default());
        let (a, b) = (frame(&pool, 1), frame(&pool, 2));
        link.frames(10, &mut vec![a.clone(), b.clone()]);
        // Session 11 gets them the other way round, and `a` twice: its `a`s cannot join the entry before its `b`.
        link.frames(11, &mut vec![b, a.clone(), a]);
        link.flush();
        assert_eq!(sent(&outbound), ["send 1 to [10]", "send 2 to [10, 11]", "send 1 to [11]", "send 1 to [11]"]);
    }
}
