//! Sessions: the handle game code holds for one connection, and its send queue.
//!
//! A [`Session`] is a cheap, cloneable, `Send` handle. It holds the session's send queue, never the socket: the
//! socket belongs to the session's driver on an IO thread. Once the session is closed every `send` returns
//! [`SendError::Closed`]; the handle cannot reach another connection because it never looks anything up by slot.
//!
//! - `id`: [`SessionId`], generational; never valid again after `on_disconnect`.
//! - [`CloseReason`], [`CloseKind`], [`BadFrame`] live in the crate's `close` module and are re-exported here.
//! - `io_reply`: replies an IO hook sends to the session it is handling go straight into that session's write
//!   batch.
//! - `outbox`: the logic thread's staging of frames per batch of events (one hand-over and one wake per recipient
//!   per batch instead of per frame).

mod id;
pub(crate) mod io_reply;
pub(crate) mod outbox;
pub mod remote;

use core::fmt;
use core::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;

pub use crate::close::{BadFrame, CloseKind, CloseReason};
pub use id::SessionId;
pub(crate) use id::SessionIds;
use outbox::{FrameList, SpareLists};
use remote::RemoteSink;

use crate::frame::{HeaderKind, with_header};
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
    /// Frames to write, in order: many for the price of one command and one wake (a gateway passing on what a
    /// shard sent).
    Frames(FrameList),
    /// The logic thread's outbox left frames in the session's `pending` slot: take them (in order, at this point of
    /// the queue). At most one of these is in the queue at a time.
    TakePending,
    /// Flush what was queued before, then close.
    Close,
}

/// The `pending` slot: one atomic word holding at most one [`FrameList`] (an owned `Box`, or null).
///
/// An `AtomicPtr`, not crossbeam's `AtomicCell<Option<Box<_>>>` (what it was): `AtomicCell` moves the box through
/// an integer atomic, which drops the pointer's provenance, and Miri reports taking the box back out as undefined
/// behaviour ("dangling box ... has no provenance", `session::tests::delivered_lists_arrive_whole_in_order_and_never_strand`,
/// docs/SAFETY.md). `AtomicPtr` keeps provenance.
struct PendingSlot(AtomicPtr<Vec<PacketPtr>>);

impl PendingSlot {
    const fn new() -> Self {
        PendingSlot(AtomicPtr::new(std::ptr::null_mut()))
    }

    /// Puts `list` in the slot; returns what was there.
    fn swap(&self, list: Option<FrameList>) -> Option<FrameList> {
        let new = list.map_or(std::ptr::null_mut(), Box::into_raw);
        // AcqRel: the list's contents are published to the taker (Release) and the previous list's are seen (Acquire).
        let old = self.0.swap(new, Ordering::AcqRel);
        // SAFETY: every non-null pointer in the slot came from `Box::into_raw` above and is owned by the slot alone;
        // the swap took it out, so it is turned back into a box exactly once.
        (!old.is_null()).then(|| unsafe { Box::from_raw(old) })
    }

    fn take(&self) -> Option<FrameList> {
        self.swap(None)
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        drop(self.take());
    }
}

/// What senders and the driver share: the byte count of the queue and the logic thread's pending list.
/// 64-byte aligned (a cache line on the machines this targets; `CachePadded`'s 128 bytes cost idle sessions more).
#[repr(align(64))]
pub(crate) struct Handover {
    /// Bytes queued and not yet written: frames in the channel, in `pending` and in the driver's batch. Frames the
    /// logic thread's outbox stages are added when it hands them over, at the end of its batch.
    pub(crate) queued_bytes: AtomicUsize,
    /// Frames the logic thread handed over that the driver has not taken yet: at most one list, appended to while
    /// it waits. Written only by the server's logic thread (its outbox), taken only by the driver.
    pending: PendingSlot,
    /// Whether a [`Command::TakePending`] is in the queue and not yet seen by the driver.
    take_queued: AtomicBool,
}

