//! Every close the runtime initiates says why first: one `S_KICK` (the demo's close notice), read before the close,
//! and never two.

use std::time::Duration;

use demo_protocol::ServerPacket;
use demo_protocol::proto::{CChat, CLogin, CPing};
use packet_runtime::{ClientError, CloseKind, Packet};
use server::ServerOptions;

use crate::support::*;

/// Reads until the close; the last packet must be the only `S_KICK`, and the connection must then end as a server
/// close does. Returns its reason.
async fn kick_then_close(client: &mut GameClient) -> String {
    let (got, end) = drain_until_closed(client).await;
    assert!(is_close(&end) || matches!(end, ClientError::Closed), "{end:?}");
    let kicks: Vec<_> = got.iter().filter(|packet| matches!(packet, ServerPacket::SKick(_))).collect();
    assert_eq!(kicks.len(), 1, "one notice per close: {got:?}");
    match got.last() {
        Some(ServerPacket::SKick(kick)) => kick.reason.clone(),
        other => panic!("the notice is the last packet before the close, got {other:?}"),
    }
}

#[test]
fn a_flood_past_the_rate_limit_reads_why_before_the_close() {
    let server = start_with(&ServerOptions { rate_limit: Some(10), ..options() });
    runtime().block_on(async {
        let mut flooder = connect(server.addr).await;
        for i in 0..200 {
            flooder.queue(&CPing { client_time: i }).unwrap();
        }
        flooder.flush().await.unwrap();
        assert_eq!(kick_then_close(&mut flooder).await, "more than 10 packets/s");
        only_closed(&server, CloseKind::RateLimited).await;
    });
    server.stop();
}

#[test]
fn an_oversized_frame_reads_why_before_the_close() {
    let server = start();
    runtime().block_on(async {
        let mut sender = connect(server.addr).await;
        let size: u16 = 30_000;
        sender.send_raw(&[&header(size, CChat::ID)[..], &[0x0A; 64]].concat()).await.unwrap();
        assert_eq!(kick_then_close(&mut sender).await, "frame of 30000 bytes over the 16384 limit");
        only_closed(&server, CloseKind::BadFrame).await;
    });
    server.stop();
}

#[test]
fn an_idle_session_reads_why_before_the_close() {
    let server = start_with(&ServerOptions { idle_timeout: Some(Duration::from_secs(1)), ..options() });
    runtime().block_on(async {
        let (mut idle, _) = login(server.addr, "sleeper").await;
        assert_eq!(kick_then_close(&mut idle).await, "idle for 1 s");
        only_closed(&server, CloseKind::IdleTimeout).await;
    });
    server.stop();
}

#[test]
fn a_connection_past_max_connections_reads_why_before_the_close() {
    let server = start_with(&ServerOptions { max_connections: Some(1), ..options() });
    runtime().block_on(async {
        let (kept, _) = login(server.addr, "first").await;
        let mut refused = connect(server.addr).await;
        // It may even have said something already: the notice still arrives.
        refused.send(&CLogin { name: "second".into(), ..Default::default() }).await.unwrap();
        assert_eq!(kick_then_close(&mut refused).await, "server full");
        assert_eq!(server.metrics().connections_rejected, 1);
        drop(kept);
    });
    server.stop();
}

#[test]
fn shutdown_reads_why_before_the_close_once() {
    let server = start();
    let runtime = runtime();
    let clients = runtime.block_on(async {
        let mut clients = Vec::new();
        for i in 0..3 {
            clients.push(login(server.addr, &format!("player{i}")).await.0);
        }
        clients
    });
    let stopping = std::thread::spawn(move || server.stop());
    runtime.block_on(async {
        for mut client in clients {
            assert_eq!(kick_then_close(&mut client).await, "server shutting down");
        }
    });
    let report = stopping.join().expect("the server stops");
    assert_eq!(report.metrics.closed(CloseKind::ServerShutdown), 3);
}
