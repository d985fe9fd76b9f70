//! Who is logged in: one [`Player`] per logged-in session, keyed by its session id.
//!
//! Owned by the logic thread (inside [`Game`](super::Game)), so plain maps, no locks. A session that has not logged in
//! has no entry: "is there a player for this session" is the login check. Names are unique among the players online
//! (see [`names`](super::names) for what counts as the same name).

use std::collections::{HashMap, HashSet};

use packet_runtime::SessionId;

use demo_protocol::proto::{LoginError, PlayerInfo, PosInfo};

use super::names::{NameError, check_name, name_key};

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
    /// The name breaks a rule of [`check_name`].
    BadName(NameError),
    /// A player online now has the same name (case-insensitively).
    NameTaken,
    /// The session already has a player; the first login stands.
    AlreadyLoggedIn,
}

impl LoginRefused {
    /// The protocol's code for it.
    pub(crate) fn code(self) -> LoginError {
        match self {
            LoginRefused::BadName(NameError::Length) => LoginError::NameLength,
            LoginRefused::BadName(NameError::Character { .. }) => LoginError::NameCharacter,
            LoginRefused::BadName(NameError::Blank) => LoginError::NameBlank,
            LoginRefused::NameTaken => LoginError::NameTaken,
            LoginRefused::AlreadyLoggedIn => LoginError::AlreadyLoggedIn,
        }
    }

    /// Words a client can show.
    pub(crate) fn reason(self) -> String {
        match self {
            LoginRefused::BadName(error) => error.reason(),
            LoginRefused::NameTaken => {
                "a player online has that name already (names are compared ignoring case)".to_owned()
            }
            LoginRefused::AlreadyLoggedIn => "this session is logged in already".to_owned(),
        }
    }
}

/// Every logged-in player.
#[derive(Debug)]
pub(crate) struct Players {
    by_session: HashMap<SessionId, Player>,
    /// Player id to session, for whispers.
    by_id: HashMap<u64, SessionId>,
    /// [`name_key`] of every online player's name, to refuse duplicates.
    names: HashSet<String>,
    /// The next player id handed out. Starts at 1 so that 0 can mean "none" on the wire.
    next_id: u64,
}

impl Default for Players {
    fn default() -> Self {
        Players { by_session: HashMap::new(), by_id: HashMap::new(), names: HashSet::new(), next_id: 1 }
    }
}

impl Players {
    /// Logs `session` in as `name`; returns the new player id, or why not and the refused name. The id is `id` if
    /// given (in a cluster, the session's cluster-wide id, so that ids are unique across shards), else the next of
    /// this server's own.
    pub(crate) fn login(
        &mut self,
        session: SessionId,
        name: String,
        id: Option<u64>,
    ) -> Result<u64, (LoginRefused, String)> {
        if self.by_session.contains_key(&session) {
            return Err((LoginRefused::AlreadyLoggedIn, name));
        }
        if let Err(error) = check_name(&name) {
            return Err((LoginRefused::BadName(error), name));
        }
        if !self.names.insert(name_key(&name)) {
            return Err((LoginRefused::NameTaken, name));
        }
        let id = id.unwrap_or_else(|| {
            let id = self.next_id;
            self.next_id += 1;
            id
        });
        self.by_id.insert(id, session);
        self.by_session.insert(session, Player { id, name, pos: PosInfo::default(), room: None });
        Ok(id)
    }

    /// A player handed over from another shard, logged in already. Its name counts as online here from now on
    /// (names are unique per game server: in a cluster, per shard).
    pub(crate) fn arrive(&mut self, session: SessionId, player: Player) {
        self.names.insert(name_key(&player.name));
        self.by_id.insert(player.id, session);
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
        let player = self.by_session.remove(&session)?;
        self.names.remove(&name_key(&player.name));
        self.by_id.remove(&player.id);
        Some(player)
    }

    /// The session of the player with this id, if it is logged in here.
    pub(crate) fn session_of(&self, player_id: u64) -> Option<SessionId> {
        self.by_id.get(&player_id).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_session.len()
    }
}
