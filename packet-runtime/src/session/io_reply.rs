//! Replies an IO hook sends to the session whose packet it is handling skip the session's queue.
//!
//! An [`IoHandler`](crate::server::IoHandler) runs inside the session's own driver, so a reply it sends to that
//! session (an echo, a pong) does not need the channel, its atomics, or the wake of a task that is already running:
//! while the driver parses, it opens a [`ReplyScope`] for its session, `Session::send` to that session puts the frame
//! in this thread's reply list, and the driver moves the list into its write batch when the parse is done. The byte
//! budget is charged exactly as for a queued frame. Sends to any other session, and sends from anywhere else, take
//! the queue as before.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::marker::PhantomData;

use super::SessionShared;
use crate::packet_ptr::PacketPtr;

thread_local! {
    /// The address of the session whose driver is parsing on this thread, 0 if none. Compared, never dereferenced.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    /// Frames sent to that session during the parse, in order.
    static REPLIES: RefCell<Vec<PacketPtr>> = const { RefCell::new(Vec::new()) };
}

/// Replies one parse can collect before the list grows (an 8 KiB read of 64-byte pings holds 128).
const REPLIES_CAPACITY: usize = 128;

/// Gives this thread's reply list its room now, so that the thread's first replies allocate nothing.
pub(crate) fn prepare_thread() {
    let _ = REPLIES.try_with(|replies| replies.try_borrow_mut().map(|mut replies| replies.reserve(REPLIES_CAPACITY)));
}

/// While alive, sends on this thread to `session` are collected for its driver instead of queued.
#[must_use = "the scope ends when dropped"]
pub(crate) struct ReplyScope {
    _not_send: PhantomData<*const ()>,
}

impl ReplyScope {
    pub(crate) fn enter(session: &SessionShared) -> Self {
        CURRENT.set(std::ptr::from_ref(session) as usize);
        ReplyScope { _not_send: PhantomData }
    }

    /// Whether anything was sent to the session in this scope.
    pub(crate) fn has_replies(&self) -> bool {
        REPLIES.try_with(|replies| replies.try_borrow().is_ok_and(|replies| !replies.is_empty())).unwrap_or(false)
    }

    /// Ends the scope, appending what was sent to the session to `batch`. The caller first moves into `batch`
    /// whatever is in the session's queue: frames this thread queued there (an IO hook of another session sending to
    /// this one) were sent before this parse and must not be overtaken.
    pub(crate) fn leave_into(self, batch: &mut VecDeque<PacketPtr>) {
        CURRENT.set(0);
        REPLIES.with(|replies| {
            if let Ok(mut replies) = replies.try_borrow_mut() {
                batch.extend(replies.drain(..));
            }
        });
    }
}

impl Drop for ReplyScope {
    /// Reached on `leave_into` (nothing left) or on unwinding out of a parse (a bug; the session is ending: its
    /// replies are dropped with it, never handed to the next session parsed on this thread, and not subtracted from
    /// its `queued_bytes`, which no longer matters).
    fn drop(&mut self) {
        CURRENT.set(0);
        let _ = REPLIES.try_with(|replies| replies.try_borrow_mut().map(|mut replies| replies.clear()));
    }
}

/// Takes `frame` for the session being parsed on this thread if that is `session`; gives it back otherwise.
pub(crate) fn take(session: &SessionShared, frame: PacketPtr) -> Result<(), PacketPtr> {
    if CURRENT.get() != std::ptr::from_ref(session) as usize {
        return Err(frame);
    }
    let mut frame = Some(frame);
    let _ = REPLIES.try_with(|replies| {
        if let Ok(mut replies) = replies.try_borrow_mut()
            && let Some(frame) = frame.take()
        {
            replies.push(frame);
        }
    });
    match frame {
        Some(frame) => Err(frame),
        None => Ok(()),
    }
}
