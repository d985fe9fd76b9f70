//! Starting a game server for a scenario, speaking to it (typed and raw), and the common ending.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use packet_runtime::client::ClientError;
use packet_runtime::prost::Message;
use packet_runtime::session::CloseKind;
use packet_runtime::{Client, MetricsSnapshot, Packet, ServerHandle, ShutdownReport};
use server::proto::{CEnterRoom, CLogin, CPing};
use server::{GameProtocol, ServerOptions, ServerPacket};

pub(crate) type GameClient = Client<GameProtocol>;

/// Hang guard for every await; never used as synchronisation.
pub(crate) const GUARD: Duration = Duration::from_secs(30);

/// Test settings: any free port, 2 IO threads (the machine is small), no rate limit unless a scenario sets one.
pub(crate) fn options() -> ServerOptions {
    ServerOptions { workers: 2, rate_limit: None, ..ServerOptions::with_addr("127.0.0.1:0".parse().unwrap()) }
}

/// A running server.
pub(crate) struct TestServer {
    pub(crate) handle: ServerHandle<GameProtocol>,
    pub(crate) addr: SocketAddr,
}

impl TestServer {
    pub(crate) fn metrics(&self) -> MetricsSnapshot {
        self.handle.metrics()
    }

    /// Shuts down in order and checks what must hold after any scenario: every session's `on_disconnect` ran, the
    /// logic thread lived, and no pool block is left.
    pub(crate) fn stop(self) -> ShutdownReport {
        self.handle.shutdown();
        let report = self.handle.join();
        assert_eq!(report.pool_outstanding, 0, "pool blocks outstanding after shutdown: {report:?}");
        assert!(!report.logic_thread_panicked);
        assert_eq!(report.sessions_closed, report.metrics.connections_total, "every session's on_disconnect ran");
        report
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

pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Waits until the server's counters satisfy `done` (they are updated by the IO threads; there is no event to
/// subscribe to, so this polls them every few milliseconds under the guard).
pub(crate) async fn until(server: &TestServer, what: &str, done: impl Fn(&MetricsSnapshot) -> bool) {
    within(what, async {
        while !done(&server.metrics()) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
}

pub(crate) async fn connect(addr: SocketAddr) -> GameClient {
    within("connect", GameClient::connect(addr)).await.expect("connects")
}

/// A raw socket, for bytes no typed client would send and for socket-level misbehaviour.
pub(crate) async fn connect_raw(addr: SocketAddr) -> tokio::net::TcpStream {
    let stream = within("connect", tokio::net::TcpStream::connect(addr)).await.expect("connects");
    stream.set_nodelay(true).unwrap();
    stream
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

/// Enters `room`; returns how many others were listed.
pub(crate) async fn enter(client: &mut GameClient, room: u32) -> usize {
    client.send(&CEnterRoom { room_id: room }).await.unwrap();
    let reply = expect!(client, SEnterRoom);
    assert!(reply.success);
    reply.players.len()
}

/// A round trip through the logic thread: a second login is refused. Everything the logic thread queued for this
/// client before it arrives first, so "the next packet is the refusal" proves nothing else was sent up to now.
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

/// Whether the connection ended the way a server close looks to a client: end of stream, or a reset when the
/// server closed with our bytes still unread.
pub(crate) fn is_close(end: &ClientError) -> bool {
    match end {
        ClientError::Closed => true,
        ClientError::Io(e) => matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
        _ => false,
    }
}

/// A compact frame with any id and payload.
pub(crate) fn frame(id: u16, payload: &[u8]) -> Vec<u8> {
    let size = u16::try_from(4 + payload.len()).expect("fits a compact header");
    let mut bytes = Vec::with_capacity(4 + payload.len());
    bytes.extend_from_slice(&size.to_le_bytes());
    bytes.extend_from_slice(&id.to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// The frame a well-behaved client would send for `packet`.
pub(crate) fn encode<T: Packet + Message>(packet: &T) -> Vec<u8> {
    frame(T::ID, &packet.encode_to_vec())
}

/// The common ending: exactly one session closed, for `kind`, and nothing else; a fresh client is served
/// (`C_PING` -> `S_PONG`), and that did not close anyone either.
pub(crate) async fn only_closed(server: &TestServer, kind: CloseKind) {
    until(server, "the offender's close", |m| m.closed(kind) >= 1).await;
    assert_closes(&server.metrics(), kind);
    let fresh = serve_fresh(server.addr).await;
    assert_closes(&server.metrics(), kind);
    drop(fresh);
}

fn assert_closes(metrics: &MetricsSnapshot, kind: CloseKind) {
    let closed: Vec<_> = metrics.closes.iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(closed, [&(kind, 1)], "exactly one session closed, as {kind:?}");
}

/// A fresh client gets its pong; returned still connected.
pub(crate) async fn serve_fresh(addr: SocketAddr) -> GameClient {
    let mut fresh = connect(addr).await;
    fresh.send(&CPing { client_time: 42 }).await.unwrap();
    assert_eq!(expect!(&mut fresh, SPong).client_time, 42);
    fresh
}

/// Closes `stream` with a reset (SO_LINGER 0) instead of a FIN.
// `set_linger` is deprecated because a non-zero linger blocks the dropping thread; a zero linger never blocks, it
// resets at once, which is the point here.
#[allow(deprecated)]
pub(crate) fn reset(stream: tokio::net::TcpStream) {
    stream.set_linger(Some(Duration::ZERO)).unwrap();
    drop(stream);
}
