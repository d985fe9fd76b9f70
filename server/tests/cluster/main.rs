//! The demo game as a cluster: real `server` processes (gateways and shards) over a real `nats-server` of each
//! test's own (see `support`). What a client sees must not change; what crosses NATS is counted at the broker.
//!
//! These tests need `nats-server` on PATH and fail (never skip) without it, saying what to install.

mod admission;
mod credentials;
mod faults;
mod nats_tls;
mod support;
mod tls;
mod web;

use std::collections::HashSet;
use std::time::Duration;

use demo_protocol::proto::{CChat, CEnterRoom, CLogin, CMove, PosInfo};
use demo_protocol::{GameProtocol, ServerPacket};
use futures_util::StreamExt;
use packet_runtime::Protocol;
use test_support::demo::{GameClient, assert_nothing_pending, enter, login};
use test_support::{expect, next, runtime};

use support::{Nats, Node, cluster_name, free_port, run_to_end};

fn ids(players: &[demo_protocol::proto::PlayerInfo]) -> Vec<u64> {
    players.iter().map(|p| p.player_id).collect()
}

/// Reads until the logic-thread barrier (a refused second login), keeping what came before it.
async fn settle(client: &mut GameClient) -> Vec<ServerPacket> {
    client.send(&CLogin { name: "barrier".into(), ..Default::default() }).await.expect("sends the barrier");
    let mut before = Vec::new();
    loop {
        match next(client).await {
            ServerPacket::SLogin(reply) if !reply.success => return before,
            other => before.push(other),
        }
    }
}

