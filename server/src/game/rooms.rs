//! Which sessions are in which room.
//!
//! Owned by the logic thread. A room exists while someone is in it. Members are a `Vec` in join order: broadcasts
//! walk it, and joins and leaves are rare next to moves and chats; a linear leave is fine at the hundreds of members
//! per room this demo targets (rooms of many thousands would want an index map).

use std::collections::HashMap;

use packet_runtime::SessionId;

#[derive(Debug, Default)]
pub(crate) struct Rooms {
    rooms: HashMap<u32, Vec<SessionId>>,
}

impl Rooms {
    /// The sessions in `room`, in join order (empty if nobody is there).
    pub(crate) fn members(&self, room: u32) -> &[SessionId] {
        self.rooms.get(&room).map_or(&[], Vec::as_slice)
    }

    /// Adds `session` to `room`. The caller made sure it is in no room.
    pub(crate) fn join(&mut self, room: u32, session: SessionId) {
        self.rooms.entry(room).or_default().push(session);
    }

    /// Removes `session` from `room`; the room goes away once empty.
    pub(crate) fn leave(&mut self, room: u32, session: SessionId) {
        let Some(members) = self.rooms.get_mut(&room) else { return };
        if let Some(at) = members.iter().position(|&m| m == session) {
            members.remove(at);
        }
        if members.is_empty() {
            self.rooms.remove(&room);
        }
    }

    /// Rooms with at least one member.
    pub(crate) fn len(&self) -> usize {
        self.rooms.len()
    }
}
