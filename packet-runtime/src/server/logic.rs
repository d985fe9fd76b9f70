//! The logic thread: one OS thread that owns the game state and runs every handler, so game code needs no locks.
//!
//! IO threads hand it events through two queues: a bounded one (`server::inbox`, a ring of `inbox_capacity` events
//! allocated once, so that forwarding a packet never allocates) for local sessions' connections and packets, which
//! pushes back on the IO side when full, and an unbounded one (tokio's mpsc) for what must never wait (shutdown, end
//! of stream, disconnects, remote sessions' events). A session's end-of-stream and disconnect carry how many events
//! it put in the bounded queue, and are handled only after those. So events of one session are handled in order:
//! `Connected`, its packets, then exactly one `Disconnected`, after which the session's id is released and never
//! valid again.
//!
//! The thread takes events in batches (up to 256 at a time). What the handlers send while it works through a batch
//! is staged in the thread's outbox (`session::outbox`) and handed to the IO threads when the batch is done: one
//! hand-over and one wake per recipient per batch, not per frame.

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::ServerShared;
use crate::frame::with_header;
use crate::metrics::MetricsSnapshot;
use crate::packet_ptr::{EncodeError, PacketPtr};
use crate::session::{CloseReason, Encoded, Session, SessionId, outbox};
use crate::{PacketOf, PacketSet, Protocol};

/// The game: implemented by the application, run on the logic thread.
///
/// Only `on_packet` is required. A panic in any method is caught: in `on_connect` or `on_packet` it closes that
/// session with [`CloseReason::HandlerPanic`]; elsewhere it is logged. The server goes on.
pub trait Logic: Send + 'static {
    /// The protocol the server speaks.
    type Protocol: Protocol;

    /// A session connected. Its packets follow.
    fn on_connect(&mut self, ctx: &mut Context<'_, Self::Protocol>, session: &Session<Self::Protocol>) {
        let _ = (ctx, session);
    }

    /// A session another shard handed over ([`Context::hand_over`]) arrived here with the state that shard gave it.
    /// Its packets follow, from the first one the old shard did not handle. Only in a cluster; the default treats it
    /// as a new connection.
    fn on_arrive(&mut self, ctx: &mut Context<'_, Self::Protocol>, session: &Session<Self::Protocol>, state: &[u8]) {
        let _ = state;
        self.on_connect(ctx, session);
    }

    /// A packet arrived. Usually one line: `packet.dispatch(self, ...)` through the generated handler trait.
    fn on_packet(
        &mut self,
        ctx: &mut Context<'_, Self::Protocol>,
        session: &Session<Self::Protocol>,
        packet: <Self::Protocol as Protocol>::ClientToServer,
    );

    /// The session is gone (its socket is closed). Runs exactly once per session; afterwards its id is never valid
    /// again. Sending to it returns an error.
    fn on_disconnect(
        &mut self,
        ctx: &mut Context<'_, Self::Protocol>,
        session: &Session<Self::Protocol>,
        reason: &CloseReason,
    ) {
        let _ = (ctx, session, reason);
    }

    /// Runs at the configured fixed rate (missed ticks are skipped, not bunched).
    fn on_tick(&mut self, ctx: &mut Context<'_, Self::Protocol>) {
        let _ = ctx;
    }

    /// Shutdown started: the listener is closed; sessions are still open, so a goodbye can be broadcast, or, on a
    /// cluster's shard, each session handed over to another shard (`Context::hand_over`) so that its player stays
    /// connected. Sessions neither handed over nor closed here are closed with `CloseReason::ServerShutdown`.
    fn on_shutdown(&mut self, ctx: &mut Context<'_, Self::Protocol>) {
        let _ = ctx;
    }
}

/// What handlers can see and do besides their own session: look up sessions, encode once and broadcast.
pub struct Context<'a, P: Protocol> {
    sessions: &'a Sessions<P>,
    shared: &'a ServerShared<P>,
    tick: u64,
    shutting_down: bool,
    /// Sessions handed over by the handler running now; the loop runs their `on_disconnect` once it returns.
    handed_over: &'a RefCell<Vec<SessionId>>,
}

