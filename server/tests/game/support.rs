//! Starting a game server for a test and speaking to it.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use packet_runtime::client::ClientError;
use packet_runtime::{Client, ServerHandle, ShutdownReport};
use server::proto::{CEnterRoom, CLogin, PlayerInfo};
use server::{GameProtocol, ServerOptions, ServerPacket};

pub(crate) type GameClient = Client<GameProtocol>;

/// Test settings: any free port, 2 IO threads (the machine is small), no rate limit (the chat storm sends fast).
pub(crate) fn options() -> ServerOptions {
    ServerOptions { workers: 2, rate_limit: None, ..ServerOptions::with_addr("127.0.0.1:0".parse().unwrap()) }
}

/// A running server; [`stop`](Self::stop) shuts it down in order and returns the report.
pub(crate) struct TestServer {
    pub(crate) handle: ServerHandle<GameProtocol>,
    pub(crate) addr: SocketAddr,
}

impl TestServer {
    pub(crate) fn stop(self) -> ShutdownReport {
        self.handle.shutdown();
        self.handle.join()
    }
}

pub(crate) fn start() -> TestServer {
    start_with(&options())
}

pub(crate) fn start_with(options: &ServerOptions) -> TestServer {
    let handle = options.start().expect("server starts");
    let addr = handle.local_addr().expect("tcp address");
    TestServer { handle, addr }
}

/// A runtime for the clients (the server has its own). Tests are plain `#[test]`s because `join` blocks.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Guards against hangs; never used as synchronisation.
pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

pub(crate) async fn connect(addr: SocketAddr) -> GameClient {
    within("connect", GameClient::connect(addr)).await.expect("connects")
}

/// The next packet; panics if the connection ends.
pub(crate) async fn next(client: &mut GameClient) -> ServerPacket {
    within("a packet", client.recv()).await.expect("a packet, not a close")
}

/// Connects and logs in; returns the client and its player id.
pub(crate) async fn login(addr: SocketAddr, name: &str) -> (GameClient, u64) {
    let mut client = connect(addr).await;
    client.send(&CLogin { name: name.into() }).await.unwrap();
    let reply = expect!(&mut client, SLogin);
    assert!(reply.success, "login as {name:?} refused");
    (client, reply.player_id)
}

/// Enters `room`; returns the others listed in S_ENTER_ROOM.
pub(crate) async fn enter(client: &mut GameClient, room: u32) -> Vec<PlayerInfo> {
    client.send(&CEnterRoom { room_id: room }).await.unwrap();
    let reply = expect!(client, SEnterRoom);
    assert!(reply.success);
    reply.players
}

/// A round trip through the logic thread: a second login is refused with S_LOGIN{success: false}. Everything the
/// logic thread queued for this client before handling it arrives first, so "the next packet is the refusal" proves
/// that nothing else was sent to the client up to now.
pub(crate) async fn assert_nothing_pending(client: &mut GameClient) {
    client.send(&CLogin { name: "barrier".into() }).await.unwrap();
    match next(client).await {
        ServerPacket::SLogin(reply) => assert!(!reply.success, "the barrier login must be refused"),
        other => panic!("expected nothing before the barrier, got {other:?}"),
    }
}

/// Receives until the server closes the connection; returns what arrived and how it ended.
pub(crate) async fn drain_until_closed(client: &mut GameClient) -> (Vec<ServerPacket>, ClientError) {
    let mut got = Vec::new();
    loop {
        match within("the server to close the connection", client.recv()).await {
            Ok(packet) => got.push(packet),
            Err(end) => return (got, end),
        }
    }
}

/// The reason of the one S_KICK among `packets`.
pub(crate) fn kick_reason(packets: &[ServerPacket]) -> String {
    let kicks: Vec<_> = packets
        .iter()
        .filter_map(|p| match p {
            ServerPacket::SKick(kick) => Some(kick.reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(kicks.len(), 1, "exactly one S_KICK expected in {packets:?}");
    kicks.into_iter().next().unwrap()
}

/// Whether the connection ended the way a server close looks to a client (end of stream, or a reset when the
/// server closed with our bytes still unread).
pub(crate) fn is_close(end: &ClientError) -> bool {
    match end {
        ClientError::Closed => true,
        ClientError::Io(e) => matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
        _ => false,
    }
}
