//! The session driver: one task per connection, on an IO thread, owning the socket.
//!
//! It is a hand-written poll loop rather than a reader task plus a writer task: one task per connection, no split
//! lock, and no buffer held while the socket is idle.
//!
//! - Reads go into an 8 KiB buffer on the stack of `poll` and are parsed in place; only the tail of a frame that is
//!   not complete yet is copied into the session's `partial` buffer, which is freed as soon as it is empty and the
//!   socket has nothing more to read. An idle session holds no read buffer.
//! - Writes drain the session's queue (single frames from any thread; a `TakePending` for the list the logic
//!   thread's outbox left in the session's pending slot) and the IO hook's own replies into a batch of pooled frames,
//!   and hand its front to the socket with one `write_vectored` call of up to [`BATCH`] slices, resuming mid-frame
//!   after a partial write. Frames of 512 bytes and more are slices of their own, not copied; runs of smaller ones
//!   are copied into the IO thread's gather buffer and go as one slice (the kernel's cost per slice is far above a
//!   copy of a few dozen bytes). The queue's waker is registered last, even when the batch is full, so a close or
//!   an abort always wakes the driver. The batch's buffer is a frame list borrowed from the server's spare lists
//!   while it holds frames (`write_batch`): an idle session holds no write buffer either.
//! - Nothing here allocates in the steady state: the IO thread's own buffers are set up when it starts
//!   ([`prepare_io_thread`]), the batch borrows lists made at their full size, and the queue is drained without
//!   tokio's `try_recv` (which can park the thread on a parker it allocates; see `drain_queue`).
//! - One timer serves the idle timeout and, once closing, the flush deadline.
//! - `Drop` drops whatever was still queued and the disconnect is reported to the logic thread exactly once,
//!   whatever ended the driver (including the IO runtime being shut down), after the socket itself is closed (the
//!   report is the driver's last field), so `connections_open` and `on_disconnect` never run ahead of the close.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant as StdInstant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::ServerShared;
use super::auth::{AuthFault, AuthFuture, AuthRequest, Verdict};
use super::inbox::{RoomWaiter, TrySendError};
use super::io_hook::{BadFrameAction, FrameAction, IoAction};
use super::logic::LogicEvent;
use super::rate_limit::TokenBucket;
use super::write_batch::WriteBatch;
use crate::close::TransportFault;
use crate::export::PacketRun;
use crate::frame::{FrameHeader, RawFrame, parse_frame, with_header};
use crate::handshake::{CONTROL_ID, HandshakeFault, Hello, HelloKind};
use crate::packet_ptr::{PacketBuilder, PacketPtr};
use crate::pool::MessagePool;
use crate::session::io_reply::ReplyScope;
use crate::session::{BadFrame, CloseReason, Command, Session, SessionId};
use crate::{PacketSet, Protocol};

/// Slices handed to one `write_vectored` call at most (well under IOV_MAX = 1024).
pub(crate) const BATCH: usize = 64;
/// Frames shorter than this are copied into the IO thread's gather buffer rather than given their own slice.
const GATHER_BELOW: usize = 512;
/// Bytes gathered per `write_vectored` call at most: the size of each IO thread's gather buffer. Small enough that
/// re-gathering for a peer whose window takes a few KiB at a time stays cheap, large enough for a batch of small
/// frames to go in one call.
const GATHER_CAP: usize = 16 * 1024;
/// Bytes read per `poll_read` call.
const READ_CHUNK: usize = 8 * 1024;
/// Reads per poll before yielding to other tasks, so one flooding peer cannot starve its IO thread.
const READS_PER_POLL: usize = 16;
/// How often a lingering session asks the kernel whether the peer has acknowledged everything.
pub(crate) const LINGER_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// How far away "never" is for the shared timer.
const FAR: std::time::Duration = std::time::Duration::from_secs(86_400 * 365);

/// What the driver needs from its transport beyond reading and writing (see [`Listener`](crate::Listener)'s
/// methods of the same names), as plain function pointers so that the driver stays generic over the stream alone.
pub(crate) struct StreamHooks<S> {
    pub(crate) abortive_close: fn(&S),
    pub(crate) unacknowledged: fn(&S) -> Option<usize>,
}

impl<S> StreamHooks<S> {
    pub(crate) fn of<L: crate::Listener<Stream = S>>() -> Self {
        StreamHooks { abortive_close: L::abortive_close, unacknowledged: L::unacknowledged }
    }
}

pub(crate) struct Driver<P: Protocol, S> {
    stream: S,
    hooks: StreamHooks<S>,
    /// Set when the peer does not read what it is sent (slow consumer, a flush or linger deadline passed with bytes
    /// still unsent or unacknowledged, the shutdown timeout): the socket is then closed with a reset, so that the
    /// kernel frees its buffers at once instead of keeping them for a peer that never takes them.
    abortive: bool,
    session: Session<P>,
    rx: mpsc::UnboundedReceiver<Command>,
    server: Arc<ServerShared<P>>,
    /// Bytes of a frame that is not complete yet.
    partial: Vec<u8>,
    /// Frames taken from the queue, not yet fully written; `head_written` bytes of the first are on the wire. Its
    /// buffer is borrowed from the server's spare lists while it holds frames (see `write_batch`).
    batch: WriteBatch,
    head_written: usize,
    needs_flush: bool,
    /// Whether the close notice (the application's last packet before a close the runtime initiates) was queued.
    notice_queued: bool,
    /// Frames that reached the queue after the close notice and were dropped (see `on_command`).
    dropped_after_notice: u64,
    state: State,
    /// When the last complete frame arrived: the idle timeout counts from here.
    last_frame: Instant,
    rate: Option<TokenBucket>,
    /// A packet for the logic thread that found its inbox full: nothing more is read (nor parsed) until it is in.
    stall: Option<Stall<P>>,
    /// Set until the session is admitted (its hello matched, its authentication accepted): the logic thread does
    /// not know it yet.
    admission: Option<AdmissionSteps>,
    /// Set while the authenticating frame, kept aside during the hook's decision, is parsed again once the session
    /// is admitted: it was counted in the metrics when it arrived, so it is not counted twice.
    recounted: bool,
    /// Whether a complete frame has arrived yet: a hello is only accepted as the first.
    seen_frame: bool,
    /// Waits for room in the logic thread's inbox while stalled. One per session, reused by every stall: it boxes
    /// its wait on the session's first stall only (`inbox::RoomWaiter`).
    inbox_room: RoomWaiter,
    /// Events this session put in the logic thread's bounded inbox, its `Connected` included: its end-of-stream and
    /// disconnect reports carry it, so the logic thread handles them after those.
    sent: u64,
    /// Since when the session's queue is over `send_queue_limit` (a burst, or a peer that does not read).
    over_limit_since: Option<Instant>,
    /// The byte rate limit's bucket: one token per byte read.
    byte_rate: Option<TokenBucket>,
    counters: Counters,
    /// Declared last, so dropped last: the disconnect is reported once the socket and everything else the driver
    /// held are gone.
    end: EndReport<P>,
}

