//! The game, run on the logic thread: players, rooms, movement and chat.
//!
//! The runtime calls [`Game`] (a [`Logic`]) on one thread for every connect, packet and disconnect, in order, so the
//! game state is plain data with no locks. Packets are dispatched through the generated [`ClientPacketHandler`]
//! trait: one method per client packet, so a packet added to `game.proto` does not compile until it is handled here.
//!
//! Rules (the protocol's contract, `docs/SERVER.md`; `tests/game` checks each one):
//! - `C_LOGIN` with a name [`names`] accepts (1..=32 characters, nothing invisible, reordering or controlling, not
//!   the name of a player online, ignoring case) -> `S_LOGIN { success: true, player_id }` (unique, non-zero).
//!   Otherwise `S_LOGIN { success: false, error, reason }`, and the session may try again. A second login on a
//!   logged-in session is refused the same way; the first login stands.
//! - Before login only `C_LOGIN`, `C_PING` and `C_ECHO` are served; anything else is answered with `S_KICK` and the
//!   connection is closed.
//! - `C_ENTER_ROOM` -> `S_ENTER_ROOM { success: true, room_id, total, players, more }` listing the others in the
//!   room (id, name, last position), in pages of at most [`Game::page_bytes`] when it is long; they receive
//!   `S_SPAWN` with the newcomer. Leaving a room (entering another, or disconnecting) sends `S_DESPAWN` to those who
//!   stay. Entering the room one is already in is answered `S_ENTER_ROOM { already_in_room: true }` without a
//!   listing (a re-entry costs the server a few bytes, not a listing).
//! - `C_MOVE` in a room -> every other player in it receives `S_MOVE`; the mover receives nothing. A `C_MOVE` outside
//!   a room, without a position, or with a non-finite coordinate is ignored (nobody could be told, or it is junk).
//! - `C_CHAT` in a room -> everyone in it, the sender included, receives `S_CHAT` (encoded once for all). A line of
//!   more than [`MAX_CHAT_CHARS`] characters reaches nobody; the sender gets `S_CHAT_REFUSED`. Outside a room a chat
//!   is ignored.
//! - `C_PING`/`C_ECHO` are answered by [`GameIo`] on the IO threads; the handlers here only run if a server is built
//!   without that hook, and then answer pings with `server_time: 0` to make the missing hook visible.
//! - On shutdown every client receives `S_KICK { reason: "server shutting down" }` before its connection closes.
//!
//! Nothing a client sends is logged as it came: every client-supplied string is logged with `?` (escaped), so a
//! name cannot forge a log line or write to the terminal. A send the game cannot make is counted
//! ([`GameStats`]) and logged (at most once a second at `warn` for what would be a bug, at `debug` for a client
//! that is leaving), never dropped silently; nothing a client can cause is logged at `error`. At the default `info`
//! level a session gets one line when it logs in and one when its player leaves, both inside the runtime's
//! `session{id=.. peer=..}` span of the logic thread, like the runtime's own `connected` and `session closed` lines
//! on its IO thread.
//!
//! - `players`: who is logged in, their names and positions. `names`: what a name may be.
//! - `rooms`: who is in which room.
//! - `stats`: [`GameStats`], the game's counters, and the log throttle.
//! - `io`: [`GameIo`], the IO-thread hook.

mod arrivals;
mod io;
mod names;
mod players;
mod rooms;
mod stats;

use std::time::{Duration, Instant};

use packet_runtime::prost::Message;
use packet_runtime::prost::encoding::encoded_len_varint;
use packet_runtime::session::SendError;
use packet_runtime::{CloseReason, Context, HandOverError, Logic, PacketOf, Session, SessionId};

use arrivals::{Arrivals, Held};
pub use io::{GameIo, NoticeLimits, close_notice};
pub use names::MAX_NAME_CHARS;
use players::{Player, Players};
use rooms::Rooms;
use stats::Throttle;
pub use stats::{GameStats, GameStatsSnapshot};

use demo_protocol::proto::{
    CChat, CEcho, CEnterRoom, CLogin, CMove, CPing, CWhisper, ChatRefusal, LoginError, PlayerInfo, PlayerState, SChat,
    SChatRefused, SDespawn, SEnterRoom, SKick, SLogin, SMove, SPong, SSpawn, SWhisper,
};
use demo_protocol::{ClientPacket, ClientPacketHandler, GameProtocol, ServerPacket};