/// Why [`Context::hand_over`] did not hand a session over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandOverError {
    /// The session's connection is on this process (an embedded server): there is nowhere to hand it to. Handle
    /// it here; the same game code then runs embedded and on a shard.
    #[error("the session is local: there is no cluster to hand it over to")]
    Local,
    /// The session is closing or was handed over already.
    #[error("the session is closed")]
    Closed,
}

impl<P: Protocol> Context<'_, P> {
    /// The live session with this id, if it is still connected.
    pub fn session(&self, id: SessionId) -> Option<&Session<P>> {
        self.sessions.get(id)
    }

    /// Every live session.
    pub fn sessions(&self) -> impl Iterator<Item = &Session<P>> {
        self.sessions.iter()
    }

    /// How many sessions are live.
    pub fn session_count(&self) -> usize {
        self.sessions.live
    }

    /// Encodes `packet` once into a pooled frame that can be queued to any number of sessions.
    pub fn encode<T: PacketOf<P::ServerToClient>>(
        &self,
        packet: &T,
    ) -> Result<Encoded<P::ServerToClient>, EncodeError> {
        let pool = &self.shared.pool;
        let frame = with_header!(self.shared.config.header, H => PacketPtr::encode_in::<H, T>(pool, packet))?;
        Ok(Encoded::new(frame))
    }

    /// Encodes `packet` once and queues the same frame to every listed session that is still live. Returns how
    /// many sessions it was queued to (closed sessions and ids no longer valid are skipped).
    pub fn broadcast<T: PacketOf<P::ServerToClient>>(
        &self,
        recipients: impl IntoIterator<Item = SessionId>,
        packet: &T,
    ) -> Result<usize, EncodeError> {
        let frame = self.encode(packet)?;
        Ok(recipients
            .into_iter()
            .filter_map(|id| self.sessions.get(id))
            .filter(|session| session.send_encoded(&frame).is_ok())
            .count())
    }

    /// Encodes `packet` once and sends it to sessions of the cluster named by their [`RemoteId`]s, wherever they
    /// are bound (a whisper to a player on another shard, an invitation to a party spread over shards). Each
    /// gateway gets the frame once per logic batch, with its recipients. Returns how many ids could be routed to a
    /// gateway; a session that is gone by the time its gateway gets the frame is skipped there. On an embedded
    /// server (no cluster) it reaches nobody and returns 0.
    ///
    /// [`RemoteId`]: crate::RemoteId
    pub fn send_remote<T: PacketOf<P::ServerToClient>>(
        &self,
        recipients: impl IntoIterator<Item = crate::RemoteId>,
        packet: &T,
    ) -> Result<usize, EncodeError> {
        let Some(directory) = &self.shared.directory else { return Ok(0) };
        let frame = self.encode(packet)?;
        let mut routed = 0;
        // One list for every recipient (`frames` drains it): no allocation per recipient.
        let mut one = Vec::with_capacity(1);
        for id in recipients {
            let Some(link) = directory.link(id) else { continue };
            one.push(frame.frame.clone());
            link.frames(id, &mut one);
            if !outbox::defer_link_flush(&link) {
                link.flush();
            }
            routed += 1;
        }
        Ok(routed)
    }

    /// Encodes `packet` once and queues it to every live session.
    pub fn broadcast_all<T: PacketOf<P::ServerToClient>>(&self, packet: &T) -> Result<usize, EncodeError> {
        let frame = self.encode(packet)?;
        Ok(self.sessions.iter().filter(|session| session.send_encoded(&frame).is_ok()).count())
    }

    /// Hands `session` over to whichever shard of the cluster owns `key` (the demo: the room a player enters),
    /// with `state` for that shard's [`Logic::on_arrive`]. The connection stays open: only the shard serving it
    /// changes. Frames sent to it before this call reach the client before any the new shard sends; its packets not
    /// handled here yet are passed on to the new shard, in order. Once the handler returns, `on_disconnect` runs
    /// for it here with [`CloseReason::HandedOver`], and sending to it fails.
    ///
    /// On an embedded server (a local session) this returns [`HandOverError::Local`] and does nothing.
    pub fn hand_over(&self, session: &Session<P>, key: &str, state: &impl prost::Message) -> Result<(), HandOverError> {
        if session.remote_id().is_none() {
            return Err(HandOverError::Local);
        }
        if !session.shared().hand_over(key.to_owned(), state.encode_to_vec()) {
            return Err(HandOverError::Closed);
        }
        self.handed_over.borrow_mut().push(session.id());
        Ok(())
    }

    /// Ticks run so far.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// The server's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics_snapshot()
    }
}

