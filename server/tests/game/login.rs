//! Login: names of 1..=32 characters that others can read and tell apart, unique among players online; unique
//! non-zero ids, retry after a refusal with a code and a reason, and the kick before login.

use demo_protocol::ServerPacket;
use demo_protocol::proto::{CChat, CEnterRoom, CLogin, CMove, LoginError, PosInfo};

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
            client.send(&CLogin { name: bad.clone(), ..Default::default() }).await.unwrap();
            let reply = expect!(&mut client, SLogin);
            assert!(!reply.success, "{bad:?} must be refused");
            assert_eq!(reply.player_id, 0);
        }
        // 32 characters (64 bytes): the limit counts characters.
        client.send(&CLogin { name: "é".repeat(32), ..Default::default() }).await.unwrap();
        let reply = expect!(&mut client, SLogin);
        assert!(reply.success && reply.player_id != 0, "{reply:?}");
        // The first login stands: another one is refused and the session stays usable.
        client.send(&CLogin { name: "again".into(), ..Default::default() }).await.unwrap();
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
        client.send(&CLogin { name: "late".into(), ..Default::default() }).await.unwrap();
        assert!(matches!(next(&mut client).await, ServerPacket::SLogin(reply) if reply.success));
    });
    server.stop();
}

/// Logs in as `name` on `client`; returns the reply, whatever it is.
async fn try_login(client: &mut GameClient, name: &str) -> demo_protocol::proto::SLogin {
    client.send(&CLogin { name: name.into(), ..Default::default() }).await.unwrap();
    expect!(client, SLogin)
}

/// The names, each refused with the code and a reason a client can show (which never repeats the refused
/// characters), on one session that then logs in fine.
#[test]
fn names_others_could_not_read_or_tell_apart_are_refused_with_a_reason() {
    let (server, stats) = start_counting(&options());
    let cases: &[(&str, LoginError, &str)] = &[
        ("\x00", LoginError::NameCharacter, "U+0000 (a control character)"),
        ("a\nb\x1b[31mRED", LoginError::NameCharacter, "U+000A (a control character)"),
        ("x\nZ ERROR fake: forged\x1b[31m", LoginError::NameCharacter, "a control character"),
        ("tab\there", LoginError::NameCharacter, "U+0009"),
        ("del\u{7f}", LoginError::NameCharacter, "U+007F"),
        ("\u{200B}", LoginError::NameCharacter, "U+200B (an invisible format character)"),
        ("ann\u{2060}", LoginError::NameCharacter, "U+2060"),
        ("\u{202E}gnp.exe", LoginError::NameCharacter, "U+202E (a bidirectional override or isolate)"),
        ("\u{2067}x", LoginError::NameCharacter, "U+2067"),
        ("\u{FFFF}", LoginError::NameCharacter, "U+FFFF (a noncharacter)"),
        ("line\u{2028}break", LoginError::NameCharacter, "U+2028 (whitespace other than a space)"),
        ("\u{3164}", LoginError::NameCharacter, "U+3164"),
        ("                                ", LoginError::NameBlank, "visible character"),
        (" ann", LoginError::NameBlank, "no space at either end"),
        ("\u{200D}", LoginError::NameBlank, "visible character"),
        ("", LoginError::NameLength, "1 to 32 characters"),
    ];
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        for &(name, error, reason) in cases {
            let reply = try_login(&mut client, name).await;
            assert!(!reply.success && reply.player_id == 0, "{name:?} must be refused: {reply:?}");
            assert_eq!(reply.error(), error, "{name:?}: {reply:?}");
            assert!(reply.reason.contains(reason), "{name:?}: reason {:?} should say {reason:?}", reply.reason);
            assert!(
                reply.reason.chars().all(|c| !c.is_control() && !('\u{2000}'..='\u{206F}').contains(&c)),
                "the reason is plain text: {:?}",
                reply.reason
            );
        }
        // Still allowed: joiners inside emoji, accents, other scripts, inner spaces.
        let ok = try_login(&mut client, "Ann 👩\u{200D}🚀 é 李").await;
        assert!(ok.success && ok.error() == LoginError::None && ok.reason.is_empty(), "{ok:?}");
        // Shown to others as accepted, nothing added or removed.
        let (mut other, _) = login(server.addr, "other").await;
        enter(&mut client, 1).await;
        assert_eq!(enter(&mut other, 1).await[0].name, "Ann 👩\u{200D}🚀 é 李");
        expect!(&mut client, SSpawn);
        let again = try_login(&mut client, "again").await;
        assert_eq!(again.error(), LoginError::AlreadyLoggedIn, "{again:?}");
    });
    server.stop();
    assert_eq!(stats.snapshot().logins_refused, cases.len() as u64 + 1);
}

/// Names are unique among the players online, ignoring case (and joiners); a name is free again once its player
/// has left.
#[test]
fn a_name_online_is_refused_ignoring_case_and_free_again_after_its_player_leaves() {
    let server = start();
    runtime().block_on(async {
        let (mut ann, ann_id) = login(server.addr, "Ann").await;
        let (mut watcher, _) = login(server.addr, "watcher").await;
        enter(&mut ann, 1).await;
        enter(&mut watcher, 1).await;
        let mut impostor = connect(server.addr).await;
        for same in ["Ann", "ann", "ANN", "an\u{200D}n"] {
            let reply = try_login(&mut impostor, same).await;
            assert_eq!(reply.error(), LoginError::NameTaken, "{same:?}: {reply:?}");
            assert!(reply.reason.contains("ignoring case"), "{reply:?}");
        }
        assert!(try_login(&mut impostor, "Anne").await.success, "a different name is fine");
        drop(ann);
        // The watcher sees Ann leave: her on_disconnect ran, her name is free.
        assert_eq!(expect!(&mut watcher, SDespawn).player_ids, [ann_id]);
        let (_, new_ann) = login(server.addr, "ann").await;
        assert_ne!(new_ann, ann_id, "a new player, not the old one back");
    });
    server.stop();
}
