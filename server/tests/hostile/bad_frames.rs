//! Headers, ids and payloads the server must refuse (kick naming the fault, close that session only), and
//! well-formed input in awkward pieces it must accept.

use demo_protocol::proto::{CChat, CEcho, CLogin, CMove, CPing};
use packet_runtime::{CloseKind, Packet};
use server::ServerOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const C_LOGIN: u16 = CLogin::ID;
const C_MOVE: u16 = CMove::ID;
const C_CHAT: u16 = CChat::ID;
const C_PING: u16 = CPing::ID;

/// Sends `bytes` from a fresh connection (then ends its write side if `eof`), with a logged-in bystander in a room;
/// returns the kick reason. Checks the close, that the bystander still chats, and the common ending.
fn kicked_for(options: &ServerOptions, bytes: &[u8], eof: bool) -> String {
    let server = start_with(options);
    let reason = runtime().block_on(async {
        let (mut bystander, bystander_id) = login(server.addr, "bystander").await;
        enter(&mut bystander, 1).await;
        let (mut offender_reader, mut offender_writer) = connect(server.addr).await.into_split();
        offender_writer.send_raw(bytes).await.unwrap();
        if eof {
            offender_writer.shutdown().await.unwrap();
        }
        let mut got = Vec::new();
        let end = loop {
            match within("the server to close the offender", offender_reader.recv()).await {
                Ok(packet) => got.push(packet),
                Err(end) => break end,
            }
        };
        assert!(is_close(&end), "{end:?}");
        let reason = kick_reason(&got);
        // The server lingers (reading and discarding) until the offender closes too, up to its flush deadline.
        drop((offender_reader, offender_writer));

        bystander.send(&CChat { msg: "still here".into() }).await.unwrap();
        let chat = expect!(&mut bystander, SChat);
        assert_eq!((chat.player_id, chat.msg.as_str()), (bystander_id, "still here"));
        only_closed(&server, CloseKind::BadFrame).await;
        reason
    });
    server.stop();
    reason
}

fn kicked(bytes: &[u8]) -> String {
    kicked_for(&options(), bytes, false)
}

/// Sends `bytes` and ends the write side; the server must close quietly (no kick: the peer is gone) as
/// `PeerClosed`.
fn closed_quietly_after(options: &ServerOptions, bytes: &[u8]) {
    let server = start_with(options);
    runtime().block_on(async {
        let mut offender = connect_raw(server.addr).await;
        offender.write_all(bytes).await.unwrap();
        offender.shutdown().await.unwrap();
        let mut rest = Vec::new();
        within("the server to close", offender.read_to_end(&mut rest)).await.expect("a clean close");
        assert!(rest.is_empty(), "nothing is sent for a frame that never completed: {rest:?}");
        only_closed(&server, CloseKind::PeerClosed).await;
    });
    server.stop();
}

#[test]
fn size_below_the_header_is_kicked() {
    let reason = kicked(&header(3, C_LOGIN));
    assert!(reason.contains("frame size 3 is smaller than the 4-byte header"), "{reason}");
}

#[test]
fn size_ffff_with_a_short_body_then_eof_is_kicked_from_its_header() {
    // 65,535 bytes announced, 16 KiB allowed, 3 sent, then end of stream: refused from the header alone.
    let reason = kicked_for(&options(), &[&header(0xFFFF, C_LOGIN)[..], &[1, 2, 3]].concat(), true);
    assert_eq!(reason, "frame of 65535 bytes over the 16384 limit");
}

#[test]
fn size_ffff_within_the_maximum_with_a_short_body_then_eof_closes_quietly() {
    // With 64 KiB allowed the same header is acceptable: the frame is just truncated by the end of stream.
    let options = ServerOptions { max_frame: 65_535, ..options() };
    closed_quietly_after(&options, &[&header(0xFFFF, C_LOGIN)[..], &[1, 2, 3]].concat());
}

#[test]
fn a_complete_frame_over_the_maximum_is_kicked() {
    let options = ServerOptions { max_frame: 1024, ..options() };
    let reason = kicked_for(&options, &encode(&CEcho { data: vec![7; 2000] }), false);
    assert_eq!(reason, "frame of 2007 bytes over the 1024 limit");
}

#[test]
fn a_truncated_frame_then_eof_closes_quietly() {
    // C_LOGIN announced as 16 bytes, 7 sent.
    closed_quietly_after(&options(), &[&header(16, C_LOGIN)[..], &[0x0A, 0x03, b'a']].concat());
}

#[test]
fn unknown_id_is_kicked() {
    let reason = kicked(&frame(9999, &[]));
    assert!(reason.contains("unknown packet id 9999"), "{reason}");
}

