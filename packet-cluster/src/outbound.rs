//! What a node has to send to other nodes, batched per destination and published by one task.
//!
//! Senders (IO threads forwarding client frames, a shard's logic thread at the end of a batch) append operations
//! to the open message for their destination under a short lock and wake the publisher. The publisher takes every
//! open message at once and publishes each: whatever accumulated while it was busy leaves as one NATS message per
//! destination, so the number of messages falls as the load rises. A message is closed at [`MESSAGE_TARGET`] bytes
//! and a new one opened, far below NATS's default 1 MiB `max_payload`.
//!
//! Nothing is handed to the NATS client while it is disconnected, and after it reconnects a destination gets
//! nothing until its node has been heard again (a heartbeat since the reconnection): core NATS drops what is
//! published to a subject nobody is subscribed to yet, and a node that reconnects later than this one would lose
//! what was buffered for it. Meanwhile messages wait here, under [`PENDING_LIMIT`] per destination.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::Counters;
use crate::envelope;
use crate::subjects::Subjects;

/// A message is closed once it holds this many bytes (an operation is never split).
pub(crate) const MESSAGE_TARGET: usize = 256 * 1024;

/// Bytes that may wait for one destination (the publisher is behind, or NATS is slow or away). Past it, appending
/// fails and the caller decides what to give up (see [`Outbound::append`]); nothing queues without bound.
pub(crate) const PENDING_LIMIT: usize = 32 * 1024 * 1024;

/// Where a message goes: a node's gateway part or its shard part (each has its own subject and sequence numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dest {
    Gateway(u64),
    Shard(u64),
}

impl Dest {
    fn subject(self, subjects: &Subjects) -> String {
        match self {
            Dest::Gateway(node) => subjects.gateway(node),
            Dest::Shard(node) => subjects.shard(node),
        }
    }
}

/// [`Outbound::append`] refused: the destination already has [`PENDING_LIMIT`] bytes waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Congested;

/// Per-destination open messages and the publisher's wake-up.
#[derive(Debug)]
pub(crate) struct Outbound {
    me: u64,
    pending: Mutex<HashMap<Dest, Vec<Vec<u8>>>>,
    /// Bytes in `pending`, per destination.
    waiting: Mutex<HashMap<Dest, usize>>,
    /// The next header sequence number per destination.
    seqs: Mutex<HashMap<Dest, u64>>,
    notify: Notify,
    stats: Arc<Counters>,
    /// How many times the NATS client reconnected (its `Connected` events after the first).
    epoch: Arc<AtomicU64>,
    /// The epoch in which each node was last heard.
    heard: Mutex<HashMap<u64, u64>>,
}

impl Outbound {
    pub(crate) fn new(me: u64, stats: Arc<Counters>, epoch: Arc<AtomicU64>) -> Self {
        Outbound {
            me,
            pending: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            seqs: Mutex::new(HashMap::new()),
            notify: Notify::new(),
            stats,
            epoch,
            heard: Mutex::new(HashMap::new()),
        }
    }

    /// `node` was heard (a heartbeat): what waits for it since a reconnection may go.
    pub(crate) fn heard(&self, node: u64) {
        let epoch = self.epoch.load(Ordering::Relaxed);
        let before = self.heard.lock().unwrap_or_else(|e| e.into_inner()).insert(node, epoch);
        if before != Some(epoch) {
            self.notify.notify_one();
        }
    }

    /// `node` is dead: what waits for it is dropped.
    pub(crate) fn forget(&self, node: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for dest in [Dest::Gateway(node), Dest::Shard(node)] {
            pending.remove(&dest);
            waiting.remove(&dest);
        }
    }

    /// Whether `dest`'s node was heard since the last reconnection (always, before the first).
    fn ready(&self, dest: Dest) -> bool {
        let epoch = self.epoch.load(Ordering::Relaxed);
        let node = match dest {
            Dest::Gateway(node) | Dest::Shard(node) => node,
        };
        epoch == 0 || self.heard.lock().unwrap_or_else(|e| e.into_inner()).get(&node) == Some(&epoch)
    }

