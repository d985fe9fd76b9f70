//! Limits: a flood past the rate limit, slowloris, a client that never reads, connections beyond the maximum.
//! A slow consumer is cut off with a reset and no notice (the queue is the problem); the others get the close
//! notice, an S_KICK saying why (`notices` checks each reason's text).

use std::time::{Duration, Instant};

use demo_protocol::proto::{CChat, CLogin, CPing};
use packet_runtime::{CloseKind, Packet};
use server::ServerOptions;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

use crate::support::*;

#[test]
fn a_flood_of_tiny_frames_past_the_rate_limit_is_closed() {
    // 10 packets/s, bursts of 20.
    let server = start_with(&ServerOptions { rate_limit: Some(10), ..options() });
    runtime().block_on(async {
        let (mut bystander, _) = login(server.addr, "bystander").await;
        let mut flooder = connect(server.addr).await;
        for i in 0..200 {
            flooder.queue(&CPing { client_time: i }).unwrap();
        }
        flooder.flush().await.unwrap();
        let (got, end) = drain_until_closed(&mut flooder).await;
        assert!(is_close(&end), "{end:?}");
        let (kick, served) = got.split_last().expect("the close notice");
        assert!(served.len() <= 20, "at most the burst was served, got {}", served.len());
        assert!(matches!(kick, demo_protocol::ServerPacket::SKick(_)), "{kick:?}");
        bystander.send(&CPing { client_time: 1 }).await.unwrap();
        expect!(&mut bystander, SPong);
        only_closed(&server, CloseKind::RateLimited).await;
    });
    server.stop();
}

const IDLE: Duration = Duration::from_millis(600);

fn idle_options() -> ServerOptions {
    ServerOptions { idle_timeout: Some(IDLE), ..options() }
}

#[test]
fn a_slowloris_holding_a_partial_frame_is_closed_at_the_idle_timeout() {
    let server = start_with(&idle_options());
    runtime().block_on(async {
        let started = Instant::now();
        let mut slowloris = connect(server.addr).await;
        slowloris.send_raw(&[&header(32, CLogin::ID)[..], &[0x0A]].concat()).await.unwrap(); // 32 bytes, 5 sent
        let (got, end) = drain_until_closed(&mut slowloris).await;
        assert!(is_close(&end), "{end:?}");
        assert_eq!(kick_reason(&got), "idle for 600 ms", "only the close notice: {got:?}");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(started.elapsed() >= IDLE, "closed after {:?}", started.elapsed());
        only_closed(&server, CloseKind::IdleTimeout).await;
    });
    server.stop();
}

#[test]
fn a_slowloris_dribbling_a_frame_that_never_completes_is_closed_at_the_idle_timeout() {
    // "A half-sent frame does not count as activity" (README): one byte every third of the timeout must not keep a
    // frame that would take an hour to complete alive.
    let server = start_with(&idle_options());
    runtime().block_on(async {
        let (mut reader, mut writer) = connect(server.addr).await.into_split();
        writer.send_raw(&header(16_000, CLogin::ID)).await.unwrap(); // C_LOGIN of 16,000 bytes announced
        let dribbler = tokio::spawn(async move {
            while writer.send_raw(b"x").await.is_ok() {
                tokio::time::sleep(IDLE / 3).await;
            }
        });
        let started = Instant::now();
        let closed = tokio::time::timeout(IDLE * 8, reader.recv()).await;
        dribbler.abort();
        assert!(
            closed.is_ok(),
            "still open after {:?}: dribbled bytes of a partial frame count as activity",
            started.elapsed()
        );
        only_closed(&server, CloseKind::IdleTimeout).await;
    });
    server.stop();
}

#[test]
fn a_client_that_never_reads_is_cut_off_while_the_room_keeps_chatting() {
    let server = start_with(&ServerOptions { send_queue_limit: 16 * 1024, ..options() });
    runtime().block_on(async {
        // The slow client reads its login and room replies, then never again; a tiny receive buffer keeps the
        // kernel from hiding that for long.
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut slow = GameClient::new(within("connect", socket.connect(server.addr)).await.unwrap());
        slow.send(&CLogin { name: "slow".into(), ..Default::default() }).await.unwrap();
        assert!(expect!(&mut slow, SLogin).success);
        enter(&mut slow, 1).await;

        let (mut fast, fast_id) = login(server.addr, "fast").await;
        let (mut other, _) = login(server.addr, "other").await;
        enter(&mut fast, 1).await;
        enter(&mut other, 1).await;
        expect!(&mut fast, SSpawn);
        // The longest line the game accepts (chat is capped), each about 270 bytes queued to the slow client.
        let big = "x".repeat(server::game::MAX_CHAT_CHARS);
        let (mut sent, mut after_cut) = (0u64, 0);
        while after_cut < 20 {
            fast.send(&CChat { msg: big.clone() }).await.unwrap();
            sent += 1;
            for client in [&mut fast, &mut other] {
                let chat = next_chat(client).await;
                assert_eq!((chat.player_id, chat.msg.len()), (fast_id, big.len()));
            }
            assert!(sent < 200_000, "the slow consumer was never cut off");
            if server.metrics().queue_overflows > 0 {
                after_cut += 1;
            }
        }
        only_closed(&server, CloseKind::SlowConsumer).await;
        // The others' deliveries continue after the cut.
        fast.send(&CChat { msg: "after".into() }).await.unwrap();
        assert_eq!(next_chat(&mut other).await.msg, "after");
        drop(slow);
    });
    server.stop();
}

/// The next S_CHAT, past the S_DESPAWN of the player who was cut off.
async fn next_chat(client: &mut GameClient) -> demo_protocol::proto::SChat {
    loop {
        match next(client).await {
            demo_protocol::ServerPacket::SChat(chat) => return chat,
            demo_protocol::ServerPacket::SDespawn(_) => {}
            other => panic!("expected S_CHAT, got {other:?}"),
        }
    }
}

#[test]
fn connections_beyond_max_connections_are_closed_at_once() {
    let server = start_with(&ServerOptions { max_connections: Some(2), ..options() });
    runtime().block_on(async {
        let (a, _) = login(server.addr, "a").await;
        let (mut b, _) = login(server.addr, "b").await;
        let mut rejected = connect_raw(server.addr).await;
        let mut rest = Vec::new();
        let _ = within("the rejection", tokio::io::AsyncReadExt::read_to_end(&mut rejected, &mut rest)).await;
        // Only the close notice: never a session.
        assert!(rest.len() >= 4, "{rest:?}");
        let (size, id) = (u16::from_le_bytes([rest[0], rest[1]]), u16::from_le_bytes([rest[2], rest[3]]));
        assert_eq!((usize::from(size), id), (rest.len(), demo_protocol::proto::SKick::ID), "one S_KICK: {rest:?}");
        let _ = rejected.shutdown().await;
        assert_eq!(server.metrics().connections_rejected, 1);
        assert!(server.metrics().closes.iter().all(|&(_, n)| n == 0), "a rejected connection is not a session");
        b.send(&CPing { client_time: 3 }).await.unwrap();
        expect!(&mut b, SPong);
        // Make room for the fresh client of the common ending.
        drop(a);
        server.until("a slot to free up", |m| m.connections_open == 1).await;
        only_closed(&server, CloseKind::PeerClosed).await;
    });
    server.stop();
}
