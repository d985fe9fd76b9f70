//! Every kind of bad frame gets an S_KICK naming the fault, then the connection closes; everyone else goes on.

use demo_protocol::proto::CChat;
use packet_runtime::CloseKind;

use crate::support::*;

/// Sends `bytes` from a fresh connection and returns the kick reason; checks the close, and that a logged-in
/// bystander in a room still chats and pings afterwards.
fn kicked_for(bytes: &[u8]) -> String {
    let server = start();
    let reason = runtime().block_on(async {
        let (mut bystander, bystander_id) = login(server.addr, "bystander").await;
        enter(&mut bystander, 1).await;
        let mut offender = connect(server.addr).await;
        offender.send_raw(bytes).await.unwrap();
        let (got, end) = drain_until_closed(&mut offender).await;
        assert!(is_close(&end), "{end:?}");
        let reason = kick_reason(&got);

        bystander.send(&CChat { msg: "still here".into() }).await.unwrap();
        let chat = expect!(&mut bystander, SChat);
        assert_eq!((chat.player_id, chat.msg.as_str()), (bystander_id, "still here"));
        bystander.send(&demo_protocol::proto::CPing { client_time: 1 }).await.unwrap();
        expect!(&mut bystander, SPong);
        // And new players are still welcome.
        login(server.addr, "newcomer").await;
        reason
    });
    let report = server.stop();
    assert_eq!(report.metrics.closed(CloseKind::BadFrame), 1);
    assert_eq!(report.pool_outstanding, 0);
    reason
}

#[test]
fn size_below_the_header_is_kicked() {
    let reason = kicked_for(&[3, 0, 0xE8, 0x03]);
    assert!(reason.contains("frame size 3 is smaller than the 4-byte header"), "{reason}");
}

#[test]
fn frame_over_the_maximum_is_kicked_from_its_header() {
    // 65,535 bytes announced, 16 KiB allowed: refused before the body arrives.
    let reason = kicked_for(&[0xFF, 0xFF, 0xE8, 0x03, 1, 2, 3]);
    assert_eq!(reason, "frame of 65535 bytes over the 16384 limit");
}

#[test]
fn unknown_id_is_kicked() {
    let reason = kicked_for(&[4, 0, 0x0F, 0x27]); // id 9999
    assert!(reason.contains("unknown packet id 9999"), "{reason}");
}

#[test]
fn server_to_client_id_from_a_client_is_kicked_as_unknown() {
    let reason = kicked_for(&[4, 0, 0xE9, 0x03]); // id 1001, S_LOGIN
    assert!(reason.contains("unknown packet id 1001 for client_to_server"), "{reason}");
}

#[test]
fn payload_that_does_not_decode_is_kicked_naming_the_packet() {
    // C_LOGIN whose field 1 claims 100 bytes that are not there.
    let reason = kicked_for(&[6, 0, 0xE8, 0x03, 0x0A, 100]);
    assert!(reason.contains("malformed payload for C_LOGIN (id 1000)"), "{reason}");
}