impl<P: Protocol> std::fmt::Debug for Context<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("sessions", &self.sessions.live)
            .field("tick", &self.tick)
            .field("shutting_down", &self.shutting_down)
            .finish()
    }
}

/// The usual context for the generated handler traits: the logic [`Context`] and the session a packet came from.
///
/// ```
/// use packet_runtime::{define_packets, Context, Logic, Packet, Request, Session};
///
/// #[derive(Clone, PartialEq, prost::Message, Packet)]
/// #[packet(id = 1010)]
/// pub struct CPing { #[prost(uint64, tag = "1")] pub client_time: u64 }
///
/// #[derive(Clone, PartialEq, prost::Message, Packet)]
/// #[packet(id = 1011)]
/// pub struct SPong { #[prost(uint64, tag = "1")] pub client_time: u64 }
///
/// define_packets! {
///     pub protocol PingProtocol {
///         client_to_server ClientPacket { CPing }
///         server_to_client ServerPacket { SPong }
///     }
/// }
///
/// struct Game;
///
/// impl ClientPacketHandler<Request<'_, '_, PingProtocol>> for Game {
///     fn on_c_ping(&mut self, req: &mut Request<'_, '_, PingProtocol>, ping: CPing) {
///         let _ = req.session.send(&SPong { client_time: ping.client_time });
///     }
/// }
///
/// impl Logic for Game {
///     type Protocol = PingProtocol;
///
///     fn on_packet(&mut self, ctx: &mut Context<'_, PingProtocol>, session: &Session<PingProtocol>, packet: ClientPacket) {
///         packet.dispatch(self, &mut Request::new(ctx, session));
///     }
/// }
/// ```
pub struct Request<'r, 'c, P: Protocol> {
    /// The logic thread's context (sessions, broadcast, ticks).
    pub ctx: &'r mut Context<'c, P>,
    /// The session the packet came from.
    pub session: &'r Session<P>,
}

impl<'r, 'c, P: Protocol> Request<'r, 'c, P> {
    /// Pairs a context with the session a packet came from.
    pub fn new(ctx: &'r mut Context<'c, P>, session: &'r Session<P>) -> Self {
        Request { ctx, session }
    }
}

impl<P: Protocol> std::fmt::Debug for Request<'_, '_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("session", &self.session.id()).finish_non_exhaustive()
    }
}

/// The logic thread's table of live sessions, indexed by slot.
struct Sessions<P: Protocol> {
    slots: Vec<Option<Session<P>>>,
    /// Per slot, the session's `session` span (info level: id and peer), entered around each of its handlers so
    /// that every line they log names the session. Created once per session, not per packet.
    spans: Vec<tracing::Span>,
    live: usize,
}

impl<P: Protocol> Sessions<P> {
    fn get(&self, id: SessionId) -> Option<&Session<P>> {
        self.slots.get(id.index())?.as_ref().filter(|s| s.id() == id)
    }

