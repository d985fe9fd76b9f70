//! Login: names of 1..=32 characters, unique non-zero ids, retry after a refusal, and the kick before login.

use demo_protocol::ServerPacket;
use demo_protocol::proto::{CChat, CEnterRoom, CLogin, CMove, PosInfo};

use crate::support::*;

#[test]
fn login_gives_unique_nonzero_player_ids() {
    let server = start();
    runtime().block_on(async {
        let mut ids = Vec::new();
        let mut clients = Vec::new();
        for name in ["ann", "bob", "cy"] {
            let (client, id) = login(server.addr, name).await;
            ids.push(id);
            clients.push(client);
        }
        assert!(ids.iter().all(|&id| id != 0), "{ids:?}");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 3, "ids are unique");
    });
    server.stop();
}

#[test]
fn bad_names_are_refused_and_the_session_may_retry() {
    let server = start();
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        for bad in [String::new(), "x".repeat(33), "é".repeat(33)] {
            client.send(&CLogin { name: bad.clone() }).await.unwrap();
            let reply = expect!(&mut client, SLogin);
            assert!(!reply.success, "{bad:?} must be refused");
            assert_eq!(reply.player_id, 0);
        }
        // 32 characters (64 bytes): the limit counts characters.
        client.send(&CLogin { name: "é".repeat(32) }).await.unwrap();
        let reply = expect!(&mut client, SLogin);
        assert!(reply.success && reply.player_id != 0, "{reply:?}");
        // The first login stands: another one is refused and the session stays usable.
        client.send(&CLogin { name: "again".into() }).await.unwrap();
        assert!(!expect!(&mut client, SLogin).success);
        assert!(enter(&mut client, 1).await.is_empty());
    });
    server.stop();
}

#[test]
fn game_packets_before_login_are_kicked() {
    let server = start();
    runtime().block_on(async {
        let (mut bystander, _) = login(server.addr, "bystander").await;
        enter(&mut bystander, 1).await;
        for (packet, name) in [(0, "C_ENTER_ROOM"), (1, "C_MOVE"), (2, "C_CHAT")] {
            let mut client = connect(server.addr).await;
            match packet {
                0 => client.send(&CEnterRoom { room_id: 1 }).await.unwrap(),
                1 => client.send(&CMove { pos: Some(PosInfo::default()) }).await.unwrap(),
                _ => client.send(&CChat { msg: "hi".into() }).await.unwrap(),
            }
            let (got, end) = drain_until_closed(&mut client).await;
            assert!(is_close(&end), "{end:?}");
            let reason = kick_reason(&got);
            assert!(reason.contains(name) && reason.contains("log in first"), "{reason:?}");
        }
        // Nothing of that reached the room.
        assert_nothing_pending(&mut bystander).await;
    });
    let report = server.stop();
    assert_eq!(report.metrics.closed(packet_runtime::CloseKind::Closed), 3, "three kicks");
}

#[test]
fn ping_and_echo_are_served_before_login() {
    let server = start();
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        client.send(&demo_protocol::proto::CPing { client_time: 5 }).await.unwrap();
        assert_eq!(expect!(&mut client, SPong).client_time, 5);
        client.send(&demo_protocol::proto::CEcho { data: vec![1, 2, 3] }).await.unwrap();
        assert_eq!(expect!(&mut client, SEcho).data, [1, 2, 3]);
        // Still not kicked: a login works afterwards.
        client.send(&CLogin { name: "late".into() }).await.unwrap();
        assert!(matches!(next(&mut client).await, ServerPacket::SLogin(reply) if reply.success));
    });
    server.stop();
}
