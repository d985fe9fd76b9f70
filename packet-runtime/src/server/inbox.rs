//! The logic thread's bounded inbox: a multi-producer, single-consumer queue of fixed capacity that allocates its
//! storage once, when it is made, and never again.
//!
//! Why it exists: the README claims zero heap allocations per delivered message after warm-up, and the test that
//! proves it counts every allocation in the process (`tests/tests/zero_alloc_server.rs`). tokio's `mpsc` channel,
//! which this replaces, stores events in linked blocks of 32 slots and reuses a consumed block only once a sender has
//! moved the tail past it; with two IO threads forwarding packets at once, the tail can lag, and the next block is
//! allocated (and freed again later). Under load that was 1 or 2 allocations per 64,000 echoes, which the test had to
//! allow. This queue has none: its slots are one array, reused in a ring.
//!
//! How it is built, all without `unsafe`:
//! - the slots: crossbeam's lock-free [`ArrayQueue`] of `capacity` events, allocated in [`channel`];
//! - room: a [`tokio::sync::Semaphore`] with one permit per slot. A sender takes a permit before it pushes (so a push
//!   never finds the ring full) and the receiver gives permits back after it popped. A full inbox is a semaphore with
//!   no permits: [`Sender::reserve`] and [`RoomWaiter::poll_reserve`] wait for one (tokio's waiters are intrusive: no
//!   allocation per wait), [`Sender::try_send`] fails with [`TrySendError::Full`];
//! - the receiver's wake-up: a [`tokio::sync::Notify`], notified after every push and when the last sender goes. A
//!   notification that finds no waiter is kept for the next wait, so none is lost between the receiver finding the
//!   ring empty and starting to wait.
//!
//! Semantics the runtime relies on, each covered by the tests below: bounded capacity with backpressure (a sender
//! waits for room, in order of arrival); FIFO order per producer (the ring is linearisable, and one producer's pushes
//! are sequential), so the acceptor's `Connected` comes before anything its session sends and its `AcceptorStopped`
//! after every `Connected`; the receiver dropped means every send fails from then on (the semaphore is closed); every
//! sender dropped means the receiver gets what is left, then the end (0 from [`Receiver::recv_many`]); and
//! [`Receiver::depth`], the events queued plus the room reserved for events about to be sent.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use crossbeam_queue::ArrayQueue;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio_util::sync::PollSemaphore;

/// Makes an inbox of `capacity` events (at least 1), its storage allocated now.
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
    let shared = Arc::new(Shared {
        slots: ArrayQueue::new(capacity),
        room: Arc::new(Semaphore::new(capacity)),
        ready: Notify::new(),
        senders: AtomicUsize::new(1),
        closed: AtomicBool::new(false),
        capacity,
    });
    (Sender { shared: Arc::clone(&shared) }, Receiver { shared })
}

struct Shared<T> {
    slots: ArrayQueue<T>,
    /// One permit per free slot that nobody reserved. `slots.len()` + permits held by senders + available permits
    /// = `capacity`, always: a permit is taken before a push and given back after a pop.
    room: Arc<Semaphore>,
    /// Wakes the receiver: after each push, and when the last sender is dropped.
    ready: Notify,
    senders: AtomicUsize,
    /// The receiver was dropped.
    closed: AtomicBool,
    capacity: usize,
}

impl<T> Shared<T> {
    /// Puts `value` into the slot its permit (already forgotten by the caller) stands for.
    fn push(&self, value: T) {
        if self.closed.load(Ordering::Acquire) {
            // Nobody will take it; like tokio's channel, drop it.
            return;
        }
        if self.slots.push(value).is_err() {
            // A permit is a free slot: the receiver gives a permit back only after its pop has freed the slot.
            unreachable!("the inbox ring was full although a permit was held");
        }
        self.ready.notify_one();
    }
}