    fn insert(&mut self, session: Session<P>) {
        let index = session.id().index();
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
            self.spans.resize_with(index + 1, tracing::Span::none);
        }
        debug_assert!(self.slots[index].is_none(), "slot reused before release");
        self.spans[index] = tracing::info_span!("session", id = %session.id(), peer = %session.peer());
        self.slots[index] = Some(session);
        self.live += 1;
    }

    /// The session's span (a disabled one if the id is not live).
    fn span(&self, id: SessionId) -> &tracing::Span {
        const NONE: &tracing::Span = &tracing::Span::none();
        match self.slots.get(id.index()) {
            Some(Some(session)) if session.id() == id => &self.spans[id.index()],
            _ => NONE,
        }
    }

    /// Takes the session out, with its span (for its `on_disconnect`).
    fn remove(&mut self, id: SessionId) -> Option<(Session<P>, tracing::Span)> {
        let index = id.index();
        let slot = self.slots.get_mut(index)?;
        if slot.as_ref().is_some_and(|s| s.id() == id) {
            self.live -= 1;
            let span = std::mem::replace(&mut self.spans[index], tracing::Span::none());
            slot.take().map(|session| (session, span))
        } else {
            None
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Session<P>> {
        self.slots.iter().flatten()
    }
}

/// What crosses from the IO threads to the logic thread.
pub(crate) enum LogicEvent<P: Protocol> {
    Connected(Session<P>),
    /// A remote session handed over by another shard, with that shard's state for it.
    Arrived(Session<P>, Vec<u8>),
    Packet(SessionId, P::ClientToServer),
    /// A remote session's packet with its gateway's sequence number (hand-over bookkeeping).
    RemotePacket(SessionId, u64, P::ClientToServer),
    /// The peer ended its side of the stream after the packets queued before this event; close the session once
    /// they are handled, so the replies to them are written before the close.
    ///
    /// Like `Disconnected`, it comes through the unbounded inbox with how many events the session put in the
    /// bounded one before it (`None` for remote sessions, whose events all come through the unbounded one): the
    /// logic thread handles it once it has handled that many.
    ReadClosed(SessionId, Option<u64>),
    Disconnected(SessionId, CloseReason, Option<u64>),
    AcceptorStopped,
    Shutdown,
}

/// What the logic thread reports when it exits.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LogicReport {
    pub(crate) sessions_closed: u64,
    pub(crate) handler_panics: u64,
}

struct LogicLoop<L: Logic> {
    logic: L,
    sessions: Sessions<L::Protocol>,
    /// Sessions handed over from the handler running now (see [`Context::hand_over`]).
    handed_over: RefCell<Vec<SessionId>>,
    /// Remote sessions this shard handed over, until their gateway confirms (`Disconnected` with
    /// `HandedOver`): packets still in flight to here are bounced back through their link.
    moved: HashMap<SessionId, Session<L::Protocol>>,
    shared: Arc<ServerShared<L::Protocol>>,
    tick: u64,
    shutdown_deadline: Option<Instant>,
    acceptor_stopped: bool,
    report: LogicReport,
    /// Per slot: the session seen there last and how many of its events from the bounded inbox were handled.
    handled: Vec<(SessionId, u64)>,
    /// End-of-stream and disconnect reports that came before the session's last events from the bounded inbox:
    /// handled, in order, once those are.
    deferred: Vec<(SessionId, u64, LogicEvent<L::Protocol>)>,
}

/// The logic thread's own runtime (current-thread, timers only: it runs the tick and the shutdown deadline). Built
/// by `start` before the thread is spawned, so that failing to build it is an error `start` returns, not a panic on
/// the new thread.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_time().build()
}

