//! Remote sessions: a [`Session`](super::Session) whose connection lives in another process.
//!
//! Why here and not in the cluster crate: game code must not care where a session's socket is. A shard runs the same
//! [`Logic`](crate::Logic) as an embedded server, with the same `Session` handles; only what is behind a handle
//! differs. A local session queues frames for its driver; a remote one hands them to a [`RemoteLink`], which the
//! cluster layer implements (one link per gateway process) on whatever transport it uses. The runtime itself knows
//! no broker.
//!
//! What the runtime guarantees a link:
//! - calls for one session come in the order the game made them: frames, then at most one of close, abort or
//!   hand-over, then nothing more;
//! - on the logic thread, everything a batch of events sent is given to the link before [`RemoteLink::flush`] is
//!   called once at the end of that batch, so a link can send one message per destination per batch, and can see
//!   that one frame went to many of its sessions ([`PacketPtr::ptr_eq`]) and carry it once;
//! - from any other thread (an IO hook, a user thread), each call is followed by its own `flush`.

use std::fmt;

use crate::packet_ptr::PacketPtr;
use crate::session::CloseReason;

/// How a shard's remote sessions reach their connections. Implemented by the cluster layer, one per gateway.
///
/// Every method is called with the session's [`RemoteId`], the id its gateway gave it. No method may block: they
/// run on the logic thread. Buffer, and send from `flush` (or a task it wakes).
pub trait RemoteLink: Send + Sync + 'static {
    /// Frames for one session, in order, header included (as they go on the wire). `frames` is drained.
    fn frames(&self, session: RemoteId, frames: &mut Vec<PacketPtr>);
    /// Close the session after the frames given before. `abort`: drop what is still queued (slow consumer).
    fn close(&self, session: RemoteId, reason: &CloseReason, abort: bool);
    /// The session moves to whichever shard owns `hand_over.key`. Frames given before this go first; nothing more
    /// is sent for the session after it.
    fn hand_over(&self, session: RemoteId, hand_over: HandOver);
    /// A packet that reached this shard after its session was handed over (it was in flight). Give it back to the
    /// gateway, which forwards it to the new owner in order.
    fn bounce(&self, session: RemoteId, seq: u64, frame: PacketPtr);
    /// Send what the calls since the last `flush` queued.
    fn flush(&self);
}

/// Finds the link to any session of the cluster by its id, wherever it is bound: how a shard sends to a player of
/// another shard ([`Context::send_remote`](crate::Context::send_remote)). Implemented by the cluster layer.
pub trait RemoteDirectory: Send + Sync + 'static {
    /// The link that reaches `session` (its gateway's), if that gateway can be named.
    fn link(&self, session: RemoteId) -> Option<std::sync::Arc<dyn RemoteLink>>;
}

/// A gateway's id for one of its sessions: unique across the cluster and never reused (the gateway's node number
/// in the high bits, its own session counter in the low bits).
pub type RemoteId = u64;

/// What a hand-over carries to the new owner.
#[derive(Clone, PartialEq, Eq)]
pub struct HandOver {
    /// The key the application hands the session over to (the demo: the room it enters). Whoever owns the key in
    /// the cluster gets the session.
    pub key: String,
    /// The application's state for the session (an encoded prost message), given to the new owner's
    /// [`Logic::on_arrive`](crate::Logic::on_arrive).
    pub state: Vec<u8>,
    /// The sequence number of the last packet of this session the old owner handled. Later ones come back through
    /// [`RemoteLink::bounce`].
    pub last_seq: u64,
}

impl fmt::Debug for HandOver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandOver")
            .field("key", &self.key)
            .field("state_len", &self.state.len())
            .field("last_seq", &self.last_seq)
            .finish()
    }
}

/// What a [`Session`](super::Session) on a shard holds instead of a queue to a driver.
pub(crate) struct RemoteSink {
    pub(crate) link: std::sync::Arc<dyn RemoteLink>,
    pub(crate) id: RemoteId,
    /// The sequence number of the last packet handed to the logic thread's handlers. Written and read by the logic
    /// thread only; atomic only because the session's shared state is `Sync`.
    pub(crate) last_seq: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for RemoteSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSink").field("id", &self.id).finish_non_exhaustive()
    }
}
