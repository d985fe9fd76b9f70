//! Session lifecycle: on_disconnect exactly once, ids never valid again, sends to closed sessions fail, a
//! panicking handler closes only its session, kicks are flushed before the close, broadcasts reach everyone.

use std::collections::HashSet;

use packet_runtime::CloseReason;
use tests::game::ServerPacket;
use tests::proto;

use crate::support::*;

#[test]
fn login_then_chat_broadcast_reaches_every_session_once() {
    let server = start(builder());
    client_runtime().block_on(async {
        let mut clients = Vec::new();
        for i in 0..5 {
            let mut client = connect(server.addr).await;
            client.send(&proto::CLogin { name: format!("p{i}"), ..Default::default() }).await.unwrap();
            match within("login", client.recv()).await.unwrap() {
                ServerPacket::SLogin(login) => assert!(login.success && login.player_id != 0),
                other => panic!("unexpected {other:?}"),
            }
            clients.push(client);
        }
        clients[2].send(&proto::CChat { msg: "hello".into() }).await.unwrap();
        for client in &mut clients {
            match within("chat", client.recv()).await.unwrap() {
                ServerPacket::SChat(chat) => assert_eq!(chat.msg, "hello"),
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.sessions_closed, 5);
    assert_eq!(report.pool_outstanding, 0);
}

#[test]
fn on_disconnect_runs_once_per_session_and_sends_to_it_fail() {
    let server = start(builder());
    client_runtime().block_on(async {
        for round in 0..3 {
            let mut clients = Vec::new();
            for _ in 0..10 {
                clients.push(connect(server.addr).await);
            }
            for client in &mut clients {
                client.send(&proto::CPing { client_time: round }).await.unwrap();
                within("pong", client.recv()).await.unwrap();
            }
        } // clients dropped: peers close
        assert_serves(server.addr).await;
    });
    server.handle.shutdown();
    let report = server.handle.join();
    let journal = server.journal.lock().unwrap();
    assert_eq!(journal.connected.len(), 31);
    assert_eq!(journal.disconnected.len(), 31, "exactly one on_disconnect per session");
    let unique: HashSet<_> = journal.disconnected.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), 31, "no session disconnected twice");
    let connected: HashSet<_> = journal.connected.iter().copied().collect();
    assert_eq!(connected.len(), 31, "ids are never reissued, even though slots are reused");
    assert!(journal.send_after_disconnect_failed.iter().all(|failed| *failed));
    assert_eq!(report.sessions_closed, 31);
    assert_eq!(report.pool_outstanding, 0);
}

#[test]
fn a_panicking_handler_closes_only_its_session() {
    let server = start(builder());
    client_runtime().block_on(async {
        let mut bystander = connect(server.addr).await;
        let mut offender = connect(server.addr).await;
        offender.send(&proto::CEnterRoom { room_id: PANIC_ROOM }).await.unwrap();
        let (got, _) = drain_until_closed(&mut offender).await;
        // Only the close notice.
        assert!(matches!(&got[..], [ServerPacket::SKick(kick)] if kick.reason == "a handler panicked"), "{got:?}");
        bystander.send(&proto::CEnterRoom { room_id: 1 }).await.unwrap();
        assert!(matches!(within("enter", bystander.recv()).await.unwrap(), ServerPacket::SEnterRoom(_)));
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.handler_panics, 1);
    let journal = server.journal.lock().unwrap();
    let panicked: Vec<_> = journal.disconnected.iter().filter(|(_, r)| *r == CloseReason::HandlerPanic).collect();
    assert_eq!(panicked.len(), 1);
    assert_eq!(panicked[0].0, journal.connected[1]);
}

#[test]
fn a_kick_is_delivered_before_the_close() {
    let server = start(builder());
    client_runtime().block_on(async {
        let mut client = connect(server.addr).await;
        client.send(&proto::CEcho { data: b"before".to_vec() }).await.unwrap();
        client.send(&proto::CEnterRoom { room_id: KICK_ROOM }).await.unwrap();
        client.send(&proto::CEcho { data: b"after the kick: ignored".to_vec() }).await.unwrap();
        let (got, _) = drain_until_closed(&mut client).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(&got[0], ServerPacket::SEcho(e) if e.data == b"before"));
        assert!(matches!(&got[1], ServerPacket::SKick(k) if k.reason == "you asked for it"));
    });
    server.handle.shutdown();
    server.handle.join();
    let journal = server.journal.lock().unwrap();
    assert_eq!(journal.disconnected[0].1, CloseReason::Closed);
}

#[test]
fn a_thousand_concurrent_clients_are_served() {
    let server = start(builder().max_connections(Some(2_000)));
    client_runtime().block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1_000u64 {
            let addr = server.addr;
            tasks.spawn(async move {
                let mut client = connect(addr).await;
                client.send(&proto::CEcho { data: i.to_le_bytes().to_vec() }).await.unwrap();
                match within("echo", client.recv()).await.unwrap() {
                    ServerPacket::SEcho(echo) => assert_eq!(echo.data, i.to_le_bytes()),
                    other => panic!("unexpected {other:?}"),
                }
                client
            });
        }
        let mut clients = Vec::new();
        while let Some(client) = tasks.join_next().await {
            clients.push(client.unwrap());
        }
        assert_eq!(clients.len(), 1_000);
        assert_eq!(server.handle.metrics().connections_open, 1_000);
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.sessions_closed, 1_000);
    assert_eq!(report.pool_outstanding, 0);
}

