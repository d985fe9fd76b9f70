//! The logic thread's outbox: frames that handlers queue during one batch of events, handed to each recipient's
//! driver at the end of the batch, all at once.
//!
//! Why: a chat to a room of 100 is 100 queue pushes. Pushed one at a time into each session's channel, every push
//! costs a handful of atomic read-modify-writes and wakes the recipient's driver from outside the IO runtime (an
//! inject-queue push, often a futex to unpark an IO thread), and a driver woken once per broadcast writes one or two
//! frames per `writev`. Staged here instead, a push is a `Vec::push` on the logic thread; at the end of the batch each
//! recipient's list is handed over whole and its driver woken once, and writes them together. docs/BENCHMARKS.md
//! has the before and after: 1.39x the deliveries per second of the same runtime handing frames over one by one.
//!
//! The hand-over (`SessionShared::deliver`): each session has one `pending` slot, an atomic pointer holding at most
//! one list. If the driver has not taken the previous list yet, the new frames are appended to it, so a driver that
//! falls behind finds one longer list, not one list per batch, and the lists in circulation stay at most three per
//! session (staged, pending, and the one its driver writes from). They come back through [`SpareLists`], which
//! makes them with room for [`LIST_CAPACITY`] frames and is provisioned with [`LISTS_PER_SESSION`] per session, so
//! the steady state allocates none. A `TakePending` command in the session's channel tells the driver to look; a
//! flag keeps it to one in the channel at a time.
//!
//! Order: the frames a session gets from the logic thread keep their order (one list per session per batch; lists
//! are handed over in batch order), and [`Session::close`](super::Session::close) on the logic thread hands over that
//! session's staged frames before the close, so a close still comes after everything sent before it. Sends from other
//! threads (IO hooks, user threads) go to the session's queue directly, as before; they were never ordered with the
//! logic thread's.
//!
//! Only a logic thread has an outbox: [`install`] puts one in a thread-local for the thread's lifetime, and the logic
//! loop calls [`begin`] before and [`flush`] after every batch of events, tick or shutdown step, before it waits
//! again. It stages only its
//! own server's sessions, so each `pending` slot has a single producer. Everywhere else [`stage`] declines and the
//! caller pushes to the queue directly.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_queue::ArrayQueue;

use super::remote::RemoteLink;
use super::{CloseReason, SendError, SessionShared};
use crate::packet_ptr::PacketPtr;

/// Emptied lists kept for reuse, per server.
const SPARE_LISTS: usize = 1024;
/// Frames a new list has room for: what one session is sent in a batch of events, or has waiting in its driver's
/// write batch, in all but unusual bursts (a driver writes up to 64 slices per call). Set when a list is made, so
/// that a list does not grow one reallocation at a time in the steady state: 512 bytes a list.
pub(crate) const LIST_CAPACITY: usize = 64;
/// Lists that grew beyond this many frames are freed rather than kept (bounds what the spares hold to 2 MiB per
/// server). A batch of 256 chats to rooms of half the server gives each recipient ~128 frames, so that size is kept.
const MAX_KEPT_CAPACITY: usize = 256;
/// Lists a local session can hold at once: the one the outbox stages for it during a batch of events, the one
/// waiting in its pending slot, and the one its driver writes from ([`SpareLists::provision`]).
pub(crate) const LISTS_PER_SESSION: usize = 3;

/// A list of frames for one session, boxed so that the `pending` slot holding it is one pointer wide (lock-free).
pub(crate) type FrameList = Box<Vec<PacketPtr>>;

/// Frame lists handed back by the drivers once drained, for the outbox to reuse; one per server, which also makes
/// it the server's identity for the outbox. Lock-free both ways.
pub(crate) struct SpareLists(ArrayQueue<FrameList>);

impl SpareLists {
    pub(crate) fn new() -> Self {
        SpareLists(ArrayQueue::new(SPARE_LISTS))
    }

    /// An empty list with room for at least [`LIST_CAPACITY`] frames.
    pub(crate) fn take(&self) -> FrameList {
        self.0.pop().unwrap_or_else(|| Box::new(Vec::with_capacity(LIST_CAPACITY)))
    }

    /// Keeps `list` for reuse if it is not oversized and there is room; frees it otherwise.
    pub(crate) fn give_back(&self, mut list: FrameList) {
        list.clear();
        if list.capacity() != 0 && list.capacity() <= MAX_KEPT_CAPACITY {
            let _ = self.0.push(list);
        }
    }