/// What a session still has to do before the game hears of it.
struct AdmissionSteps {
    /// The logic thread cannot close a session it does not know at shutdown: the driver watches the stop signal.
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The server requires a hello and it has not come yet.
    hello: bool,
    /// With an authentication hook: by when it must have accepted.
    deadline: Option<Instant>,
    /// The hook's decision in progress (nothing more is read meanwhile), and the authenticating frame: once
    /// accepted it goes the way of every frame (the IO hook, then the game), first.
    deciding: Option<(AuthFuture, Vec<u8>)>,
}

/// A packet waiting for room in the logic thread's inbox, and since when.
struct Stall<P: Protocol> {
    event: LogicEvent<P>,
    since: StdInstant,
}

impl<P: Protocol> Stall<P> {
    fn admits(&self) -> bool {
        matches!(self.event, LogicEvent::Connected(_))
    }
}

/// Reports a session's end to the metrics and the logic thread when dropped (after the driver's other fields).
struct EndReport<P: Protocol> {
    server: Arc<ServerShared<P>>,
    id: SessionId,
    /// Set by the driver's `Drop`.
    reason: Option<CloseReason>,
    /// The IP address counted against `max_connections_per_address`, released here.
    address: Option<std::net::IpAddr>,
    dropped: u64,
    /// Events the session put in the bounded inbox (see `Driver::sent`).
    sent: u64,
    /// Whether the session's `Connected` reached the logic thread. One that never did (it closed during the
    /// handshake or the authentication) is unknown there: its id is released here and nothing is reported.
    admitted: bool,
    /// Whether it still counts among the connections waiting to authenticate (`ServerShared::auth_pending`).
    auth_pending: bool,
}

impl<P: Protocol> Drop for EndReport<P> {
    fn drop(&mut self) {
        let reason = self.reason.take().unwrap_or(CloseReason::ServerShutdown);
        if self.auth_pending {
            self.server.auth_pending.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(ip) = self.address {
            self.server.release_address(ip);
        }
        let metrics = &self.server.metrics;
        metrics.ended(reason.kind(), self.dropped);
        // In the session's span: the driver (and so this report) is dropped inside it.
        tracing::info!(%reason, dropped = self.dropped, "session closed");
        if self.admitted {
            let _ = self.server.inbox.send(LogicEvent::Disconnected(self.id, reason, Some(self.sent)));
        } else {
            metrics.connections_unadmitted.fetch_add(1, Ordering::Relaxed);
            self.server.ids.release(self.id);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The peer ended its side of the stream (it may only have half-closed and still be reading). Nothing more is
    /// read; queued and future replies are still written until the logic thread, having handled every packet that
    /// came before the end of stream, closes the session (or the deadline passes).
    ReadClosed {
        deadline: Instant,
    },
    /// Flushing what is queued, until the deadline.
    Closing {
        deadline: Instant,
    },
    /// Flushed and write side shut down; reading and discarding until the peer closes (so that unread input does
    /// not turn our close into a reset that could destroy the last frames we sent), until the deadline.
    Lingering {
        deadline: Instant,
    },
}

#[derive(Debug)]
struct Counters {
    frames_in: u64,
    bytes_in: u64,
    frames_out: u64,
    bytes_out: u64,
    /// `write_vectored` calls, for `MetricsSnapshot::write_calls` (how batched the writes are).
    write_calls: u64,
    /// Frames read and written per packet, when the server exports metrics (`crate::export`).
    in_run: PacketRun,
    out_run: PacketRun,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            frames_in: 0,
            bytes_in: 0,
            frames_out: 0,
            bytes_out: 0,
            write_calls: 0,
            in_run: PacketRun::new(crate::Direction::ClientToServer),
            out_run: PacketRun::new(crate::Direction::ServerToClient),
        }
    }
}

impl<P: Protocol, S: AsyncRead + AsyncWrite + Unpin> Driver<P, S> {
    pub(crate) fn new(
        stream: S,
        hooks: StreamHooks<S>,
        session: Session<P>,
        rx: mpsc::UnboundedReceiver<Command>,
        server: Arc<ServerShared<P>>,
        address: Option<std::net::IpAddr>,
        admitted: bool,
    ) -> Self {
        let rate = server.config.rate_limit.map(|limit| TokenBucket::new(limit, StdInstant::now()));
        let byte_rate = server.config.byte_rate_limit.map(|limit| {
            // A burst below one read could refuse any read at all.
            let burst = limit.burst.max(READ_CHUNK as u32);
            TokenBucket::new(super::RateLimit { burst, ..limit }, StdInstant::now())
        });
        let inbox_room = server.io_inbox.room_waiter();
        let end = EndReport {
            server: Arc::clone(&server),
            id: session.id(),
            reason: None,
            address,
            dropped: 0,
            sent: 0,
            admitted,
            auth_pending: !admitted && server.auth.is_some(),
        };
        let admission = (!admitted).then(|| AdmissionSteps {
            stop: Box::pin(server.stop_accepting.clone().cancelled_owned()),
            hello: server.config.handshake.required,
            deadline: server.auth.as_ref().map(|_| Instant::now() + server.config.auth.deadline),
            deciding: None,
        });
        Driver {
            stream,
            hooks,
            abortive: false,
            session,
            rx,
            server,
            partial: Vec::new(),
            batch: WriteBatch::new(),
            head_written: 0,
            needs_flush: false,
            notice_queued: false,
            dropped_after_notice: 0,
            state: State::Open,
            last_frame: Instant::now(),
            rate,
            stall: None,
            admission,
            recounted: false,
            seen_frame: false,
            inbox_room,
            // The acceptor queued the `Connected` of an admitted session.
            sent: u64::from(admitted),
            over_limit_since: None,
            byte_rate,
            counters: Counters::default(),
            end,
        }
    }