    /// Appends to the open message for `to` (`write` adds operations to it) and wakes the publisher. Refused, and
    /// counted in [`ClusterStats::congested`](crate::ClusterStats::congested), when `to` already has
    /// [`PENDING_LIMIT`] bytes waiting.
    pub(crate) fn append(&self, to: Dest, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), Congested> {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let waiting = waiting.entry(to).or_insert(0);
            if *waiting >= PENDING_LIMIT {
                self.stats.congested.fetch_add(1, Ordering::Relaxed);
                return Err(Congested);
            }
            let messages = pending.entry(to).or_default();
            if messages.last().is_none_or(|open| open.len() >= MESSAGE_TARGET) {
                let mut open = Vec::with_capacity(1024);
                // The sequence number is written when the message is published.
                envelope::put_header(&mut open, self.me, 0);
                *waiting += open.len();
                messages.push(open);
            }
            let open = messages.last_mut().expect("an open message");
            let before = open.len();
            write(open);
            *waiting += open.len() - before;
        }
        self.notify.notify_one();
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn take_for_test(&self) -> HashMap<Dest, Vec<Vec<u8>>> {
        self.take()
    }

    #[cfg(test)]
    fn take(&self) -> HashMap<Dest, Vec<Vec<u8>>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The messages of the destinations that may be published to now; the others stay.
    fn take_ready(&self) -> Vec<(Dest, Vec<Vec<u8>>)> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let ready: Vec<Dest> = pending.keys().copied().filter(|&dest| self.ready(dest)).collect();
        ready.into_iter().filter_map(|dest| pending.remove(&dest).map(|messages| (dest, messages))).collect()
    }

    fn published(&self, to: Dest, bytes: usize) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waiting) = waiting.get_mut(&to) {
            *waiting = waiting.saturating_sub(bytes);
        }
    }

    /// Publishes forever (until the client is gone).
    pub(crate) async fn run(&self, client: async_nats::Client, subjects: Subjects) {
        loop {
            // Woken by an append or a node heard again; every 100 ms also, for what waited on a reconnection.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), self.notify.notified()).await;
            if client.connection_state() != async_nats::connection::State::Connected {
                continue;
            }
            for (to, messages) in self.take_ready() {
                let subject = to.subject(&subjects);
                for mut message in messages {
                    let seq = {
                        let mut seqs = self.seqs.lock().unwrap_or_else(|e| e.into_inner());
                        let seq = seqs.entry(to).or_insert(0);
                        *seq += 1;
                        *seq
                    };
                    message[9..17].copy_from_slice(&seq.to_le_bytes());
                    let len = message.len();
                    if let Err(error) = client.publish(subject.clone(), message.into()).await {
                        self.stats.publish_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, ?to, "publish failed");
                    } else {
                        self.stats.published.fetch_add(1, Ordering::Relaxed);
                        self.stats.nats_out.0.increment(1);
                    }
                    self.published(to, len);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_over_its_limit_refuses_and_counts_others_go_on() {
        let stats = Arc::new(Counters::default());
        let outbound = Outbound::new(1, Arc::clone(&stats), Arc::default());
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..PENDING_LIMIT / chunk.len() {
            outbound.append(Dest::Shard(2), |buf| buf.extend_from_slice(&chunk)).expect("under the limit");
        }
        assert_eq!(outbound.append(Dest::Shard(2), |buf| buf.push(0)), Err(Congested));
        assert_eq!(stats.snapshot().congested, 1);
        assert_eq!(outbound.append(Dest::Shard(3), |buf| buf.push(0)), Ok(()), "another destination is not held up");
        assert_eq!(outbound.append(Dest::Gateway(2), |buf| buf.push(0)), Ok(()), "nor the node's other part");
        let taken = outbound.take();
        let waiting: usize = taken[&Dest::Shard(2)].iter().map(Vec::len).sum();
        outbound.published(Dest::Shard(2), waiting);
        assert_eq!(outbound.append(Dest::Shard(2), |buf| buf.push(0)), Ok(()), "room again once published");
    }

    #[test]
    fn after_a_reconnection_a_destination_waits_until_its_node_is_heard() {
        let epoch = Arc::new(AtomicU64::new(0));
        let outbound = Outbound::new(1, Arc::default(), Arc::clone(&epoch));
        outbound.append(Dest::Shard(2), |buf| buf.push(0)).unwrap();
        assert_eq!(outbound.take_ready().len(), 1, "before any reconnection everything goes");
        epoch.store(1, Ordering::Relaxed);
        outbound.append(Dest::Shard(2), |buf| buf.push(0)).unwrap();
        outbound.append(Dest::Gateway(3), |buf| buf.push(0)).unwrap();
        assert!(outbound.take_ready().is_empty(), "nobody heard since the reconnection");
        outbound.heard(3);
        assert_eq!(outbound.take_ready().iter().map(|(d, _)| *d).collect::<Vec<_>>(), [Dest::Gateway(3)]);
        outbound.forget(2);
        outbound.heard(2);
        assert!(outbound.take_ready().is_empty(), "what waited for a dead node is gone");
    }
}