    /// Makes `lists` new lists for a session that starts (up to what the spares keep), so that the lists in use
    /// at once, at most [`LISTS_PER_SESSION`] per session, never find the spares empty: the steady state allocates
    /// none, however the lists in circulation peak. Past [`SPARE_LISTS`] (a server of more than 341 sessions
    /// that all have frames in flight at once) the excess is allocated and freed as before.
    pub(crate) fn provision(&self, lists: usize) {
        for _ in 0..lists {
            if self.0.is_full() || self.0.push(Box::new(Vec::with_capacity(LIST_CAPACITY))).is_err() {
                return;
            }
        }
    }

    /// Lists kept for reuse now.
    pub(crate) fn kept(&self) -> usize {
        self.0.len()
    }
}

impl std::fmt::Debug for SpareLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpareLists").field("kept", &self.kept()).finish()
    }
}

thread_local! {
    static OUTBOX: RefCell<Option<Outbox>> = const { RefCell::new(None) };
}

struct Outbox {
    /// Whether the logic loop is handling a batch (events, a tick, a shutdown step), i.e. will call [`flush`] before
    /// it waits again. Outside of that (a task spawned on the logic thread's runtime) sends are not staged: nothing
    /// would hand them over until the next event.
    active: bool,
    /// One entry per session staged in this batch, in the order they were first sent to.
    staged: Vec<Staged>,
    /// The server whose logic thread this is (its spare lists): only its sessions are staged.
    server: Arc<SpareLists>,
    /// Links of remote sessions given frames or commands during this batch, flushed once at its end (a shard's
    /// broadcast then leaves as one message per gateway).
    links: Vec<Arc<dyn RemoteLink>>,
}

struct Staged {
    session: Arc<SessionShared>,
    frames: FrameList,
    /// Bytes in `frames`, not yet counted in the session's `queued_bytes`.
    bytes: usize,
    /// The session's `queued_bytes` when last read. The queue limit is checked against it plus `bytes`, and the live
    /// counter is read again only when that check fails: reading it per frame would pull its cache line from the IO
    /// thread that writes it after every write.
    queued_before: usize,
}

/// Gives the current thread an outbox for the sessions of the server `server` identifies until the guard is dropped;
/// the guard's drop hands over what is still staged.
pub(crate) fn install(server: Arc<SpareLists>) -> InstallGuard {
    OUTBOX.with(|cell| {
        *cell.borrow_mut() = Some(Outbox { active: false, staged: Vec::new(), server, links: Vec::new() })
    });
    InstallGuard { _not_send: std::marker::PhantomData }
}

/// Removes the thread's outbox (after a last [`flush`]) when dropped.
#[must_use = "the outbox is removed when the guard is dropped"]
pub(crate) struct InstallGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for InstallGuard {
    fn drop(&mut self) {
        flush();
        let _ = OUTBOX.try_with(|cell| cell.borrow_mut().take());
    }
}

/// What [`stage`] did with a frame.
pub(crate) enum Staging {
    /// Staged (or refused: queue over its limit).
    Done(Result<(), SendError>),
    /// This thread has no outbox: push the frame to the session's queue directly.
    Declined(PacketPtr),
}

/// Runs `f` on this thread's outbox; `None` if the thread has none (or is exiting). A borrow cannot be outstanding
/// here (nothing the outbox calls sends), but declining costs nothing.
fn with_outbox<R>(f: impl FnOnce(&mut Outbox) -> R) -> Option<R> {
    OUTBOX.try_with(|cell| cell.try_borrow_mut().ok()?.as_mut().map(f)).ok().flatten()
}

/// Stages `frame` for `session` if this thread is the logic thread of the session's server, handling a batch.
pub(crate) fn stage(session: &Arc<SessionShared>, frame: PacketPtr) -> Staging {
    let mut frame = Some(frame);
    let mut result = Ok(());
    with_outbox(|outbox| {
        if outbox.active
            && Arc::ptr_eq(&outbox.server, &session.spares)
            && let Some(frame) = frame.take()
        {
            result = outbox.stage(session, frame);
        }
    });
    // Still here: not staged.
    match frame {
        Some(frame) => Staging::Declined(frame),
        None => Staging::Done(result),
    }
}

