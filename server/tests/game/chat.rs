//! Room chat: everyone in the room hears it, the sender included, and nobody outside.

use std::collections::HashMap;

use demo_protocol::ServerPacket;
use demo_protocol::proto::{CChat, ChatRefusal};

use crate::support::*;

#[test]
fn chat_reaches_everyone_in_the_room_and_no_one_else() {
    let server = start();
    runtime().block_on(async {
        let (mut ann, ann_id) = login(server.addr, "ann").await;
        let (mut bob, _) = login(server.addr, "bob").await;
        let (mut cy, _) = login(server.addr, "cy").await;
        let (mut roomless, _) = login(server.addr, "roomless").await;
        enter(&mut ann, 1).await;
        enter(&mut bob, 1).await;
        expect!(&mut ann, SSpawn);
        enter(&mut cy, 2).await;

        ann.send(&CChat { msg: "hello room".into() }).await.unwrap();
        for listener in [&mut ann, &mut bob] {
            let chat = expect!(listener, SChat);
            assert_eq!((chat.player_id, chat.msg.as_str()), (ann_id, "hello room"));
        }
        // Outside a room a chat goes nowhere.
        roomless.send(&CChat { msg: "anyone?".into() }).await.unwrap();
        for client in [&mut ann, &mut bob, &mut cy, &mut roomless] {
            assert_nothing_pending(client).await;
        }
    });
    server.stop();
}

/// 200 clients in one room each send `CHATS` lines at once; each of them must receive all 200 × `CHATS` lines, every
/// sender's in the order sent.
#[test]
fn two_hundred_clients_chat_at_once_and_every_line_arrives() {
    const CLIENTS: usize = 200;
    const CHATS: usize = 5;
    const ROOM: u32 = 42;
    let server = start();
    let rt = runtime();
    // Phase 1: everyone logs in and enters; each client waits until it knows all the others (from S_ENTER_ROOM
    // and S_SPAWN), so no spawn notice is still in flight when the chatting starts.
    let clients: Vec<(GameClient, u64)> = rt.block_on(async {
        let joins: Vec<_> = (0..CLIENTS)
            .map(|i| {
                tokio::spawn(async move {
                    let (mut client, id) = login(server.addr, &format!("bot{i}")).await;
                    let mut known = enter(&mut client, ROOM).await.len();
                    while known < CLIENTS - 1 {
                        known += expect!(&mut client, SSpawn).players.len();
                    }
                    (client, id)
                })
            })
            .collect();
        let mut clients = Vec::with_capacity(CLIENTS);
        for join in joins {
            clients.push(within("a client to join", join).await.unwrap());
        }
        clients
    });
    let ids: Vec<u64> = clients.iter().map(|(_, id)| *id).collect();

    // Phase 2: all send, all receive.
    let received: Vec<HashMap<u64, Vec<usize>>> = rt.block_on(async {
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|(client, id)| {
                tokio::spawn(async move {
                    let (mut reader, mut writer) = client.into_split();
                    let send = tokio::spawn(async move {
                        for seq in 0..CHATS {
                            writer.queue(&CChat { msg: format!("{id}:{seq}") }).unwrap();
                        }
                        writer.flush().await.unwrap();
                        writer
                    });
                    let mut by_sender: HashMap<u64, Vec<usize>> = HashMap::new();
                    for _ in 0..CLIENTS * CHATS {
                        match within("S_CHAT", reader.recv()).await.expect("a packet") {
                            ServerPacket::SChat(chat) => {
                                let (sender, seq) = chat.msg.split_once(':').expect("id:seq");
                                assert_eq!(sender.parse::<u64>().unwrap(), chat.player_id, "player_id is the sender");
                                by_sender.entry(chat.player_id).or_default().push(seq.parse().unwrap());
                            }
                            other => panic!("only chat expected now, got {other:?}"),
                        }
                    }
                    // Keep the writer alive until everything arrived: dropping it would close the connection.
                    let _writer = send.await.unwrap();
                    by_sender
                })
            })
            .collect();
        let mut received = Vec::with_capacity(CLIENTS);
        for task in tasks {
            received.push(within("a client's chats", task).await.unwrap());
        }
        received
    });
    let in_order: Vec<usize> = (0..CHATS).collect();
    for by_sender in &received {
        assert_eq!(by_sender.len(), CLIENTS, "a line from every sender");
        for id in &ids {
            assert_eq!(by_sender[id], in_order, "sender {id}: every line, in order");
        }
    }
    let report = server.stop();
    assert!(report.metrics.frames_out >= (CLIENTS * CLIENTS * CHATS) as u64);
    assert_eq!(report.pool_outstanding, 0);
}

