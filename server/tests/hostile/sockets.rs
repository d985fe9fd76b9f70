//! Misbehaving sockets: resets in the middle of a frame and in the middle of the server's writes, a half-closed
//! client.

use demo_protocol::proto::{CChat, CEcho, CLogin, CPing, SLogin, SPong};
use packet_runtime::{CloseKind, Packet};
use server::ServerOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::support::*;

#[test]
fn a_reset_in_the_middle_of_a_frame_closes_that_session_only() {
    let server = start();
    runtime().block_on(async {
        let (mut bystander, bystander_id) = login(server.addr, "bystander").await;
        enter(&mut bystander, 1).await;
        let before = server.metrics().bytes_in;
        let mut offender = connect_raw(server.addr).await;
        let bytes = encode(&CChat { msg: "half of this frame never arrives".into() });
        let half = bytes.len() / 2;
        offender.write_all(&bytes[..half]).await.unwrap();
        server.until("the half frame to be read", |m| m.bytes_in >= before + half as u64).await;
        reset(offender);
        only_closed(&server, CloseKind::Io).await;
        bystander.send(&CChat { msg: "unaffected".into() }).await.unwrap();
        assert_eq!(expect!(&mut bystander, SChat).player_id, bystander_id);
    });
    server.stop();
}

#[test]
fn a_reset_while_the_server_writes_a_large_backlog_closes_that_session_only() {
    const ECHOES: u64 = 600;
    let server = start_with(&ServerOptions { send_queue_limit: 64 * 1024 * 1024, ..options() });
    runtime().block_on(async {
        let (mut bystander, _) = login(server.addr, "bystander").await;
        let before = server.metrics().frames_in;
        // Ask for ~9.6 MB of echoes and never read them: far more than the socket buffers hold, so the server is
        // in the middle of writing the backlog when the reset comes.
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut victim = within("connect", socket.connect(server.addr)).await.unwrap();
        victim.set_nodelay(true).unwrap();
        let mut bytes = encode(&CLogin { name: "victim".into(), ..Default::default() });
        let echo = encode(&CEcho { data: vec![0xAB; 16_000] });
        for _ in 0..ECHOES {
            bytes.extend_from_slice(&echo);
        }
        within("the requests to be written", victim.write_all(&bytes)).await.unwrap();
        server.until("every request to be read", |m| m.frames_in >= before + 1 + ECHOES).await;
        reset(victim);
        only_closed(&server, CloseKind::Io).await;
        bystander.send(&CPing { client_time: 9 }).await.unwrap();
        assert_eq!(expect!(&mut bystander, SPong).client_time, 9);
    });
    let report = server.stop();
    assert!(report.frames_dropped > 0, "the reset came while a backlog was queued: {report:?}");
}

/// Sends one packet, shuts the write side down, and reads until the server closes: the reply must arrive, then a
/// clean end of stream.
async fn half_closed_client_gets_its_reply(addr: std::net::SocketAddr, request: Vec<u8>) -> Vec<u8> {
    let mut client = connect_raw(addr).await;
    client.write_all(&request).await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    within("the server to close", client.read_to_end(&mut got)).await.expect("a clean end of stream, not a reset");
    got
}

#[test]
fn a_half_closed_client_still_gets_the_reply_to_a_ping_answered_on_the_io_thread() {
    let server = start();
    runtime().block_on(async {
        let got = half_closed_client_gets_its_reply(server.addr, encode(&CPing { client_time: 77 })).await;
        assert!(got.len() > 4, "no reply before the close: {got:?}");
        assert_eq!(u16::from_le_bytes([got[2], got[3]]), 1011, "S_PONG");
        let pong = <SPong as packet_runtime::prost::Message>::decode(&got[4..]).unwrap();
        assert_eq!(pong.client_time, 77);
        only_closed(&server, CloseKind::PeerClosed).await;
    });
    server.stop();
}

/// The end of stream reaches the logic thread as an event queued behind the session's packets, and the logic thread
/// closes the session when it handles it: the close is queued after the replies to those packets.
#[test]
fn a_half_closed_client_still_gets_the_reply_to_a_login_answered_on_the_logic_thread() {
    let server = start();
    runtime().block_on(async {
        let got = half_closed_client_gets_its_reply(
            server.addr,
            encode(&CLogin { name: "half".into(), ..Default::default() }),
        )
        .await;
        assert!(got.len() > 4, "no S_LOGIN before the close: {got:?}");
        assert_eq!(u16::from_le_bytes([got[2], got[3]]), SLogin::ID, "S_LOGIN");
        let login = <SLogin as packet_runtime::prost::Message>::decode(&got[4..]).unwrap();
        assert!(login.success);
        only_closed(&server, CloseKind::PeerClosed).await;
    });
    server.stop();
}