/// The state a session's handles and its driver share.
pub(crate) struct SessionShared {
    pub(crate) id: SessionId,
    pub(crate) peer: PeerAddr,
    tx: mpsc::UnboundedSender<Command>,
    queue_limit: usize,
    /// Index + 1 of this session's entry in the outbox of the logic thread that staged it this batch; 0 if none.
    /// Only a hint: the outbox checks the entry is this session's.
    outbox_slot: AtomicUsize,
    /// What senders and the driver both write, on a cache line of its own: the driver writes it after every write
    /// and the logic thread once per batch, while the other fields are read for every frame the logic thread
    /// stages.
    pub(crate) handover: Handover,
    /// The server's spare lists (also its identity for the outbox).
    pub(crate) spares: Arc<SpareLists>,
    /// Set once a close was requested: new sends are refused from then on.
    closing: AtomicBool,
    /// Set when the driver must stop at once without flushing (slow consumer).
    pub(crate) abort: AtomicBool,
    /// The first reason given wins.
    pub(crate) reason: OnceLock<CloseReason>,
    pub(crate) header: HeaderKind,
    pub(crate) pool: MessagePool,
    pub(crate) metrics: Arc<Metrics>,
    /// Set for a session whose connection is in another process (a shard's session, held by a gateway): frames go
    /// to its link instead of `tx`, whose receiver is dropped at once.
    pub(crate) remote: Option<RemoteSink>,
}

impl SessionShared {
    #[allow(clippy::too_many_arguments)] // one constructor, called once, by the acceptor
    pub(crate) fn new(
        id: SessionId,
        peer: PeerAddr,
        queue_limit: usize,
        header: HeaderKind,
        pool: MessagePool,
        metrics: Arc<Metrics>,
        spares: Arc<SpareLists>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        // The lists the session can hold at once come with it, so that the steady state allocates none.
        spares.provision(outbox::LISTS_PER_SESSION);
        (Self::build(id, peer, tx, queue_limit, header, pool, metrics, spares, None), rx)
    }

    /// A remote session's shared state: frames go to `remote`'s link. No queue limit applies here: the gateway that
    /// holds the connection enforces it.
    pub(crate) fn new_remote(
        id: SessionId,
        peer: PeerAddr,
        header: HeaderKind,
        pool: MessagePool,
        metrics: Arc<Metrics>,
        spares: Arc<SpareLists>,
        remote: RemoteSink,
    ) -> Arc<Self> {
        // No driver takes from the queue: its receiver is dropped at once.
        let (tx, _) = mpsc::unbounded_channel();
        Self::build(id, peer, tx, usize::MAX, header, pool, metrics, spares, Some(remote))
    }

    #[allow(clippy::too_many_arguments)] // the two constructors above, nothing else
    fn build(
        id: SessionId,
        peer: PeerAddr,
        tx: mpsc::UnboundedSender<Command>,
        queue_limit: usize,
        header: HeaderKind,
        pool: MessagePool,
        metrics: Arc<Metrics>,
        spares: Arc<SpareLists>,
        remote: Option<RemoteSink>,
    ) -> Arc<Self> {
        Arc::new(SessionShared {
            id,
            peer,
            tx,
            queue_limit,
            outbox_slot: AtomicUsize::new(0),
            handover: Handover {
                queued_bytes: AtomicUsize::new(0),
                pending: PendingSlot::new(),
                take_queued: AtomicBool::new(false),
            },
            spares,
            closing: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            reason: OnceLock::new(),
            header,
            pool,
            metrics,
            remote,
        })
    }

