//! Sessions: the handle game code holds for one connection, and its send queue.
//!
//! A [`Session`] is a cheap, cloneable, `Send` handle. It holds the session's send queue, never the socket: the
//! socket belongs to the session's driver on an IO thread. Once the session is closed every `send` returns
//! [`SendError::Closed`]; the handle cannot reach another connection because it never looks anything up by slot.
//!
//! - `id`: [`SessionId`], generational; never valid again after `on_disconnect`.
//! - `close`: [`CloseReason`], [`CloseKind`], [`BadFrame`].

mod close;
mod id;

use core::fmt;
use core::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;

pub use close::{BadFrame, CloseKind, CloseReason};
pub use id::SessionId;
pub(crate) use id::SessionIds;

use crate::frame::{Compact, HeaderKind, Wide};
use crate::metrics::Metrics;
use crate::packet_ptr::{EncodeError, PacketPtr};
use crate::pool::MessagePool;
use crate::transport::PeerAddr;
use crate::{PacketOf, PacketSet, Protocol};

/// Sending to a session failed. Nothing was queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed or closing.
    #[error("session is closed")]
    Closed,
    /// The send queue would exceed its byte limit; the session is being closed as a slow consumer.
    #[error("send queue over its limit; session closed as a slow consumer")]
    QueueFull,
    /// The packet could not be encoded (too large for the frame header).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// What flows from a [`Session`] to its driver, in order.
#[derive(Debug)]
pub(crate) enum Command {
    /// A frame to write.
    Frame(PacketPtr),
    /// Flush what was queued before, then close.
    Close,
}

/// The state a session's handles and its driver share.
pub(crate) struct SessionShared {
    pub(crate) id: SessionId,
    pub(crate) peer: PeerAddr,
    tx: mpsc::UnboundedSender<Command>,
    /// Bytes queued and not yet written (frames in the channel plus the driver's current batch).
    pub(crate) queued_bytes: AtomicUsize,
    queue_limit: usize,
    /// Set once a close was requested: new sends are refused from then on.
    closing: AtomicBool,
    /// Set when the driver must stop at once without flushing (slow consumer).
    pub(crate) abort: AtomicBool,
    /// The first reason given wins.
    pub(crate) reason: OnceLock<CloseReason>,
    pub(crate) header: HeaderKind,
    pub(crate) pool: MessagePool,
    pub(crate) metrics: Arc<Metrics>,
}

impl SessionShared {
    pub(crate) fn new(
        id: SessionId,
        peer: PeerAddr,
        queue_limit: usize,
        header: HeaderKind,
        pool: MessagePool,
        metrics: Arc<Metrics>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(SessionShared {
            id,
            peer,
            tx,
            queued_bytes: AtomicUsize::new(0),
            queue_limit,
            closing: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            reason: OnceLock::new(),
            header,
            pool,
            metrics,
        });
        (shared, rx)
    }

    pub(crate) fn is_closing(&self) -> bool {
        // Relaxed: a send racing a close may go either way; the channel itself orders what the driver sees.
        self.closing.load(Ordering::Relaxed)
    }

    /// Queues a frame. Lock-free: an atomic add for the byte budget and a lock-free channel push.
    pub(crate) fn push(&self, frame: PacketPtr) -> Result<(), SendError> {
        if self.is_closing() {
            return Err(SendError::Closed);
        }
        let len = frame.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > self.queue_limit {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.metrics.queue_overflow();
            self.abort(CloseReason::SlowConsumer);
            return Err(SendError::QueueFull);
        }
        self.tx.send(Command::Frame(frame)).map_err(|_| SendError::Closed)
    }

    /// Graceful close: frames queued before this call are still written (up to the flush deadline).
    pub(crate) fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        if !self.closing.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(Command::Close);
        }
    }

    /// Refuses later sends without waking the driver (the driver itself is closing).
    pub(crate) fn close_quietly(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Immediate close: queued frames are dropped.
    pub(crate) fn abort(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        // Release: the driver that sees `abort` also sees the reason.
        self.abort.store(true, Ordering::Release);
        self.closing.store(true, Ordering::Release);
        // Wakes the driver; the command itself is ignored once `abort` is seen.
        let _ = self.tx.send(Command::Close);
    }

    pub(crate) fn encode<T: crate::Packet>(&self, packet: &T) -> Result<PacketPtr, EncodeError> {
        match self.header {
            HeaderKind::Compact => PacketPtr::encode_in::<Compact, T>(&self.pool, packet),
            HeaderKind::Wide => PacketPtr::encode_in::<Wide, T>(&self.pool, packet),
        }
    }
}

/// A handle to one connected peer. Cheap to clone, `Send + Sync`; holds no reference to the socket.
pub struct Session<P: Protocol> {
    shared: Arc<SessionShared>,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> Session<P> {
    pub(crate) fn from_shared(shared: Arc<SessionShared>) -> Self {
        Session { shared, _protocol: PhantomData }
    }

    pub(crate) fn shared(&self) -> &Arc<SessionShared> {
        &self.shared
    }

    /// This session's id.
    pub fn id(&self) -> SessionId {
        self.shared.id
    }

    /// The peer's address.
    pub fn peer(&self) -> &PeerAddr {
        &self.shared.peer
    }

    /// Encodes `packet` into a pooled frame and queues it. Only the protocol's server-to-client packets compile here.
    ///
    /// Returns [`SendError::Closed`] once the session is closing or gone; never panics.
    pub fn send<T: PacketOf<P::ServerToClient>>(&self, packet: &T) -> Result<(), SendError> {
        if self.shared.is_closing() {
            return Err(SendError::Closed);
        }
        let frame = self.shared.encode(packet)?;
        self.shared.push(frame)
    }

    /// Queues a frame encoded once for many recipients (see `Context::encode`).
    pub fn send_encoded(&self, frame: &Encoded<P::ServerToClient>) -> Result<(), SendError> {
        self.shared.push(frame.frame.clone())
    }

    /// Sends `packet`, then closes the session once it (and everything queued before it) is written.
    pub fn kick<T: PacketOf<P::ServerToClient>>(&self, packet: &T) -> Result<(), SendError> {
        let sent = self.send(packet);
        self.close();
        sent
    }

    /// Closes the session after what is already queued has been written (up to the server's flush deadline).
    /// `on_disconnect` follows with [`CloseReason::Closed`] unless another reason came first.
    pub fn close(&self) {
        self.shared.close(CloseReason::Closed);
    }

    /// Whether the session still accepts packets.
    pub fn is_open(&self) -> bool {
        !self.shared.is_closing()
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Relaxed)
    }
}

impl<P: Protocol> Clone for Session<P> {
    fn clone(&self) -> Self {
        Session { shared: Arc::clone(&self.shared), _protocol: PhantomData }
    }
}

impl<P: Protocol> fmt::Debug for Session<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("id", &self.shared.id).field("peer", &self.shared.peer).finish()
    }
}

/// A packet of set `S` encoded once into a pooled frame, to be queued to many sessions without copying.
pub struct Encoded<S: PacketSet> {
    pub(crate) frame: PacketPtr,
    _set: PhantomData<fn() -> S>,
}

impl<S: PacketSet> Encoded<S> {
    pub(crate) fn new(frame: PacketPtr) -> Self {
        Encoded { frame, _set: PhantomData }
    }

    /// The whole frame, header included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.frame
    }
}

impl<S: PacketSet> Clone for Encoded<S> {
    fn clone(&self) -> Self {
        Encoded::new(self.frame.clone())
    }
}

impl<S: PacketSet> fmt::Debug for Encoded<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoded").field("len", &self.frame.len()).finish()
    }
}