    /// Drives the session until it closes. The disconnect is reported by `Drop`.
    pub(crate) async fn run(mut self) {
        let hook = &*self.server.io_handler;
        if catch_unwind(AssertUnwindSafe(|| hook.on_open(&self.session))).is_err() {
            tracing::error!(session = %self.session.id(), "IO hook panicked in on_open; closing the session");
            let _ = self.session.shared().reason.set(CloseReason::HandlerPanic);
            return;
        }
        let mut timer = pin!(tokio::time::sleep(self.server.config.idle_timeout.unwrap_or(FAR)));
        let reason = poll_fn(|cx| {
            let mut poll = self.poll_drive(cx, timer.as_mut());
            if poll.is_pending() && self.register_queue_waker(cx) {
                // A command slipped in before the waker was registered: come back for it at once.
                cx.waker().wake_by_ref();
                poll = Poll::Pending;
            }
            if poll.is_pending() {
                // Waiting: a batch written out gives its buffer back, so an idle session holds none.
                self.batch.release(&self.session.shared().spares);
            }
            self.flush_counters();
            poll
        })
        .await;
        let _ = self.session.shared().reason.set(reason);
    }

    fn poll_drive(&mut self, cx: &mut Context<'_>, mut timer: Pin<&mut Sleep>) -> Poll<CloseReason> {
        // Replies queued while reading (an IO hook answering a ping) are written in the same poll, once.
        let mut wrote_after_read = false;
        loop {
            let shared = self.session.shared();
            if shared.abort.load(Ordering::Acquire) {
                self.abortive = true;
                return Poll::Ready(shared.reason.get().cloned().unwrap_or(CloseReason::SlowConsumer));
            }
            if let Poll::Ready(Err(e)) = self.poll_send(cx) {
                return Poll::Ready(CloseReason::Io(e.kind()));
            }
            if self.over_limit_for_too_long() {
                self.server.metrics.queue_overflow();
                let _ = self.session.shared().reason.set(CloseReason::SlowConsumer);
                self.abortive = true;
                return Poll::Ready(self.close_reason());
            }
            match self.state {
                State::Open => {}
                State::ReadClosed { deadline } => {
                    let expired = self.poll_deadline(cx, timer.as_mut(), deadline);
                    if expired.is_ready() && !self.batch.is_empty() {
                        self.abortive = true;
                    }
                    return expired;
                }
                State::Closing { deadline } => {
                    if self.batch.is_empty() && !self.needs_flush && self.rx.is_empty() {
                        if !self.notice_queued {
                            // Everything queued before the close is written: the notice goes last.
                            self.notice_queued = true;
                            if let Some(frame) = self.server.notice_for(&self.close_reason()) {
                                let shared = self.session.shared();
                                shared.handover.queued_bytes.fetch_add(frame.len(), Ordering::Relaxed);
                                self.batch.for_pushing(&shared.spares).push_back(frame);
                                continue;
                            }
                        }
                        // Everything queued before the close is on the wire: half-close, then linger.
                        let _ = ready!(Pin::new(&mut self.stream).poll_shutdown(cx));
                        self.state = State::Lingering { deadline };
                        continue;
                    }
                    // Not flushed by the deadline: the peer does not read.
                    let expired = self.poll_deadline(cx, timer.as_mut(), deadline);
                    self.abortive |= expired.is_ready();
                    return expired;
                }
                State::Lingering { deadline } => {
                    if self.poll_discard(cx).is_ready() {
                        return Poll::Ready(self.close_reason());
                    }
                    let unacknowledged = (self.hooks.unacknowledged)(&self.stream);
                    if unacknowledged == Some(0) {
                        // The peer has everything we sent (and our FIN): closing now loses nothing, so the
                        // session need not wait for the peer to close, nor for the deadline.
                        return Poll::Ready(self.close_reason());
                    }
                    let expired = if unacknowledged.is_some() {
                        // The kernel does not say when the peer acknowledges: look again shortly.
                        self.poll_deadline(cx, timer.as_mut(), deadline.min(Instant::now() + LINGER_POLL))
                            .map(|reason| (Instant::now() >= deadline).then_some(reason))
                    } else {
                        self.poll_deadline(cx, timer.as_mut(), deadline).map(Some)
                    };
                    match expired {
                        Poll::Ready(Some(reason)) => {
                            // Still unacknowledged at the deadline: the peer does not read.
                            self.abortive = unacknowledged.is_some_and(|bytes| bytes > 0);
                            return Poll::Ready(reason);
                        }
                        Poll::Ready(None) => continue,
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }

            // Not admitted yet: the logic thread cannot close this session at shutdown, so it closes itself.
            if let Some(admission) = &mut self.admission
                && admission.stop.as_mut().poll(cx).is_ready()
            {
                self.begin_close(Some(CloseReason::ServerShutdown));
                continue;
            }
            // The authentication hook deciding: nothing is read until it has.
            let deciding = match self.poll_decision(cx) {
                Poll::Ready(Ok(true)) => continue,
                Poll::Ready(Ok(false)) => false,
                Poll::Ready(Err(reason)) => {
                    let _ = self.session.shared().reason.set(reason);
                    return Poll::Ready(self.close_reason());
                }
                Poll::Pending => true,
            };

            // Open. A packet waiting for room in the logic thread's inbox goes first; until it is in, nothing is
            // read, so TCP flow control pushes back on the peer. Writes went on above; the idle clock is stopped.
            match if deciding { Poll::Ready(Ok(())) } else { self.poll_unstall(cx) } {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(reason)) => {
                    let _ = self.session.shared().reason.set(reason);
                    return Poll::Ready(self.close_reason());
                }
                Poll::Ready(Ok(())) if self.stall.is_some() || self.state != State::Open => continue,
                Poll::Ready(Ok(())) => {}
            }

            // Read what arrived.
            match if deciding { Poll::Pending } else { self.poll_receive(cx) } {
                Poll::Ready(Ok(true)) => {
                    // Read budget used up: let other sessions run, come back at once.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(Ok(false)) => continue, // state changed (closing): re-run the loop
                Poll::Ready(Err(reason)) => {
                    let _ = self.session.shared().reason.set(reason.clone());
                    return Poll::Ready(self.close_reason());
                }
                Poll::Pending => {
                    let nothing_to_write = self.rx.is_empty() && self.batch.is_empty();
                    if !wrote_after_read && !nothing_to_write {
                        wrote_after_read = true;
                        continue;
                    }
                }
            }
            // Idle timeout, and the end of the grace of a queue over its limit (checked at the top of the loop).
            let idle_due = self.server.config.idle_timeout.map(|idle| self.last_frame + idle);
            let grace_due = self.over_limit_since.map(|since| since + self.server.config.send_queue_grace);
            let auth_due = self.admission.as_ref().and_then(|admission| admission.deadline);
            let Some(due) = idle_due.into_iter().chain(grace_due).chain(auth_due).min() else { return Poll::Pending };
            let now = Instant::now();
            if auth_due.is_some_and(|auth_due| now >= auth_due) {
                self.admission = None;
                self.begin_close(Some(CloseReason::Auth(AuthFault::Timeout(self.server.config.auth.deadline))));
                continue;
            }
            if idle_due.is_some_and(|idle_due| now >= idle_due) {
                // Graceful, so that the peer gets the notice saying why.
                self.begin_close(Some(CloseReason::IdleTimeout));
                continue;
            }
            if now >= due {
                continue;
            }
            if timer.deadline() != due {
                timer.as_mut().reset(due);
            }
            return match timer.as_mut().poll(cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => Poll::Pending,
            };
        }
    }

    /// Puts the stalled packet (if any) into the logic thread's inbox once there is room, then handles the frames
    /// read behind it (which may stall again). `Pending` while the inbox is full (the driver is woken when it has
    /// room).
    fn poll_unstall(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CloseReason>> {
        if self.stall.is_none() {
            return Poll::Ready(Ok(()));
        }
        let Ok(room) = ready!(self.inbox_room.poll_reserve(cx)) else {
            return Poll::Ready(Err(CloseReason::ServerShutdown));
        };
        let Some(stall) = self.stall.take() else { return Poll::Ready(Ok(())) };
        let admits = stall.admits();
        let Stall { event, since } = stall;
        self.server.io_inbox.send_reserved(room, event);
        self.sent += 1;
        self.end.admitted |= admits;
        // The time the server did not read counts neither toward the idle timeout nor against the rate limits:
        // what the peer sent meanwhile waited in the kernel and now arrives at once.
        let paused = since.elapsed();
        for bucket in [&mut self.rate, &mut self.byte_rate].into_iter().flatten() {
            bucket.forgive(paused);
        }
        self.last_frame = Instant::now();
        // The frames read after the stalled one.
        if !self.partial.is_empty() {
            self.on_bytes(&[])?;
        }
        Poll::Ready(Ok(()))
    }

    /// Hands a packet to the logic thread, or stalls the session on it when the inbox is full.
    fn forward(&mut self, event: LogicEvent<P>) -> Result<(), CloseReason> {
        let admits = matches!(event, LogicEvent::Connected(_));
        match self.server.io_inbox.try_send(event) {
            Ok(()) => {
                self.sent += 1;
                self.end.admitted |= admits;
                Ok(())
            }
            Err(TrySendError::Full(event)) => {
                self.server.metrics.inbox_stalls.fetch_add(1, Ordering::Relaxed);
                self.stall = Some(Stall { event, since: StdInstant::now() });
                Ok(())
            }
            // The logic thread only stops after every session reported its disconnect, so this cannot happen while
            // the server runs; if it does (logic thread gone), the session closes.
            Err(TrySendError::Closed(_)) => Err(CloseReason::ServerShutdown),
        }
    }

    /// Whether the queue has been over `send_queue_limit` for longer than `send_queue_grace`: the recipient does
    /// not drain what it is sent. Slowness is judged by what it fails to drain over time, not by one burst's size:
    /// a burst may take the queue to the hard bound (`SessionShared::queue_limit`) while an attentive recipient
    /// drains it.
    fn over_limit_for_too_long(&mut self) -> bool {
        let queued = self.session.shared().handover.queued_bytes.load(Ordering::Relaxed);
        if queued <= self.server.config.send_queue_limit {
            self.over_limit_since = None;
            return false;
        }
        let now = Instant::now();
        let since = *self.over_limit_since.get_or_insert(now);
        now >= since + self.server.config.send_queue_grace
    }

    fn close_reason(&self) -> CloseReason {
        self.session.shared().reason.get().cloned().unwrap_or(CloseReason::Closed)
    }

    fn poll_deadline(
        &mut self,
        cx: &mut Context<'_>,
        mut timer: Pin<&mut Sleep>,
        deadline: Instant,
    ) -> Poll<CloseReason> {
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.poll(cx) {
            Poll::Ready(()) => Poll::Ready(self.close_reason()),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Starts a graceful close: stop reading, flush what is queued, then close.
    fn begin_close(&mut self, reason: Option<CloseReason>) {
        if !matches!(self.state, State::Open | State::ReadClosed { .. }) {
            return;
        }
        let shared = self.session.shared();
        if let Some(reason) = reason {
            let _ = shared.reason.set(reason);
        }
        // Later sends are refused; the ones already queued are flushed.
        shared.close_quietly();
        self.state = State::Closing { deadline: Instant::now() + self.server.config.close_flush_timeout };
    }

    /// Moves queued frames into the batch and writes them until the queue is empty or the socket is full.
    /// `Ready(Ok)` when there is nothing left to write, `Pending` when the socket or the flush is pending.
    ///
    /// The queue is polled with a no-op waker here: the driver registers its real waker on the queue only when it
    /// is about to return `Pending` ([`register_queue_waker`](Self::register_queue_waker)). Otherwise a reply the
    /// IO hook queues while this very poll is reading (an echo, a pong) would wake the running task, and tokio
    /// answers a task waking itself by re-queueing it and waking an idle worker to steal it: a futex wake (and an
    /// eventfd write when that worker sleeps in epoll) per read, measured at ~9x the baseline's futex calls in the
    /// echo benchmark (docs/BENCHMARKS.md).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut quiet = Context::from_waker(Waker::noop());
        loop {
            while self.batch.len() < BATCH {
                match self.rx.poll_recv(&mut quiet) {
                    Poll::Ready(Some(command)) => self.on_command(command),
                    // The session's shared state owns a sender, so the queue never ends while we run.
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            if self.batch.is_empty() {
                if self.needs_flush {
                    ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
                    self.needs_flush = false;
                }
                return Poll::Ready(Ok(()));
            }
            ready!(self.poll_write_batch(cx))?;
        }
    }

    fn on_command(&mut self, command: Command) {
        let shared = self.session.shared();
        if self.notice_queued {
            // The close notice is the session's last frame. A send can still arrive behind it: one that passed the
            // open check before the close (a reply the logic thread staged in its outbox during the batch that
            // closed the session reaches the queue at the batch's end). It is dropped, not written after the notice.
            let (count, bytes) = match command {
                Command::Frame(frame) => (1, frame.len()),
                Command::Frames(frames) => (frames.len(), frames.iter().map(|frame| frame.len()).sum()),
                Command::TakePending => {
                    // Counted in `frames_dropped` and `queued_bytes` by `drop_pending` itself.
                    shared.drop_pending();
                    (0, 0)
                }
                Command::Close => (0, 0),
            };
            shared.handover.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.dropped_after_notice += count as u64;
            return;
        }
        match command {
            Command::Frame(frame) => self.batch.for_pushing(&shared.spares).push_back(frame),
            Command::Frames(frames) => self.batch.append(&shared.spares, frames),
            Command::TakePending => {
                if let Some(frames) = shared.take_pending() {
                    self.batch.append(&shared.spares, frames);
                }
            }
            Command::Close => self.begin_close(None),
        }
    }

    /// Moves every command already in the queue into the batch, in order, without parking the thread.
    ///
    /// Not `try_recv`: when a sender on another thread has taken the next slot of the queue and not yet written it,
    /// tokio's `try_recv` parks the IO thread until it has (with a thread parker it allocates on a thread's first
    /// such wait), and wakes this very task first. Nor plain `poll_recv`, which stops at tokio's cooperative budget
    /// and would leave part of the queue behind. Unconstrained `poll_recv` with a no-op waker (see
    /// [`poll_send`](Self::poll_send) for why no-op), and a yield while a send is half done: its sender is between
    /// two instructions of `send`, and the commands behind it may be this thread's own (which must not be
    /// overtaken, see [`on_bytes`](Self::on_bytes)).
    fn drain_queue(&mut self) {
        let mut quiet = Context::from_waker(Waker::noop());
        loop {
            let polled = pin!(tokio::task::unconstrained(poll_fn(|cx| self.rx.poll_recv(cx)))).poll(&mut quiet);
            match polled {
                Poll::Ready(Some(command)) => self.on_command(command),
                // The session's shared state owns a sender, so the queue never ends while we run.
                Poll::Ready(None) => return,
                Poll::Pending if self.rx.is_empty() => return,
                Poll::Pending => std::thread::yield_now(),
            }
        }
    }

    /// Registers the task's waker on the send queue, last thing before the driver returns `Pending`, so that a
    /// later send (or `Session::close`, or an abort) wakes it. Returns whether a command had arrived first (it is
    /// taken; the caller must poll again). This holds with a full batch too: a peer that does not read keeps the
    /// batch full, and a `close()` or a slow-consumer abort queued behind it must still wake the driver (the frame
    /// taken then goes past the batch's nominal size, which only bounds what one `write_vectored` call gets).
    fn register_queue_waker(&mut self, cx: &mut Context<'_>) -> bool {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(command)) => {
                self.on_command(command);
                true
            }
            Poll::Ready(None) | Poll::Pending => false,
        }
    }

    /// Writes the front of the batch with one `write_vectored` call.
    ///
    /// Small frames are copied into the IO thread's gather buffer, so a run of them becomes one slice; frames of
    /// [`GATHER_BELOW`] bytes or more get a slice of their own and are not copied. The kernel's per-slice cost
    /// (`copy_from_iter` per segment) is far above a user-space copy of a few dozen bytes: with one slice per frame,
    /// copying the slices was 11% of the server's CPU in the chat benchmark (docs/BENCHMARKS.md). The bytes handed
    /// to the socket are the same either way (the batch's frames in order, from `head_written` on), so what was
    /// written is accounted for frame by frame as before.
    fn poll_write_batch(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = Pin::new(&mut self.stream);
        self.counters.write_calls += 1;
        let written = GATHER.with(|gather| match gather.try_borrow_mut() {
            Ok(mut gather) => write_gathered(stream, cx, self.batch.frames(), self.head_written, &mut gather),
            // Not reachable (nothing in a write calls back into a driver), but a plain vectored write will do.
            Err(_) => write_gathered(stream, cx, self.batch.frames(), self.head_written, &mut Vec::new()),
        });
        let written = ready!(written)?;
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.needs_flush = true;
        self.counters.bytes_out += written as u64;
        let mut left = written;
        let mut freed = 0;
        while let Some(front) = self.batch.front() {
            let rest = front.len() - self.head_written;
            if left < rest {
                self.head_written += left;
                break;
            }
            left -= rest;
            freed += front.len();
            self.head_written = 0;
            self.counters.frames_out += 1;
            if let Some(export) = &self.server.metrics.export {
                // The packet id is in the frame's header, just before the payload.
                let at = self.server.config.header.header_len() - 2;
                let id = u16::from_le_bytes([front[at], front[at + 1]]);
                self.counters.out_run.add(export, id);
            }
            self.batch.pop_front();
        }
        self.session.shared().handover.queued_bytes.fetch_sub(freed, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }

    /// Reads and handles frames. `Ready(Ok(true))`: budget used up, more may be waiting. `Ready(Ok(false))`: the
    /// session started closing. `Ready(Err)`: the session must end now. `Pending`: the socket has nothing more.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, CloseReason>> {
        for _ in 0..READS_PER_POLL {
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Pending => {
                    if self.partial.is_empty() && self.partial.capacity() > 0 {
                        // Nothing buffered and nothing arriving: an idle session holds no read memory.
                        self.partial = Vec::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    if let Some(fault) = e.get_ref().and_then(|inner| inner.downcast_ref::<TransportFault>()) {
                        // Refused by the transport (a WebSocket text message, say): a bad frame, with the notice.
                        self.bad_frame(BadFrame::Transport(fault.clone()));
                        return Poll::Ready(Ok(false));
                    }
                    return Poll::Ready(Err(CloseReason::Io(e.kind())));
                }
                Poll::Ready(Ok(())) => {}
            }
            let data = buf.filled();
            if data.is_empty() {
                // End of stream. The peer may only have shut down its write side and still be reading, and the
                // logic thread may still owe it replies to the packets just forwarded. So the close goes through the
                // logic thread, queued behind those packets: it closes the session when it sees this event, and
                // that close is queued behind the replies, which are therefore written first.
                self.end_of_stream();
                return Poll::Ready(Ok(false));
            }
            self.counters.bytes_in += data.len() as u64;
            if let Some(bucket) = &mut self.byte_rate
                && !bucket.take_n(data.len() as u64, StdInstant::now())
            {
                // Graceful, so that the peer gets the notice saying why; nothing of this read is handled.
                self.begin_close(Some(CloseReason::ByteRateLimited));
                return Poll::Ready(Ok(false));
            }
            let frames_before = self.counters.frames_in;
            self.on_bytes(data)?;
            if self.is_deciding() {
                return Poll::Ready(Ok(false));
            }
            // Only a complete frame is activity: a peer trickling the bytes of a frame it never finishes
            // (slowloris) must still time out.
            if self.counters.frames_in != frames_before {
                self.last_frame = Instant::now();
            }
            if self.state != State::Open || self.stall.is_some() {
                return Poll::Ready(Ok(false));
            }
        }
        Poll::Ready(Ok(true))
    }

    fn end_of_stream(&mut self) {
        let _ = self.session.shared().reason.set(CloseReason::PeerClosed);
        if !self.end.admitted {
            // Not known to the logic thread (it left during the handshake): nothing to wait for.
            self.begin_close(None);
            return;
        }
        let event = LogicEvent::ReadClosed(self.session.id(), Some(self.sent));
        if self.server.inbox.send(event).is_err() {
            // No logic thread to wait for: close now, flushing what is queued.
            self.begin_close(None);
            return;
        }
        self.state = State::ReadClosed { deadline: Instant::now() + self.server.config.close_flush_timeout };
    }

    /// Parses `data`; what the IO hook sends this session meanwhile goes straight into the write batch.
    fn on_bytes(&mut self, data: &[u8]) -> Result<(), CloseReason> {
        let replies = ReplyScope::enter(self.session.shared());
        let parsed = self.parse_bytes(data);
        if replies.has_replies() {
            // What is queued was sent before this parse: it goes first (see `ReplyScope::leave_into`).
            self.drain_queue();
            replies.leave_into(self.batch.for_pushing(&self.session.shared().spares));
        }
        parsed
    }

    fn parse_bytes(&mut self, data: &[u8]) -> Result<(), CloseReason> {
        if self.partial.is_empty() {
            let used = self.parse(data)?;
            if self.state == State::Open {
                self.partial.extend_from_slice(&data[used..]);
            }
        } else {
            let mut partial = std::mem::take(&mut self.partial);
            partial.extend_from_slice(data);
            let used = self.parse(&partial);
            partial.drain(..used.as_ref().copied().unwrap_or(partial.len()));
            self.partial = partial;
            used?;
        }
        Ok(())
    }

    /// Handles every complete frame in `data`; returns how many bytes were consumed.
    fn parse(&mut self, data: &[u8]) -> Result<usize, CloseReason> {
        // The layout is matched once per read; the loop is compiled once per layout.
        with_header!(self.server.config.header, H => self.parse_with::<H>(data))
    }

    fn parse_with<H: FrameHeader>(&mut self, data: &[u8]) -> Result<usize, CloseReason> {
        // Before authentication, the lower frame limit of connections not yet let in.
        let max = match &self.admission {
            Some(admission) if admission.deadline.is_some() => {
                self.server.config.max_frame.min(self.server.config.auth.max_frame)
            }
            _ => self.server.config.max_frame,
        };
        let now = if self.rate.is_some() { Some(StdInstant::now()) } else { None };
        let mut at = 0;
        while self.state == State::Open && self.stall.is_none() && !self.is_deciding() {
            let rest = &data[at..];
            match parse_frame::<H>(rest, max) {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    at += frame.len;
                    if let (Some(rate), Some(now)) = (&mut self.rate, now)
                        && !rate.take(now)
                    {
                        // Graceful, so that the peer gets the notice saying why; nothing more is read.
                        self.begin_close(Some(CloseReason::RateLimited));
                        return Ok(data.len());
                    }
                    self.on_frame(frame, &rest[..frame.len])?;
                }
                Err(fault) => {
                    self.bad_frame(BadFrame::Fault(fault));
                    return Ok(data.len());
                }
            }
        }
        Ok(at)
    }

    fn on_frame(&mut self, frame: RawFrame<'_>, whole: &[u8]) -> Result<(), CloseReason> {
        if !std::mem::take(&mut self.recounted) {
            self.counters.frames_in += 1;
            if let Some(export) = &self.server.metrics.export {
                self.counters.in_run.add(export, frame.id);
            }
        }
        let first = !std::mem::replace(&mut self.seen_frame, true);
        if frame.id == CONTROL_ID {
            return self.on_control(frame.payload, first);
        }
        if let Some(admission) = &self.admission {
            if admission.hello {
                self.begin_close(Some(CloseReason::Handshake(HandshakeFault::Missing { id: frame.id })));
                return Ok(());
            }
            // Not admitted but for the authentication: this is the packet that authenticates.
            return self.authenticate(frame, whole);
        }
        if P::ClientToServer::contains(frame.id) {
            let hook = &*self.server.io_handler;
            let session = &self.session;
            match catch_unwind(AssertUnwindSafe(|| hook.on_frame(session, frame.id, whole))) {
                Ok(FrameAction::Decode) => {}
                Ok(FrameAction::Taken) => return Ok(()),
                Err(_) => {
                    tracing::error!(session = %self.session.id(), "IO hook panicked; closing the session");
                    // Graceful, like a handler panic on the logic thread: the peer gets the close notice.
                    self.begin_close(Some(CloseReason::HandlerPanic));
                    return Ok(());
                }
            }
        }
        let packet = match P::ClientToServer::decode(frame.id, frame.payload) {
            Ok(packet) => packet,
            Err(e) => {
                self.bad_frame(BadFrame::Decode(e));
                return Ok(());
            }
        };
        tracing::trace!(session = %self.session.id(), packet = packet.name(), "received");
        let hook = &*self.server.io_handler;
        let session = &self.session;
        match catch_unwind(AssertUnwindSafe(|| hook.on_packet(session, packet))) {
            Ok(IoAction::Handled) => Ok(()),
            Ok(IoAction::Forward(packet)) => self.forward(LogicEvent::Packet(self.session.id(), packet)),
            Err(_) => {
                tracing::error!(session = %self.session.id(), "IO hook panicked; closing the session");
                self.begin_close(Some(CloseReason::HandlerPanic));
                Ok(())
            }
        }
    }

    /// A control frame (packet id 0, [`crate::handshake`]): the client's hello, answered with the server's, once
    /// and only as the first frame. A session waiting for its hello is admitted (its `Connected` goes to the logic
    /// thread) when the fingerprints match.
    fn on_control(&mut self, payload: &[u8], first: bool) -> Result<(), CloseReason> {
        let hello = match Hello::parse(payload, HelloKind::FromClient) {
            Ok(_) if !first => Err(HandshakeFault::Repeated),
            parsed => parsed,
        };
        let hello = match hello {
            Ok(hello) => hello,
            Err(fault) => {
                tracing::debug!(%fault, "handshake refused");
                self.begin_close(Some(CloseReason::Handshake(fault)));
                return Ok(());
            }
        };
        let config = &self.server.config.handshake;
        let answer = Hello { fingerprint: P::FINGERPRINT, version: config.version.clone() };
        let frame = control_frame(&self.server.pool, self.server.config.header, &answer.payload(HelloKind::FromServer));
        let shared = self.session.shared();
        shared.handover.queued_bytes.fetch_add(frame.len(), Ordering::Relaxed);
        self.batch.for_pushing(&shared.spares).push_back(frame);
        if hello.fingerprint != P::FINGERPRINT {
            let fault = HandshakeFault::Mismatch {
                client: hello.fingerprint,
                client_version: hello.version,
                server: answer.fingerprint,
                server_version: answer.version,
            };
            tracing::info!(%fault, "handshake refused");
            self.begin_close(Some(CloseReason::Handshake(fault)));
            return Ok(());
        }
        tracing::debug!(client_version = %hello.version, "handshake");
        if let Some(admission) = &mut self.admission {
            admission.hello = false;
            if admission.deadline.is_none() {
                // No authentication step: the hello was all.
                return self.admit();
            }
        }
        Ok(())
    }

    /// The first packet of a session the authentication hook must let in: handed to the hook, whose future
    /// `poll_decision` polls (nothing more is read meanwhile).
    fn authenticate(&mut self, frame: RawFrame<'_>, whole: &[u8]) -> Result<(), CloseReason> {
        let Some(hook) = &self.server.auth else { return Ok(()) };
        if frame.id != hook.packet_id {
            let fault = AuthFault::Expected { expected: hook.packet_name, id: frame.id };
            self.begin_close(Some(CloseReason::Auth(fault)));
            return Ok(());
        }
        let request = AuthRequest { session: self.session.id(), peer: self.session.peer().clone() };
        match catch_unwind(AssertUnwindSafe(|| (hook.start)(request, frame.payload))) {
            Ok(Ok(decision)) => {
                if let Some(admission) = &mut self.admission {
                    admission.deciding = Some((decision, whole.to_vec()));
                }
            }
            Ok(Err(e)) => self.bad_frame(BadFrame::Decode(e)),
            Err(_) => {
                tracing::error!(session = %self.session.id(), "authentication hook panicked; closing the session");
                self.begin_close(Some(CloseReason::HandlerPanic));
            }
        }
        Ok(())
    }

    fn is_deciding(&self) -> bool {
        self.admission.as_ref().is_some_and(|admission| admission.deciding.is_some())
    }

    /// Polls the authentication hook's decision, if one is in progress. `Ready(Ok(true))`: decided (the session
    /// was admitted or is closing), `Ready(Ok(false))`: nothing to decide, `Pending`: still deciding (the deadline
    /// is watched by the caller's timer).
    fn poll_decision(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, CloseReason>> {
        let Some(admission) = &mut self.admission else { return Poll::Ready(Ok(false)) };
        let Some((decision, _)) = &mut admission.deciding else { return Poll::Ready(Ok(false)) };
        let verdict = match catch_unwind(AssertUnwindSafe(|| decision.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(verdict)) => verdict,
            Err(_) => {
                tracing::error!(session = %self.session.id(), "authentication hook panicked; closing the session");
                admission.deciding = None;
                self.begin_close(Some(CloseReason::HandlerPanic));
                return Poll::Ready(Ok(true));
            }
        };
        let Some((_, frame)) = admission.deciding.take() else { return Poll::Ready(Ok(true)) };
        match verdict {
            Verdict::Accept => {
                tracing::debug!("authenticated");
                // The authenticating frame goes back in front of the frames read behind it, to be handled like any
                // frame of an admitted session once its `Connected` is in (now, or when the inbox has room).
                self.partial.splice(0..0, frame);
                self.recounted = true;
                self.admit()?;
                if self.stall.is_none() {
                    self.on_bytes(&[])?;
                }
            }
            Verdict::Refuse(reason) => {
                tracing::info!(%reason, "authentication refused");
                self.begin_close(Some(CloseReason::Auth(AuthFault::Refused(reason))));
            }
        }
        Poll::Ready(Ok(true))
    }

    /// The session is let in: its `Connected` goes to the logic thread.
    fn admit(&mut self) -> Result<(), CloseReason> {
        self.admission = None;
        if std::mem::take(&mut self.end.auth_pending) {
            self.server.auth_pending.fetch_sub(1, Ordering::AcqRel);
        }
        self.forward(LogicEvent::Connected(self.session.clone()))
    }

    fn bad_frame(&mut self, bad: BadFrame) {
        tracing::debug!(session = %self.session.id(), fault = %bad, "bad frame");
        let hook = &*self.server.io_handler;
        let session = &self.session;
        let action =
            catch_unwind(AssertUnwindSafe(|| hook.on_bad_frame(session, &bad))).unwrap_or(BadFrameAction::Close);
        if action == BadFrameAction::Skip && bad.boundary_known() {
            return;
        }
        self.begin_close(Some(CloseReason::BadFrame(bad)));
    }

    /// While lingering: reads and discards. Ready when the peer closed or the read failed.
    fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            match ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf)) {
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(()),
                Ok(()) => continue,
                Err(_) => return Poll::Ready(()),
            }
        }
    }