    /// Runs `op` on the session's link, then has the link send it: at the end of the logic thread's batch if this
    /// is the logic thread handling one, at once otherwise.
    fn with_link(&self, remote: &RemoteSink, op: impl FnOnce(&dyn remote::RemoteLink)) {
        op(&*remote.link);
        if !outbox::defer_link_flush(&remote.link) {
            remote.link.flush();
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        // Relaxed: a send racing a close may go either way; the channel itself orders what the driver sees.
        self.closing.load(Ordering::Relaxed)
    }

    /// Queues a frame. On the logic thread it is staged in the outbox (a `Vec` push, counted against the limit
    /// there) and handed over at the end of the batch; from an IO hook to the session it is handling it goes straight
    /// to the driver's batch; elsewhere it goes to the lock-free channel. No path takes a lock.
    pub(crate) fn push(self: &Arc<Self>, frame: PacketPtr) -> Result<(), SendError> {
        if self.is_closing() {
            return Err(SendError::Closed);
        }
        let frame = match outbox::stage(self, frame) {
            outbox::Staging::Done(result) => return result,
            outbox::Staging::Declined(frame) => frame,
        };
        if let Some(remote) = &self.remote {
            self.with_link(remote, |link| link.frames(remote.id, &mut vec![frame]));
            return Ok(());
        }
        let len = frame.len();
        let before = self.handover.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > self.queue_limit {
            self.handover.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.metrics.queue_overflow();
            self.abort(CloseReason::SlowConsumer);
            return Err(SendError::QueueFull);
        }
        match io_reply::take(self, frame) {
            Ok(()) => Ok(()),
            Err(frame) => self.tx.send(Command::Frame(frame)).map_err(|_| SendError::Closed),
        }
    }

    /// Queues several frames at once, in order, with one command and one wake of the driver. All or none: over the
    /// queue limit the session is closed as a slow consumer and nothing is queued.
    pub(crate) fn push_all(&self, frames: impl IntoIterator<Item = PacketPtr>) -> Result<(), SendError> {
        if self.is_closing() {
            return Err(SendError::Closed);
        }
        let mut list = self.spares.take();
        list.extend(frames);
        if list.is_empty() {
            self.spares.give_back(list);
            return Ok(());
        }
        if let Some(remote) = &self.remote {
            self.with_link(remote, |link| link.frames(remote.id, &mut list));
            self.spares.give_back(list);
            return Ok(());
        }
        let len: usize = list.iter().map(|frame| frame.len()).sum();
        let before = self.handover.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > self.queue_limit {
            self.handover.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.spares.give_back(list);
            self.metrics.queue_overflow();
            self.abort(CloseReason::SlowConsumer);
            return Err(SendError::QueueFull);
        }
        self.tx.send(Command::Frames(list)).map_err(|_| SendError::Closed)
    }

    /// Hands a list of frames staged by the outbox to the driver: appended to the list still waiting in `pending` if
    /// there is one, else left there with one [`Command::TakePending`] to wake the driver. If the driver is gone
    /// they are counted as dropped, like the frames it had not written. Only the server's logic thread calls this.
    pub(crate) fn deliver(&self, mut frames: FrameList, bytes: usize) {
        if let Some(remote) = &self.remote {
            self.with_link(remote, |link| link.frames(remote.id, &mut frames));
            self.spares.give_back(frames);
            return;
        }
        self.handover.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        let list = match self.handover.pending.take() {
            Some(mut waiting) => {
                waiting.append(&mut frames);
                self.spares.give_back(frames);
                waiting
            }
            None => frames,
        };
        // Single producer: nothing else stores into `pending`, so it is still empty here. (Were it not, the
        // displaced list would be dropped below, never lost silently: counted as dropped.)
        let displaced = self.handover.pending.swap(Some(list));
        // The driver clears `take_queued` before it takes `pending` (`take_pending`). Both sides order the flag
        // against their swap on `pending` with a SeqCst fence, so either the driver's take sees this list, or this
        // swap of the flag sees it cleared and queues a new `TakePending`: a list is never left without a command.
        std::sync::atomic::fence(Ordering::SeqCst);
        let must_queue = !self.handover.take_queued.swap(true, Ordering::AcqRel);
        if (must_queue && self.tx.send(Command::TakePending).is_err()) || self.tx.is_closed() {
            self.drop_pending();
        }
        if let Some(displaced) = displaced {
            let bytes: usize = displaced.iter().map(|frame| frame.len()).sum();
            self.handover.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.frames_dropped(displaced.len());
        }
    }

    /// The driver's side of [`deliver`](Self::deliver): takes the frames waiting in `pending`.
    pub(crate) fn take_pending(&self) -> Option<FrameList> {
        self.handover.take_queued.store(false, Ordering::Release);
        std::sync::atomic::fence(Ordering::SeqCst);
        self.handover.pending.take()
    }

    /// The driver is gone: frames still waiting are dropped and counted.
    pub(crate) fn drop_pending(&self) -> usize {
        let Some(list) = self.handover.pending.take() else { return 0 };
        let bytes: usize = list.iter().map(|frame| frame.len()).sum();
        self.handover.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.frames_dropped(list.len());
        list.len()
    }

    fn frames_dropped(&self, count: usize) {
        self.metrics.dropped(count as u64);
    }

    /// Graceful close: frames queued before this call are still written (up to the flush deadline), including
    /// those this thread's outbox staged.
    pub(crate) fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        if !self.closing.swap(true, Ordering::AcqRel) {
            outbox::flush_session(self);
            match &self.remote {
                Some(remote) => {
                    let reason = self.reason.get().cloned().unwrap_or(CloseReason::Closed);
                    self.with_link(remote, |link| link.close(remote.id, &reason, false));
                }
                None => {
                    let _ = self.tx.send(Command::Close);
                }
            }
        }
    }

