//! Fixtures shared by the workspace's test suites (`tests/tests/runtime`, `server/tests/game`,
//! `server/tests/hostile`, the bots' tests), written once instead of once per suite.
//!
//! Conventions every suite follows: servers bind `127.0.0.1:0`; every await runs under a hang guard ([`within`],
//! 30 s) that fails the test naming what it waited for, and is never used as synchronisation; tests are plain
//! `#[test]`s that drive clients on their own runtime ([`runtime`]), because joining a server blocks.
//!
//! # Layout
//! - this module: protocol-generic fixtures: the guard, clients ([`connect`], [`next`], [`drain_until_closed`],
//!   [`is_close`]), raw sockets and frames ([`connect_raw`], [`frame`], [`header`], [`encode`], [`reset`]), and [`TestServer`],
//!   a running server with the checks every scenario ends with.
//! - [`demo`]: the demo protocol's steps (log in, enter a room, the logic-thread barrier, the kick reason) and the
//!   [`expect!`] macro.
//! - [`tls`]: certificates made at test time (a CA per test, server certificates as PEM files, trusting clients).

pub mod demo;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use packet_runtime::prost::Message;
use packet_runtime::{Client, ClientError, MetricsSnapshot, Packet, Protocol, ServerHandle, ShutdownReport};
use tokio::io::{AsyncRead, AsyncWrite};

/// Hang guard for every await; never used as synchronisation.
pub const GUARD: Duration = Duration::from_secs(30);

/// Awaits `fut` under the [`GUARD`]; a hang fails the test with "timed out waiting for `what`".
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A runtime for the clients (the server has its own). Two workers: the machine is small.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a client runtime")
}

/// A typed client connected to `addr`.
pub async fn connect<P: Protocol>(addr: SocketAddr) -> Client<P> {
    within("connect", Client::<P>::connect(addr)).await.expect("connects")
}

/// A raw socket, for bytes no typed client would send and for socket-level misbehaviour.
pub async fn connect_raw(addr: SocketAddr) -> tokio::net::TcpStream {
    let stream = within("connect", tokio::net::TcpStream::connect(addr)).await.expect("connects");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
}

/// The next packet; panics if the connection ends.
pub async fn next<P: Protocol, S: AsyncRead + AsyncWrite>(client: &mut Client<P, S>) -> P::ServerToClient {
    within("a packet", client.recv()).await.expect("a packet, not a close")
}

/// Receives until the server closes the connection; returns what arrived and how it ended.
pub async fn drain_until_closed<P: Protocol, S: AsyncRead + AsyncWrite>(
    client: &mut Client<P, S>,
) -> (Vec<P::ServerToClient>, ClientError) {
    let mut got = Vec::new();
    loop {
        match within("the server to close the connection", client.recv()).await {
            Ok(packet) => got.push(packet),
            Err(end) => return (got, end),
        }
    }
}

/// Whether the connection ended the way a server close looks to a client: end of stream, or a reset when the
/// server closed with our bytes still unread.
pub fn is_close(end: &ClientError) -> bool {
    match end {
        ClientError::Closed => true,
        ClientError::Io(e) => matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
        _ => false,
    }
}

/// A compact frame (`u16 size | u16 id`, little-endian, size including the header) with any id and payload.
pub fn frame(id: u16, payload: &[u8]) -> Vec<u8> {
    let size = u16::try_from(4 + payload.len()).expect("fits a compact header");
    let mut bytes = Vec::with_capacity(4 + payload.len());
    bytes.extend_from_slice(&header(size, id));
    bytes.extend_from_slice(payload);
    bytes
}

/// A compact header alone, announcing `size` bytes (header included) of packet `id`: for frames that lie about
/// their size or never complete.
pub fn header(size: u16, id: u16) -> [u8; 4] {
    let [s0, s1] = size.to_le_bytes();
    let [i0, i1] = id.to_le_bytes();
    [s0, s1, i0, i1]
}

/// The compact frame a well-behaved client would send for `packet`.
pub fn encode<T: Packet + Message>(packet: &T) -> Vec<u8> {
    frame(T::ID, &packet.encode_to_vec())
}

/// Closes `stream` with a reset (SO_LINGER 0) instead of a FIN.
// `set_linger` is deprecated because a non-zero linger blocks the dropping thread; a zero linger never blocks, it
// resets at once, which is the point here.
#[allow(deprecated)]
pub fn reset(stream: tokio::net::TcpStream) {
    stream.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
    drop(stream);
}

/// Joins the server on a plain thread and waits at most `limit` for the report: a hang fails the test with `what`
/// instead of blocking the suite.
pub fn join_within<P: Protocol>(handle: ServerHandle<P>, limit: Duration, what: &str) -> ShutdownReport {
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || done_tx.send(handle.join()).expect("the test waits for the report"));
    done.recv_timeout(limit).unwrap_or_else(|_| panic!("{what}"))
}

/// A running server and the address it listens on.
#[derive(Debug)]
pub struct TestServer<P: Protocol> {
    /// The server's handle: metrics, shutdown, join.
    pub handle: ServerHandle<P>,
    /// Where it accepts TCP connections.
    pub addr: SocketAddr,
}

impl<P: Protocol> TestServer<P> {
    /// Wraps a started server; panics if it failed to start or does not listen on TCP.
    pub fn started(handle: std::io::Result<ServerHandle<P>>) -> Self {
        let handle = handle.expect("server starts");
        let addr = handle.local_addr().expect("tcp address");
        TestServer { handle, addr }
    }

    /// The server's counters now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.handle.metrics()
    }

    /// Waits until the server's counters satisfy `done` (they are updated by the IO threads; there is no event to
    /// subscribe to, so this polls them every few milliseconds under the guard).
    pub async fn until(&self, what: &str, done: impl Fn(&MetricsSnapshot) -> bool) {
        within(what, async {
            while !done(&self.metrics()) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }

    /// Shuts down in order and checks what must hold after any scenario: every session's `on_disconnect` ran, the
    /// logic thread lived, and no pool block is left.
    pub fn stop(self) -> ShutdownReport {
        self.handle.shutdown();
        let report = join_within(self.handle, GUARD, "the server to shut down");
        assert_eq!(report.pool_outstanding, 0, "pool blocks outstanding after shutdown: {report:?}");
        assert!(!report.logic_thread_panicked, "the logic thread died: {report:?}");
        let admitted = report.metrics.connections_total - report.metrics.connections_unadmitted;
        assert_eq!(report.sessions_closed, admitted, "every admitted session's on_disconnect ran");
        report
    }
}