/// Starts staging: the logic loop calls this before it runs handlers and [`flush`] once they are done.
pub(crate) fn begin() {
    with_outbox(|outbox| outbox.active = true);
}

/// Hands every staged list to its session's driver (one command and one wake per session) and stops staging.
pub(crate) fn flush() {
    with_outbox(Outbox::flush);
}

/// Whether this thread is a logic thread handling a batch, which will flush `link` at the end of it (then `link` is
/// noted for that). `false`: the caller flushes it now.
pub(crate) fn defer_link_flush(link: &Arc<dyn RemoteLink>) -> bool {
    with_outbox(|outbox| {
        if !outbox.active {
            return false;
        }
        if !outbox.links.iter().any(|noted| Arc::ptr_eq(noted, link)) {
            outbox.links.push(Arc::clone(link));
        }
        true
    })
    .unwrap_or(false)
}

/// Hands `session`'s staged frames (if this thread staged any) to its driver now, ahead of a close.
pub(crate) fn flush_session(session: &SessionShared) {
    with_outbox(|outbox| {
        let Some(entry) = outbox.entry(session) else { return };
        let mut frames = std::mem::replace(&mut entry.frames, session.spares.take());
        let bytes = std::mem::take(&mut entry.bytes);
        match &session.remote {
            // The outbox is borrowed here: note the link directly (`deliver` could not).
            Some(remote) => {
                remote.link.frames(remote.id, &mut frames);
                session.spares.give_back(frames);
                if outbox.active && !outbox.links.iter().any(|noted| Arc::ptr_eq(noted, &remote.link)) {
                    outbox.links.push(Arc::clone(&remote.link));
                } else if !outbox.active {
                    remote.link.flush();
                }
            }
            None => session.deliver(frames, bytes),
        }
    });
}

impl Outbox {
    /// The entry for `session`, if this outbox staged it in this batch. The session remembers its entry's index
    /// (`outbox_slot`, index + 1); the entry is checked to be this session's, so a stale index only costs a new
    /// entry, never a misdelivery.
    fn entry(&mut self, session: &SessionShared) -> Option<&mut Staged> {
        let index = session.outbox_slot.load(Ordering::Relaxed).checked_sub(1)?;
        self.staged.get_mut(index).filter(|entry| std::ptr::eq(Arc::as_ptr(&entry.session), session))
    }

    fn stage(&mut self, session: &Arc<SessionShared>, frame: PacketPtr) -> Result<(), SendError> {
        let index = match session.outbox_slot.load(Ordering::Relaxed).checked_sub(1) {
            Some(index) if self.staged.get(index).is_some_and(|entry| Arc::ptr_eq(&entry.session, session)) => index,
            _ => {
                let frames = self.server.take();
                let queued_before = session.handover.queued_bytes.load(Ordering::Relaxed);
                self.staged.push(Staged { session: Arc::clone(session), frames, bytes: 0, queued_before });
                let index = self.staged.len() - 1;
                session.outbox_slot.store(index + 1, Ordering::Relaxed);
                index
            }
        };
        let entry = &mut self.staged[index];
        let len = frame.len();
        if entry.queued_before + entry.bytes + len > session.queue_limit {
            entry.queued_before = session.handover.queued_bytes.load(Ordering::Relaxed);
            if entry.queued_before + entry.bytes + len > session.queue_limit {
                session.metrics.queue_overflow();
                session.abort(CloseReason::SlowConsumer);
                return Err(SendError::QueueFull);
            }
        }
        entry.bytes += len;
        entry.frames.push(frame);
        Ok(())
    }

    fn flush(&mut self) {
        for entry in self.staged.drain(..) {
            entry.session.outbox_slot.store(0, Ordering::Relaxed);
            if entry.frames.is_empty() {
                self.server.give_back(entry.frames);
            } else if let Some(remote) = &entry.session.remote {
                // Still `active`: the link is noted, not flushed per session.
                let mut frames = entry.frames;
                remote.link.frames(remote.id, &mut frames);
                if !self.links.iter().any(|noted| Arc::ptr_eq(noted, &remote.link)) {
                    self.links.push(Arc::clone(&remote.link));
                }
                self.server.give_back(frames);
            } else {
                entry.session.deliver(entry.frames, entry.bytes);
            }
        }
        self.active = false;
        for link in self.links.drain(..) {
            link.flush();
        }
    }
}
