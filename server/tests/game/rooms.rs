//! Rooms: who is listed on entering, S_SPAWN/S_DESPAWN when players come and go, and movement.

use demo_protocol::proto::{CEnterRoom, CMove, PlayerInfo, PosInfo};

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
