//! The demo with `--handshake` (`ServerOptions::handshake`): the bytes docs/PROTOCOL.md shows, the kick that names
//! both fingerprints, and a client that opens with its hello playing as usual.

use demo_protocol::proto::{CChat, CLogin};
use packet_runtime::{HandshakeFault, Protocol};
use server::ServerOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// docs/PROTOCOL.md's example: the client hello with version `demo 1`, and the demo server's answer.
const CLIENT_HELLO: &str = "13 00  00 00  01  04 95 89 ca e7 7f 2e f1  64 65 6d 6f 20 31";
const SERVER_HELLO: &str = "25 00  00 00  02  04 95 89 ca e7 7f 2e f1  70 61 63 6b 65 74 2d 64 65 6d 6f 2d 73 65 72 76 65 72 20 30 2e 31 2e 30";

fn bytes(hex: &str) -> Vec<u8> {
    hex.split_whitespace().map(|byte| u8::from_str_radix(byte, 16).unwrap()).collect()
}

fn handshake_options() -> ServerOptions {
    ServerOptions { handshake: true, ..options() }
}

#[test]
fn protocol_md_shows_the_bytes_the_demo_server_exchanges() {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    assert!(doc.contains(CLIENT_HELLO) && doc.contains(SERVER_HELLO), "docs/PROTOCOL.md shows these bytes");
    assert!(doc.contains(&format!("{:016x}", GameProtocol::FINGERPRINT)), "and the demo's fingerprint");
    let server = start_with(&handshake_options());
    runtime().block_on(async {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(&bytes(CLIENT_HELLO)).await.unwrap();
        let expected = bytes(SERVER_HELLO);
        let mut answer = vec![0; expected.len()];
        within("the server's hello", stream.read_exact(&mut answer)).await.unwrap();
        assert_eq!(answer, expected);
        // The session is admitted: a login right behind the hello is answered.
        let mut client = GameClient::new(stream);
        client.send(&CLogin { name: "after-hello".into(), ..Default::default() }).await.unwrap();
        assert!(expect!(&mut client, SLogin).success);
    });
    server.stop();
}

#[test]
fn the_demo_kicks_a_mismatched_or_missing_hello_and_serves_a_matching_one() {
    let server = start_with(&handshake_options());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let answer = within("hello", client.handshake("game test")).await.unwrap();
        assert_eq!(answer.version, ServerOptions::VERSION);
        client.send(&CLogin { name: "shook-hands".into(), ..Default::default() }).await.unwrap();
        let id = expect!(&mut client, SLogin).player_id;
        enter(&mut client, 1).await;
        client.send(&CChat { msg: "hi".into() }).await.unwrap();
        assert_eq!(expect!(&mut client, SChat).player_id, id);

        let mut missing = connect(server.addr).await;
        missing.send(&CLogin { name: "no-hello".into(), ..Default::default() }).await.unwrap();
        let (got, end) = drain_until_closed(&mut missing).await;
        assert!(is_close(&end), "{end:?}");
        assert!(kick_reason(&got).contains("requires the version handshake"), "{got:?}");

        let mut other_build = connect(server.addr).await;
        let mut hello = vec![23, 0, 0, 0, 1];
        hello.extend_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
        hello.extend_from_slice(b"old build 1.0");
        hello[0] = hello.len() as u8;
        other_build.send_raw(&hello).await.unwrap();
        let (id, _) = within("the server's hello", other_build.recv_frame()).await.unwrap();
        assert_eq!(id, 0);
        let (got, end) = drain_until_closed(&mut other_build).await;
        assert!(is_close(&end), "{end:?}");
        let reason = kick_reason(&got);
        let expected = HandshakeFault::Mismatch {
            client: 0x1234_5678_9abc_def0,
            client_version: "old build 1.0".into(),
            server: GameProtocol::FINGERPRINT,
            server_version: ServerOptions::VERSION.into(),
        };
        assert_eq!(reason, expected.to_string());
        assert!(reason.contains("123456789abcdef0") && reason.contains(&format!("{:016x}", GameProtocol::FINGERPRINT)));
    });
    server.stop();
}
