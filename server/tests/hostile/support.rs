//! The hostile suite's own fixtures (the common ending of every scenario) on top of the shared ones (`../common`,
//! `test-support`).

use demo_protocol::proto::CPing;
use packet_runtime::{CloseKind, MetricsSnapshot};
use std::net::SocketAddr;

pub(crate) use crate::common::*;

/// The common ending: exactly one session closed, for `kind`, and nothing else; a fresh client is served
/// (`C_PING` -> `S_PONG`), and that did not close anyone either.
pub(crate) async fn only_closed(server: &TestServer, kind: CloseKind) {
    server.until("the offender's close", |m| m.closed(kind) >= 1).await;
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
