//! What the demo server's two suites (`game`, `hostile`) share beyond `test-support`: starting the real game in
//! process, through `ServerOptions` like the binary does, with test settings.

use server::ServerOptions;

pub(crate) use demo_protocol::GameProtocol;
pub(crate) use test_support::demo::*;
pub(crate) use test_support::*;

/// The demo game server under test.
pub(crate) type TestServer = test_support::TestServer<GameProtocol>;

/// Test settings: any free port, 2 IO threads (the machine is small), no rate limit unless a scenario sets one.
pub(crate) fn options() -> ServerOptions {
    ServerOptions { workers: 2, rate_limit: None, ..ServerOptions::with_addr("127.0.0.1:0".parse().unwrap()) }
}

/// A server with the test settings.
pub(crate) fn start() -> TestServer {
    start_with(&options())
}

/// A server with `options`.
pub(crate) fn start_with(options: &ServerOptions) -> TestServer {
    TestServer::started(options.start())
}

/// A client of the demo game connected to `addr` (the shared `connect`, with the protocol fixed).
pub(crate) async fn connect(addr: std::net::SocketAddr) -> GameClient {
    test_support::connect(addr).await
}
