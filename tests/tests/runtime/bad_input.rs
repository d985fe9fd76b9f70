//! Each kind of bad input closes only the session that sent it, with the documented reason and, where the frame
//! boundary is known, a kick naming the fault. The server keeps serving everyone else.

use packet_runtime::{BadFrame, CloseReason, FrameFault};
use tests::game::ServerPacket;

use crate::support::*;

/// Sends `bytes` from one client while another stays connected; returns the kick text and the close reason.
fn bad_input_case(bytes: &[u8]) -> (Option<String>, CloseReason) {
    let server = start(builder());
    let kick = client_runtime().block_on(async {
        let mut bystander = connect(server.addr).await;
        let mut offender = connect(server.addr).await;
        offender.send_raw(bytes).await.unwrap();
        let (got, _closed) = drain_until_closed(&mut offender).await;
        // The bystander is unaffected and the server still takes new clients.
        bystander.send(&tests::proto::CPing { client_time: 1 }).await.unwrap();
        assert!(matches!(within("pong", bystander.recv()).await.unwrap(), ServerPacket::SPong(_)));
        assert_serves(server.addr).await;
        got.into_iter().find_map(|p| match p {
            ServerPacket::SKick(kick) => Some(kick.reason),
            _ => None,
        })
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.pool_outstanding, 0);
    let journal = server.journal.lock().unwrap();
    let reasons: Vec<_> = journal.disconnected.iter().map(|(_, r)| r.clone()).collect();
    let bad = reasons.iter().find(|r| matches!(r, CloseReason::BadFrame(_))).cloned().expect("one bad-frame close");
    assert_eq!(reasons.iter().filter(|r| matches!(r, CloseReason::BadFrame(_))).count(), 1, "{reasons:?}");
    (kick, bad)
}

#[test]
fn size_below_header_is_kicked_and_closed() {
    let (kick, reason) = bad_input_case(&[3, 0, 0xE8, 0x03]);
    assert_eq!(reason, CloseReason::BadFrame(BadFrame::Fault(FrameFault::TooShort { size: 3, header: 4 })));
    assert!(kick.unwrap().contains("smaller than the 4-byte header"));
}

#[test]
fn oversized_frame_is_rejected_from_its_header() {
    let (kick, reason) = bad_input_case(&[0xFF, 0xFF, 0xE8, 0x03, 1, 2, 3]);
    assert_eq!(reason, CloseReason::BadFrame(BadFrame::Fault(FrameFault::TooLarge { size: 65535, max: 16384 })));
    assert!(kick.unwrap().contains("exceeds the maximum"));
}

#[test]
fn unknown_id_is_kicked_with_the_id() {
    let (kick, reason) = bad_input_case(&[4, 0, 0x39, 0x30]); // id 12345
    assert!(matches!(reason, CloseReason::BadFrame(BadFrame::Decode(ref e)) if e.id() == 12345), "{reason:?}");
    assert!(kick.unwrap().contains("unknown packet id 12345"));
}

#[test]
fn undecodable_payload_is_kicked_with_the_packet_name() {
    // C_LOGIN whose field 1 claims 100 bytes that are not there.
    let (kick, reason) = bad_input_case(&[6, 0, 0xE8, 0x03, 0x0A, 100]);
    assert!(matches!(reason, CloseReason::BadFrame(BadFrame::Decode(_))), "{reason:?}");
    assert!(kick.unwrap().contains("C_LOGIN"));
}

#[test]
fn string_that_is_not_utf8_is_kicked() {
    let (kick, reason) = bad_input_case(&[8, 0, 0xE8, 0x03, 0x0A, 2, 0xFF, 0xFE]);
    assert!(matches!(reason, CloseReason::BadFrame(BadFrame::Decode(_))), "{reason:?}");
    assert!(kick.is_some());
}

#[test]
fn truncated_frame_then_eof_closes_as_peer_closed() {
    let server = start(builder());
    client_runtime().block_on(async {
        let mut offender = connect(server.addr).await;
        offender.send_raw(&[0xFF, 0x00, 0xE8, 0x03, 1, 2]).await.unwrap();
        let (_, mut writer) = offender.into_split();
        writer.shutdown().await.unwrap();
        drop(writer);
        assert_serves(server.addr).await;
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.pool_outstanding, 0);
    let journal = server.journal.lock().unwrap();
    let offender = journal.connected[0];
    let (_, reason) = journal.disconnected.iter().find(|(id, _)| *id == offender).expect("offender disconnected");
    assert_eq!(*reason, CloseReason::PeerClosed);
}