/// Why [`Sender::try_send`] did not send; the event comes back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError<T> {
    /// No room: every slot holds an event or is reserved.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// The receiver is gone ([`Sender::reserve`], [`Sender::send`], [`RoomWaiter::poll_reserve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// The sending side. Clone it for more producers; each producer's events arrive in the order it sent them.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Sends `value` if there is room now.
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        match self.shared.room.try_acquire() {
            Ok(permit) => {
                permit.forget();
                self.shared.push(value);
                Ok(())
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => Err(TrySendError::Full(value)),
            Err(tokio::sync::TryAcquireError::Closed) => Err(TrySendError::Closed(value)),
        }
    }

    /// Waits for room for one event and reserves it. Dropping the [`Permit`] unused gives the room back.
    pub(crate) async fn reserve(&self) -> Result<Permit<'_, T>, Closed> {
        let permit = self.shared.room.acquire().await.map_err(|_| Closed)?;
        Ok(Permit { shared: &self.shared, permit })
    }

    /// Waits for room, then sends `value`; gives it back if the receiver is gone.
    pub(crate) async fn send(&self, value: T) -> Result<(), T> {
        match self.reserve().await {
            Ok(permit) => {
                permit.send(value);
                Ok(())
            }
            Err(Closed) => Err(value),
        }
    }

    /// A waiter for room that a hand-written `poll` can drive ([`RoomWaiter::poll_reserve`]).
    pub(crate) fn room_waiter(&self) -> RoomWaiter {
        RoomWaiter { room: PollSemaphore::new(Arc::clone(&self.shared.room)) }
    }

    /// Sends `value` into the room `reserved` holds (from this inbox's [`RoomWaiter`]).
    pub(crate) fn send_reserved(&self, reserved: Reserved, value: T) {
        debug_assert!(Arc::ptr_eq(reserved.0.semaphore(), &self.shared.room), "room reserved in another inbox");
        reserved.0.forget();
        self.shared.push(value);
    }

    /// Whether the receiver is gone.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender { shared: Arc::clone(&self.shared) }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // AcqRel: the receiver that sees 0 (Acquire) also sees every push this sender made before.
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ready.notify_one();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("inbox::Sender").field("capacity", &self.shared.capacity).finish_non_exhaustive()
    }
}

/// Room for one event, reserved by [`Sender::reserve`]. Dropped unused, the room is given back.
pub(crate) struct Permit<'a, T> {
    shared: &'a Shared<T>,
    permit: SemaphorePermit<'a>,
}

impl<T> Permit<'_, T> {
    /// Sends `value` into the reserved room. Never waits, never fails (an event sent after the receiver is gone is
    /// dropped).
    pub(crate) fn send(self, value: T) {
        self.permit.forget();
        self.shared.push(value);
    }
}

impl<T> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("inbox::Permit").finish_non_exhaustive()
    }
}

/// Waits for room from a hand-written `poll` (a session's driver, stalled on a full inbox). Keep one per producer and
/// reuse it: the future it waits with is boxed on its first wait and the box reused by every wait after it, so a
/// producer allocates at most once in its life here, and only if it ever finds the inbox full.
pub(crate) struct RoomWaiter {
    room: PollSemaphore,
}

impl RoomWaiter {
    /// Reserves room for one event, or registers `cx`'s waker to be woken when there is some (or the receiver goes).
    pub(crate) fn poll_reserve(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reserved, Closed>> {
        self.room.poll_acquire(cx).map(|permit| permit.map(Reserved).ok_or(Closed))
    }
}

impl fmt::Debug for RoomWaiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("inbox::RoomWaiter").finish_non_exhaustive()
    }
}

/// Room for one event, reserved by [`RoomWaiter::poll_reserve`]; used by [`Sender::send_reserved`]. Dropped unused,
/// the room is given back.
#[derive(Debug)]
pub(crate) struct Reserved(OwnedSemaphorePermit);