/// Longest chat line, in characters (not bytes). With a 32-character name and the `S_CHAT` envelope it stays far
/// under any frame limit, and it is a screen line or two, which is what a room chat is for.
pub const MAX_CHAT_CHARS: usize = 256;

/// How often the tick logs a status line.
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// The largest frame the compact header describes; no page may come near it.
const COMPACT_FRAME_LIMIT: usize = 65_535;

/// Pages are never smaller than this, whatever the frame limit: a few of the largest `PlayerInfo` (a
/// 32-character name of 4-byte characters is ~170 bytes encoded) always fit.
const MIN_PAGE_BYTES: usize = 1024;

/// Room for `S_ENTER_ROOM`'s own fields (success, room_id, total, more) and the frame header around a page.
const PAGE_OVERHEAD: usize = 32;

/// The demo game: the [`Logic`] of the server. Holds every player and room; lives on the logic thread.
#[derive(Debug)]
pub struct Game {
    players: Players,
    rooms: Rooms,
    last_status: Instant,
    /// Largest encoded `S_ENTER_ROOM` page, frame header included.
    page_bytes: usize,
    out: Sends,
    /// Rooms moving here whole from a draining shard, their packets held until every player arrived.
    arrivals: Arrivals,
    /// This shard is draining: the players handed over leave their rooms without a despawn (the whole room goes).
    draining: bool,
}

/// Where every send goes through, so that none fails unnoticed: counted in [`GameStats`] and logged.
#[derive(Debug)]
struct Sends {
    stats: GameStats,
    /// Lines about sends that failed for a reason that would be a bug (encoding), at most one a second.
    encode_failures: Throttle,
}

impl Default for Game {
    fn default() -> Self {
        Game::new()
    }
}

impl Game {
    /// An empty world, sized for the runtime's default frame limit (16 KiB).
    pub fn new() -> Self {
        Game::with_frame_limit(16 * 1024)
    }

    /// An empty world for a server whose frames are at most `max_frame` bytes: room listings are paged at half of
    /// that (at least 1 KiB, at most half of the compact header's 65,535).
    pub fn with_frame_limit(max_frame: usize) -> Self {
        Game {
            players: Players::default(),
            rooms: Rooms::default(),
            last_status: Instant::now(),
            page_bytes: (max_frame.min(COMPACT_FRAME_LIMIT) / 2).max(MIN_PAGE_BYTES),
            out: Sends { stats: GameStats::default(), encode_failures: Throttle::per(Duration::from_secs(1)) },
            arrivals: Arrivals::default(),
            draining: false,
        }
    }

    /// A handle to the game's counters, valid after the game has moved into a server.
    pub fn stats(&self) -> GameStats {
        self.out.stats.clone()
    }

    /// The largest `S_ENTER_ROOM` page this game sends, in bytes, frame header included.
    pub fn page_bytes(&self) -> usize {
        self.page_bytes
    }

    /// Takes `session`'s player out of its room, telling those who stay.
    fn leave_room(&mut self, ctx: &Context<'_, GameProtocol>, session: SessionId) {
        let Some(player) = self.players.get_mut(session) else { return };
        let Some(room) = player.room.take() else { return };
        let despawn = SDespawn { player_ids: vec![player.id] };
        self.rooms.leave(room, session);
        self.out.broadcast(ctx, self.rooms.members(room).iter().copied(), &despawn);
    }

    /// A player of a room moving here whole (`moving_with`): it joins the room as it was, without a listing or a
    /// spawn (its room is the same, only its shard changed), except towards players who entered the room here
    /// meanwhile and do not know it, nor it them. The room's packets are held until the whole group is here.
    fn arrive_with_room(
        &mut self,
        ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        room: u32,
        group: &[u64],
    ) {
        let me = session.id();
        let members = self.rooms.members(room).to_vec();
        let in_group = |game: &Game, other: &SessionId| game.players.get(*other).is_some_and(|p| group.contains(&p.id));
        let first = !members.iter().any(|other| in_group(self, other));
        let strangers: Vec<SessionId> = members.iter().copied().filter(|other| !in_group(self, other)).collect();
        let Some(player) = self.players.get_mut(me) else { return };
        player.room = Some(room);
        let (player_id, info) = (player.id, player.info());
        if !strangers.is_empty() {
            self.out.broadcast(ctx, strangers.iter().copied(), &SSpawn { players: vec![info] });
            let known: Vec<_> =
                strangers.iter().filter_map(|&other| self.players.get(other)).map(Player::info).collect();
            self.out.send(session, &SSpawn { players: known });
        }
        self.rooms.join(room, me);
        if let Some(held) = self.arrivals.arrived(room, player_id, group, first) {
            self.replay(ctx, held);
        }
    }