/// The chats among `packets`, as (sender, text).
fn chats(packets: &[ServerPacket]) -> Vec<(u64, String)> {
    packets
        .iter()
        .filter_map(|p| match p {
            ServerPacket::SChat(chat) => Some((chat.player_id, chat.msg.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn players_on_two_gateways_share_rooms_placed_on_two_shards() {
    let nats = Nats::start();
    let name = cluster_name("rooms");
    let _shards = [Node::start(&nats, &name, "shard", &[]), Node::start(&nats, &name, "shard", &[])];
    let (g1, g2) = (Node::start(&nats, &name, "gateway", &[]), Node::start(&nats, &name, "gateway", &[]));
    runtime().block_on(async {
        let mut seen_ids = HashSet::new();
        // Rooms are placed on shards by their id: over eight rooms both shards host some, and every player starts
        // on the shard its session was routed to, so entering hands it over (to another shard or to the same one).
        for room in 1..=8u32 {
            let (mut alice, alice_id) = login(g1.gateway(), &format!("alice{room}")).await;
            let (mut bob, bob_id) = login(g2.gateway(), &format!("bob{room}")).await;
            assert!(seen_ids.insert(alice_id) && seen_ids.insert(bob_id), "player ids are unique across the cluster");

            assert!(enter(&mut alice, room).await.is_empty(), "room {room} starts empty");
            assert_eq!(ids(&enter(&mut bob, room).await), [alice_id], "bob's listing names alice");
            let spawn = expect!(&mut alice, SSpawn);
            assert_eq!(ids(&spawn.players), [bob_id], "alice sees bob spawn once");

            for msg in ["a1", "a2", "a3"] {
                alice.send(&CChat { msg: msg.into() }).await.unwrap();
            }
            for msg in ["b1", "b2"] {
                bob.send(&CChat { msg: msg.into() }).await.unwrap();
            }
            let pos = PosInfo { x: room as f32, y: 2.0, z: 3.0, yaw: 0.5 };
            alice.send(&CMove { pos: Some(pos) }).await.unwrap();

            // Wait until bob has the move (sent last by alice), then the barrier on both: nothing more, nothing twice.
            let mut at_bob = Vec::new();
            loop {
                match next(&mut bob).await {
                    ServerPacket::SMove(moved) => {
                        assert_eq!((moved.player_id, moved.pos), (alice_id, Some(pos)));
                        break;
                    }
                    other => at_bob.push(other),
                }
            }
            at_bob.extend(settle(&mut bob).await);
            let mut at_alice = Vec::new();
            while chats(&at_alice).len() < 5 {
                at_alice.push(next(&mut alice).await);
            }
            at_alice.extend(settle(&mut alice).await);
            for (who, got) in [("alice", &at_alice), ("bob", &at_bob)] {
                let got = chats(got);
                let from = |id| got.iter().filter(|(s, _)| *s == id).map(|(_, m)| m.as_str()).collect::<Vec<_>>();
                assert_eq!(from(alice_id), ["a1", "a2", "a3"], "{who} in room {room}: alice's chats once, in order");
                assert_eq!(from(bob_id), ["b1", "b2"], "{who} in room {room}: bob's chats once, in order");
                assert_eq!(got.len(), 5, "{who} in room {room}: nothing else");
            }
            assert!(!at_alice.iter().any(|p| matches!(p, ServerPacket::SMove(_))), "the mover gets no S_MOVE");
            drop(alice);
            let despawn = expect!(&mut bob, SDespawn);
            assert_eq!(despawn.player_ids, [alice_id], "bob sees alice leave");
            assert_nothing_pending(&mut bob).await;
        }
    });
}

#[test]
fn a_whisper_crosses_shards_and_gateways_by_player_id() {
    use demo_protocol::proto::CWhisper;
    let nats = Nats::start();
    let name = cluster_name("whisper");
    let _shards = [Node::start(&nats, &name, "shard", &[]), Node::start(&nats, &name, "shard", &[])];
    let (g1, g2) = (Node::start(&nats, &name, "gateway", &[]), Node::start(&nats, &name, "gateway", &[]));
    runtime().block_on(async {
        let ((first, _), (other, _)) = rooms_on_two_shards(&nats, &name, g1.gateway()).await;

        let (mut ann, ann_id) = login(g1.gateway(), "ann").await;
        let (mut bob, bob_id) = login(g2.gateway(), "bob").await;
        enter(&mut ann, first).await;
        enter(&mut bob, other).await;
        // Ann's shard is not Bob's, nor is her gateway.
        ann.send(&CWhisper { player_id: bob_id, msg: "over here".into() }).await.unwrap();
        let whisper = expect!(&mut bob, SWhisper);
        assert_eq!((whisper.from_player_id, whisper.msg.as_str()), (ann_id, "over here"));
        bob.send(&CWhisper { player_id: ann_id, msg: "got it".into() }).await.unwrap();
        let whisper = expect!(&mut ann, SWhisper);
        assert_eq!((whisper.from_player_id, whisper.msg.as_str()), (bob_id, "got it"));
        assert!(settle(&mut ann).await.is_empty() && settle(&mut bob).await.is_empty(), "each whisper once");
    });
}

/// Two rooms owned by different shards (enters sixteen rooms through `gateway` and reads the owners).
async fn rooms_on_two_shards(nats: &Nats, cluster: &str, gateway: std::net::SocketAddr) -> ((u32, u64), (u32, u64)) {
    let rooms: Vec<u32> = (1..=16).collect();
    let (mut probe, _) = login(gateway, "probe").await;
    for &room in &rooms {
        enter(&mut probe, room).await;
    }
    drop(probe);
    let owners = room_owners(nats, cluster, &rooms).await;
    let other = owners.iter().position(|&o| o != owners[0]).expect("rooms on both shards");
    ((rooms[0], owners[0]), (rooms[other], owners[other]))
}

#[test]
fn a_killed_shard_costs_only_its_own_players() {
    let nats = Nats::start();
    let name = cluster_name("shardloss");
    let fast = ["--failure-timeout", "1s"];
    let mut shards = [Node::start(&nats, &name, "shard", &fast), Node::start(&nats, &name, "shard", &fast)];
    let gateway = Node::start(&nats, &name, "gateway", &fast);
    runtime().block_on(async {
        let ((doomed_room, doomed), (safe_room, _)) = rooms_on_two_shards(&nats, &name, gateway.gateway()).await;
        let (mut lost, _) = login(gateway.gateway(), "lost").await;
        let (mut kept, kept_id) = login(gateway.gateway(), "kept").await;
        enter(&mut lost, doomed_room).await;
        enter(&mut kept, safe_room).await;
        let which = shards.iter().position(|s| s.id == doomed).expect("the doomed shard");
        let killed = std::time::Instant::now();
        shards[which].kill();

        let (got, end) = test_support::drain_until_closed(&mut lost).await;
        println!("the lost shard's player was told after {:?} (failure timeout 1 s)", killed.elapsed());
        assert_eq!(test_support::demo::kick_reason(&got), "game server lost");
        assert!(test_support::is_close(&end), "{end:?}");
        // The other shard's player is still served, through the same gateway.
        kept.send(&CChat { msg: "still here".into() }).await.unwrap();
        let chat = expect!(&mut kept, SChat);
        assert_eq!((chat.player_id, chat.msg.as_str()), (kept_id, "still here"));
        assert_nothing_pending(&mut kept).await;
    });
}

#[test]
fn a_killed_gateway_disconnects_its_players_once_on_their_shard() {
    let nats = Nats::start();
    let name = cluster_name("gatewayloss");
    let fast = ["--failure-timeout", "1s"];
    let _shard = Node::start(&nats, &name, "shard", &fast);
    let mut doomed = Node::start(&nats, &name, "gateway", &fast);
    let kept = Node::start(&nats, &name, "gateway", &fast);
    runtime().block_on(async {
        let (mut lost, lost_id) = login(doomed.gateway(), "lost").await;
        let (mut watcher, _) = login(kept.gateway(), "watcher").await;
        enter(&mut lost, 3).await;
        enter(&mut watcher, 3).await;
        expect!(&mut lost, SSpawn);
        doomed.kill();
        drop(lost);
        let despawn = expect!(&mut watcher, SDespawn);
        assert_eq!(despawn.player_ids, [lost_id], "the lost gateway's player leaves the room");
        assert_nothing_pending(&mut watcher).await;
    });
}

#[test]
fn sigterm_on_a_gateway_tells_its_clients_and_its_shard_and_exits_0() {
    let nats = Nats::start();
    let name = cluster_name("gatewaystop");
    let _shard = Node::start(&nats, &name, "shard", &[]);
    let mut stopping = Node::start(&nats, &name, "gateway", &[]);
    let kept = Node::start(&nats, &name, "gateway", &[]);
    runtime().block_on(async {
        let (mut leaving, leaving_id) = login(stopping.gateway(), "leaving").await;
        let (mut watcher, _) = login(kept.gateway(), "watcher").await;
        enter(&mut leaving, 4).await;
        enter(&mut watcher, 4).await;
        expect!(&mut leaving, SSpawn);
        assert!(stopping.terminate().success(), "the gateway exits 0");
        let (got, end) = test_support::drain_until_closed(&mut leaving).await;
        assert_eq!(test_support::demo::kick_reason(&got), "server shutting down");
        assert!(test_support::is_close(&end), "{end:?}");
        let despawn = expect!(&mut watcher, SDespawn);
        assert_eq!(despawn.player_ids, [leaving_id], "its shard saw the client go");
        assert_nothing_pending(&mut watcher).await;
    });
}

#[test]
fn sigterm_on_the_last_shard_says_goodbye_to_its_players_and_exits_0() {
    let nats = Nats::start();
    let name = cluster_name("shardstop");
    let mut shard = Node::start(&nats, &name, "shard", &[]);
    let gateway = Node::start(&nats, &name, "gateway", &[]);
    runtime().block_on(async {
        let (mut player, _) = login(gateway.gateway(), "player").await;
        enter(&mut player, 9).await;
        assert!(shard.terminate().success(), "the shard exits 0");
        let (got, end) = test_support::drain_until_closed(&mut player).await;
        assert_eq!(test_support::demo::kick_reason(&got), "server shutting down");
        assert!(test_support::is_close(&end), "{end:?}");
        // The gateway stays up and says why it cannot serve now.
        let mut late: GameClient = test_support::connect(gateway.gateway()).await;
        let (got, _) = test_support::drain_until_closed(&mut late).await;
        assert_eq!(test_support::demo::kick_reason(&got), "no game server available");
    });
}

#[test]
fn a_frame_the_shard_cannot_decode_kicks_its_sender_with_the_usual_reason_and_no_one_else() {
    use packet_runtime::Packet;
    let nats = Nats::start();
    let name = cluster_name("badframe");
    let _shard = Node::start(&nats, &name, "shard", &[]);
    let gateway = Node::start(&nats, &name, "gateway", &[]);
    runtime().block_on(async {
        let (mut offender, _) = login(gateway.gateway(), "offender").await;
        let (mut bystander, bystander_id) = login(gateway.gateway(), "bystander").await;
        enter(&mut offender, 2).await;
        enter(&mut bystander, 2).await;
        // A known id with a payload prost rejects (a string field 5 bytes long, 1 byte given): the gateway passes it
        // on undecoded, the shard's decode refuses it.
        offender.send_raw(&test_support::frame(CChat::ID, &[0x0a, 0x05, b'a'])).await.unwrap();
        let (got, end) = test_support::drain_until_closed(&mut offender).await;
        let reason = test_support::demo::kick_reason(&got);
        assert!(reason.starts_with("bad frame: malformed payload for C_CHAT"), "{reason}");
        assert!(test_support::is_close(&end), "{end:?}");
        bystander.send(&CChat { msg: "fine".into() }).await.unwrap();
        loop {
            match next(&mut bystander).await {
                ServerPacket::SChat(chat) => {
                    assert_eq!((chat.player_id, chat.msg.as_str()), (bystander_id, "fine"));
                    break;
                }
                ServerPacket::SDespawn(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    });
}

/// The owners the cluster recorded for `rooms` (the KV bucket), after each was entered once.
async fn room_owners(nats: &Nats, cluster: &str, rooms: &[u32]) -> Vec<u64> {
    let client = async_nats::connect(nats.url()).await.expect("the test connects to its broker");
    let kv = async_nats::jetstream::new(client).get_key_value(format!("pk_{cluster}")).await.expect("the bucket");
    let mut owners = Vec::new();
    for room in rooms {
        let key = packet_cluster::subjects::owner_key(&format!("room.{room}"));
        let value = kv.get(&key).await.expect("reads the owner").expect("an owner was recorded");
        owners.push(u64::from_str_radix(std::str::from_utf8(&value).unwrap(), 16).unwrap());
    }
    owners
}

#[test]
fn a_player_moving_between_shards_under_load_loses_duplicates_and_reorders_nothing() {
    const CHATS: u32 = 600;
    const SWITCH_EVERY: u32 = 25;
    let nats = Nats::start();
    let name = cluster_name("handover");
    let _shards = [Node::start(&nats, &name, "shard", &[]), Node::start(&nats, &name, "shard", &[])];
    let (g1, g2) = (Node::start(&nats, &name, "gateway", &[]), Node::start(&nats, &name, "gateway", &[]));
    runtime().block_on(async {
        // Find two rooms on different shards: enter sixteen, read who owns them.
        let ((home, _), (away, _)) = rooms_on_two_shards(&nats, &name, g1.gateway()).await;

        let (mut watcher, _) = login(g2.gateway(), "watcher").await;
        enter(&mut watcher, home).await;
        let (mut mover, mover_id) = login(g1.gateway(), "mover").await;
        enter(&mut mover, home).await;
        settle(&mut watcher).await;

        // Pipelined: chats and room changes without waiting, so hand-overs happen with packets in flight both ways.
        let mut expected_at_home = Vec::new();
        let mut in_home = true;
        for i in 1..=CHATS {
            mover.send(&CChat { msg: i.to_string() }).await.unwrap();
            if in_home {
                expected_at_home.push(i.to_string());
            }
            if i % SWITCH_EVERY == 0 && i < CHATS {
                in_home = !in_home;
                mover.send(&CEnterRoom { room_id: if in_home { home } else { away } }).await.unwrap();
            }
        }

        // The mover is in every room it chats to: it gets each of its chats back, once, in order.
        let mut own = Vec::new();
        while own.len() < CHATS as usize {
            if let ServerPacket::SChat(chat) = next(&mut mover).await {
                assert_eq!(chat.player_id, mover_id);
                own.push(chat.msg);
            }
        }
        let expected: Vec<String> = (1..=CHATS).map(|i| i.to_string()).collect();
        assert_eq!(own, expected, "the mover's own chats, across {} hand-overs", CHATS / SWITCH_EVERY - 1);
        assert!(chats(&settle(&mut mover).await).is_empty(), "no chat twice");

        // The watcher stayed home: exactly the chats sent while the mover was there, in order.
        let mut at_home = Vec::new();
        while at_home.len() < expected_at_home.len() {
            if let ServerPacket::SChat(chat) = next(&mut watcher).await {
                at_home.push(chat.msg);
            }
        }
        assert_eq!(at_home, expected_at_home);
        assert!(chats(&settle(&mut watcher).await).is_empty(), "no chat twice at home");
    });
}

#[test]
fn a_room_broadcast_is_one_nats_message_per_gateway_counted_at_the_broker() {
    const PER_GATEWAY: usize = 10;
    const CHATS: u64 = 50;
    let nats = Nats::start();
    let name = cluster_name("fanout");
    // Heartbeats every 20 s: they are counted and subtracted, but rarely fall in the window at all.
    let slow = ["--failure-timeout", "60s"];
    let _shard = Node::start(&nats, &name, "shard", &slow);
    let gateways = [Node::start(&nats, &name, "gateway", &slow), Node::start(&nats, &name, "gateway", &slow)];
    runtime().block_on(async {
        let mut clients = Vec::new();
        for (g, gateway) in gateways.iter().enumerate() {
            for i in 0..PER_GATEWAY {
                let (mut client, _) = login(gateway.gateway(), &format!("p{g}-{i}")).await;
                enter(&mut client, 5).await;
                clients.push(client);
            }
        }
        for client in &mut clients {
            settle(client).await;
        }
        let broker = async_nats::connect(nats.url()).await.unwrap();
        let mut beats = broker.subscribe(format!("pk.{name}.hb")).await.unwrap();
        broker.flush().await.unwrap();

        let before = nats.messages_in();
        for i in 0..CHATS {
            clients[0].send(&CChat { msg: i.to_string() }).await.unwrap();
            // One at a time: each chat is its own logic batch, so batching across chats cannot hide a per-member
            // publish.
            for client in &mut clients {
                loop {
                    if let ServerPacket::SChat(chat) = next(client).await {
                        assert_eq!(chat.msg, i.to_string());
                        break;
                    }
                }
            }
        }
        let after = nats.messages_in();
        let mut heartbeats = 0;
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), beats.next()).await {
            heartbeats += 1;
        }
        let messages = after - before - heartbeats;
        let recipients = 2 * PER_GATEWAY as u64;
        println!(
            "{CHATS} chats to {recipients} players on 2 gateways: {messages} NATS messages ({heartbeats} heartbeats \
             excluded); one per recipient would be {}",
            CHATS * (1 + recipients)
        );
        // Per chat: the client's frame to the shard (1), the shard's broadcast to each gateway (2).
        assert!(messages <= CHATS * 3, "{messages} NATS messages for {CHATS} chats: more than 1 + 1 per gateway each");
        assert!(messages >= CHATS * 3 - 5, "{messages}: the broker's count does not see the traffic");
    });
}

mod other {
    use packet_runtime::{Packet, define_packets};

    #[derive(Clone, PartialEq, prost::Message, Packet)]
    #[packet(id = 1)]
    pub(crate) struct CHello {
        #[prost(uint32, tag = "1")]
        pub n: u32,
    }

    #[derive(Clone, PartialEq, prost::Message, Packet)]
    #[packet(id = 2)]
    pub(crate) struct SHello {
        #[prost(uint32, tag = "1")]
        pub n: u32,
    }

    define_packets! {
        pub(crate) protocol OtherProtocol {
            client_to_server OtherClient { CHello }
            server_to_client OtherServer { SHello }
        }
    }
}

#[test]
fn a_node_built_from_another_protocol_exits_2_naming_both_fingerprints() {
    let nats = Nats::start();
    let name = cluster_name("mismatch");
    let config = packet_cluster::ClusterConfig::new([nats.url()], name.clone());
    let other = packet_cluster::Cluster::<other::OtherProtocol>::join(config).expect("the other protocol's node joins");
    let (status, stderr) = run_to_end(&["--nats", &nats.url(), "--cluster", &name, "--role", "shard"]);
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    let ours = format!("{:016x}", GameProtocol::FINGERPRINT);
    let theirs = format!("{:016x}", other::OtherProtocol::FINGERPRINT);
    assert!(stderr.contains(&ours) && stderr.contains(&theirs), "both fingerprints named: {stderr}");
    other.shutdown();
}

#[test]
fn without_a_shard_a_gateway_keeps_listening_and_tells_clients_why_it_refuses_them() {
    let nats = Nats::start();
    let gateway = Node::start(&nats, &cluster_name("empty"), "gateway", &[]);
    runtime().block_on(async {
        for _ in 0..2 {
            let mut client: GameClient = test_support::connect(gateway.gateway()).await;
            let (got, end) = test_support::drain_until_closed(&mut client).await;
            assert_eq!(test_support::demo::kick_reason(&got), "no game server available");
            assert!(test_support::is_close(&end), "{end:?}");
        }
    });
}

#[test]
fn unreachable_nats_fails_saying_what_to_start() {
    let url = format!("127.0.0.1:{}", free_port());
    let (status, stderr) = run_to_end(&["--nats", &url, "--role", "shard"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&url) && stderr.contains("nats-server"), "{stderr}");
}

#[test]
fn cluster_flags_are_checked() {
    let (status, stderr) = run_to_end(&["--role", "shard"]);
    assert_eq!(status.code(), Some(2), "--role without --nats: {stderr}");
    let (status, stderr) = run_to_end(&["--nats", "127.0.0.1:1", "--role", "shard", "--addr", "127.0.0.1:0"]);
    assert_eq!(status.code(), Some(2), "--addr with --role shard: {stderr}");
    assert!(stderr.contains("opens no listener"), "{stderr}");
}

/// Reads until the connection ends; the goodbye must be the one `S_KICK` and the last packet.
async fn one_goodbye_then_the_end(client: &mut GameClient) {
    let (got, end) = test_support::drain_until_closed(client).await;
    assert!(test_support::is_close(&end), "{end:?}");
    let kicks: Vec<_> = got.iter().filter(|packet| matches!(packet, ServerPacket::SKick(_))).collect();
    assert_eq!(kicks.len(), 1, "one goodbye: {got:?}");
    assert!(matches!(got.last(), Some(ServerPacket::SKick(kick)) if kick.reason == "server shutting down"), "{got:?}");
}

#[test]
fn a_shard_shutting_down_says_goodbye_once_through_the_gateway() {
    let nats = Nats::start();
    let name = cluster_name("shard-goodbye");
    let mut shard = Node::start(&nats, &name, "shard", &[]);
    let gateway = Node::start(&nats, &name, "gateway", &[]);
    runtime().block_on(async {
        let (mut player, _) = login(gateway.gateway(), "leaving").await;
        assert!(shard.terminate().success());
        one_goodbye_then_the_end(&mut player).await;
    });
}

#[test]
fn a_gateway_shutting_down_says_goodbye_once() {
    let nats = Nats::start();
    let name = cluster_name("gateway-goodbye");
    let _shard = Node::start(&nats, &name, "shard", &[]);
    let mut gateway = Node::start(&nats, &name, "gateway", &[]);
    runtime().block_on(async {
        let (mut player, _) = login(gateway.gateway(), "leaving").await;
        assert!(gateway.terminate().success());
        one_goodbye_then_the_end(&mut player).await;
    });
}

/// `GET path` on a node's metrics endpoint: the status and the body.
fn http_get(node: &Node, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let addr = node.metrics.expect("a node started with --metrics-addr");
    let mut response = agent.get(format!("http://{addr}{path}")).call().expect("the endpoint answers");
    (response.status().as_u16(), response.body_mut().read_to_string().expect("a body"))
}

/// The value of the series `name` whose labels are exactly `labels` (in any order), in a node's scrape.
fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    want.sort();
    exposition.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (family, rest) = series.split_once('{').unwrap_or((series, "}"));
        let mut have: Vec<String> =
            rest.trim_end_matches('}').split(',').filter(|l| !l.is_empty()).map(str::to_owned).collect();
        have.sort();
        (family == name && have == want).then(|| value.parse().ok()).flatten()
    })
}

/// Scrapes `node` until `done` holds for its exposition (heartbeats and envelopes take their time), at most 30 s.
fn scrape_until(node: &Node, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http_get(node, "/metrics");
        assert_eq!(status, 200);
        if done(&body) {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "never {what}:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_node_exports_under_its_name_and_role_counts_nats_messages_and_a_gateway_is_ready_only_with_a_shard() {
    let nats = Nats::start();
    let name = cluster_name("metrics");
    let gateway = Node::start(&nats, &name, "gateway", &["--metrics-addr", "127.0.0.1:0", "--node", "gw-1"]);
    assert_eq!(http_get(&gateway, "/readyz"), (503, "not ready: no shard live\n".to_owned()));
    assert_eq!(http_get(&gateway, "/healthz").0, 200);
    let shard = Node::start(&nats, &name, "shard", &["--metrics-addr", "127.0.0.1:0", "--node", "shard-1"]);
    assert_eq!(http_get(&shard, "/readyz").0, 200, "a live shard is ready");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while http_get(&gateway, "/readyz").0 != 200 {
        assert!(std::time::Instant::now() < deadline, "the gateway never heard of the shard");
        std::thread::sleep(Duration::from_millis(50));
    }
    runtime().block_on(async {
        let (mut a, _) = login(gateway.gateway(), "a").await;
        let (mut b, _) = login(gateway.gateway(), "b").await;
        enter(&mut a, 1).await;
        enter(&mut b, 1).await;
        a.send(&CChat { msg: "hi".into() }).await.unwrap();
        for client in [&mut a, &mut b] {
            loop {
                if let ServerPacket::SChat(_) = next(client).await {
                    break;
                }
            }
        }
        let on_gateway = [("node", "gw-1"), ("role", "gateway")];
        let on_shard = [("node", "shard-1"), ("role", "shard")];
        scrape_until(&gateway, "2 sessions on the gateway", |text| {
            sample(text, "packet_sessions", &on_gateway) == Some(2.0)
        });
        let shard_text = scrape_until(&shard, "2 sessions bound to the shard, one chat", |text| {
            sample(text, "packet_sessions", &on_shard) == Some(2.0)
                && sample(text, "packet_frames_in_total", &[("packet", "C_CHAT"), on_shard[0], on_shard[1]])
                    == Some(1.0)
        });
        let gateway_text = http_get(&gateway, "/metrics").1;
        for (text, node) in [(&gateway_text, "gw-1"), (&shard_text, "shard-1")] {
            for direction in ["in", "out"] {
                let messages =
                    sample(text, "packet_cluster_nats_messages_total", &[("direction", direction), ("node", node)]);
                assert!(messages.is_some_and(|n| n > 0.0), "{node} {direction}: {messages:?}\n{text}");
            }
            let info = text.lines().find(|l| l.starts_with("packet_build_info{")).expect("build info");
            assert!(info.contains(&format!("node=\"{node}\"")), "{info}");
        }
    });
}
