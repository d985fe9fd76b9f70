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