    /// Handles packets held while their room was arriving, in the order they came.
    fn replay(&mut self, ctx: &mut Context<'_, GameProtocol>, held: Held) {
        for (session, packet) in held {
            if self.players.is_logged_in(session.id()) {
                packet.dispatch(self, &mut Req { ctx, session: &session });
            }
        }
    }

    /// `others` as `S_ENTER_ROOM` pages of at most [`Game::page_bytes`] each (one page, possibly empty, at least).
    /// Whether a chat line or whisper is within the cap; if not, the sender is told and it goes nowhere. At most one
    /// character past the limit is counted: a 64 KB line is refused without walking it.
    fn chat_fits(&mut self, session: &Session<GameProtocol>, msg: &str) -> bool {
        if msg.chars().take(MAX_CHAT_CHARS + 1).count() <= MAX_CHAT_CHARS {
            return true;
        }
        self.out.stats.chat_refused();
        tracing::debug!(session = %session.id(), bytes = msg.len(), "chat line over the limit refused");
        let refused = SChatRefused {
            code: ChatRefusal::TooLong.into(),
            reason: format!("a chat line is at most {MAX_CHAT_CHARS} characters"),
            max_chars: MAX_CHAT_CHARS as u32,
        };
        self.out.send(session, &refused);
        false
    }

    /// Puts `session`'s player (logged in, in no room or in another) into `room`: the listing of the others to it
    /// in pages, its spawn to them.
    fn enter_room(&mut self, ctx: &Context<'_, GameProtocol>, session: &Session<GameProtocol>, room: u32) {
        let me = session.id();
        self.leave_room(ctx, me);
        let others: Vec<_> = self
            .rooms
            .members(room)
            .iter()
            .filter(|&&other| other != me)
            .filter_map(|&other| self.players.get(other))
            .map(|other| other.info())
            .collect();
        // Queued back to back from this one handler, so no other packet to this session comes between the pages.
        for page in self.listing_pages(room, others) {
            self.out.stats.listing_page();
            self.out.send(session, &page);
        }
        let Some(player) = self.players.get_mut(me) else { return };
        player.room = Some(room);
        let spawn = SSpawn { players: vec![player.info()] };
        self.out.broadcast(ctx, self.rooms.members(room).iter().copied(), &spawn);
        self.rooms.join(room, me);
    }

    fn listing_pages(&self, room_id: u32, others: Vec<PlayerInfo>) -> Vec<SEnterRoom> {
        let total = u32::try_from(others.len()).unwrap_or(u32::MAX);
        let budget = self.page_bytes - PAGE_OVERHEAD;
        let mut pages = Vec::new();
        let mut page = Vec::new();
        let mut used = 0;
        for info in others {
            let len = info.encoded_len();
            // Field 2's key (1 byte), the length prefix, the message.
            let cost = 1 + encoded_len_varint(len as u64) + len;
            if !page.is_empty() && used + cost > budget {
                pages.push(std::mem::take(&mut page));
                used = 0;
            }
            used += cost;
            page.push(info);
        }
        pages.push(page);
        let last = pages.len() - 1;
        pages
            .into_iter()
            .enumerate()
            .map(|(n, players)| SEnterRoom {
                success: true,
                players,
                room_id,
                total,
                more: n < last,
                already_in_room: false,
            })
            .collect()
    }
}

impl Sends {
    /// Sends `packet` to `session`; a failure is counted and logged, never dropped silently.
    fn send<T: PacketOf<ServerPacket>>(&mut self, session: &Session<GameProtocol>, packet: &T) {
        if let Err(error) = session.send(packet) {
            self.send_failed(session.id(), T::NAME, &error);
        }
    }