#[test]
fn a_varint_of_eleven_bytes_is_kicked() {
    let mut payload = vec![0x08]; // field 1, varint
    payload.extend([0xFF; 11]);
    let reason = kicked(&frame(C_PING, &payload));
    assert!(reason.contains("malformed payload for C_PING") && reason.contains("invalid varint"), "{reason}");
}

#[test]
fn wire_types_6_and_7_are_kicked() {
    for (key, wire_type) in [(0x0E, 6), (0x0F, 7)] {
        let reason = kicked(&frame(C_PING, &[key, 0]));
        assert!(reason.contains(&format!("invalid wire type value: {wire_type}")), "{reason}");
    }
}

#[test]
fn a_string_that_is_not_utf8_is_kicked() {
    let reason = kicked(&frame(C_LOGIN, &[0x0A, 2, 0xC3, 0x28]));
    assert!(reason.contains("malformed payload for C_LOGIN") && reason.contains("UTF-8"), "{reason}");
}

#[test]
fn a_length_past_the_end_is_kicked() {
    let reason = kicked(&frame(C_CHAT, &[0x0A, 100, b'h', b'i']));
    assert!(reason.contains("malformed payload for C_CHAT") && reason.contains("buffer underflow"), "{reason}");
}

/// `depth` unknown groups (field 2), each inside the previous one.
fn nested_groups(depth: usize) -> Vec<u8> {
    let mut payload = vec![0x13; depth]; // field 2, start group
    payload.extend(std::iter::repeat_n(0x14, depth)); // field 2, end group
    payload
}

// Nothing in this protocol nests deeply: C_MOVE -> PosInfo and S_ENTER_ROOM -> PlayerInfo -> PosInfo are the deepest
// (3 levels). What does reach prost's recursion limit (100) is an unknown field: prost skips unknown groups
// (wire types 3/4) recursively, one level of its limit per group, while it skips unknown length-delimited fields
// without looking inside. So 101 nested groups are refused, 100 are skipped, and 101 nested length-delimited fields
// cost nothing.

#[test]
fn unknown_groups_nested_101_deep_hit_the_recursion_limit_and_are_kicked() {
    let reason = kicked(&frame(C_MOVE, &nested_groups(101)));
    assert!(reason.contains("malformed payload for C_MOVE") && reason.contains("recursion limit reached"), "{reason}");
}

#[test]
fn unknown_groups_nested_100_deep_and_length_delimited_fields_101_deep_are_skipped() {
    let mut nested = Vec::new();
    for _ in 0..101 {
        let mut outer = vec![0x12]; // field 2, length-delimited
        let mut len = nested.len();
        while len >= 0x80 {
            outer.push((len as u8) | 0x80);
            len >>= 7;
        }
        outer.push(len as u8);
        outer.extend(&nested);
        nested = outer;
    }
    let server = start();
    runtime().block_on(async {
        let (mut client, _) = login(server.addr, "nester").await;
        let (mut other, _) = login(server.addr, "watcher").await;
        enter(&mut client, 1).await;
        enter(&mut other, 1).await;
        expect!(&mut client, SSpawn);
        // A C_MOVE without a position (only unknown fields) is ignored: the watcher gets nothing.
        client.send_raw(&frame(C_MOVE, &nested_groups(100))).await.unwrap();
        assert_nothing_pending(&mut other).await;
        assert_nothing_pending(&mut client).await;
        // A C_PING whose only field is unknown decodes to client_time 0.
        client.send_raw(&frame(C_PING, &nested)).await.unwrap();
        assert_eq!(expect!(&mut client, SPong).client_time, 0);
        drop(client);
        only_closed(&server, CloseKind::PeerClosed).await;
    });
    server.stop();
}

#[test]
fn a_login_and_an_echo_dribbled_one_byte_per_write_get_the_normal_replies() {
    let server = start();
    runtime().block_on(async {
        let mut bytes = encode(&CLogin { name: "dribbler".into(), ..Default::default() });
        bytes.extend(encode(&CEcho { data: b"one byte at a time".to_vec() }));
        let mut client = connect(server.addr).await;
        for byte in bytes {
            client.send_raw(&[byte]).await.unwrap();
        }
        // S_LOGIN comes from the logic thread, S_ECHO from the IO thread that decoded the echo: either may come
        // first.
        let (mut logged_in, mut echoed) = (false, false);
        for _ in 0..2 {
            match next(&mut client).await {
                demo_protocol::ServerPacket::SLogin(reply) => logged_in = reply.success,
                demo_protocol::ServerPacket::SEcho(echo) => echoed = echo.data == b"one byte at a time",
                other => panic!("expected S_LOGIN and S_ECHO, got {other:?}"),
            }
        }
        assert!(logged_in && echoed);
        client.send(&CPing { client_time: 5 }).await.unwrap();
        assert_eq!(expect!(&mut client, SPong).client_time, 5);
        drop(client);
        only_closed(&server, CloseKind::PeerClosed).await;
    });
    server.stop();
}
