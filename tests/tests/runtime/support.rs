//! A small game for the tests: login, chat broadcast, echo through the logic thread, ping on the IO thread, and
//! two packets that misbehave on purpose (a panic, a self-kick).

use std::sync::{Arc, Mutex};

use packet_runtime::{
    BadFrame, BadFrameAction, CloseReason, Context, IoAction, IoHandler, Logic, Server, ServerBuilder, ServerHandle,
    Session, SessionId,
};
use tests::game::{ClientPacket, ClientPacketHandler, GameProtocol, ServerPacket};
use tests::proto;

/// Room id that makes the handler panic.
pub(crate) const PANIC_ROOM: u32 = 666;
/// Room id that makes the server close the session after a kick.
pub(crate) const KICK_ROOM: u32 = 777;

/// What the logic thread saw, for assertions after the fact.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    pub(crate) connected: Vec<SessionId>,
    pub(crate) disconnected: Vec<(SessionId, CloseReason)>,
    /// Results of sending to a session from inside its own `on_disconnect`.
    pub(crate) send_after_disconnect_failed: Vec<bool>,
    pub(crate) ticks: u64,
    pub(crate) shutdown_called: bool,
}

#[derive(Debug, Default)]
pub(crate) struct TestGame {
    pub(crate) journal: Arc<Mutex<Journal>>,
}

/// The handler context: the runtime's context plus the session the packet came from.
pub(crate) struct Req<'c, 'a> {
    pub(crate) ctx: &'c mut Context<'a, GameProtocol>,
    pub(crate) session: &'c Session<GameProtocol>,
}

impl Logic for TestGame {
    type Protocol = GameProtocol;

    fn on_connect(&mut self, _ctx: &mut Context<'_, GameProtocol>, session: &Session<GameProtocol>) {
        self.journal.lock().unwrap().connected.push(session.id());
    }

    fn on_packet(
        &mut self,
        ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        packet: ClientPacket,
    ) {
        packet.dispatch(self, &mut Req { ctx, session });
    }

    fn on_disconnect(
        &mut self,
        _ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        reason: &CloseReason,
    ) {
        let failed = session.send(&proto::SChat { player_id: 0, msg: "too late".into() }).is_err();
        let mut journal = self.journal.lock().unwrap();
        journal.disconnected.push((session.id(), reason.clone()));
        journal.send_after_disconnect_failed.push(failed);
    }

    fn on_tick(&mut self, _ctx: &mut Context<'_, GameProtocol>) {
        self.journal.lock().unwrap().ticks += 1;
    }

    fn on_shutdown(&mut self, ctx: &mut Context<'_, GameProtocol>) {
        // The goodbye is the close notice (`builder`).
        let _ = ctx;
        self.journal.lock().unwrap().shutdown_called = true;
    }
}

impl ClientPacketHandler<Req<'_, '_>> for TestGame {
    fn on_c_login(&mut self, req: &mut Req<'_, '_>, packet: proto::CLogin) {
        let ok = !packet.name.is_empty();
        let player_id = if ok { req.session.id().as_u64() + 1 } else { 0 };
        let _ = req.session.send(&proto::SLogin { success: ok, player_id, ..Default::default() });
    }

    fn on_c_enter_room(&mut self, req: &mut Req<'_, '_>, packet: proto::CEnterRoom) {
        match packet.room_id {
            PANIC_ROOM => panic!("handler bug on purpose"),
            KICK_ROOM => {
                let _ = req.session.kick(&proto::SKick { reason: "you asked for it".into() });
            }
            _ => {
                let _ = req.session.send(&proto::SEnterRoom { success: true, ..Default::default() });
            }
        }
    }

    fn on_c_move(&mut self, _req: &mut Req<'_, '_>, _packet: proto::CMove) {}

    fn on_c_chat(&mut self, req: &mut Req<'_, '_>, packet: proto::CChat) {
        let chat = proto::SChat { player_id: req.session.id().as_u64(), msg: packet.msg };
        let ids: Vec<_> = req.ctx.sessions().map(|s| s.id()).collect();
        req.ctx.broadcast(ids, &chat).expect("encodes");
    }

    fn on_c_ping(&mut self, req: &mut Req<'_, '_>, packet: proto::CPing) {
        // Only reached when the IO hook is not installed.
        let _ = req.session.send(&proto::SPong { client_time: packet.client_time, server_time: 0 });
    }

