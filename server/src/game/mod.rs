//! The game, run on the logic thread: players, rooms, movement and chat.
//!
//! The runtime calls [`Game`] (a [`Logic`]) on one thread for every connect, packet and disconnect, in order, so the
//! game state is plain data with no locks. Packets are dispatched through the generated [`ClientPacketHandler`]
//! trait: one method per client packet, so a packet added to `game.proto` does not compile until it is handled here.
//!
//! Rules (the protocol's contract; `tests/game` checks each one):
//! - `C_LOGIN` with a name of 1..=32 characters -> `S_LOGIN { success: true, player_id }` (unique, non-zero). An
//!   empty or longer name -> `S_LOGIN { success: false }`, and the session may try again. A second login on a
//!   logged-in session is refused the same way; the first login stands.
//! - Before login only `C_LOGIN`, `C_PING` and `C_ECHO` are served; anything else is answered with `S_KICK` and the
//!   connection is closed.
//! - `C_ENTER_ROOM` -> `S_ENTER_ROOM { success: true, players }` listing the others in the room (id, name, last
//!   position); they receive `S_SPAWN` with the newcomer. Leaving a room (entering another, or disconnecting) sends
//!   `S_DESPAWN` to those who stay. Entering the room one is already in only repeats the `S_ENTER_ROOM`.
//! - `C_MOVE` in a room -> every other player in it receives `S_MOVE`; the mover receives nothing. A `C_MOVE` outside
//!   a room, without a position, or with a non-finite coordinate is ignored (nobody could be told, or it is junk).
//! - `C_CHAT` in a room -> everyone in it, the sender included, receives `S_CHAT` (encoded once for all). Outside a
//!   room it is ignored.
//! - `C_PING`/`C_ECHO` are answered by [`GameIo`] on the IO threads; the handlers here only run if a server is built
//!   without that hook, and then answer pings with `server_time: 0` to make the missing hook visible.
//! - On shutdown every client receives `S_KICK { reason: "server shutting down" }` before its connection closes.
//!
//! - `players`: who is logged in, their names and positions.
//! - `rooms`: who is in which room.
//! - `io`: [`GameIo`], the IO-thread hook.

mod io;
mod players;
mod rooms;

use std::time::{Duration, Instant};

use packet_runtime::prost::Message as _;
use packet_runtime::{CloseReason, Context, HandOverError, Logic, Session, SessionId};

pub use io::GameIo;
pub use players::MAX_NAME_CHARS;
use players::{LoginRefused, Player, Players};
use rooms::Rooms;

use demo_protocol::proto::{
    CChat, CEcho, CEnterRoom, CLogin, CMove, CPing, PlayerState, SChat, SDespawn, SEnterRoom, SKick, SLogin, SMove,
    SPong, SSpawn,
};
use demo_protocol::{ClientPacket, ClientPacketHandler, GameProtocol};

/// How often the tick logs a status line.
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// The demo game: the [`Logic`] of the server. Holds every player and room; lives on the logic thread.
#[derive(Debug)]
pub struct Game {
    players: Players,
    rooms: Rooms,
    last_status: Instant,
}

impl Default for Game {
    fn default() -> Self {
        Game::new()
    }
}

impl Game {
    /// An empty world.
    pub fn new() -> Self {
        Game { players: Players::default(), rooms: Rooms::default(), last_status: Instant::now() }
    }

    /// Puts `session`'s player (logged in, in no room or in another) into `room`: the listing of the others to it,
    /// its spawn to them. Entering the room it is in only repeats the listing.
    fn enter_room(&mut self, ctx: &Context<'_, GameProtocol>, session: &Session<GameProtocol>, room: u32) {
        let me = session.id();
        let already_there = self.players.get(me).is_some_and(|p| p.room == Some(room));
        if !already_there {
            self.leave_room(ctx, me);
        }
        let others: Vec<_> = self
            .rooms
            .members(room)
            .iter()
            .filter(|&&other| other != me)
            .filter_map(|&other| self.players.get(other))
            .map(|other| other.info())
            .collect();
        let _ = session.send(&SEnterRoom { success: true, players: others });
        if already_there {
            return;
        }
        let Some(player) = self.players.get_mut(me) else { return };
        player.room = Some(room);
        let spawn = SSpawn { players: vec![player.info()] };
        send_to_all(ctx, self.rooms.members(room).iter().copied(), &spawn);
        self.rooms.join(room, me);
    }

