//! Rooms: who is listed on entering, S_SPAWN/S_DESPAWN when players come and go, and movement.

use demo_protocol::proto::{CEnterRoom, CMove, PlayerInfo, PosInfo};

use server::ServerOptions;

use crate::support::*;

fn pos(x: f32, y: f32, z: f32, yaw: f32) -> PosInfo {
    PosInfo { x, y, z, yaw }
}

fn info(player_id: u64, name: &str, pos: PosInfo) -> PlayerInfo {
    PlayerInfo { player_id, name: name.into(), pos: Some(pos) }
}

#[test]
fn entering_lists_the_others_with_names_and_last_positions() {
    let server = start();
    runtime().block_on(async {
        let (mut ann, ann_id) = login(server.addr, "ann").await;
        assert!(enter(&mut ann, 1).await.is_empty(), "first in the room");
        let ann_pos = pos(1.0, 2.0, 3.0, 90.0);
        ann.send(&CMove { pos: Some(ann_pos) }).await.unwrap();
        // Bob's packets come over another connection, so nothing orders them after Ann's move unless Ann's own
        // round trip through the logic thread shows the move was handled.
        assert_nothing_pending(&mut ann).await;

        let (mut bob, bob_id) = login(server.addr, "bob").await;
        assert_eq!(enter(&mut bob, 1).await, [info(ann_id, "ann", ann_pos)]);
        assert_eq!(expect!(&mut ann, SSpawn).players, [info(bob_id, "bob", PosInfo::default())]);

        let (mut cy, cy_id) = login(server.addr, "cy").await;
        let mut others = enter(&mut cy, 1).await;
        others.sort_by_key(|p| p.player_id);
        let mut expected = vec![info(ann_id, "ann", ann_pos), info(bob_id, "bob", PosInfo::default())];
        expected.sort_by_key(|p| p.player_id);
        assert_eq!(others, expected);
        let newcomer = [info(cy_id, "cy", PosInfo::default())];
        assert_eq!(expect!(&mut ann, SSpawn).players, newcomer);
        assert_eq!(expect!(&mut bob, SSpawn).players, newcomer);
        for client in [&mut ann, &mut bob, &mut cy] {
            assert_nothing_pending(client).await;
        }
    });
    server.stop();
}

#[test]
fn switching_rooms_and_disconnecting_despawn_and_spawn() {
    let server = start();
    runtime().block_on(async {
        let (mut ann, ann_id) = login(server.addr, "ann").await;
        let (mut bob, bob_id) = login(server.addr, "bob").await;
        let (mut cy, cy_id) = login(server.addr, "cy").await;
        enter(&mut ann, 1).await;
        enter(&mut bob, 1).await;
        expect!(&mut ann, SSpawn);
        enter(&mut cy, 2).await;

        // Bob moves from room 1 to room 2: Ann sees him leave, Cy sees him arrive.
        bob.send(&CEnterRoom { room_id: 2 }).await.unwrap();
        let entered = expect!(&mut bob, SEnterRoom);
        assert_eq!(entered.players, [info(cy_id, "cy", PosInfo::default())]);
        assert_eq!(expect!(&mut ann, SDespawn).player_ids, [bob_id]);
        assert_eq!(expect!(&mut cy, SSpawn).players, [info(bob_id, "bob", PosInfo::default())]);

        // Entering the room one is in again is acknowledged without a listing, and tells nobody.
        reenter(&mut bob, 2).await;
        assert_nothing_pending(&mut bob).await;
        assert_nothing_pending(&mut cy).await;

        // Cy disconnects: Bob sees Cy despawn; Ann, in another room, hears nothing.
        drop(cy);
        assert_eq!(expect!(&mut bob, SDespawn).player_ids, [cy_id]);
        assert_nothing_pending(&mut ann).await;

        // Ann follows Bob: room 1 is empty now, room 2 holds Bob alone.
        assert_eq!(enter(&mut ann, 2).await, [info(bob_id, "bob", PosInfo::default())]);
        assert_eq!(expect!(&mut bob, SSpawn).players, [info(ann_id, "ann", PosInfo::default())]);
        drop(bob);
        assert_eq!(expect!(&mut ann, SDespawn).player_ids, [bob_id]);
        assert_nothing_pending(&mut ann).await;
    });
    server.stop();
}

#[test]
fn moves_reach_the_others_in_the_room_but_not_the_mover() {
    let server = start();
    runtime().block_on(async {
        let (mut ann, ann_id) = login(server.addr, "ann").await;
        let (mut bob, _) = login(server.addr, "bob").await;
        let (mut cy, _) = login(server.addr, "cy").await;
        let (mut elsewhere, _) = login(server.addr, "elsewhere").await;
        let (mut roomless, _) = login(server.addr, "roomless").await;
        enter(&mut ann, 1).await;
        enter(&mut bob, 1).await;
        enter(&mut cy, 1).await;
        for _ in 0..2 {
            expect!(&mut ann, SSpawn);
        }
        expect!(&mut bob, SSpawn);
        enter(&mut elsewhere, 2).await;

        let to = pos(4.0, 5.0, 6.0, 180.0);
        ann.send(&CMove { pos: Some(to) }).await.unwrap();
        for other in [&mut bob, &mut cy] {
            let moved = expect!(other, SMove);
            assert_eq!((moved.player_id, moved.pos), (ann_id, Some(to)));
        }
        assert_nothing_pending(&mut ann).await;
        assert_nothing_pending(&mut elsewhere).await;

        // Ignored: a move outside any room, a move without a position, a non-finite position.
        roomless.send(&CMove { pos: Some(to) }).await.unwrap();
        ann.send(&CMove { pos: None }).await.unwrap();
        ann.send(&CMove { pos: Some(pos(f32::NAN, 0.0, 0.0, 0.0)) }).await.unwrap();
        for client in [&mut ann, &mut bob, &mut cy, &mut elsewhere, &mut roomless] {
            assert_nothing_pending(client).await;
        }

        // The last position is what a newcomer sees.
        let (mut dan, _) = login(server.addr, "dan").await;
        let listed = enter(&mut dan, 1).await;
        assert_eq!(listed.iter().find(|p| p.player_id == ann_id).and_then(|p| p.pos), Some(to));
    });
    server.stop();
}

