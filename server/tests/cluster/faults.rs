//! Losing a part of the cluster costs only that part: a paused shard, a broker outage short and long, a broker
//! of a NATS cluster, a node with both roles stopping, and a rolling restart of every shard under chat load.
//!
//! Bounds are stated relative to the `--failure-timeout` each test passes; the hang guard (30 s per await) is the
//! only limit on how long anything may take, and every figure worth knowing is printed (`--nocapture`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use demo_protocol::ServerPacket;
use demo_protocol::proto::CChat;
use test_support::demo::{assert_nothing_pending, enter, kick_reason, login};
use test_support::{drain_until_closed, expect, is_close, next, runtime};

use super::support::{Nats, Node, cluster_name};
use super::{chats, rooms_on_two_shards, settle};

/// Chats `msg` from `client` and waits until it comes back (a room chat reaches its sender too).
async fn own_chat_comes_back(client: &mut test_support::demo::GameClient, id: u64, msg: &str) {
    client.send(&CChat { msg: msg.into() }).await.unwrap();
    let chat = expect!(client, SChat);
    assert_eq!((chat.player_id, chat.msg.as_str()), (id, msg));
}

#[test]
fn a_paused_shard_is_fenced_out_and_serves_no_one_when_it_resumes() {
    let nats = Nats::start();
    let name = cluster_name("paused");
    let fast = ["--failure-timeout", "1s"];
    let mut shards = [Node::start(&nats, &name, "shard", &fast), Node::start(&nats, &name, "shard", &fast)];
    let gateway = Node::start(&nats, &name, "gateway", &fast);
    runtime().block_on(async {
        let ((paused_room, paused), (safe_room, _)) = rooms_on_two_shards(&nats, &name, gateway.gateway()).await;
        let (mut lost, _) = login(gateway.gateway(), "lost").await;
        let (mut kept, kept_id) = login(gateway.gateway(), "kept").await;
        enter(&mut lost, paused_room).await;
        enter(&mut kept, safe_room).await;
        let which = shards.iter().position(|s| s.id == paused).expect("the paused shard");
        shards[which].signal("STOP");
        let stopped = Instant::now();

        // Declared dead: its player is told and cut off.
        let (got, end) = drain_until_closed(&mut lost).await;
        println!("the paused shard's player was told after {:?} (failure timeout 1 s)", stopped.elapsed());
        assert_eq!(kick_reason(&got), "game server lost");
        assert!(is_close(&end), "{end:?}");
        // Its room is placed anew, on the survivor: a newcomer finds it empty (no ghost of the lost player).
        let (mut newcomer, newcomer_id) = login(gateway.gateway(), "newcomer").await;
        assert!(enter(&mut newcomer, paused_room).await.is_empty(), "the room starts empty on its new shard");

        // Resumed after twice the failure timeout: it learns it was fenced, ends what it held, and exits 3.
        tokio::time::sleep(Duration::from_secs(2).saturating_sub(stopped.elapsed())).await;
        shards[which].signal("CONT");
        let status = shards[which].wait_exit(Duration::from_secs(20), "SIGCONT");
        let stderr = shards[which].stderr();
        assert_eq!(status.code(), Some(3), "a fenced shard exits 3; stderr:\n{stderr}");
        assert!(stderr.contains("declared dead"), "it says why: {stderr}");

        // Nothing the resumed shard did reached anyone: the players on the survivor see exactly their own.
        own_chat_comes_back(&mut newcomer, newcomer_id, "mine").await;
        own_chat_comes_back(&mut kept, kept_id, "still here").await;
        assert_nothing_pending(&mut newcomer).await;
        assert_nothing_pending(&mut kept).await;
    });
}

