//! Rooms that move whole. When a shard drains, it hands every player of a room over at once to the room's new
//! owner, each carrying the ids of the others (`PlayerState::moving_with`). They arrive one by one, each through its
//! own gateway, so the new owner holds the packets of the room's players until the last of them has arrived, then
//! handles them in the order they came: a chat sent during the move reaches every player of the room once, in order
//! per sender, and no one is told of a despawn or a spawn (the room is the same, only its shard changed). A player
//! who never arrives (its gateway went away meanwhile) holds the room for [`ASSEMBLY_WAIT`] at most.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use demo_protocol::{ClientPacket, GameProtocol};
use packet_runtime::Session;

/// Longest a room's packets are held for players still on their way.
pub(crate) const ASSEMBLY_WAIT: Duration = Duration::from_secs(2);

/// Packets held until a moving room is whole, in arrival order.
pub(crate) type Held = Vec<(Session<GameProtocol>, ClientPacket)>;

/// The rooms arriving here now.
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    rooms: HashMap<u32, Assembly>,
}

#[derive(Debug)]
struct Assembly {
    /// Players of the group not arrived yet.
    missing: HashSet<u64>,
    held: Held,
    since: Instant,
}

impl Arrivals {
    /// `player` of a group moving into `room` arrived. `first` says whether it is the first of its group here (no
    /// other member of the group is in the room): only then is a new assembly started, so that a late arrival after
    /// [`ASSEMBLY_WAIT`] does not hold a room that is already whole. Returns the held packets once the room is whole.
    pub(crate) fn arrived(&mut self, room: u32, player: u64, group: &[u64], first: bool) -> Option<Held> {
        if first && !self.rooms.contains_key(&room) {
            let missing = group.iter().copied().filter(|&other| other != player).collect::<HashSet<_>>();
            if missing.is_empty() {
                return None;
            }
            self.rooms.insert(room, Assembly { missing, held: Vec::new(), since: Instant::now() });
            return None;
        }
        let assembly = self.rooms.get_mut(&room)?;
        assembly.missing.remove(&player);
        if assembly.missing.is_empty() { self.rooms.remove(&room).map(|assembly| assembly.held) } else { None }
    }

    /// Keeps `packet` if `room` is still arriving; gives it back otherwise.
    pub(crate) fn hold(
        &mut self,
        room: u32,
        session: &Session<GameProtocol>,
        packet: ClientPacket,
    ) -> Result<(), ClientPacket> {
        if self.rooms.is_empty() {
            // Almost always: nothing is arriving, and every packet passes here.
            return Err(packet);
        }
        match self.rooms.get_mut(&room) {
            Some(assembly) => {
                assembly.held.push((session.clone(), packet));
                Ok(())
            }
            None => Err(packet),
        }
    }

    /// Rooms that waited [`ASSEMBLY_WAIT`] for players who did not come: their held packets.
    pub(crate) fn overdue(&mut self) -> Vec<(u32, Held)> {
        let late: Vec<u32> =
            self.rooms.iter().filter(|(_, a)| a.since.elapsed() >= ASSEMBLY_WAIT).map(|(&room, _)| room).collect();
        late.into_iter().filter_map(|room| self.rooms.remove(&room).map(|a| (room, a.held))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_is_whole_when_the_last_of_its_group_arrives() {
        let mut arrivals = Arrivals::default();
        assert!(arrivals.arrived(7, 1, &[1, 2, 3], true).is_none(), "1 of 3");
        assert!(arrivals.arrived(7, 3, &[1, 2, 3], false).is_none(), "2 of 3");
        assert!(arrivals.arrived(7, 2, &[1, 2, 3], false).is_some(), "3 of 3: whole");
        assert!(arrivals.arrived(7, 4, &[4, 5], false).is_none(), "a late member of a finished group holds nothing");
        assert!(arrivals.overdue().is_empty());
    }

    #[test]
    fn a_group_of_one_holds_nothing() {
        let mut arrivals = Arrivals::default();
        assert!(arrivals.arrived(7, 1, &[1], true).is_none());
        assert!(arrivals.rooms.is_empty());
    }
}