    fn send_failed(&mut self, session: SessionId, packet: &'static str, error: &SendError) {
        self.stats.send_failed();
        match error {
            // The client is leaving (it closed, or did not read and was cut off as a slow consumer, which the
            // runtime counts): its on_disconnect follows; nothing to tell it any more.
            SendError::Closed | SendError::QueueFull => {
                tracing::debug!(%session, packet, %error, "send to a closing session dropped");
            }
            _ => self.encode_failed(packet, error),
        }
    }

    /// A packet did not encode: only one over the frame header's limit fails, and the game bounds every packet it
    /// sends far below that, so this is a bug; logged at most once a second so that a client cannot make it flood.
    fn encode_failed(&mut self, packet: &'static str, error: &dyn std::fmt::Display) {
        if let Some(held_back) = self.encode_failures.allow(Instant::now()) {
            tracing::warn!(packet, %error, held_back, "a packet did not encode and was not sent");
        }
    }

    /// Encodes `packet` once and queues it to every recipient still connected. A recipient whose queue is over its
    /// limit is closed by the runtime as a slow consumer; the others are unaffected.
    fn broadcast<T: PacketOf<ServerPacket>>(
        &mut self,
        ctx: &Context<'_, GameProtocol>,
        recipients: impl IntoIterator<Item = SessionId>,
        packet: &T,
    ) {
        if let Err(error) = ctx.broadcast(recipients, packet) {
            self.stats.send_failed();
            self.encode_failed(T::NAME, &error);
        }
    }
}

/// What a handler gets besides the packet: the runtime's context and the sending session.
#[derive(Debug)]
pub struct Req<'c, 'a> {
    ctx: &'c mut Context<'a, GameProtocol>,
    session: &'c Session<GameProtocol>,
}

impl Logic for Game {
    type Protocol = GameProtocol;

    fn on_packet(
        &mut self,
        ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        packet: ClientPacket,
    ) {
        let allowed_before_login =
            matches!(packet, ClientPacket::CLogin(_) | ClientPacket::CPing(_) | ClientPacket::CEcho(_));
        if !allowed_before_login && !self.players.is_logged_in(session.id()) {
            tracing::debug!(session = %session.id(), packet = packet.name(), "packet before login: kicking");
            if let Err(error) =
                session.kick(&SKick { reason: format!("{} before C_LOGIN: log in first", packet.name()) })
            {
                self.out.send_failed(session.id(), "S_KICK", &error);
            }
            return;
        }
        let packet = match self.players.get(session.id()).and_then(|p| p.room) {
            Some(room) => match self.arrivals.hold(room, session, packet) {
                Ok(()) => return,
                Err(packet) => packet,
            },
            None => packet,
        };
        packet.dispatch(self, &mut Req { ctx, session });
    }

    /// A player handed over by another shard (a cluster): it enters the room it asked for, here.
    fn on_arrive(&mut self, ctx: &mut Context<'_, GameProtocol>, session: &Session<GameProtocol>, state: &[u8]) {
        let Ok(state) = PlayerState::decode(state) else {
            tracing::error!(session = %session.id(), "hand-over state does not decode; closing the session");
            self.out.send(session, &SKick { reason: "game server error: bad hand-over".into() });
            session.close();
            return;
        };
        if state.player_id == 0 {
            // Moved by a draining shard before it logged in: nothing to restore.
            return;
        }
        let player = Player { id: state.player_id, name: state.name, pos: state.pos.unwrap_or_default(), room: None };
        self.players.arrive(session.id(), player);
        if state.in_room && !state.moving_with.is_empty() {
            self.arrive_with_room(ctx, session, state.room_id, &state.moving_with);
        } else if state.in_room {
            self.enter_room(ctx, session, state.room_id);
        }
    }

    fn on_disconnect(
        &mut self,
        ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        reason: &CloseReason,
    ) {
        if self.draining && *reason == CloseReason::HandedOver {
            // Its whole room moved with it: nobody here is told of a despawn.
            if let Some(room) = self.players.get_mut(session.id()).and_then(|p| p.room.take()) {
                self.rooms.leave(room, session.id());
            }
        }
        self.leave_room(ctx, session.id());
        if let Some(player) = self.players.remove(session.id()) {
            tracing::info!(player = player.id, name = ?player.name, %reason, "player left");
        }
    }