/// Runs the logic thread to completion on `runtime` (from [`runtime`]): until shutdown was requested, the acceptor
/// stopped and every session's `on_disconnect` ran (or the shutdown timeout passed).
pub(crate) fn run<L: Logic>(
    logic: L,
    mut inbox: mpsc::UnboundedReceiver<LogicEvent<L::Protocol>>,
    mut io_inbox: super::inbox::Receiver<LogicEvent<L::Protocol>>,
    shared: Arc<ServerShared<L::Protocol>>,
    runtime: tokio::runtime::Runtime,
) -> LogicReport {
    let mut this = LogicLoop {
        logic,
        sessions: Sessions { slots: Vec::new(), spans: Vec::new(), live: 0 },
        handed_over: RefCell::new(Vec::new()),
        moved: HashMap::new(),
        shared,
        tick: 0,
        shutdown_deadline: None,
        acceptor_stopped: false,
        report: LogicReport::default(),
        handled: Vec::new(),
        deferred: Vec::new(),
    };
    // Everything the handlers send during a batch of events is staged here and handed over when the batch is done.
    let outbox = outbox::install(Arc::clone(&this.shared.spare_lists));
    runtime.block_on(async {
        let mut ticker = this.shared.config.tick.map(|period| {
            let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            ticker
        });
        let mut events = Vec::with_capacity(256);
        let mut io_events = Vec::with_capacity(256);
        loop {
            // The bounded inbox's occupancy before each batch: events in it plus room reserved for events about to
            // be sent, never more than its capacity (the inbox's semaphore).
            let depth = io_inbox.depth() as u64;
            let metrics = &this.shared.metrics;
            metrics.inbox_depth.store(depth, Ordering::Relaxed);
            metrics.inbox_peak.fetch_max(depth, Ordering::Relaxed);
            if let Some(export) = &metrics.export {
                export.inbox_depth.set(depth as f64);
            }
            let deadline = this.shutdown_deadline;
            // When the batch started (with metrics on), for its time.
            let batch_started = tokio::select! {
                biased;
                received = inbox.recv_many(&mut events, 256) => {
                    if received == 0 {
                        break;
                    }
                    let started = this.timer();
                    outbox::begin();
                    for event in events.drain(..) {
                        this.handle(event);
                    }
                    started
                }
                received = io_inbox.recv_many(&mut io_events, 256) => {
                    if received == 0 {
                        break;
                    }
                    let started = this.timer();
                    outbox::begin();
                    for event in io_events.drain(..) {
                        this.handle_io(event);
                    }
                    started
                }
                _ = next_tick(&mut ticker) => {
                    let started = this.timer();
                    outbox::begin();
                    this.on_tick();
                    started
                }
                _ = sleep_until_opt(deadline) => {
                    tracing::warn!(left = this.sessions.live, "shutdown timeout: closing the remaining sessions");
                    break;
                }
            };
            outbox::flush();
            if let (Some(started), Some(export)) = (batch_started, &this.shared.metrics.export) {
                export.batch.record(started.elapsed().as_secs_f64());
            }
            if this.finished() {
                break;
            }
        }
        outbox::begin();
        this.disconnect_remaining();
    });
    drop(outbox);
    this.report
}

/// Gives a packet that arrived after its session was handed over back to the session's gateway, re-encoded (the
/// payload decodes to the same packet; prost drops only unknown fields).
fn bounce<P: Protocol>(session: &Session<P>, seq: u64, packet: &P::ClientToServer) {
    let Some(remote) = session.shared().remote.as_ref() else { return };
    let frame =
        with_header!(session.shared().header, H => PacketPtr::encode_set_in::<H, _>(&session.shared().pool, packet));
    match frame {
        Ok(frame) => {
            remote.link.bounce(remote.id, seq, frame);
            remote.link.flush();
        }
        Err(error) => tracing::error!(session = %session.id(), %error, "could not re-encode a bounced packet"),
    }
}

async fn next_tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Builds a [`Context`] from disjoint field borrows, so `self.logic` stays mutably borrowable beside it.
macro_rules! context {
    ($this:ident) => {
        Context {
            sessions: &$this.sessions,
            shared: &$this.shared,
            tick: $this.tick,
            shutting_down: $this.shutdown_deadline.is_some(),
            handed_over: &$this.handed_over,
        }
    };
}

impl<L: Logic> LogicLoop<L> {
    /// Now, when the server exports metrics (handler and batch times); `None` (no clock read) otherwise.
    #[inline]
    fn timer(&self) -> Option<std::time::Instant> {
        self.shared.metrics.export.as_ref().map(|_| std::time::Instant::now())
    }

    /// Shutdown is done once every session is gone, including those handed over here and not yet confirmed by
    /// their gateway (until then this shard may still have their in-flight packets to give back).
    fn finished(&self) -> bool {
        self.shutdown_deadline.is_some() && self.acceptor_stopped && self.sessions.live == 0 && self.moved.is_empty()
    }