    fn on_c_echo(&mut self, req: &mut Req<'_, '_>, packet: proto::CEcho) {
        let _ = req.session.send(&proto::SEcho { data: packet.data });
    }
}

/// Answers pings on the IO thread (server_time = 1 marks the IO path) and kicks on bad frames.
#[derive(Debug, Default)]
pub(crate) struct TestIo;

impl IoHandler<GameProtocol> for TestIo {
    fn on_packet(&self, session: &Session<GameProtocol>, packet: ClientPacket) -> IoAction<ClientPacket> {
        match packet {
            ClientPacket::CPing(ping) => {
                let _ = session.send(&proto::SPong { client_time: ping.client_time, server_time: 1 });
                IoAction::Handled
            }
            other => IoAction::Forward(other),
        }
    }

    fn on_bad_frame(&self, session: &Session<GameProtocol>, bad: &BadFrame) -> BadFrameAction {
        // The kick naming the fault is the close notice (`builder`).
        let _ = (session, bad);
        BadFrameAction::Close
    }
}

/// A builder with test-friendly settings: 2 workers, no rate limits (packets or bytes), the test IO hook, and a close notice: an
/// `S_KICK` naming the fault of a bad frame, "server shutting down" on shutdown, the reason's text otherwise.
pub(crate) fn builder() -> ServerBuilder<GameProtocol> {
    Server::<GameProtocol>::builder().workers(2).rate_limit(None).byte_rate_limit(None).io_handler(TestIo).close_notice(
        |reason| {
            let reason = match reason {
                CloseReason::BadFrame(bad) => bad.to_string(),
                CloseReason::ServerShutdown => "server shutting down".to_owned(),
                other => other.to_string(),
            };
            Some(proto::SKick { reason })
        },
    )
}

/// A running test server with its journal.
pub(crate) struct TestServer {
    pub(crate) handle: ServerHandle<GameProtocol>,
    pub(crate) journal: Arc<Mutex<Journal>>,
    pub(crate) addr: std::net::SocketAddr,
}

pub(crate) fn start(builder: ServerBuilder<GameProtocol>) -> TestServer {
    let game = TestGame::default();
    let journal = Arc::clone(&game.journal);
    let handle = builder.start(game).expect("server starts");
    let addr = handle.local_addr().expect("tcp address");
    TestServer { handle, journal, addr }
}

pub(crate) use test_support::{drain_until_closed, join_within, within};

/// A runtime for the clients (the server has its own).
pub(crate) fn client_runtime() -> tokio::runtime::Runtime {
    test_support::runtime()
}

pub(crate) type TestClient = packet_runtime::Client<GameProtocol>;

pub(crate) async fn connect(addr: std::net::SocketAddr) -> TestClient {
    test_support::connect(addr).await
}

/// Pings through the IO hook and checks the pong: proves the server still serves.
pub(crate) async fn assert_serves(addr: std::net::SocketAddr) {
    let mut client = connect(addr).await;
    client.send(&proto::CPing { client_time: 42 }).await.unwrap();
    match within("pong", client.recv()).await.unwrap() {
        ServerPacket::SPong(pong) => assert_eq!((pong.client_time, pong.server_time), (42, 1)),
        other => panic!("expected a pong, got {other:?}"),
    }
}

/// The one kick a closing session is sent (the close notice), and the connection's end after it.
pub(crate) async fn kick_reason(client: &mut TestClient) -> String {
    let (got, end) = drain_until_closed(client).await;
    assert!(test_support::is_close(&end), "{end:?}");
    match got.as_slice() {
        [ServerPacket::SKick(kick)] => kick.reason.clone(),
        other => panic!("expected one kick, got {other:?}"),
    }
}

/// Echo goes through the logic thread: once it is answered, the session's `on_connect` has run.
pub(crate) async fn assert_echoes(client: &mut TestClient) {
    client.send(&proto::CEcho { data: b"through the logic thread".to_vec() }).await.unwrap();
    match within("echo", client.recv()).await.unwrap() {
        ServerPacket::SEcho(echo) => assert_eq!(echo.data, b"through the logic thread"),
        other => panic!("expected the echo, got {other:?}"),
    }
}
