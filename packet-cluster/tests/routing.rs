//! In-process nodes on the machine's NATS (127.0.0.1:4222, or `PACKET_NATS_URL`), each test under a cluster name
//! of its own: the application's router decides where new sessions go, and a shard's `Logic` answers them.

use std::sync::atomic::{AtomicU64, Ordering};

use demo_protocol::proto::{CPing, SPong};
use demo_protocol::{ClientPacket, GameProtocol, ServerPacket};
use packet_cluster::{Cluster, ClusterConfig};
use packet_runtime::server::ForwardAll;
use packet_runtime::{Context, Logic, Server, Session};

fn nats_url() -> String {
    std::env::var("PACKET_NATS_URL").unwrap_or_else(|_| "127.0.0.1:4222".into())
}

fn join(name: &str) -> Cluster<GameProtocol> {
    Cluster::join(ClusterConfig::new([nats_url()], name)).unwrap_or_else(|e| {
        panic!("{e}\nthese tests need a NATS server with JetStream at {} (`nats-server -js`)", nats_url())
    })
}

/// Answers every ping with its own tag in `server_time`, so a client can tell which shard served it.
struct Tagged(u64);

impl Logic for Tagged {
    type Protocol = GameProtocol;

    fn on_packet(&mut self, _: &mut Context<'_, GameProtocol>, session: &Session<GameProtocol>, packet: ClientPacket) {
        if let ClientPacket::CPing(ping) = packet {
            let _ = session.send(&SPong { client_time: ping.client_time, server_time: self.0 });
        }
    }
}

static RUN: AtomicU64 = AtomicU64::new(0);

fn name(test: &str) -> String {
    format!("{test}-{}-{}", std::process::id(), RUN.fetch_add(1, Ordering::Relaxed))
}

#[test]
fn the_applications_router_places_every_new_session() {
    let cluster = name("router");
    let nodes: Vec<_> = (0..2).map(|_| join(&cluster)).collect();
    let shards: Vec<_> = nodes
        .iter()
        .map(|node| {
            let builder = Server::<GameProtocol>::builder().workers(1);
            node.start_shard(builder, Tagged(node.node_id())).expect("a shard starts")
        })
        .collect();
    let chosen = nodes.iter().map(|n| n.node_id()).max().unwrap();
    let front = join(&cluster);
    // Every session to the shard with the highest node id; ForwardAll: pings go to the shards, not answered here.
    let gateway = front
        .start_gateway_routed(
            Server::<GameProtocol>::builder().workers(1),
            ForwardAll,
            |_, _| {},
            |_, live| *live.last().expect("never called without a live shard"),
        )
        .expect("a gateway starts");
    let addr = gateway.local_addr().unwrap();
    let other = nodes.iter().map(|n| n.node_id()).min().unwrap();
    test_support::runtime().block_on(async {
        let mut clients = Vec::new();
        for client_time in 0..8 {
            let mut client = test_support::connect::<GameProtocol>(addr).await;
            client.send(&CPing { client_time }).await.unwrap();
            match test_support::next(&mut client).await {
                ServerPacket::SPong(pong) => {
                    assert_eq!(
                        (pong.client_time, pong.server_time),
                        (client_time, chosen),
                        "served by the chosen shard"
                    )
                }
                other => panic!("expected S_PONG, got {other:?}"),
            }
            clients.push(client);
        }
        assert_eq!((gateway.sessions_on(chosen), gateway.sessions_on(other)), (8, 0));
    });
    gateway.shutdown();
    gateway.join();
    for shard in shards {
        shard.shutdown();
        shard.join();
    }
}

/// Counts the game's connects and disconnects.
#[derive(Clone, Default)]
struct Counted(std::sync::Arc<(AtomicU64, AtomicU64)>);

impl Logic for Counted {
    type Protocol = GameProtocol;

    fn on_connect(&mut self, _: &mut Context<'_, GameProtocol>, _: &Session<GameProtocol>) {
        self.0.0.fetch_add(1, Ordering::Relaxed);
    }

    fn on_packet(&mut self, _: &mut Context<'_, GameProtocol>, _: &Session<GameProtocol>, _: ClientPacket) {}

    fn on_disconnect(
        &mut self,
        _: &mut Context<'_, GameProtocol>,
        _: &Session<GameProtocol>,
        _: &packet_runtime::CloseReason,
    ) {
        self.0.1.fetch_add(1, Ordering::Relaxed);
    }
}

/// Polls `check` every 20 ms for at most 10 s.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_gateway_gone_silent_loses_each_of_its_sessions_on_the_shard_once() {
    use packet_cluster::envelope::{Op, put_header, put_op};
    use packet_cluster::{CLUSTER_VERSION, Heartbeat, NodeState, Roles, subjects::Subjects};
    use packet_runtime::Protocol;

    let cluster = name("silent");
    let mut config = ClusterConfig::new([nats_url()], &cluster);
    config.failure_timeout = std::time::Duration::from_secs(1);
    let node = Cluster::<GameProtocol>::join(config).expect("joins");
    let game = Counted::default();
    let shard = node.start_shard(Server::<GameProtocol>::builder().workers(1), game.clone()).expect("a shard");
    // The test is the gateway: it announces itself, opens two sessions on the shard, then falls silent (as a
    // SIGKILLed process would: no close, no goodbye).
    const GATEWAY: u64 = 0x00ff_fff1;
    let subjects = Subjects::new(&cluster);
    test_support::runtime().block_on(async {
        let nats = async_nats::connect(nats_url()).await.expect("the test connects");
        let beat = Heartbeat {
            version: CLUSTER_VERSION,
            node: GATEWAY,
            roles: Roles { gateway: true, shard: false },
            fingerprint: GameProtocol::FINGERPRINT,
            state: NodeState::Live,
        };
        nats.publish(subjects.heartbeat(), beat.encode().into()).await.unwrap();
        let mut message = Vec::new();
        put_header(&mut message, GATEWAY, 1);
        for counter in 1..=2 {
            put_op(&mut message, &Op::Open { session: GATEWAY << 40 | counter, addr: "192.0.2.1:5000" });
        }
        nats.publish(subjects.shard(node.node_id()), message.into()).await.unwrap();
        nats.flush().await.unwrap();
    });
    eventually("the shard serves the two sessions", || shard.sessions_by_gateway().get(&GATEWAY) == Some(&2));
    // The shard counts a session when it opens it; its `on_connect` runs on the logic thread right after.
    eventually("on_connect ran for both", || game.0.0.load(Ordering::Relaxed) == 2);
    eventually("the silent gateway's sessions end", || !shard.sessions_by_gateway().contains_key(&GATEWAY));
    eventually("on_disconnect ran for both", || game.0.1.load(Ordering::Relaxed) == 2);
    // Once each: another failure timeout later nothing more has run.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(game.0.1.load(Ordering::Relaxed), 2, "each session disconnected exactly once");
    shard.shutdown();
    shard.join();
    node.shutdown();
}
