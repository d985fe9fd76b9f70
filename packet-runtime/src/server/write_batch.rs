//! A driver's write batch: the frames taken from its session's queue and not yet fully written.
//!
//! The batch's buffer is a frame list borrowed from the server's spare lists (`session::outbox::SpareLists`) while
//! it holds frames, and given back when the driver has written them all and waits again. So an idle session holds no
//! write buffer (as it holds no read buffer), and the capacity a batch needs is that of the lists, set when a list
//! is made and shared by all sessions, instead of each session's own buffer growing to its own high-water mark, one
//! reallocation at a time, for as long as the server runs. A list the logic thread hands over (`TakePending`) to an
//! empty batch becomes the batch: its buffer changes hands, and its frames are not copied.

use std::collections::VecDeque;

use crate::packet_ptr::PacketPtr;
use crate::session::outbox::{FrameList, SpareLists};

pub(crate) struct WriteBatch {
    /// In order; the driver writes from the front.
    frames: VecDeque<PacketPtr>,
    /// The box of the spare list whose buffer `frames` uses (its own `Vec` is empty meanwhile), to give the buffer
    /// back in. `None` while `frames` has no buffer (it is then empty, with no capacity).
    list: Option<FrameList>,
}

impl WriteBatch {
    pub(crate) const fn new() -> Self {
        WriteBatch { frames: VecDeque::new(), list: None }
    }

    pub(crate) fn frames(&self) -> &VecDeque<PacketPtr> {
        &self.frames
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub(crate) fn front(&self) -> Option<&PacketPtr> {
        self.frames.front()
    }

    pub(crate) fn pop_front(&mut self) -> Option<PacketPtr> {
        self.frames.pop_front()
    }

    /// Drops every frame (the buffer stays until [`release`](Self::release)).
    pub(crate) fn clear(&mut self) {
        self.frames.clear();
    }

    /// The frames, with a buffer borrowed from `spares` if they had none, to push to.
    pub(crate) fn for_pushing(&mut self, spares: &SpareLists) -> &mut VecDeque<PacketPtr> {
        if self.list.is_none() {
            let mut list = spares.take();
            // `frames` is empty and has no buffer: nothing is dropped here but an empty deque.
            self.frames = VecDeque::from(std::mem::take(&mut *list));
            self.list = Some(list);
        }
        &mut self.frames
    }

    /// Appends the frames of `list` (from the logic thread's `pending` slot, or `Command::Frames`) and gives a list
    /// back to `spares`: `list` itself when its frames were copied, or the batch's previous buffer when `list`
    /// became the batch.
    pub(crate) fn append(&mut self, spares: &SpareLists, mut list: FrameList) {
        if !self.frames.is_empty() {
            self.frames.extend(list.drain(..));
            spares.give_back(list);
            return;
        }
        // O(1) both ways: a `Vec` becomes a `VecDeque` in place, and an empty `VecDeque` a `Vec`.
        let previous = std::mem::replace(&mut self.frames, VecDeque::from(std::mem::take(&mut *list)));
        // `list`'s box, now empty, is the one to give the new buffer back in.
        if let Some(mut previous_list) = self.list.replace(list) {
            *previous_list = Vec::from(previous);
            spares.give_back(previous_list);
        }
    }

    /// Gives the buffer back to `spares` if the batch is empty: the driver is about to wait.
    pub(crate) fn release(&mut self, spares: &SpareLists) {
        if self.frames.is_empty()
            && let Some(mut list) = self.list.take()
        {
            *list = Vec::from(std::mem::take(&mut self.frames));
            spares.give_back(list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WriteBatch;
    use crate::packet_ptr::{PacketBuilder, PacketPtr};
    use crate::pool::{MessagePool, PoolConfig};
    use crate::session::outbox::SpareLists;

    fn frame(pool: &MessagePool, byte: u8) -> PacketPtr {
        let mut builder = PacketBuilder::with_capacity_in(pool, 1);
        builder.extend_from_slice(&[byte]);
        builder.freeze()
    }

    fn bytes(batch: &WriteBatch) -> Vec<u8> {
        batch.frames().iter().map(|frame| frame[0]).collect()
    }

    /// Frames keep their order whichever way they come in, and every buffer the batch borrowed goes back: an empty
    /// batch holds none.
    #[test]
    fn frames_keep_their_order_and_buffers_go_back() {
        let pool = MessagePool::new(PoolConfig::default());
        let spares = SpareLists::new();
        let mut batch = WriteBatch::new();

        let mut list = spares.take();
        list.extend([frame(&pool, 1), frame(&pool, 2)]);
        let buffer = list.as_ptr();
        batch.append(&spares, list);
        assert_eq!(batch.frames().as_slices().0.as_ptr(), buffer, "an empty batch takes the list's buffer");
        batch.for_pushing(&spares).push_back(frame(&pool, 3));
        let mut list = spares.take();
        list.push(frame(&pool, 4));
        batch.append(&spares, list);
        assert_eq!(bytes(&batch), [1, 2, 3, 4]);
        assert_eq!(spares.kept(), 1, "the list whose frames were copied went back");

        batch.release(&spares);
        assert_eq!(batch.len(), 4, "a batch with frames keeps its buffer");
        while batch.pop_front().is_some() {}
        batch.release(&spares);
        assert_eq!(spares.kept(), 2, "the empty batch gave its buffer back");
        assert!(batch.frames().capacity() == 0);

        batch.for_pushing(&spares).push_back(frame(&pool, 5));
        assert_eq!(spares.kept(), 1, "a push borrows a buffer");
        batch.clear();
        batch.release(&spares);
        assert_eq!(spares.kept(), 2);
        assert_eq!(pool.stats().outstanding(), 0);
    }
}
