//! Who is logged in: one [`Player`] per logged-in session, keyed by its session id.
//!
//! Owned by the logic thread (inside [`Game`](super::Game)), so plain maps, no locks. A session that has not logged in
//! has no entry: "is there a player for this session" is the login check.

use std::collections::HashMap;

use packet_runtime::SessionId;

use demo_protocol::proto::{PlayerInfo, PosInfo};

/// Longest accepted display name, in characters (not bytes).
pub const MAX_NAME_CHARS: usize = 32;

/// One logged-in player.
#[derive(Debug, Clone)]
pub(crate) struct Player {
    /// What clients know the player by: unique over the server's life, never 0.
    pub(crate) id: u64,
    pub(crate) name: String,
    /// The last position the player moved to (the origin until the first `C_MOVE`). Kept when changing rooms.
    pub(crate) pos: PosInfo,
    /// The room the player is in, if any.
    pub(crate) room: Option<u32>,
}

impl Player {
    /// The player as others see it.
    pub(crate) fn info(&self) -> PlayerInfo {
        PlayerInfo { player_id: self.id, name: self.name.clone(), pos: Some(self.pos) }
    }
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginRefused {
    /// The name is empty or longer than [`MAX_NAME_CHARS`].
    BadName,
    /// The session already has a player; the first login stands.
    AlreadyLoggedIn,
}

/// Every logged-in player.
#[derive(Debug)]
pub(crate) struct Players {
    by_session: HashMap<SessionId, Player>,
    /// The next player id handed out. Starts at 1 so that 0 can mean "none" on the wire.
    next_id: u64,
}

impl Default for Players {
    fn default() -> Self {
        Players { by_session: HashMap::new(), next_id: 1 }
    }
}

impl Players {
    /// Logs `session` in as `name`; returns the new player id: `id` if given (in a cluster, the session's
    /// cluster-wide id, so that ids are unique across shards), else the next of this server's own.
    pub(crate) fn login(&mut self, session: SessionId, name: String, id: Option<u64>) -> Result<u64, LoginRefused> {
        if self.by_session.contains_key(&session) {
            return Err(LoginRefused::AlreadyLoggedIn);
        }
        if !(1..=MAX_NAME_CHARS).contains(&name.chars().count()) {
            return Err(LoginRefused::BadName);
        }
        let id = id.unwrap_or_else(|| {
            let id = self.next_id;
            self.next_id += 1;
            id
        });
        self.by_session.insert(session, Player { id, name, pos: PosInfo::default(), room: None });
        Ok(id)
    }

    /// A player handed over from another shard, logged in already.
    pub(crate) fn arrive(&mut self, session: SessionId, player: Player) {
        self.by_session.insert(session, player);
    }

    pub(crate) fn get(&self, session: SessionId) -> Option<&Player> {
        self.by_session.get(&session)
    }

    pub(crate) fn get_mut(&mut self, session: SessionId) -> Option<&mut Player> {
        self.by_session.get_mut(&session)
    }

    pub(crate) fn is_logged_in(&self, session: SessionId) -> bool {
        self.by_session.contains_key(&session)
    }

    /// Forgets the session's player (on disconnect).
    pub(crate) fn remove(&mut self, session: SessionId) -> Option<Player> {
        self.by_session.remove(&session)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_session.len()
    }
}