#[test]
fn players_stay_through_a_ten_second_broker_outage_and_what_they_said_meanwhile_arrives_once() {
    let mut nats = Nats::start();
    let name = cluster_name("outage");
    // The default failure timeout (3 s) and outage limit (12 s): the outage lasts more than three failure timeouts.
    let _shard = Node::start(&nats, &name, "shard", &[]);
    let gateway = Node::start(&nats, &name, "gateway", &[]);
    runtime().block_on(async {
        let (mut ann, ann_id) = login(gateway.gateway(), "ann").await;
        let (mut bob, _) = login(gateway.gateway(), "bob").await;
        enter(&mut ann, 6).await;
        enter(&mut bob, 6).await;
        expect!(&mut ann, SSpawn);
        settle(&mut ann).await;

        nats.kill();
        let down = Instant::now();
        // Said during the outage: buffered (bounded) on the gateway, delivered once the broker is back.
        let mut said = Vec::new();
        while down.elapsed() < Duration::from_secs(10) {
            let msg = format!("during {}", said.len() + 1);
            ann.send(&CChat { msg: msg.clone() }).await.unwrap();
            said.push(msg);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        nats.restart();
        println!("broker down for {:?}", down.elapsed());
        ann.send(&CChat { msg: "after".into() }).await.unwrap();
        said.push("after".into());

        let mut heard = Vec::new();
        while heard.len() < said.len() {
            match next(&mut bob).await {
                ServerPacket::SChat(chat) => {
                    assert_eq!(chat.player_id, ann_id);
                    heard.push(chat.msg);
                }
                ServerPacket::SKick(kick) => panic!("kicked across the outage: {}", kick.reason),
                other => panic!("unexpected {other:?}"),
            }
        }
        println!("everything said during the outage arrived {:?} after the broker came back", down.elapsed());
        assert_eq!(heard, said, "every chat once, in order");
        assert!(chats(&settle(&mut bob).await).is_empty(), "nothing twice");
    });
}

#[test]
fn past_the_outage_limit_a_gateway_tells_its_clients_and_closes_them() {
    let mut nats = Nats::start();
    let name = cluster_name("longoutage");
    let flags = ["--failure-timeout", "1s", "--outage-limit", "2s"];
    let _shard = Node::start(&nats, &name, "shard", &flags);
    let gateway = Node::start(&nats, &name, "gateway", &flags);
    runtime().block_on(async {
        let (mut ann, _) = login(gateway.gateway(), "ann").await;
        enter(&mut ann, 2).await;
        nats.kill();
        let down = Instant::now();
        let (got, end) = drain_until_closed(&mut ann).await;
        println!("told {:?} into the outage (limit 2 s)", down.elapsed());
        assert!(down.elapsed() >= Duration::from_secs(2), "not before the outage limit");
        assert_eq!(kick_reason(&got), "lost connection to the game servers");
        assert!(is_close(&end), "{end:?}");
        // Once the broker is back, the cluster serves again; the shard ended the old session too, so the name is
        // free.
        nats.restart();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut again, again_id) = login(gateway.gateway(), "ann").await;
            let entered = tokio::time::timeout(Duration::from_secs(2), enter(&mut again, 2)).await;
            if entered.is_ok() {
                own_chat_comes_back(&mut again, again_id, "back").await;
                break;
            }
            assert!(attempt < 10, "the cluster did not serve again within 20 s of the broker's return");
        }
    });
}

