//! Generational session ids: an id names one connection for its whole life and is never valid again afterwards.

use std::fmt;
use std::sync::Mutex;

/// Names one session. The slot index is reused after the session is gone, the generation never: a stale id can never
/// resolve to the session that took its slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    index: u32,
    generation: u32,
}

impl SessionId {
    /// The slot index (dense: suitable for indexing a `Vec` in game state, after checking the full id).
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// The slot's generation when this session took it.
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// Both halves packed in one `u64` (generation high, index low), e.g. for logs or a map key.
    pub const fn as_u64(self) -> u64 {
        (self.generation as u64) << 32 | self.index as u64
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}v{})", self.index, self.generation)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}v{}", self.index, self.generation)
    }
}

/// Hands out session ids. Taken on accept (IO thread), given back by the logic thread only after `on_disconnect`
/// ran, so an id is valid exactly while the logic can see its session.
///
/// A `Mutex` is fine here: it is touched twice per connection, never per packet.
#[derive(Debug, Default)]
pub(crate) struct SessionIds {
    slots: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    generations: Vec<u32>,
    free: Vec<u32>,
}

impl SessionIds {
    pub(crate) fn allocate(&self) -> SessionId {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(index) = slots.free.pop() {
            let generation = slots.generations[index as usize];
            return SessionId { index, generation };
        }
        let index = u32::try_from(slots.generations.len()).expect("more than 4 billion session slots");
        slots.generations.push(0);
        SessionId { index, generation: 0 }
    }

    /// Gives the slot back with a new generation. A slot whose generation would wrap is retired instead, so an id is
    /// never reissued.
    pub(crate) fn release(&self, id: SessionId) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let generation = &mut slots.generations[id.index as usize];
        debug_assert_eq!(*generation, id.generation, "released twice");
        if let Some(next) = generation.checked_add(1) {
            *generation = next;
            slots.free.push(id.index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_ids_are_never_reissued() {
        let ids = SessionIds::default();
        let a = ids.allocate();
        let b = ids.allocate();
        assert_ne!(a, b);
        ids.release(a);
        let c = ids.allocate();
        assert_eq!(c.index(), a.index(), "slot reused");
        assert_ne!(c, a, "but not the id");
        assert_eq!(c.generation(), a.generation() + 1);
    }
}
