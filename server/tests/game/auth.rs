//! The demo with `--auth-secret-file` (`ServerOptions::auth`): only a `C_LOGIN` with a valid token for its name
//! reaches the game; everything else is kicked with the reason.

use std::time::Duration;

use demo_protocol::proto::{CChat, CLogin};
use demo_protocol::token::TokenKey;
use server::ServerOptions;

use crate::support::*;

fn key() -> TokenKey {
    TokenKey::new(b"the demo's test secret").unwrap()
}

fn auth_options() -> ServerOptions {
    ServerOptions { auth: Some(key()), ..options() }
}

async fn refused(server: &TestServer, first: &CLogin) -> String {
    let mut client = connect(server.addr).await;
    client.send(first).await.unwrap();
    let (got, end) = drain_until_closed(&mut client).await;
    assert!(is_close(&end), "{end:?}");
    kick_reason(&got)
}

#[test]
fn only_a_login_with_a_valid_token_for_its_name_gets_in() {
    let server = start_with(&auth_options());
    runtime().block_on(async {
        let mut early = connect(server.addr).await;
        early.send(&CChat { msg: "before logging in".into() }).await.unwrap();
        let (got, _) = drain_until_closed(&mut early).await;
        assert_eq!(kick_reason(&got), "expected C_LOGIN first (authentication), got packet id 1008");

        let missing = CLogin { name: "alice".into(), token: String::new() };
        assert_eq!(refused(&server, &missing).await, "authentication refused: a token is required");
        let for_bob = CLogin { name: "alice".into(), token: key().mint("bob", Duration::from_secs(60)) };
        assert!(refused(&server, &for_bob).await.contains("invalid token"));
        let other_secret = TokenKey::new(b"someone else's secret").unwrap();
        let forged = CLogin { name: "alice".into(), token: other_secret.mint("alice", Duration::from_secs(60)) };
        assert!(refused(&server, &forged).await.contains("invalid token"));
        let expired = CLogin { name: "alice".into(), token: key().mint("alice", Duration::ZERO) };
        assert!(refused(&server, &expired).await.starts_with("authentication refused: token expired"));

        let mut alice = connect(server.addr).await;
        alice
            .send(&CLogin { name: "alice".into(), token: key().mint("alice", Duration::from_secs(60)) })
            .await
            .unwrap();
        let id = expect!(&mut alice, SLogin).player_id;
        enter(&mut alice, 2).await;
        alice.send(&CChat { msg: "in".into() }).await.unwrap();
        assert_eq!(expect!(&mut alice, SChat).player_id, id);
    });
    let report = server.stop();
    assert_eq!(report.metrics.connections_unadmitted, 5);
}