/// The receiving side (one: the logic thread).
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// Moves up to `limit` events into `buffer` (which must have room for them for this to allocate nothing), waiting
    /// until there is at least one. Returns how many; 0 once every sender is gone and nothing is left (or `limit` is
    /// 0). Cancel-safe: an event is either in `buffer` or still in the inbox.
    pub(crate) async fn recv_many(&mut self, buffer: &mut Vec<T>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        loop {
            let received = self.try_recv_many(buffer, limit);
            if received > 0 {
                return received;
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                // Every push happened before its sender's drop, which this load saw: look once more.
                return self.try_recv_many(buffer, limit);
            }
            self.shared.ready.notified().await;
        }
    }

    /// Moves up to `limit` events that are there now into `buffer`, without waiting. Returns how many.
    pub(crate) fn try_recv_many(&mut self, buffer: &mut Vec<T>, limit: usize) -> usize {
        let mut received = 0;
        while received < limit {
            let Some(value) = self.shared.slots.pop() else { break };
            buffer.push(value);
            received += 1;
        }
        if received > 0 {
            // The slots are free now: their room goes back to the senders (waking those that wait, oldest first).
            self.shared.room.add_permits(received);
        }
        received
    }

    /// Events in the inbox plus room reserved for events about to be sent: at most its capacity.
    pub(crate) fn depth(&self) -> usize {
        self.shared.capacity - self.shared.room.available_permits()
    }

    /// How many events the inbox holds at most.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.shared.capacity
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        // Every waiting and later `reserve`/`try_send` fails from here on.
        self.shared.room.close();
        // What is queued is dropped now, not with the last sender.
        while self.shared.slots.pop().is_some() {}
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("inbox::Receiver")
            .field("capacity", &self.shared.capacity)
            .field("depth", &self.depth())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    use super::*;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let count = Arc::new(CountingWaker::default());
        (Arc::clone(&count), Waker::from(count))
    }

    fn wakes(count: &CountingWaker) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap()
    }

    #[test]
    fn holds_capacity_events_then_pushes_back() {
        let (tx, mut rx) = channel::<u32>(3);
        assert_eq!(rx.capacity(), 3);
        for n in 0..3 {
            tx.try_send(n).unwrap();
        }
        assert_eq!(rx.depth(), 3);
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        let mut got = Vec::with_capacity(8);
        assert_eq!(rx.try_recv_many(&mut got, 2), 2);
        assert_eq!(got, [0, 1]);
        assert_eq!(rx.depth(), 1);
        tx.try_send(3).unwrap();
        tx.try_send(4).unwrap();
        assert_eq!(tx.try_send(5), Err(TrySendError::Full(5)));
        got.clear();
        assert_eq!(rx.try_recv_many(&mut got, 10), 3);
        assert_eq!(got, [2, 3, 4]);
        assert_eq!(rx.depth(), 0);
    }

    #[test]
    fn capacity_zero_is_one() {
        let (tx, rx) = channel::<u32>(0);
        assert_eq!(rx.capacity(), 1);
        tx.try_send(1).unwrap();
        assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    }

    #[test]
    fn a_reservation_counts_in_the_depth_and_its_drop_gives_the_room_back() {
        let (tx, mut rx) = channel::<u32>(2);
        let rt = runtime();
        let permit = rt.block_on(tx.reserve()).unwrap();
        assert_eq!(rx.depth(), 1);
        tx.try_send(1).unwrap();
        assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)), "the reserved slot is taken");
        drop(permit);
        assert_eq!(rx.depth(), 1);
        tx.try_send(2).unwrap();
        let mut got = Vec::new();
        assert_eq!(rx.try_recv_many(&mut got, 8), 2);
        assert_eq!(got, [1, 2]);
    }

    #[test]
    fn a_full_inbox_makes_reserve_wait_until_the_receiver_takes_an_event() {
        let (tx, mut rx) = channel::<u32>(1);
        tx.try_send(1).unwrap();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut reserve = pin!(tx.reserve());
        assert!(reserve.as_mut().poll(&mut cx).is_pending(), "no room");
        assert_eq!(wakes(&count), 0);
        let mut got = Vec::new();
        assert_eq!(rx.try_recv_many(&mut got, 8), 1);
        assert_eq!(wakes(&count), 1, "taking an event wakes the waiting sender");
        let Poll::Ready(Ok(permit)) = reserve.as_mut().poll(&mut cx) else { panic!("room after the pop") };
        permit.send(2);
        got.clear();
        assert_eq!(rx.try_recv_many(&mut got, 8), 1);
        assert_eq!(got, [2]);
    }

    #[test]
    fn the_room_waiter_waits_for_room_and_is_reused() {
        let (tx, mut rx) = channel::<u32>(1);
        let mut waiter = tx.room_waiter();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut got = Vec::new();
        for round in 0..3 {
            tx.try_send(round).unwrap();
            assert!(waiter.poll_reserve(&mut cx).is_pending(), "full");
            assert_eq!(rx.try_recv_many(&mut got, 8), 1);
            assert_eq!(wakes(&count), round as usize + 1, "woken by the pop");
            let Poll::Ready(Ok(reserved)) = waiter.poll_reserve(&mut cx) else { panic!("room after the pop") };
            assert_eq!(tx.try_send(99), Err(TrySendError::Full(99)), "the room is reserved");
            tx.send_reserved(reserved, 100 + round);
            assert_eq!(rx.try_recv_many(&mut got, 8), 1);
        }
        assert_eq!(got, [0, 100, 1, 101, 2, 102]);
        // Reserved and dropped unused: the room comes back.
        let Poll::Ready(Ok(reserved)) = waiter.poll_reserve(&mut cx) else { panic!("empty inbox") };
        assert_eq!(rx.depth(), 1);
        drop(reserved);
        assert_eq!(rx.depth(), 0);
    }

    #[test]
    fn a_send_wakes_the_waiting_receiver_and_a_stale_wake_is_not_an_event() {
        let (tx, mut rx) = channel::<u32>(4);
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut got = Vec::with_capacity(4);
        {
            let mut recv = pin!(rx.recv_many(&mut got, 4));
            assert!(recv.as_mut().poll(&mut cx).is_pending(), "empty");
            tx.try_send(7).unwrap();
            assert_eq!(wakes(&count), 1, "the send wakes the receiver");
            assert_eq!(recv.as_mut().poll(&mut cx), Poll::Ready(1));
        }
        assert_eq!(got, [7]);
        // A notification kept for a wait that never came (the event was taken without waiting) wakes the next wait
        // once; the receiver then finds nothing, waits again, and returns only with an event.
        got.clear();
        tx.try_send(8).unwrap();
        assert_eq!(rx.try_recv_many(&mut got, 4), 1);
        {
            let mut recv = pin!(rx.recv_many(&mut got, 4));
            assert!(recv.as_mut().poll(&mut cx).is_pending(), "a stale notification is not an event");
            let before = wakes(&count);
            tx.try_send(9).unwrap();
            assert_eq!(wakes(&count), before + 1);
            assert_eq!(recv.as_mut().poll(&mut cx), Poll::Ready(1));
        }
        assert_eq!(got, [8, 9]);
    }

    #[test]
    fn recv_many_takes_at_most_limit_in_order() {
        let (tx, mut rx) = channel::<u32>(8);
        for n in 0..5 {
            tx.try_send(n).unwrap();
        }
        let rt = runtime();
        let mut got = Vec::new();
        assert_eq!(rt.block_on(rx.recv_many(&mut got, 2)), 2);
        assert_eq!(rt.block_on(rx.recv_many(&mut got, 2)), 2);
        assert_eq!(rt.block_on(rx.recv_many(&mut got, 2)), 1);
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert_eq!(rt.block_on(rx.recv_many(&mut got, 0)), 0);
    }

    #[test]
    fn the_receiver_gets_what_is_left_then_the_end_when_every_sender_is_gone() {
        let (tx, mut rx) = channel::<u32>(4);
        let other = tx.clone();
        tx.try_send(1).unwrap();
        other.try_send(2).unwrap();
        drop(tx);
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut got = Vec::new();
        {
            let mut recv = pin!(rx.recv_many(&mut got, 8));
            assert_eq!(recv.as_mut().poll(&mut cx), Poll::Ready(2), "one sender is left");
        }
        {
            let mut recv = pin!(rx.recv_many(&mut got, 8));
            assert!(recv.as_mut().poll(&mut cx).is_pending(), "one sender is left, nothing sent");
            drop(other);
            assert_eq!(wakes(&count), 1, "the last sender's drop wakes the receiver");
            assert_eq!(recv.as_mut().poll(&mut cx), Poll::Ready(0), "the end");
        }
        assert_eq!(got, [1, 2]);
        assert_eq!(runtime().block_on(rx.recv_many(&mut got, 8)), 0, "the end stays the end");
    }

    #[test]
    fn dropping_the_receiver_fails_every_send_and_wakes_waiting_senders() {
        let (tx, rx) = channel::<Arc<()>>(1);
        let queued = Arc::new(());
        tx.try_send(Arc::clone(&queued)).unwrap();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut waiter = tx.room_waiter();
        assert!(waiter.poll_reserve(&mut cx).is_pending());
        {
            let mut reserve = pin!(tx.reserve());
            assert!(reserve.as_mut().poll(&mut cx).is_pending());
            drop(rx);
            assert_eq!(wakes(&count), 2, "both waiting senders are woken");
            assert!(matches!(reserve.as_mut().poll(&mut cx), Poll::Ready(Err(Closed))));
        }
        assert!(matches!(waiter.poll_reserve(&mut cx), Poll::Ready(Err(Closed))));
        assert_eq!(Arc::strong_count(&queued), 1, "what was queued is dropped with the receiver");
        assert!(tx.is_closed());
        let event = Arc::new(());
        assert!(matches!(tx.try_send(Arc::clone(&event)), Err(TrySendError::Closed(_))));
        assert!(runtime().block_on(tx.send(Arc::clone(&event))).is_err());
        assert_eq!(Arc::strong_count(&event), 1, "a failed send gives the event back, not keeps it");
    }

    #[test]
    fn each_producer_s_events_arrive_in_order_under_backpressure_across_threads() {
        const PRODUCERS: u64 = 3;
        const EACH: u64 = 20_000;
        let (tx, mut rx) = channel::<(u64, u64)>(16);
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let rt = runtime();
                    for seq in 0..EACH {
                        // Half through the waiting path, half through try_send spinning on Full.
                        if seq % 2 == 0 {
                            rt.block_on(tx.send((producer, seq))).unwrap();
                        } else {
                            let mut event = (producer, seq);
                            while let Err(TrySendError::Full(back)) = tx.try_send(event) {
                                event = back;
                                std::thread::yield_now();
                            }
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let rt = runtime();
        let mut next = [0u64; PRODUCERS as usize];
        let mut batch = Vec::with_capacity(256);
        let mut total = 0;
        loop {
            let received = rt.block_on(rx.recv_many(&mut batch, 256));
            if received == 0 {
                break;
            }
            assert!(rx.depth() <= rx.capacity());
            for (producer, seq) in batch.drain(..) {
                assert_eq!(seq, next[producer as usize], "producer {producer}'s events in order");
                next[producer as usize] += 1;
                total += 1;
            }
        }
        for producer in producers {
            producer.join().unwrap();
        }
        assert_eq!(total, PRODUCERS * EACH, "every event once, then the end");
        assert_eq!(next, [EACH; PRODUCERS as usize]);
    }
}