/// The case: with `--max-frame 65535`, a C_CHAT of 65,532 bytes became an S_CHAT too large to encode, that
/// nobody received, and an ERROR line each. Now it is refused to the sender (S_CHAT_REFUSED, counted) and nobody
/// else hears of it; the limit counts characters, so 256 four-byte characters still pass.
#[test]
fn a_line_over_256_characters_is_refused_to_the_sender_and_reaches_nobody() {
    let options = server::ServerOptions { max_frame: 65_535, ..options() };
    let (server, stats) = start_counting(&options);
    runtime().block_on(async {
        let (mut ann, ann_id) = login(server.addr, "ann").await;
        let (mut bob, _) = login(server.addr, "bob").await;
        enter(&mut ann, 1).await;
        enter(&mut bob, 1).await;
        expect!(&mut ann, SSpawn);

        // 65,524 bytes of text: a 65,532-byte C_CHAT frame.
        for too_long in ["x".repeat(65_524), "x".repeat(server::game::MAX_CHAT_CHARS + 1)] {
            ann.send(&CChat { msg: too_long }).await.unwrap();
            let refused = expect!(&mut ann, SChatRefused);
            assert_eq!(refused.code(), ChatRefusal::TooLong);
            assert_eq!(refused.max_chars, 256);
            assert!(refused.reason.contains("256 characters"), "{refused:?}");
            assert_nothing_pending(&mut bob).await;
        }
        assert_eq!(stats.snapshot().chats_refused, 2);

        let longest = "🦀".repeat(server::game::MAX_CHAT_CHARS);
        ann.send(&CChat { msg: longest.clone() }).await.unwrap();
        for listener in [&mut ann, &mut bob] {
            let chat = expect!(listener, SChat);
            assert_eq!((chat.player_id, &chat.msg), (ann_id, &longest));
        }
    });
    let report = server.stop();
    assert_eq!(stats.snapshot().sends_failed, 0);
    assert_eq!(report.pool_outstanding, 0);
}

#[test]
fn a_whisper_reaches_its_player_only_wherever_it_is_and_an_unknown_id_is_refused() {
    use demo_protocol::proto::CWhisper;
    let server = start();
    runtime().block_on(async {
        let (mut ann, ann_id) = login(server.addr, "ann").await;
        let (mut bob, bob_id) = login(server.addr, "bob").await;
        let (mut cy, _) = login(server.addr, "cy").await;
        enter(&mut ann, 1).await;
        enter(&mut cy, 1).await;
        expect!(&mut ann, SSpawn);
        // Bob is in no room: a whisper needs none.
        ann.send(&CWhisper { player_id: bob_id, msg: "psst".into() }).await.unwrap();
        let whisper = expect!(&mut bob, SWhisper);
        assert_eq!((whisper.from_player_id, whisper.msg.as_str()), (ann_id, "psst"));

        ann.send(&CWhisper { player_id: 999_999, msg: "anyone?".into() }).await.unwrap();
        let refused = expect!(&mut ann, SChatRefused);
        assert_eq!(refused.code(), ChatRefusal::NoSuchPlayer);
        ann.send(&CWhisper { player_id: bob_id, msg: "x".repeat(257) }).await.unwrap();
        let refused = expect!(&mut ann, SChatRefused);
        assert_eq!(refused.code(), ChatRefusal::TooLong);
        for client in [&mut ann, &mut bob, &mut cy] {
            assert_nothing_pending(client).await;
        }
    });
    server.stop();
}