    fn on_tick(&mut self, ctx: &mut Context<'_, GameProtocol>) {
        for (room, held) in self.arrivals.overdue() {
            tracing::warn!(
                room,
                held = held.len(),
                "a moving room's players did not all arrive; going on without them"
            );
            self.replay(ctx, held);
        }
        if self.last_status.elapsed() >= STATUS_EVERY {
            self.last_status = Instant::now();
            let metrics = ctx.metrics();
            let stats = self.out.stats.snapshot();
            tracing::info!(
                sessions = ctx.session_count(),
                players = self.players.len(),
                rooms = self.rooms.len(),
                frames_in = metrics.frames_in,
                frames_out = metrics.frames_out,
                logins_refused = stats.logins_refused,
                chats_refused = stats.chats_refused,
                room_reentries = stats.room_reentries,
                sends_failed = stats.sends_failed,
                "status"
            );
        }
    }

    /// On a cluster's shard, the shard drains: every player is handed to the shard that owns its room (the room
    /// moves whole, positions kept), or, outside a room, to any shard; its connection stays open. With no other
    /// shard live, its gateway tells it `S_KICK { "server shutting down" }` and closes it. Embedded, the goodbye is
    /// the close notice the runtime sends every local session (`io::close_notice`): one per close, so nothing is
    /// sent from here.
    fn on_shutdown(&mut self, ctx: &mut Context<'_, GameProtocol>) {
        self.draining = true;
        let sessions: Vec<_> = ctx.sessions().cloned().collect();
        // Each room moves whole: every player of it carries the ids of all of them, so that the room's new owner
        // holds their packets until all are there (`arrivals`).
        let mut groups: std::collections::HashMap<u32, Vec<u64>> = std::collections::HashMap::new();
        for session in &sessions {
            if let Some(player) = self.players.get(session.id())
                && let Some(room) = player.room
            {
                groups.entry(room).or_default().push(player.id);
            }
        }
        let mut handed = 0usize;
        for session in &sessions {
            let state = match self.players.get(session.id()) {
                Some(player) => PlayerState {
                    player_id: player.id,
                    name: player.name.clone(),
                    pos: Some(player.pos),
                    room_id: player.room.unwrap_or(0),
                    in_room: player.room.is_some(),
                    moving_with: player.room.and_then(|room| groups.get(&room)).cloned().unwrap_or_default(),
                },
                // Not logged in: it moves with nothing to carry.
                None => PlayerState::default(),
            };
            let key = match (state.in_room, session.remote_id()) {
                (true, _) => room_key(state.room_id),
                (false, Some(remote)) => format!("session.{remote}"),
                (false, None) => String::new(),
            };
            match ctx.hand_over(session, &key, &state) {
                Ok(()) => handed += 1,
                // Embedded: nowhere to go.
                Err(HandOverError::Local) => break,
                Err(_) => {}
            }
        }
        if handed > 0 {
            tracing::info!(handed, "draining: players handed over to the other shards");
            return;
        }
        // Remote sessions that could not be handed over are closed by their gateway at this shard's request, which
        // sends no notice: they get the goodbye here.
        let remote: Vec<_> = ctx.sessions().filter(|s| s.remote_id().is_some()).map(|s| s.id()).collect();
        if remote.is_empty() {
            return;
        }
        if let Err(error) = ctx.broadcast(remote, &SKick { reason: "server shutting down".into() }) {
            self.out.stats.send_failed();
            self.out.encode_failed("S_KICK", &error);
        }
    }
}

impl ClientPacketHandler<Req<'_, '_>> for Game {
    fn on_c_login(&mut self, req: &mut Req<'_, '_>, packet: CLogin) {
        let session = req.session.id();
        let reply = match self.players.login(session, packet.name, req.session.remote_id()) {
            Ok(player_id) => {
                let name = self.players.get(session).map(|p| p.name.as_str());
                // Info, once per session: in the session's span (the runtime enters it around every handler).
                tracing::info!(player_id, name = ?name.unwrap_or_default(), "logged in");
                SLogin { success: true, player_id, error: LoginError::None.into(), reason: String::new() }
            }
            Err((refused, name)) => {
                self.out.stats.login_refused();
                // `?`: the name is exactly what a hostile client chose; escaped, it cannot forge a line.
                tracing::debug!(%session, name = ?name, error = refused.code().as_str_name(), "login refused");
                SLogin { success: false, player_id: 0, error: refused.code().into(), reason: refused.reason() }
            }
        };
        self.out.send(req.session, &reply);
    }

