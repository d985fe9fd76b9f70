//! A zero-length payload for every client packet. proto3 decodes it to the message's default; the game must
//! handle each default as its rules say.

use demo_protocol::proto::{CChat, CEcho, CEnterRoom, CLogin, CMove, CPing};
use packet_runtime::{CloseKind, Packet};

use crate::support::*;

const C_LOGIN: u16 = CLogin::ID;
const C_ENTER_ROOM: u16 = CEnterRoom::ID;
const C_MOVE: u16 = CMove::ID;
const C_CHAT: u16 = CChat::ID;
const C_PING: u16 = CPing::ID;
const C_ECHO: u16 = CEcho::ID;

#[test]
fn before_login_empty_login_is_refused_empty_ping_and_echo_are_answered() {
    let server = start();
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        client.send_raw(&frame(C_LOGIN, &[])).await.unwrap();
        let refused = expect!(&mut client, SLogin);
        assert!(!refused.success && refused.player_id == 0, "{refused:?}");
        client.send_raw(&frame(C_PING, &[])).await.unwrap();
        assert_eq!(expect!(&mut client, SPong).client_time, 0);
        client.send_raw(&frame(C_ECHO, &[])).await.unwrap();
        assert!(expect!(&mut client, SEcho).data.is_empty());
        // The refused session may still log in.
        client.send(&demo_protocol::proto::CLogin { name: "late".into(), ..Default::default() }).await.unwrap();
        assert!(expect!(&mut client, SLogin).success);
        drop(client);
        only_closed(&server, CloseKind::PeerClosed).await;
    });
    server.stop();
}

#[test]
fn before_login_empty_enter_room_move_and_chat_are_kicked() {
    for (id, name) in [(C_ENTER_ROOM, "C_ENTER_ROOM"), (C_MOVE, "C_MOVE"), (C_CHAT, "C_CHAT")] {
        let server = start();
        runtime().block_on(async {
            let mut client = connect(server.addr).await;
            client.send_raw(&frame(id, &[])).await.unwrap();
            let (got, end) = drain_until_closed(&mut client).await;
            assert!(is_close(&end), "{end:?}");
            let reason = kick_reason(&got);
            assert_eq!(reason, format!("{name} before C_LOGIN: log in first"));
            drop(client);
            // The game closes it with `Session::kick`: the documented reason is `Closed`.
            only_closed(&server, CloseKind::Closed).await;
        });
        server.stop();
    }
}

#[test]
fn after_login_empty_enter_room_is_room_0_empty_move_is_ignored_empty_chat_is_delivered() {
    let server = start();
    runtime().block_on(async {
        let (mut a, a_id) = login(server.addr, "a").await;
        let (mut b, b_id) = login(server.addr, "b").await;
        a.send_raw(&frame(C_ENTER_ROOM, &[])).await.unwrap();
        let entered = expect!(&mut a, SEnterRoom);
        assert!(entered.success && entered.players.is_empty(), "{entered:?}");
        b.send_raw(&frame(C_ENTER_ROOM, &[])).await.unwrap();
        let entered = expect!(&mut b, SEnterRoom);
        assert_eq!(entered.players.iter().map(|p| p.player_id).collect::<Vec<_>>(), [a_id], "room 0 it is");
        assert_eq!(expect!(&mut a, SSpawn).players[0].player_id, b_id);

        // No position: ignored, nobody is told.
        a.send_raw(&frame(C_MOVE, &[])).await.unwrap();
        assert_nothing_pending(&mut b).await;
        assert_nothing_pending(&mut a).await;

        // An empty line is still a chat: the game has no rule against it, so everyone in the room gets it.
        a.send_raw(&frame(C_CHAT, &[])).await.unwrap();
        for client in [&mut a, &mut b] {
            let chat = expect!(client, SChat);
            assert_eq!((chat.player_id, chat.msg.as_str()), (a_id, ""));
        }
        // An empty login on a logged-in session is refused; the first login stands.
        a.send_raw(&frame(C_LOGIN, &[])).await.unwrap();
        assert!(!expect!(&mut a, SLogin).success);
        drop(a);
        assert_eq!(expect!(&mut b, SDespawn).player_ids, [a_id]);
        only_closed(&server, CloseKind::PeerClosed).await;
    });
    server.stop();
}