    /// Takes `session`'s player out of its room, telling those who stay.
    fn leave_room(&mut self, ctx: &Context<'_, GameProtocol>, session: SessionId) {
        let Some(player) = self.players.get_mut(session) else { return };
        let Some(room) = player.room.take() else { return };
        let despawn = SDespawn { player_ids: vec![player.id] };
        self.rooms.leave(room, session);
        send_to_all(ctx, self.rooms.members(room).iter().copied(), &despawn);
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
            let _ = session.kick(&SKick { reason: format!("{} before C_LOGIN: log in first", packet.name()) });
            return;
        }
        packet.dispatch(self, &mut Req { ctx, session });
    }

    /// A player handed over by another shard (a cluster): it enters the room it asked for, here.
    fn on_arrive(&mut self, ctx: &mut Context<'_, GameProtocol>, session: &Session<GameProtocol>, state: &[u8]) {
        let Ok(state) = PlayerState::decode(state) else {
            tracing::error!(session = %session.id(), "hand-over state does not decode; closing the session");
            let _ = session.kick(&SKick { reason: "game server error: bad hand-over".into() });
            return;
        };
        let player = Player { id: state.player_id, name: state.name, pos: state.pos.unwrap_or_default(), room: None };
        self.players.arrive(session.id(), player);
        self.enter_room(ctx, session, state.room_id);
    }

    fn on_disconnect(
        &mut self,
        ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        reason: &CloseReason,
    ) {
        self.leave_room(ctx, session.id());
        if let Some(player) = self.players.remove(session.id()) {
            tracing::debug!(player = player.id, name = %player.name, %reason, "player left");
        }
    }

    fn on_tick(&mut self, ctx: &mut Context<'_, GameProtocol>) {
        if self.last_status.elapsed() >= STATUS_EVERY {
            self.last_status = Instant::now();
            let metrics = ctx.metrics();
            tracing::info!(
                sessions = ctx.session_count(),
                players = self.players.len(),
                rooms = self.rooms.len(),
                frames_in = metrics.frames_in,
                frames_out = metrics.frames_out,
                "status"
            );
        }
    }

    fn on_shutdown(&mut self, ctx: &mut Context<'_, GameProtocol>) {
        let _ = ctx.broadcast_all(&SKick { reason: "server shutting down".into() });
    }
}

impl ClientPacketHandler<Req<'_, '_>> for Game {
    fn on_c_login(&mut self, req: &mut Req<'_, '_>, packet: CLogin) {
        let reply = match self.players.login(req.session.id(), packet.name, req.session.remote_id()) {
            Ok(player_id) => {
                tracing::debug!(session = %req.session.id(), player_id, "logged in");
                SLogin { success: true, player_id }
            }
            Err(LoginRefused::BadName | LoginRefused::AlreadyLoggedIn) => SLogin { success: false, player_id: 0 },
        };
        let _ = req.session.send(&reply);
    }

    fn on_c_enter_room(&mut self, req: &mut Req<'_, '_>, packet: CEnterRoom) {
        let me = req.session.id();
        let room = packet.room_id;
        // In a cluster, the room may be on another shard: hand the player over to whichever owns it (this one
        // included), with what that shard needs to go on. Embedded, every room is here.
        if let Some(player) = self.players.get(me).filter(|p| p.room != Some(room)) {
            let state = PlayerState { player_id: player.id, name: player.name.clone(), pos: Some(player.pos), room_id: room };
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
        send_to_all(req.ctx, others, &moved);
    }

    fn on_c_chat(&mut self, req: &mut Req<'_, '_>, packet: CChat) {
        let Some(player) = self.players.get(req.session.id()) else { return };
        let Some(room) = player.room else { return };
        let chat = SChat { player_id: player.id, msg: packet.msg };
        send_to_all(req.ctx, self.rooms.members(room).iter().copied(), &chat);
    }

    /// Only reached on a server built without [`GameIo`]: answers with `server_time: 0`, which tells a client (and
    /// the tests) that pings are taking the slow path through the logic thread.
    fn on_c_ping(&mut self, req: &mut Req<'_, '_>, packet: CPing) {
        let _ = req.session.send(&SPong { client_time: packet.client_time, server_time: 0 });
    }

    fn on_c_echo(&mut self, req: &mut Req<'_, '_>, packet: CEcho) {
        let _ = req.session.send(&io::echo_reply(packet));
    }
}

/// The cluster key of a room: the shard that owns it (recorded in the cluster) hosts the room.
fn room_key(room: u32) -> String {
    format!("room.{room}")
}

/// Encodes `packet` once and queues it to every recipient still connected. A recipient whose queue is over its
/// limit is closed by the runtime as a slow consumer; the others are unaffected.
fn send_to_all<T>(ctx: &Context<'_, GameProtocol>, recipients: impl IntoIterator<Item = SessionId>, packet: &T)
where
    T: packet_runtime::PacketOf<demo_protocol::ServerPacket>,
{
    if let Err(error) = ctx.broadcast(recipients, packet) {
        // Only a packet too large for the frame header fails to encode; the game's packets are bounded by the
        // maximum frame a client may send, far below that.
        tracing::error!(%error, packet = T::NAME, "broadcast failed to encode");
    }
}