/// Answers `C_CHAT { msg: N }` with N frames `S_CHAT { msg: "0" .. }` handed over at once with
/// `Session::send_encoded_all`, each `pad` bytes of padding longer.
struct Burst {
    pad: usize,
}

impl packet_runtime::Logic for Burst {
    type Protocol = tests::game::GameProtocol;

    fn on_packet(
        &mut self,
        ctx: &mut packet_runtime::Context<'_, tests::game::GameProtocol>,
        session: &packet_runtime::Session<tests::game::GameProtocol>,
        packet: tests::game::ClientPacket,
    ) {
        let tests::game::ClientPacket::CChat(chat) = packet else { return };
        let count: usize = chat.msg.parse().unwrap_or(0);
        let frames: Vec<_> = (0..count)
            .map(|i| {
                let msg = format!("{i}{}", " ".repeat(self.pad));
                ctx.encode(&proto::SChat { player_id: 1, msg }).expect("encodes")
            })
            .collect();
        // A refused batch closes the session as a slow consumer; the test sees it on the wire.
        let _ = session.send_encoded_all(&frames);
    }
}

#[test]
fn send_encoded_all_queues_every_frame_in_order_or_none_of_them() {
    use packet_runtime::Server;
    use tests::game::GameProtocol;

    let roomy = Server::<GameProtocol>::builder().workers(1).rate_limit(None).start(Burst { pad: 0 }).unwrap();
    let tight = Server::<GameProtocol>::builder()
        .workers(1)
        .rate_limit(None)
        .send_queue_limit(1024)
        .start(Burst { pad: 100 })
        .unwrap();
    client_runtime().block_on(async {
        let mut client = connect(roomy.local_addr().unwrap()).await;
        client.send(&proto::CChat { msg: "50".into() }).await.unwrap();
        for expected in 0..50 {
            match within("a frame of the batch", client.recv()).await.unwrap() {
                ServerPacket::SChat(chat) => assert_eq!(chat.msg, expected.to_string(), "in order"),
                other => panic!("unexpected {other:?}"),
            }
        }
        // Over the queue's hard cap as a whole (100 frames of ~110 bytes against 4 x 1 KiB, the burst a queue may
        // reach): none of it is queued.
        let mut client = connect(tight.local_addr().unwrap()).await;
        client.send(&proto::CChat { msg: "100".into() }).await.unwrap();
        let (got, _) = drain_until_closed(&mut client).await;
        assert!(got.is_empty(), "all or none: {} frames of a refused batch arrived", got.len());
    });
    tight.shutdown();
    roomy.shutdown();
    let tight = join_within(tight, std::time::Duration::from_secs(20), "tight server");
    assert_eq!(tight.metrics.closed(packet_runtime::CloseKind::SlowConsumer), 1);
    join_within(roomy, std::time::Duration::from_secs(20), "roomy server");
}

/// Panics on every `C_ECHO`, answers pings.
#[derive(Debug, Default)]
struct PanickyIo;

impl packet_runtime::IoHandler<tests::game::GameProtocol> for PanickyIo {
    fn on_packet(
        &self,
        session: &packet_runtime::Session<tests::game::GameProtocol>,
        packet: tests::game::ClientPacket,
    ) -> packet_runtime::IoAction<tests::game::ClientPacket> {
        match packet {
            tests::game::ClientPacket::CEcho(_) => panic!("IO hook bug on purpose"),
            tests::game::ClientPacket::CPing(ping) => {
                let _ = session.send(&proto::SPong { client_time: ping.client_time, server_time: 1 });
                packet_runtime::IoAction::Handled
            }
            other => packet_runtime::IoAction::Forward(other),
        }
    }
}

#[test]
fn a_panicking_io_hook_closes_only_its_session_gracefully_with_the_notice() {
    let server = start(builder().io_handler(PanickyIo));
    client_runtime().block_on(async {
        let mut offender = connect(server.addr).await;
        offender.send(&proto::CEcho { data: vec![1] }).await.unwrap();
        let (got, end) = drain_until_closed(&mut offender).await;
        assert!(matches!(&got[..], [ServerPacket::SKick(kick)] if kick.reason == "a handler panicked"), "{got:?}");
        assert!(test_support::is_close(&end), "{end:?}");
        assert_serves(server.addr).await;
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.metrics.closed(packet_runtime::CloseKind::HandlerPanic), 1);
}