    fn handle(&mut self, event: LogicEvent<L::Protocol>) {
        let after = match &event {
            LogicEvent::ReadClosed(id, Some(after)) | LogicEvent::Disconnected(id, _, Some(after)) => {
                Some((*id, *after))
            }
            _ => None,
        };
        if let Some((id, after)) = after
            && (self.handled_of(id) != after || self.deferred.iter().any(|(deferred, ..)| *deferred == id))
        {
            // Some of the session's events from the bounded inbox are still on their way.
            self.deferred.push((id, after, event));
            return;
        }
        self.dispatch(event);
        self.finish_hand_overs();
    }

    /// An event from the bounded inbox: counted for its session, then the reports that waited for it.
    fn handle_io(&mut self, event: LogicEvent<L::Protocol>) {
        let id = match &event {
            LogicEvent::Connected(session) => {
                let id = session.id();
                let index = id.index();
                if self.handled.len() <= index {
                    self.handled.resize(index + 1, (id, 0));
                }
                self.handled[index] = (id, 0);
                Some(id)
            }
            LogicEvent::Packet(id, _) => Some(*id),
            _ => None,
        };
        if let Some(id) = id
            && let Some((seen, count)) = self.handled.get_mut(id.index())
            && *seen == id
        {
            *count += 1;
        }
        self.dispatch(event);
        self.finish_hand_overs();
        if let Some(id) = id {
            self.run_deferred(id);
        }
    }

    /// How many of `id`'s events from the bounded inbox were handled.
    fn handled_of(&self, id: SessionId) -> u64 {
        match self.handled.get(id.index()) {
            Some((seen, count)) if *seen == id => *count,
            _ => 0,
        }
    }

    /// Handles `id`'s deferred reports whose events have all been handled, in order.
    fn run_deferred(&mut self, id: SessionId) {
        while let Some(position) = self.deferred.iter().position(|(deferred, ..)| *deferred == id) {
            if self.deferred[position].1 != self.handled_of(id) {
                return;
            }
            let (_, _, event) = self.deferred.remove(position);
            self.dispatch(event);
            self.finish_hand_overs();
        }
    }

    /// Sessions a handler handed over leave this shard: `on_disconnect` with [`CloseReason::HandedOver`], and
    /// kept aside to bounce what is still in flight to here.
    fn finish_hand_overs(&mut self) {
        loop {
            let Some(id) = self.handed_over.borrow_mut().pop() else { return };
            let Some((session, span)) = self.sessions.remove(id) else { continue };
            self.disconnect_keeping_id(&session, &span, &CloseReason::HandedOver);
            self.moved.insert(id, session);
        }
    }

    fn dispatch(&mut self, event: LogicEvent<L::Protocol>) {
        match event {
            LogicEvent::Connected(session) => {
                let id = session.id();
                self.sessions.insert(session);
                let session = self.sessions.get(id).cloned().expect("just inserted");
                let _span = self.sessions.span(id).enter();
                let mut ctx = context!(self);
                let logic = &mut self.logic;
                if catch_unwind(AssertUnwindSafe(|| logic.on_connect(&mut ctx, &session))).is_err() {
                    self.report.handler_panics += 1;
                    session.shared().close(CloseReason::HandlerPanic);
                }
                if self.shutdown_deadline.is_some() {
                    session.shared().close(CloseReason::ServerShutdown);
                }
            }
            LogicEvent::Arrived(session, state) => {
                let id = session.id();
                self.sessions.insert(session);
                let session = self.sessions.get(id).cloned().expect("just inserted");
                let _span = self.sessions.span(id).enter();
                let mut ctx = context!(self);
                let logic = &mut self.logic;
                if catch_unwind(AssertUnwindSafe(|| logic.on_arrive(&mut ctx, &session, &state))).is_err() {
                    self.report.handler_panics += 1;
                    session.shared().close(CloseReason::HandlerPanic);
                }
                if self.shutdown_deadline.is_some() {
                    session.shared().close(CloseReason::ServerShutdown);
                }
            }
            LogicEvent::RemotePacket(id, seq, packet) => {
                if let Some(session) = self.moved.get(&id) {
                    // In flight when it was handed over: back to its gateway, which passes it on in order.
                    bounce(session, seq, &packet);
                    return;
                }
                if let Some(remote) = self.sessions.get(id).and_then(|session| session.shared().remote.as_ref()) {
                    remote.last_seq.store(seq, Ordering::Relaxed);
                }
                self.handle(LogicEvent::Packet(id, packet));
            }
            LogicEvent::Packet(id, packet) => {
                let Some(session) = self.sessions.get(id) else { return };
                if !session.is_open() {
                    // Closing (kicked, panicked, shutting down): what it still sends is not acted on.
                    return;
                }
                let _span = self.sessions.span(id).enter();
                let started = self.timer();
                let packet_id = packet.id();
                let mut ctx = context!(self);
                let logic = &mut self.logic;
                if catch_unwind(AssertUnwindSafe(|| logic.on_packet(&mut ctx, session, packet))).is_err() {
                    self.report.handler_panics += 1;
                    tracing::error!(session = %id, "packet handler panicked; closing the session");
                    session.shared().close(CloseReason::HandlerPanic);
                }
                if let (Some(started), Some(export)) = (started, &self.shared.metrics.export) {
                    export.handled(packet_id, started.elapsed().as_secs_f64());
                }
            }
            LogicEvent::ReadClosed(id, _) => {
                if let Some(session) = self.sessions.get(id) {
                    session.shared().close(CloseReason::PeerClosed);
                }
            }
            LogicEvent::Disconnected(id, reason, _) => {
                if self.moved.remove(&id).is_some() {
                    // The gateway confirmed the hand-over; `on_disconnect` ran when it started.
                    self.shared.ids.release(id);
                    return;
                }
                let Some((session, span)) = self.sessions.remove(id) else { return };
                self.disconnect(&session, &span, &reason);
            }
            LogicEvent::AcceptorStopped => self.acceptor_stopped = true,
            LogicEvent::Shutdown => self.start_shutdown(),
        }
    }