    fn flush_counters(&mut self) {
        let mut c = std::mem::take(&mut self.counters);
        let m = &self.server.metrics;
        if c.frames_in | c.bytes_in | c.frames_out | c.bytes_out | c.write_calls != 0 {
            m.frames_in.fetch_add(c.frames_in, Ordering::Relaxed);
            m.bytes_in.fetch_add(c.bytes_in, Ordering::Relaxed);
            m.frames_out.fetch_add(c.frames_out, Ordering::Relaxed);
            m.bytes_out.fetch_add(c.bytes_out, Ordering::Relaxed);
            m.write_calls.fetch_add(c.write_calls, Ordering::Relaxed);
            if let Some(export) = &m.export {
                c.in_run.take(export);
                c.out_run.take(export);
            }
        }
    }
}

/// A control frame (packet id 0) with `payload`, in `pool`.
fn control_frame(pool: &MessagePool, header: crate::HeaderKind, payload: &[u8]) -> PacketPtr {
    let len = header.header_len() + payload.len();
    let mut head = [0u8; 8];
    // A hello is at most 73 bytes of payload: every header layout describes it.
    let _ = with_header!(header, H => H::write(&mut head, len, CONTROL_ID));
    let mut frame = PacketBuilder::with_capacity_in(pool, len);
    frame.extend_from_slice(&head[..header.header_len()]);
    frame.extend_from_slice(payload);
    frame.set_header_len(header.header_len());
    frame.freeze()
}

/// Sets up an IO thread's own state when the thread starts, so that the first packets it handles allocate nothing:
/// its gather buffer, the IO hook's reply list, and its cache of `pool`'s blocks.
pub(crate) fn prepare_io_thread(pool: &MessagePool) {
    let _ = GATHER.try_with(|gather| gather.try_borrow_mut().map(|mut gather| gather.reserve_exact(GATHER_CAP)));
    crate::session::io_reply::prepare_thread();
    pool.bind_thread_cache();
}

thread_local! {
    /// Each IO thread's gather buffer: the small frames of the write in progress, copied end to end. It holds
    /// nothing between writes (the kernel has copied the bytes when `write_vectored` returns), so one per thread
    /// serves every session on it and an idle session holds no write buffer.
    static GATHER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One slice of a write: a run of gathered small frames, or one frame by reference.
#[derive(Clone, Copy)]
enum Piece {
    Gathered { start: usize, end: usize },
    Frame { index: usize },
}

/// Hands the front of `batch` (from `head_written` into its first frame) to `stream` in at most [`BATCH`] slices,
/// runs of small frames copied into `gather`.
fn write_gathered<S: AsyncWrite>(
    stream: Pin<&mut S>,
    cx: &mut Context<'_>,
    batch: &VecDeque<PacketPtr>,
    head_written: usize,
    gather: &mut Vec<u8>,
) -> Poll<io::Result<usize>> {
    gather.clear();
    let mut pieces = [Piece::Frame { index: 0 }; BATCH];
    let mut count: usize = 0;
    for (index, frame) in batch.iter().enumerate() {
        let bytes = if index == 0 { &frame[head_written..] } else { &frame[..] };
        if bytes.len() < GATHER_BELOW && gather.len() + bytes.len() <= GATHER_CAP {
            let start = gather.len();
            if gather.capacity() < GATHER_CAP {
                gather.reserve_exact(GATHER_CAP - gather.len());
            }
            gather.extend_from_slice(bytes);
            match count.checked_sub(1).map(|last| &mut pieces[last]) {
                // Adjacent to the previous run: extend its slice.
                Some(Piece::Gathered { end, .. }) if *end == start => *end = gather.len(),
                _ if count < BATCH => {
                    pieces[count] = Piece::Gathered { start, end: gather.len() };
                    count += 1;
                }
                _ => {
                    gather.truncate(start);
                    break;
                }
            }
        } else if count < BATCH && bytes.len() >= GATHER_BELOW {
            pieces[count] = Piece::Frame { index };
            count += 1;
        } else {
            // No slice left, or the gather buffer is full: the rest goes in the next call.
            break;
        }
    }
    let mut slices = [IoSlice::new(&[]); BATCH];
    for (slice, piece) in slices.iter_mut().zip(&pieces[..count]) {
        *slice = IoSlice::new(match *piece {
            Piece::Gathered { start, end } => &gather[start..end],
            Piece::Frame { index: 0 } => &batch[0][head_written..],
            Piece::Frame { index } => &batch[index][..],
        });
    }
    stream.poll_write_vectored(cx, &slices[..count])
}

impl<P: Protocol, S> Drop for Driver<P, S> {
    fn drop(&mut self) {
        let shared = self.session.shared();
        // Reached without a reason only when the IO runtime dropped the task: the server is going away.
        let reason = shared.reason.get_or_init(|| CloseReason::ServerShutdown).clone();
        shared.close_quietly();
        let mut dropped = self.batch.len() as u64 + self.dropped_after_notice;
        // A partly written head frame is still counted whole (`poll_write_batch` subtracts whole frames).
        let mut bytes: usize = self.batch.frames().iter().map(|frame| frame.len()).sum();
        self.batch.clear();
        self.batch.release(&shared.spares);
        self.rx.close();
        while let Ok(command) = self.rx.try_recv() {
            match command {
                Command::Frame(frame) => {
                    dropped += 1;
                    bytes += frame.len();
                }
                Command::Frames(frames) => {
                    dropped += frames.len() as u64;
                    bytes += frames.iter().map(|frame| frame.len()).sum::<usize>();
                }
                Command::TakePending | Command::Close => {}
            }
        }
        shared.handover.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        // Counted in `frames_dropped` and `queued_bytes` by `drop_pending` itself (the logic thread may race to do
        // the same).
        shared.drop_pending();
        let hook = &*self.server.io_handler;
        let session = &self.session;
        if catch_unwind(AssertUnwindSafe(|| hook.on_close(session, &reason))).is_err() {
            tracing::error!(session = %session.id(), "IO hook panicked in on_close");
        }
        if self.abortive {
            (self.hooks.abortive_close)(&self.stream);
        }
        // Reported by `end`, dropped after the socket.
        self.end.reason = Some(reason);
        self.end.dropped = dropped;
        self.end.sent = self.sent;
    }
}