#[test]
fn losing_a_broker_of_a_nats_cluster_disconnects_no_one_and_counts_what_it_lost() {
    const CHATS: usize = 200;
    let mut brokers = Nats::start_cluster(3);
    let urls = brokers.iter().map(Nats::url).collect::<Vec<_>>().join(",");
    let name = cluster_name("failover");
    let flags = ["--failure-timeout", "2s"];
    let mut shard = Node::start_on(&urls, &name, "shard", &flags);
    let mut gateway = Node::start_on(&urls, &name, "gateway", &flags);
    runtime().block_on(async {
        let (mut ann, ann_id) = login(gateway.gateway(), "ann").await;
        let (mut bob, _) = login(gateway.gateway(), "bob").await;
        enter(&mut ann, 4).await;
        enter(&mut bob, 4).await;
        expect!(&mut ann, SSpawn);
        settle(&mut ann).await;
        let (mut ann_in, mut ann_out) = ann.into_split();

        // The broker holding the most of our connections goes while Ann chats every 10 ms.
        let busiest = (0..brokers.len()).max_by_key(|&i| brokers[i].connections()).unwrap();
        assert!(brokers[busiest].connections() > 0, "the nodes are connected somewhere");
        let chatting = tokio::spawn(async move {
            for i in 1..=CHATS {
                ann_out.send(&CChat { msg: i.to_string() }).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ann_out
        });
        tokio::time::sleep(Duration::from_millis(600)).await;
        brokers[busiest].kill();
        let mut ann_out = chatting.await.unwrap();

        // Bob hears a subsequence of 1..=CHATS, in order, each at most once; the connection never ends.
        ann_out.send(&CChat { msg: "after".into() }).await.unwrap();
        let mut heard = Vec::new();
        loop {
            match next(&mut bob).await {
                ServerPacket::SChat(chat) if chat.msg == "after" => break,
                ServerPacket::SChat(chat) => {
                    assert_eq!(chat.player_id, ann_id);
                    heard.push(chat.msg.parse::<usize>().unwrap());
                }
                ServerPacket::SKick(kick) => panic!("kicked during the failover: {}", kick.reason),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(heard.windows(2).all(|w| w[0] < w[1]), "in order, nothing twice: {heard:?}");
        let lost = CHATS - heard.len();
        while !matches!(within_own(&mut ann_in).await, Some(msg) if msg == "after") {}
        drop((ann_in, ann_out));

        // Every node reports what it counted; a chat that did not arrive shows as a gap somewhere.
        assert!(shard.terminate().success());
        assert!(gateway.terminate().success());
        let gaps: u64 = [&shard, &gateway].iter().map(|node| reported_gaps(node)).sum();
        println!("failover: {lost} of {CHATS} chats lost, {gaps} envelope gaps reported");
        if lost > 0 {
            assert!(gaps > 0, "{lost} chats lost without a gap reported");
        }
    });
}

/// The receiving half of a split demo client.
type Reader = packet_runtime::ClientReader<demo_protocol::GameProtocol, tokio::io::ReadHalf<tokio::net::TcpStream>>;

/// Ann's own chats as they come back, until "after".
async fn within_own(reader: &mut Reader) -> Option<String> {
    match test_support::within("ann's own chat", reader.recv()).await.expect("a packet") {
        ServerPacket::SChat(chat) => Some(chat.msg),
        _ => None,
    }
}

/// The gap count in a node's `cluster:` summary line.
fn reported_gaps(node: &Node) -> u64 {
    let printed = node.printed();
    let line = printed.iter().find(|l| l.starts_with("cluster: ")).unwrap_or_else(|| panic!("a summary: {printed:?}"));
    let before = line.split(" gaps").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("a gap count in {line:?}"))
}

#[test]
fn sigterm_on_a_node_with_both_roles_drains_its_shard_then_closes_its_gateway() {
    let nats = Nats::start();
    let name = cluster_name("both");
    let mut stopping = Node::start(&nats, &name, "both", &[]);
    let staying = Node::start(&nats, &name, "both", &[]);
    runtime().block_on(async {
        // A room owned by the stopping node's shard, with a player on each node's gateway.
        let ((a, a_owner), (b, _)) = rooms_on_two_shards(&nats, &name, staying.gateway()).await;
        let room = if a_owner == stopping.id { a } else { b };
        let (mut far, far_id) = login(staying.gateway(), "far").await;
        let (mut near, _) = login(stopping.gateway(), "near").await;
        enter(&mut far, room).await;
        enter(&mut near, room).await;
        expect!(&mut far, SSpawn);

        assert!(stopping.terminate().success(), "the node exits 0");
        // Its own clients are told why their gateway goes.
        let (got, end) = drain_until_closed(&mut near).await;
        assert_eq!(kick_reason(&got), "server shutting down");
        assert!(is_close(&end), "{end:?}");
        // The player on the other gateway kept its room, now on the other shard, and is still served.
        loop {
            match next(&mut far).await {
                ServerPacket::SDespawn(_) => break,
                ServerPacket::SKick(kick) => panic!("kicked: {}", kick.reason),
                _ => {}
            }
        }
        own_chat_comes_back(&mut far, far_id, "still here").await;
        assert_nothing_pending(&mut far).await;
    });
}

#[test]
fn a_second_signal_ends_a_draining_node_at_once_with_status_130() {
    let mut nats = Nats::start();
    let name = cluster_name("second");
    let mut node = Node::start(&nats, &name, "both", &["--failure-timeout", "5s"]);
    // Without a broker the drain cannot finish quickly (its announcement waits up to the failure timeout).
    nats.kill();
    node.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    node.signal("TERM");
    let status = node.wait_exit(Duration::from_secs(3), "the second SIGTERM");
    assert_eq!(status.code(), Some(130), "{status:?}");
}

/// The load's stop flag, shared by its tasks.
#[derive(Clone, Default)]
struct Stop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Stop {
    fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One client's view of the rolling-restart load: the chats it heard, per sender, and when.
#[derive(Default)]
struct Heard {
    by_sender: BTreeMap<u64, Vec<u64>>,
    /// Longest time between two chats heard while the load ran.
    longest_pause: Duration,
    ended: Option<String>,
}

#[test]
fn restarting_each_shard_under_chat_load_drops_loses_and_duplicates_nothing() {
    const PLAYERS: usize = 8;
    const ROOMS: [u32; 2] = [21, 22];
    let nats = Nats::start();
    let name = cluster_name("rolling");
    let mut shards = vec![Node::start(&nats, &name, "shard", &[]), Node::start(&nats, &name, "shard", &[])];
    let gateways = [Node::start(&nats, &name, "gateway", &[]), Node::start(&nats, &name, "gateway", &[])];
    let rt = runtime();
    let (heard, sent) = rt.block_on(async {
        // Eight players over two gateways in two rooms of four, every one chatting every 5 ms (at 25 ms, moving a
        // room's players one by one, without holding its packets, lost no chat here in a run; at 5 ms it did).
        let mut players = Vec::new();
        for i in 0..PLAYERS {
            let (mut client, id) = login(gateways[i % 2].gateway(), &format!("p{i}")).await;
            enter(&mut client, ROOMS[i % 2]).await;
            players.push((client, id));
        }
        for (client, _) in &mut players {
            settle(client).await;
        }
        let stop = Stop::default();
        let mut readers = Vec::new();
        let mut writers = Vec::new();
        for (client, id) in players {
            let (mut reader, mut writer) = client.into_split();
            let done = stop.clone();
            writers.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !done.is_cancelled() {
                    n += 1;
                    writer.send(&CChat { msg: format!("{id}:{n}") }).await.expect("the connection stays up");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (id, n, writer)
            }));
            let done = stop.clone();
            readers.push(tokio::spawn(async move {
                let mut heard = Heard::default();
                let mut last = Instant::now();
                loop {
                    let wait = if done.is_cancelled() { Duration::from_secs(3) } else { Duration::from_secs(20) };
                    match tokio::time::timeout(wait, reader.recv()).await {
                        Err(_) => break,
                        Ok(Ok(ServerPacket::SChat(chat))) => {
                            if !done.is_cancelled() {
                                heard.longest_pause = heard.longest_pause.max(last.elapsed());
                            }
                            last = Instant::now();
                            let (from, n) = chat.msg.split_once(':').expect("id:n");
                            heard.by_sender.entry(from.parse().unwrap()).or_default().push(n.parse().unwrap());
                        }
                        Ok(Ok(ServerPacket::SKick(kick))) => {
                            heard.ended = Some(format!("kicked: {}", kick.reason));
                            break;
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(end)) => {
                            heard.ended = Some(format!("disconnected: {end:?}"));
                            break;
                        }
                    }
                }
                (id, heard, reader)
            }));
        }

        // The rolling restart: each shard in turn drains (SIGTERM) and a fresh one takes its place.
        tokio::time::sleep(Duration::from_secs(1)).await;
        for round in 0..2 {
            let mut old = shards.remove(0);
            let status = tokio::task::spawn_blocking(move || old.terminate()).await.unwrap();
            assert!(status.success(), "round {round}: the drained shard exits 0");
            let (nats_url, cluster) = (nats.url(), name.clone());
            let fresh = tokio::task::spawn_blocking(move || Node::start_on(&nats_url, &cluster, "shard", &[]));
            shards.push(fresh.await.unwrap());
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        stop.cancel();

        let mut sent = BTreeMap::new();
        let mut kept = Vec::new();
        for writer in writers {
            let (id, n, writer) = writer.await.unwrap();
            sent.insert(id, n);
            kept.push(writer);
        }
        let mut heard = Vec::new();
        for reader in readers {
            let (id, got, reader) = reader.await.unwrap();
            heard.push((id, got));
            drop(reader);
        }
        (heard, sent)
    });

    // Everyone heard every chat of its room, once each, in order per sender; nobody was dropped.
    let ids: Vec<u64> = sent.keys().copied().collect();
    let mut longest = Duration::ZERO;
    let mut delivered = 0usize;
    for (id, got) in &heard {
        assert_eq!(got.ended, None, "player {id} was cut off");
        longest = longest.max(got.longest_pause);
        let mine = &got.by_sender;
        let senders: Vec<u64> = mine.keys().copied().collect();
        assert_eq!(senders.len(), PLAYERS / ROOMS.len(), "player {id} hears its room of four: {senders:?} of {ids:?}");
        for (from, ns) in mine {
            let missing: Vec<u64> = (1..=sent[from]).filter(|n| !ns.contains(n)).collect();
            let twice: Vec<&u64> = ns.iter().filter(|&n| ns.iter().filter(|&m| m == n).count() > 1).collect();
            assert!(
                missing.is_empty() && twice.is_empty(),
                "player {id} from {from}: lost {missing:?}, twice {twice:?}"
            );
            assert!(ns.windows(2).all(|w| w[0] < w[1]), "player {id} heard {from}'s chats out of order");
            delivered += ns.len();
        }
    }
    println!(
        "rolling restart of 2 shards under load: {} chats sent, {delivered} delivered, 0 lost, 0 duplicated, \
         0 connections dropped; longest pause between two chats heard: {longest:?}",
        sent.values().sum::<u64>()
    );
}