    fn disconnect(&mut self, session: &Session<L::Protocol>, span: &tracing::Span, reason: &CloseReason) {
        self.disconnect_keeping_id(session, span, reason);
        self.shared.ids.release(session.id());
    }

    /// `on_disconnect` without releasing the id (a handed-over session's id is released when its gateway confirms).
    fn disconnect_keeping_id(&mut self, session: &Session<L::Protocol>, span: &tracing::Span, reason: &CloseReason) {
        let _span = span.enter();
        let mut ctx = context!(self);
        let logic = &mut self.logic;
        if catch_unwind(AssertUnwindSafe(|| logic.on_disconnect(&mut ctx, session, reason))).is_err() {
            self.report.handler_panics += 1;
            tracing::error!(session = %session.id(), "on_disconnect panicked");
        }
        self.report.sessions_closed += 1;
    }

    fn start_shutdown(&mut self) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(Instant::now() + self.shared.config.shutdown_timeout);
        let mut ctx = context!(self);
        let logic = &mut self.logic;
        if catch_unwind(AssertUnwindSafe(|| logic.on_shutdown(&mut ctx))).is_err() {
            self.report.handler_panics += 1;
            tracing::error!("on_shutdown panicked");
        }
        // A shard that drains hands its sessions over from `on_shutdown`: they leave here, and are not closed.
        self.finish_hand_overs();
        for session in self.sessions.iter() {
            session.shared().close(CloseReason::ServerShutdown);
        }
    }

    fn on_tick(&mut self) {
        self.tick += 1;
        let mut ctx = context!(self);
        let logic = &mut self.logic;
        if catch_unwind(AssertUnwindSafe(|| logic.on_tick(&mut ctx))).is_err() {
            self.report.handler_panics += 1;
            tracing::error!("on_tick panicked");
        }
        self.finish_hand_overs();
    }

    /// After the shutdown timeout: sessions whose driver never reported get their `on_disconnect` now, so it still
    /// runs exactly once for every session the logic saw.
    fn disconnect_remaining(&mut self) {
        let remaining: Vec<_> = self.sessions.iter().map(|s| s.id()).collect();
        for id in remaining {
            if let Some((session, span)) = self.sessions.remove(id) {
                session.shared().abort(CloseReason::ServerShutdown);
                self.disconnect(&session, &span, &CloseReason::ServerShutdown);
            }
        }
    }
}
