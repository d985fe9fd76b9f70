//! What a node has to send to other nodes, batched per destination and published by one task.
//!
//! Senders (IO threads forwarding client frames, a shard's logic thread at the end of a batch) append operations
//! to the open message for their destination under a short lock and wake the publisher. The publisher takes every
//! open message at once and publishes each: whatever accumulated while it was busy leaves as one NATS message per
//! destination, so the number of messages falls as the load rises. A message is closed at [`MESSAGE_TARGET`] bytes
//! and a new one opened, far below NATS's default 1 MiB `max_payload`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::envelope;
use crate::subjects::Subjects;

/// A message is closed once it holds this many bytes (an operation is never split).
pub(crate) const MESSAGE_TARGET: usize = 256 * 1024;

/// Per-destination open messages and the publisher's wake-up.
#[derive(Debug)]
pub(crate) struct Outbound {
    me: u64,
    pending: Mutex<HashMap<u64, Vec<Vec<u8>>>>,
    /// The next header sequence number per destination.
    seqs: Mutex<HashMap<u64, u64>>,
    notify: Notify,
    /// Messages published, for the node's counters.
    pub(crate) published: AtomicU64,
}

impl Outbound {
    pub(crate) fn new(me: u64) -> Self {
        Outbound {
            me,
            pending: Mutex::new(HashMap::new()),
            seqs: Mutex::new(HashMap::new()),
            notify: Notify::new(),
            published: AtomicU64::new(0),
        }
    }

    /// Appends to the open message for `to` (`write` adds operations to it) and wakes the publisher.
    pub(crate) fn append(&self, to: u64, write: impl FnOnce(&mut Vec<u8>)) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let messages = pending.entry(to).or_default();
            if messages.last().is_none_or(|open| open.len() >= MESSAGE_TARGET) {
                let mut open = Vec::with_capacity(1024);
                // The sequence number is written when the message is published.
                envelope::put_header(&mut open, self.me, 0);
                messages.push(open);
            }
            write(messages.last_mut().expect("an open message"));
        }
        self.notify.notify_one();
    }

    #[cfg(test)]
    pub(crate) fn take_for_test(&self) -> HashMap<u64, Vec<Vec<u8>>> {
        self.take()
    }

    fn take(&self) -> HashMap<u64, Vec<Vec<u8>>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
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
                    if let Err(error) = client.publish(subject.clone(), message.into()).await {
                        tracing::warn!(%error, to = format_args!("{to:016x}"), "publish failed");
                    } else {
                        self.published.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}
