//! The authentication step (`ServerBuilder::authenticate`): the first packet goes to a hook that accepts or refuses
//! it within a deadline, before the game hears of the session; connections not yet in have their own limits.

use std::sync::Arc;
use std::time::Duration;

use packet_runtime::{AuthLimits, ServerBuilder, Verdict};
use tests::game::{GameProtocol, ServerPacket};
use tests::proto;
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

use crate::support::*;

/// Names starting with `good` are let in, `slow` ones once `release` is notified, `never` ones never (the deadline
/// closes them), others are refused.
fn authenticating(release: Arc<Notify>) -> ServerBuilder<GameProtocol> {
    builder().authenticate(move |_request, login: proto::CLogin| {
        let release = Arc::clone(&release);
        async move {
            if login.name.starts_with("slow") {
                release.notified().await;
            } else if login.name.starts_with("never") {
                std::future::pending::<()>().await;
            }
            if login.name.starts_with("good") || login.name.starts_with("slow") {
                Verdict::Accept
            } else {
                Verdict::Refuse(format!("no such player {:?}", login.name))
            }
        }
    })
}

/// Logs in as `name` (the login is the authenticating packet, handled by the game once accepted) and echoes
/// through the logic thread.
async fn log_in(client: &mut TestClient, name: &str) {
    client.send(&proto::CLogin { name: name.into(), ..Default::default() }).await.unwrap();
    match within("login", client.recv()).await.unwrap() {
        ServerPacket::SLogin(login) => assert!(login.success),
        other => panic!("expected the login, got {other:?}"),
    }
    assert_echoes(client).await;
}

