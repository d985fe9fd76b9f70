//! The version handshake (`packet_runtime::handshake`): answered when a client opens with it, required with
//! `require_handshake`, refused on both sides when the protocols differ.

use packet_runtime::{ClientError, HandshakeFault, Protocol};
use tests::game::GameProtocol;
use tests::proto;

use crate::support::*;

/// Another build of a protocol, for a client whose fingerprint is not the server's.
mod older_build {
    #[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
    #[packet(id = 1000, name = "C_LOGIN")]
    pub(crate) struct CLogin {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
    }

    #[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
    #[packet(id = 1001, name = "S_LOGIN")]
    pub(crate) struct SLogin {
        #[prost(uint64, tag = "1")]
        pub(crate) player_id: u64,
    }

    packet_runtime::define_packets! {
        pub(crate) protocol Older {
            client_to_server ClientPacket { CLogin }
            server_to_client ServerPacket { SLogin }
        }
    }
}

/// A control frame (packet id 0) with `payload`, compact header.
fn control(payload: &[u8]) -> Vec<u8> {
    let mut frame = ((4 + payload.len()) as u16).to_le_bytes().to_vec();
    frame.extend_from_slice(&0u16.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The kick the server's close notice sends, and the connection's end.
#[test]
fn a_hello_is_answered_when_not_required_and_clients_without_one_still_work() {
    let server = start(builder());
    client_runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let answer = within("the server's hello", client.handshake("test client 1.0")).await.unwrap();
        assert_eq!(answer.fingerprint, GameProtocol::FINGERPRINT);
        assert_eq!(answer.version, concat!("packet-runtime ", env!("CARGO_PKG_VERSION")));
        assert_echoes(&mut client).await;
        // Without a hello, as before the handshake existed.
        let mut plain = connect(server.addr).await;
        assert_echoes(&mut plain).await;
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.pool_outstanding, 0);
    assert_eq!(server.journal.lock().unwrap().connected.len(), 2);
}

#[test]
fn a_required_hello_admits_the_session_and_anything_else_first_is_refused() {
    let server = start(builder().require_handshake(true).server_version("test server 9"));
    client_runtime().block_on(async {
        // A packet before the hello: refused with the notice, and the game never hears of the session.
        let mut early = connect(server.addr).await;
        early.send(&proto::CEcho { data: b"too early".to_vec() }).await.unwrap();
        let reason = kick_reason(&mut early).await;
        assert!(reason.contains("requires the version handshake"), "{reason}");
        assert!(reason.contains("id 1012"), "{reason}");

        let mut client = connect(server.addr).await;
        let answer = within("the server's hello", client.handshake("test client 1.0")).await.unwrap();
        assert_eq!((answer.fingerprint, answer.version.as_str()), (GameProtocol::FINGERPRINT, "test server 9"));
        assert_echoes(&mut client).await;
        let journal = server.journal.lock().unwrap();
        assert_eq!(journal.connected.len(), 1, "only the session whose hello matched reached on_connect");
        assert!(journal.disconnected.is_empty(), "{:?}", journal.disconnected);
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.pool_outstanding, 0);
    assert_eq!((report.metrics.connections_total, report.metrics.connections_unadmitted), (2, 1));
    assert_eq!(report.sessions_closed, 1);
}

#[test]
fn a_mismatched_fingerprint_is_refused_on_both_sides_naming_both() {
    let server = start(builder().require_handshake(true));
    let game = format!("{:016x}", GameProtocol::FINGERPRINT);
    let older = format!("{:016x}", older_build::Older::FINGERPRINT);
    client_runtime().block_on(async {
        // The client side: Client::handshake compares the server's answer with its own fingerprint.
        let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut client = packet_runtime::Client::<older_build::Older>::new(stream);
        match within("the server's hello", client.handshake("older client 0.9")).await {
            Err(ClientError::Handshake(HandshakeFault::Mismatch { client, server, client_version, .. })) => {
                assert_eq!((client, server), (older_build::Older::FINGERPRINT, GameProtocol::FINGERPRINT));
                assert_eq!(client_version, "older client 0.9");
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        let text = ClientError::Handshake(HandshakeFault::Mismatch {
            client: older_build::Older::FINGERPRINT,
            client_version: String::new(),
            server: GameProtocol::FINGERPRINT,
            server_version: String::new(),
        })
        .to_string();
        assert!(text.contains(&game) && text.contains(&older), "{text}");

        // The server side: after its hello, the close notice names both fingerprints, then the connection ends.
        let mut raw = connect(server.addr).await;
        let mut hello = vec![1];
        hello.extend_from_slice(&older_build::Older::FINGERPRINT.to_le_bytes());
        hello.extend_from_slice(b"older client 0.9");
        raw.send_raw(&control(&hello)).await.unwrap();
        let (id, payload) = within("the server's hello", raw.recv_frame()).await.unwrap();
        assert_eq!(id, 0);
        assert_eq!(payload[0], 2, "the server's hello");
        assert_eq!(payload[1..9], GameProtocol::FINGERPRINT.to_le_bytes());
        let reason = kick_reason(&mut raw).await;
        assert!(reason.contains("protocol mismatch") && reason.contains(&game) && reason.contains(&older), "{reason}");
        assert!(reason.contains("older client 0.9"), "{reason}");
    });
    server.handle.shutdown();
    assert_eq!(server.handle.join().pool_outstanding, 0);
    assert!(server.journal.lock().unwrap().connected.is_empty());
}

#[test]
fn a_second_or_malformed_control_frame_closes_the_session() {
    let server = start(builder());
    client_runtime().block_on(async {
        let mut twice = connect(server.addr).await;
        within("hello", twice.handshake("test")).await.unwrap();
        let mut hello = vec![1];
        hello.extend_from_slice(&GameProtocol::FINGERPRINT.to_le_bytes());
        twice.send_raw(&control(&hello)).await.unwrap();
        let reason = kick_reason(&mut twice).await;
        assert!(reason.contains("after the handshake"), "{reason}");

        // A hello after another packet is a second control frame too.
        let mut late = connect(server.addr).await;
        assert_echoes(&mut late).await;
        late.send_raw(&control(&hello)).await.unwrap();
        assert!(kick_reason(&mut late).await.contains("after the handshake"));

        for (payload, expected) in [
            (&[][..], "an empty control frame"),
            (&[7, 1, 2][..], "an unknown control frame kind"),
            (&[1, 1, 2][..], "shorter than its 8-byte fingerprint"),
            (&[2, 0, 0, 0, 0, 0, 0, 0, 0][..], "a hello of the other side"),
        ] {
            let mut bad = connect(server.addr).await;
            bad.send_raw(&control(payload)).await.unwrap();
            let reason = kick_reason(&mut bad).await;
            assert!(reason.contains("malformed handshake") && reason.contains(expected), "{payload:?}: {reason}");
        }
    });
    server.handle.shutdown();
    assert_eq!(server.handle.join().pool_outstanding, 0);
}

#[test]
fn shutdown_tells_sessions_still_waiting_for_their_hello() {
    let server = start(builder().require_handshake(true));
    client_runtime().block_on(async {
        let mut waiting = connect(server.addr).await;
        // The server has the connection (it answers a second client's hello) before it is asked to stop.
        let mut other = connect(server.addr).await;
        within("hello", other.handshake("test")).await.unwrap();
        server.handle.shutdown();
        assert_eq!(kick_reason(&mut waiting).await, "server shutting down");
        assert_eq!(kick_reason(&mut other).await, "server shutting down");
    });
    let report = join_within(server.handle, std::time::Duration::from_secs(20), "the server to stop");
    assert_eq!(report.pool_outstanding, 0);
    assert_eq!(server.journal.lock().unwrap().connected.len(), 1);
}
