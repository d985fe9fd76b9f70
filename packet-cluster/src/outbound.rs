//! What a node has to send to other nodes, batched per destination and published by one task.
//!
//! Senders (IO threads forwarding client frames, a shard's logic thread at the end of a batch) append operations
//! to the open message for their destination under a short lock and wake the publisher. The publisher takes every
//! open message at once and publishes each: whatever accumulated while it was busy leaves as one NATS message per
//! destination, so the number of messages falls as the load rises. A message is closed at [`MESSAGE_TARGET`] bytes
//! and a new one opened, far below NATS's default 1 MiB `max_payload`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
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

/// [`Outbound::append`] refused: the destination already has [`PENDING_LIMIT`] bytes waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Congested;

/// Per-destination open messages and the publisher's wake-up.
#[derive(Debug)]
pub(crate) struct Outbound {
    me: u64,
    pending: Mutex<HashMap<u64, Vec<Vec<u8>>>>,
    /// Bytes in `pending`, per destination.
    waiting: Mutex<HashMap<u64, usize>>,
    /// The next header sequence number per destination.
    seqs: Mutex<HashMap<u64, u64>>,
    notify: Notify,
    stats: Arc<Counters>,
}

impl Outbound {
    pub(crate) fn new(me: u64, stats: Arc<Counters>) -> Self {
        Outbound {
            me,
            pending: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            seqs: Mutex::new(HashMap::new()),
            notify: Notify::new(),
            stats,
        }
    }

    /// Appends to the open message for `to` (`write` adds operations to it) and wakes the publisher. Refused, and
    /// counted in [`ClusterStats::congested`](crate::ClusterStats::congested), when `to` already has
    /// [`PENDING_LIMIT`] bytes waiting.
    pub(crate) fn append(&self, to: u64, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), Congested> {
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
    pub(crate) fn take_for_test(&self) -> HashMap<u64, Vec<Vec<u8>>> {
        self.take()
    }

    fn take(&self) -> HashMap<u64, Vec<Vec<u8>>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn published(&self, to: u64, bytes: usize) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waiting) = waiting.get_mut(&to) {
            *waiting = waiting.saturating_sub(bytes);
        }
    }

    /// Publishes forever (until the client is gone).
    pub(crate) async fn run(&self, client: async_nats::Client, subjects: Subjects) {
        loop {
            self.notify.notified().await;
            for (to, messages) in self.take() {
                let subject = subjects.node(to);
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
                        tracing::warn!(%error, to = format_args!("{to:016x}"), "publish failed");
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
        let outbound = Outbound::new(1, Arc::clone(&stats));
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..PENDING_LIMIT / chunk.len() {
            outbound.append(2, |buf| buf.extend_from_slice(&chunk)).expect("under the limit");
        }
        assert_eq!(outbound.append(2, |buf| buf.push(0)), Err(Congested));
        assert_eq!(stats.snapshot().congested, 1);
        assert_eq!(outbound.append(3, |buf| buf.push(0)), Ok(()), "another destination is not held up");
        let taken = outbound.take();
        let waiting: usize = taken[&2].iter().map(Vec::len).sum();
        outbound.published(2, waiting);
        assert_eq!(outbound.append(2, |buf| buf.push(0)), Ok(()), "room again once published");
    }
}