#[test]
fn only_an_accepted_login_reaches_the_game() {
    let server = start(authenticating(Arc::new(Notify::new())));
    client_runtime().block_on(async {
        let mut early = connect(server.addr).await;
        early.send(&proto::CEcho { data: b"before logging in".to_vec() }).await.unwrap();
        assert_eq!(kick_reason(&mut early).await, "expected C_LOGIN first (authentication), got packet id 1012");

        let mut refused = connect(server.addr).await;
        refused.send(&proto::CLogin { name: "mallory".into(), ..Default::default() }).await.unwrap();
        assert_eq!(kick_reason(&mut refused).await, "authentication refused: no such player \"mallory\"");

        // An IO-hook packet (ping) before authenticating is refused too: nothing but the login is read.
        let mut pinging = connect(server.addr).await;
        pinging.send(&proto::CPing { client_time: 1 }).await.unwrap();
        assert!(kick_reason(&mut pinging).await.starts_with("expected C_LOGIN first"));

        let mut good = connect(server.addr).await;
        // The login and the packets behind it in one write: the rest waits for the verdict, then goes in order.
        good.queue(&proto::CLogin { name: "good-1".into(), ..Default::default() }).unwrap();
        good.queue(&proto::CEcho { data: b"right behind".to_vec() }).unwrap();
        good.flush().await.unwrap();
        assert!(matches!(within("login", good.recv()).await.unwrap(), ServerPacket::SLogin(l) if l.success));
        assert!(
            matches!(within("echo", good.recv()).await.unwrap(), ServerPacket::SEcho(e) if e.data == b"right behind")
        );
        let journal = server.journal.lock().unwrap();
        assert_eq!(journal.connected.len(), 1, "only the accepted session reached on_connect");
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.pool_outstanding, 0);
    assert_eq!((report.metrics.connections_total, report.metrics.connections_unadmitted), (4, 3));
}

#[test]
fn a_slow_hook_holds_up_only_its_own_session() {
    let release = Arc::new(Notify::new());
    let server = start(authenticating(Arc::clone(&release)));
    client_runtime().block_on(async {
        let mut slow = connect(server.addr).await;
        slow.send(&proto::CLogin { name: "slow-1".into(), ..Default::default() }).await.unwrap();
        // While its hook waits, others log in and play.
        for i in 0..3 {
            let mut good = connect(server.addr).await;
            log_in(&mut good, &format!("good-{i}")).await;
        }
        release.notify_one();
        match within("the slow login", slow.recv()).await.unwrap() {
            ServerPacket::SLogin(login) => assert!(login.success),
            other => panic!("expected the login, got {other:?}"),
        }
        assert_echoes(&mut slow).await;
    });
    server.handle.shutdown();
    assert_eq!(server.handle.join().pool_outstanding, 0);
}

#[test]
fn the_deadline_closes_connections_that_do_not_authenticate_in_time() {
    let limits = AuthLimits { deadline: Duration::from_millis(300), ..AuthLimits::default() };
    let server = start(authenticating(Arc::new(Notify::new())).auth_limits(limits));
    client_runtime().block_on(async {
        let mut silent = connect(server.addr).await;
        let mut undecided = connect(server.addr).await;
        undecided.send(&proto::CLogin { name: "never-1".into(), ..Default::default() }).await.unwrap();
        for client in [&mut silent, &mut undecided] {
            assert_eq!(kick_reason(client).await, "not authenticated within 300ms");
        }
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.metrics.closed(packet_runtime::CloseKind::Auth), 2);
    assert_eq!(report.sessions_closed, 0);
}

#[test]
fn two_thousand_sockets_that_never_authenticate_do_not_push_out_players() {
    let limits = AuthLimits { deadline: Duration::from_secs(1), max_pending: 500, max_frame: 256 };
    let server = start(authenticating(Arc::new(Notify::new())).auth_limits(limits).max_connections(Some(4_000)));
    client_runtime().block_on(async {
        let mut player = connect(server.addr).await;
        log_in(&mut player, "good-player").await;
        let mut idle = Vec::new();
        for _ in 0..2_000 {
            idle.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
        }
        // The player plays on while they wait; never more than 500 wait at once (the rest are refused at once).
        for _ in 0..5 {
            assert_echoes(&mut player).await;
            let metrics = server.handle.metrics();
            assert!(metrics.auth_pending <= 500, "{} waiting", metrics.auth_pending);
        }
        // Every one of them is told and closed: refused at once or by the deadline.
        let mut reasons = std::collections::HashMap::<String, usize>::new();
        for mut socket in idle {
            let mut bytes = Vec::new();
            within("the server to close it", socket.read_to_end(&mut bytes)).await.unwrap();
            let mut reader = packet_runtime::Client::<GameProtocol, _>::new(std::io::Cursor::new(bytes));
            let reason = match reader.recv().await {
                Ok(ServerPacket::SKick(kick)) => kick.reason,
                other => format!("{other:?}"),
            };
            *reasons.entry(reason).or_default() += 1;
        }
        let refused = reasons.get("too many connections waiting to authenticate").copied().unwrap_or(0);
        let timed_out = reasons.get("not authenticated within 1s").copied().unwrap_or(0);
        assert_eq!(refused + timed_out, 2_000, "{reasons:?}");
        // How many were refused depends on how fast the sockets opened against the deadline (under a sanitizer,
        // slower than the deadline frees places: none may be); `past_max_pending_new_connections_are_refused_at_once`
        // checks the refusal itself.
        assert!(timed_out >= 500, "{reasons:?}");
        assert_eq!(server.handle.metrics().connections_rejected, refused as u64);
        assert_echoes(&mut player).await;
        // And a new player gets in once they are gone.
        let mut late = connect(server.addr).await;
        log_in(&mut late, "good-late").await;
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.pool_outstanding, 0);
    assert_eq!(report.sessions_closed, 2);
}

#[test]
fn past_max_pending_new_connections_are_refused_at_once() {
    let limits = AuthLimits { deadline: Duration::from_secs(30), max_pending: 3, ..AuthLimits::default() };
    let server = start(authenticating(Arc::new(Notify::new())).auth_limits(limits));
    client_runtime().block_on(async {
        let mut waiting = Vec::new();
        for _ in 0..3 {
            waiting.push(connect(server.addr).await);
        }
        // The three are accepted and waiting (each one's TCP connect returns before the server accepts it).
        within("three waiting", async {
            while server.handle.metrics().auth_pending < 3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let mut fourth = connect(server.addr).await;
        assert_eq!(kick_reason(&mut fourth).await, "too many connections waiting to authenticate");
        // One of the three logs in: its place frees up, and a new connection gets in.
        log_in(&mut waiting[0], "good-first").await;
        let mut fifth = connect(server.addr).await;
        log_in(&mut fifth, "good-fifth").await;
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.metrics.connections_rejected, 1);
    assert_eq!(report.sessions_closed, 2);
}

#[test]
fn with_the_handshake_required_the_hello_comes_first_then_the_login() {
    let server = start(authenticating(Arc::new(Notify::new())).require_handshake(true));
    client_runtime().block_on(async {
        let mut client = connect(server.addr).await;
        within("hello", client.handshake("auth test")).await.unwrap();
        log_in(&mut client, "good-shook-hands").await;

        let mut no_hello = connect(server.addr).await;
        no_hello.send(&proto::CLogin { name: "good-but-rude".into(), ..Default::default() }).await.unwrap();
        assert!(kick_reason(&mut no_hello).await.contains("requires the version handshake"));
    });
    server.handle.shutdown();
    assert_eq!(server.handle.join().sessions_closed, 1);
}