    /// Moves a remote session to the owner of `key`: refuses further sends, hands over what this batch staged for
    /// it, then tells its link. `false` if the session is local or already closing.
    pub(crate) fn hand_over(&self, key: String, state: Vec<u8>) -> bool {
        let Some(remote) = &self.remote else { return false };
        if self.closing.swap(true, Ordering::AcqRel) {
            return false;
        }
        let _ = self.reason.set(CloseReason::HandedOver);
        outbox::flush_session(self);
        let last_seq = remote.last_seq.load(Ordering::Relaxed);
        self.with_link(remote, |link| link.hand_over(remote.id, remote::HandOver { key, state, last_seq }));
        true
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
        if let Some(remote) = &self.remote {
            if !self.closing.swap(true, Ordering::AcqRel) {
                let reason = self.reason.get().cloned().unwrap_or(CloseReason::SlowConsumer);
                self.with_link(remote, |link| link.close(remote.id, &reason, true));
            }
            return;
        }
        self.closing.store(true, Ordering::Release);
        // Wakes the driver; the command itself is ignored once `abort` is seen.
        let _ = self.tx.send(Command::Close);
    }

    pub(crate) fn encode<T: crate::Packet>(&self, packet: &T) -> Result<PacketPtr, EncodeError> {
        with_header!(self.header, H => PacketPtr::encode_in::<H, T>(&self.pool, packet))
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

    /// Queues frames encoded once for many recipients, in order, as one hand-over to the session's driver (one
    /// command and one wake for all of them, where `send_encoded` costs one each). All or none: if they would take
    /// the queue past what it may hold at all (the burst cap, `send_queue_limit` times
    /// `ServerConfig::SEND_QUEUE_BURST_FACTOR`), nothing is queued and the session is cut off as a slow consumer. For code off the
    /// logic thread that has several frames for one session at once (a cluster's gateway); on the logic thread
    /// `send_encoded` is batched per recipient already.
    pub fn send_encoded_all<'a>(
        &self,
        frames: impl IntoIterator<Item = &'a Encoded<P::ServerToClient>>,
    ) -> Result<(), SendError> {
        self.shared.push_all(frames.into_iter().map(|frame| frame.frame.clone()))
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

    /// For a session on a shard whose connection is held by a gateway: the gateway's id for it, unique across the
    /// cluster and never reused. `None` for a session of this process's own listener.
    pub fn remote_id(&self) -> Option<remote::RemoteId> {
        self.shared.remote.as_ref().map(|remote| remote.id)
    }

    /// Bytes queued and not yet written. Frames the logic thread sent in the batch of events it is handling now
    /// are not in it until the batch ends. Always 0 for a remote session ([`remote_id`](Self::remote_id)): its
    /// queue is on the gateway, which enforces the limit.
    pub fn queued_bytes(&self) -> usize {
        self.shared.handover.queued_bytes.load(Ordering::Relaxed)
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

    /// The pooled frame itself.
    pub fn as_frame(&self) -> &PacketPtr {
        &self.frame
    }

    /// Copies a whole frame encoded elsewhere (header included, `header` layout) into one block of `pool`, to be
    /// queued to many sessions, checking that it is one well-formed frame of a packet of `S`. The payload is not
    /// decoded: this is how a gateway passes on what a shard encoded, once, to all its recipients.
    pub fn from_frame(pool: &MessagePool, header: HeaderKind, bytes: &[u8]) -> Result<Self, FrameError> {
        let (size, id) = with_header!(header, H => <H as crate::frame::FrameHeader>::read(bytes))
            .ok_or(FrameError::Truncated { len: bytes.len() })?;
        if size != bytes.len() {
            return Err(FrameError::SizeMismatch { size, len: bytes.len() });
        }
        if !S::contains(id) {
            return Err(FrameError::UnknownId { id });
        }
        let mut builder = crate::PacketBuilder::with_capacity_in(pool, bytes.len());
        builder.extend_from_slice(bytes);
        builder.set_header_len(header.header_len());
        Ok(Encoded::new(builder.freeze()))
    }
}

/// A frame given to [`Encoded::from_frame`] was not one well-formed frame of the expected packet set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Shorter than a header.
    #[error("{len} bytes are shorter than a frame header")]
    Truncated {
        /// The bytes given.
        len: usize,
    },
    /// The header's size field does not match the bytes given.
    #[error("frame header says {size} bytes, {len} given")]
    SizeMismatch {
        /// The size field.
        size: usize,
        /// The bytes given.
        len: usize,
    },
    /// The id is not a packet of the set.
    #[error("packet id {id} is not in the set")]
    UnknownId {
        /// The id read.
        id: u16,
    },
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::outbox::SpareLists;
    use super::{Command, SessionIds, SessionShared};
    use crate::frame::HeaderKind;
    use crate::metrics::Metrics;
    use crate::packet_ptr::{PacketBuilder, PacketPtr};
    use crate::pool::{MessagePool, PoolConfig};
    use crate::transport::PeerAddr;

    fn frame(pool: &MessagePool, seq: u32) -> PacketPtr {
        let mut builder = PacketBuilder::with_capacity_in(pool, 4);
        builder.extend_from_slice(&seq.to_le_bytes());
        builder.freeze()
    }

    /// The hand-over between the logic thread (`deliver`) and a driver (`TakePending`, `take_pending`) on two real
    /// threads: every frame arrives once, in order, and none is left in the slot without a command to fetch it,
    /// whether the driver keeps up (a list per command) or falls behind (lists appended to the waiting one).
    #[test]
    fn delivered_lists_arrive_whole_in_order_and_never_strand() {
        // Miri runs this ~100x slower; 300 frames still go through lists taken at once and lists appended to.
        const FRAMES: u32 = if cfg!(miri) { 300 } else { 200_000 };
        let pool = MessagePool::new(PoolConfig::default());
        let spares = Arc::new(SpareLists::new());
        let id = SessionIds::default().allocate();
        let (shared, mut rx) = SessionShared::new(
            id,
            PeerAddr::Memory(0),
            usize::MAX,
            HeaderKind::Compact,
            pool.clone(),
            Arc::new(Metrics::default()),
            Arc::clone(&spares),
        );
        let producer = {
            let shared = Arc::clone(&shared);
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut seq = 0;
                let mut size = 1;
                while seq < FRAMES {
                    let mut list = Box::new(Vec::new());
                    for _ in 0..size.min(FRAMES - seq) {
                        list.push(frame(&pool, seq));
                        seq += 1;
                    }
                    let bytes = list.len() * 4;
                    shared.deliver(list, bytes);
                    size = size % 37 + 1;
                    if seq % 4096 < 37 {
                        std::thread::yield_now();
                    }
                }
            })
        };
        // A list left in the slot without a command would leave this loop waiting: it fails at the deadline
        // instead of hanging (generous: the run takes well under a second).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut next = 0u32;
        while next < FRAMES {
            match rx.try_recv() {
                Ok(Command::TakePending) => {
                    if let Some(mut list) = shared.take_pending() {
                        for frame in list.drain(..) {
                            assert_eq!(frame.as_slice(), next.to_le_bytes(), "frame out of order");
                            next += 1;
                        }
                        spares.give_back(list);
                    }
                }
                Ok(other) => panic!("unexpected command {other:?}"),
                Err(_) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{} frames stranded without a command",
                        FRAMES - next
                    );
                    std::thread::yield_now();
                }
            }
        }
        producer.join().unwrap();
        assert!(shared.take_pending().is_none(), "frames delivered twice or left behind");
        assert_eq!(shared.handover.queued_bytes.load(Ordering::Relaxed), FRAMES as usize * 4);
    }
}