    fn on_c_enter_room(&mut self, req: &mut Req<'_, '_>, packet: CEnterRoom) {
        let me = req.session.id();
        let room = packet.room_id;
        if self.players.get(me).is_some_and(|p| p.room == Some(room)) {
            // The client has the listing already (and S_SPAWN/S_DESPAWN keep it current): a few bytes, not a
            // listing, so that a 6-byte request cannot ask for kilobytes over and over.
            self.out.stats.room_reentry();
            let ack = SEnterRoom { success: true, room_id: room, already_in_room: true, ..SEnterRoom::default() };
            self.out.send(req.session, &ack);
            return;
        }
        // In a cluster, the room may be on another shard: hand the player over to whichever owns it (this one
        // included), with what that shard needs to go on. Embedded, every room is here.
        if let Some(player) = self.players.get(me) {
            let state = PlayerState {
                player_id: player.id,
                name: player.name.clone(),
                pos: Some(player.pos),
                room_id: room,
                in_room: true,
                moving_with: Vec::new(),
            };
            match req.ctx.hand_over(req.session, &room_key(room), &state) {
                // `on_disconnect` runs here next (the player leaves its room); `on_arrive` there enters the room.
                Ok(()) => return,
                Err(HandOverError::Local) => {}
                Err(_) => return,
            }
        }
        self.enter_room(req.ctx, req.session, room);
    }

    fn on_c_move(&mut self, req: &mut Req<'_, '_>, packet: CMove) {
        let me = req.session.id();
        let Some(pos) = packet.pos.filter(|p| [p.x, p.y, p.z, p.yaw].iter().all(|c| c.is_finite())) else { return };
        let Some(player) = self.players.get_mut(me) else { return };
        let Some(room) = player.room else { return };
        player.pos = pos;
        let moved = SMove { player_id: player.id, pos: Some(pos) };
        let others = self.rooms.members(room).iter().copied().filter(|&other| other != me);
        self.out.broadcast(req.ctx, others, &moved);
    }

    fn on_c_chat(&mut self, req: &mut Req<'_, '_>, packet: CChat) {
        let Some(player) = self.players.get(req.session.id()) else { return };
        let (Some(room), player_id) = (player.room, player.id) else { return };
        if !self.chat_fits(req.session, &packet.msg) {
            return;
        }
        let chat = SChat { player_id, msg: packet.msg };
        self.out.broadcast(req.ctx, self.rooms.members(room).iter().copied(), &chat);
    }

    fn on_c_whisper(&mut self, req: &mut Req<'_, '_>, packet: CWhisper) {
        let Some(player) = self.players.get(req.session.id()) else { return };
        let whisper = SWhisper { from_player_id: player.id, msg: packet.msg };
        if !self.chat_fits(req.session, &whisper.msg) {
            return;
        }
        // Here (embedded, or a player on this shard), or anywhere in the cluster by its id (player ids are the
        // sessions' cluster-wide ids).
        if let Some(session) = self.players.session_of(packet.player_id).and_then(|id| req.ctx.session(id)) {
            let session = session.clone();
            self.out.send(&session, &whisper);
            return;
        }
        let routed = match req.ctx.send_remote([packet.player_id], &whisper) {
            Ok(routed) => routed,
            Err(error) => {
                self.out.encode_failed("S_WHISPER", &error);
                return;
            }
        };
        if routed == 0 {
            self.out.stats.chat_refused();
            let refused = SChatRefused {
                code: ChatRefusal::NoSuchPlayer.into(),
                reason: format!("player {} is not online", packet.player_id),
                max_chars: MAX_CHAT_CHARS as u32,
            };
            self.out.send(req.session, &refused);
        }
    }

    /// Only reached on a server built without [`GameIo`]: answers with `server_time: 0`, which tells a client (and
    /// the tests) that pings are taking the slow path through the logic thread.
    fn on_c_ping(&mut self, req: &mut Req<'_, '_>, packet: CPing) {
        self.out.send(req.session, &SPong { client_time: packet.client_time, server_time: 0 });
    }

    fn on_c_echo(&mut self, req: &mut Req<'_, '_>, packet: CEcho) {
        self.out.send(req.session, &io::echo_reply(packet));
    }
}

/// The cluster key of a room: the shard that owns it (recorded in the cluster) hosts the room.
fn room_key(room: u32) -> String {
    format!("room.{room}")
}
