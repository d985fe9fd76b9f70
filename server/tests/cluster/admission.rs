//! The version handshake and the login-token check through a gateway: the gateway holds the connection, so it does
//! both before the session is routed to a shard (`--handshake --auth-secret-file` on the gateway).

use std::time::Duration;

use demo_protocol::proto::{CChat, CLogin};
use demo_protocol::token::TokenKey;

use test_support::demo::{enter, kick_reason};
use test_support::{connect, drain_until_closed, expect, is_close, runtime, within};

use crate::support::*;

#[test]
fn a_gateway_shakes_hands_and_checks_tokens_before_a_shard_hears_of_the_session() {
    let nats = Nats::start();
    let name = cluster_name("admission");
    let dir = TempDir::new("admission");
    let secret = dir.0.join("secret");
    std::fs::write(&secret, "the cluster suite's secret\n").unwrap();
    let key = TokenKey::from_file(&secret).unwrap();
    let args = ["--handshake", "--auth-secret-file", secret.to_str().unwrap()];
    let _shard = Node::start(&nats, &name, "shard", &[]);
    let gateway = Node::start(&nats, &name, "gateway", &args);
    runtime().block_on(async {
        let mut player: test_support::demo::GameClient = connect(gateway.gateway()).await;
        within("hello", player.handshake("cluster test")).await.unwrap();
        player.send(&CLogin { name: "carol".into(), token: key.mint("carol", Duration::from_secs(60)) }).await.unwrap();
        let id = expect!(&mut player, SLogin).player_id;
        enter(&mut player, 3).await;
        player.send(&CChat { msg: "through the gateway".into() }).await.unwrap();
        assert_eq!(expect!(&mut player, SChat).player_id, id);

        let mut no_token: test_support::demo::GameClient = connect(gateway.gateway()).await;
        within("hello", no_token.handshake("cluster test")).await.unwrap();
        no_token.send(&CLogin { name: "dave".into(), ..Default::default() }).await.unwrap();
        let (got, end) = drain_until_closed(&mut no_token).await;
        assert!(is_close(&end), "{end:?}");
        assert_eq!(kick_reason(&got), "authentication refused: a token is required");

        let mut no_hello: test_support::demo::GameClient = connect(gateway.gateway()).await;
        no_hello.send(&CLogin { name: "erin".into(), token: key.mint("erin", Duration::from_secs(60)) }).await.unwrap();
        let (got, _) = drain_until_closed(&mut no_hello).await;
        assert!(kick_reason(&got).contains("requires the version handshake"), "{got:?}");
    });
}