/// The case: with 32-character names the 1,077th player to enter one room got no listing at all (it no
/// longer fit a 65,535-byte frame). 2,000 players enter one room; every one of them gets the whole listing, in
/// pages that each stay under the page limit, and the last one sees all 1,999 others with their names.
#[test]
fn a_room_of_2000_long_named_players_lists_everyone_in_pages() {
    const PLAYERS: usize = 2_000;
    const ROOM: u32 = 7;
    let options = ServerOptions { max_frame: 65_535, ..options() };
    let page_limit = options.game().page_bytes();
    let (server, stats) = start_counting(&options);
    let started = std::time::Instant::now();
    let rt = runtime();
    let fillers = rt.block_on(async {
        // Concurrently, a hundred at a time in flight: each logs in, enters and reads its own listing (checked page
        // by page against its total by `enter`); the S_SPAWNs of later players are left unread.
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(100));
        let joins: Vec<_> = (0..PLAYERS - 1)
            .map(|i| {
                let gate = std::sync::Arc::clone(&gate);
                tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await.unwrap();
                    let (mut client, id) = login(server.addr, &long_name(i)).await;
                    enter(&mut client, ROOM).await;
                    (client, id, long_name(i))
                })
            })
            .collect();
        let mut fillers = Vec::with_capacity(PLAYERS - 1);
        for join in joins {
            fillers.push(within("a player to enter", join).await.unwrap());
        }
        fillers
    });
    rt.block_on(async {
        let (mut last, _) = login(server.addr, "🦀".repeat(32).as_str()).await;
        last.send(&CEnterRoom { room_id: ROOM }).await.unwrap();
        let mut listed = Vec::new();
        let mut pages = 0;
        loop {
            let page = expect!(&mut last, SEnterRoom);
            pages += 1;
            let bytes = 4 + packet_runtime::prost::Message::encoded_len(&page);
            assert!(bytes <= page_limit, "page {pages} is {bytes} bytes, over the {page_limit}-byte page limit");
            assert!(page.success && page.room_id == ROOM && page.total as usize == PLAYERS - 1, "{page:?}");
            listed.extend(page.players);
            if !page.more {
                break;
            }
        }
        assert!(pages > 1, "a listing this long is paged");
        let mut listed: Vec<(u64, String)> = listed.into_iter().map(|p| (p.player_id, p.name)).collect();
        let mut expected: Vec<(u64, String)> = fillers.iter().map(|(_, id, name)| (*id, name.clone())).collect();
        listed.sort();
        expected.sort();
        assert_eq!(listed, expected, "everyone, each once, with their names");
    });
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.sends_failed, 0, "{snapshot:?}");
    assert!(snapshot.listing_pages > PLAYERS as u64, "{snapshot:?}");
    eprintln!("2,000 players in one room: listed after {:?}", started.elapsed());
    drop(fillers);
    server.stop();
}

/// Re-entering one's room costs the server a few bytes, not a listing: in a room of 100 long-named players, a
/// 6-byte C_ENTER_ROOM for the room one is in is answered by the short acknowledgement, and counted.
#[test]
fn re_entering_ones_room_is_a_short_ack_not_a_listing() {
    const PLAYERS: usize = 100;
    let (server, stats) = start_counting(&options());
    runtime().block_on(async {
        let mut clients = Vec::new();
        for i in 0..PLAYERS {
            let (mut client, _) = login(server.addr, &long_name(i)).await;
            enter(&mut client, 1).await;
            clients.push(client);
        }
        // Everything queued so far has arrived (the S_SPAWNs of later players), so the byte count below is the
        // re-entries' alone.
        for client in &mut clients {
            skip_spawns_to_the_barrier(client).await;
        }
        let mut me = clients.pop().unwrap();
        let before = server.metrics().bytes_out;
        for _ in 0..10 {
            reenter(&mut me, 1).await;
        }
        let spent = server.metrics().bytes_out - before;
        assert!(spent < 10 * 32, "10 re-entries cost {spent} bytes out; a listing is ~6 KB");
        assert_eq!(stats.snapshot().room_reentries, 10);
        // Nobody else heard of it.
        for client in &mut clients[..3] {
            assert_nothing_pending(client).await;
        }
    });
    server.stop();
}

/// Skips the S_SPAWNs a player received up to the logic-thread barrier; anything else fails the test.
async fn skip_spawns_to_the_barrier(client: &mut GameClient) {
    use demo_protocol::ServerPacket;
    client.send(&demo_protocol::proto::CLogin { name: "barrier".into(), ..Default::default() }).await.unwrap();
    loop {
        match next(client).await {
            ServerPacket::SSpawn(_) => {}
            ServerPacket::SLogin(reply) if !reply.success => return,
            other => panic!("only spawns expected, got {other:?}"),
        }
    }
}
