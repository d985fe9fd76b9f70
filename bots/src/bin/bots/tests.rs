//! The load generator against the demo server, started in-process: each scenario for a short run with 4 bots in
//! rooms of 2, checking that the counts add up and nothing failed.

use std::sync::Arc;
use std::time::Duration;

use demo_protocol::GameProtocol;
use packet_runtime::ServerHandle;
use server::ServerOptions;

use super::report::Report;
use bots::bot::{BotConfig, BotTls, Scenario};
use bots::fleet::{self, FleetConfig, FleetResult};
use bots::stats::LiveCounters;

/// The demo server itself, on a free port, one IO thread, without the packet rate limit (the bots run unpaced).
fn start_server() -> ServerHandle<GameProtocol> {
    let options = ServerOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        rate_limit: None,
        ..ServerOptions::default()
    };
    options.start().expect("server starts")
}

fn config(addr: std::net::SocketAddr, scenario: Scenario) -> FleetConfig {
    FleetConfig {
        bot: BotConfig {
            addrs: vec![addr],
            name_prefix: "bot".into(),
            scenario,
            room_size: 2,
            rate: 0.0,
            in_flight: 2,
            payload: 32,
            timeout: Duration::from_secs(5),
            mirror: false,
            relogin: false,
            handshake: false,
            auth: None,
            tls: None,
        },
        clients: 4,
        duration: Duration::from_millis(700),
        warmup: Duration::from_millis(100),
        connect_parallel: 4,
    }
}

fn run(config: &FleetConfig) -> FleetResult {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(fleet::run(config, Arc::new(LiveCounters::default()), std::future::pending()))
}

/// What every scenario must show: all bots connected, traffic measured, no failures, a report that serialises.
fn assert_clean(config: &FleetConfig, result: &FleetResult) {
    let c = &result.counters;
    assert_eq!((c.bots, c.connected), (4, 4), "{c:?}");
    assert_eq!(c.errors.total(), 0, "{:?}", c.errors);
    assert!(c.sent > 0, "{c:?}");
    assert_eq!(c.replies, c.sent, "every measured request is answered after the drain: {c:?}");
    assert!(!result.interrupted);
    assert!(result.measured >= config.duration, "{:?}", result.measured);
    let report = Report::new(config, result);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["sent"], c.sent);
    assert_eq!(json["errors_total"], 0);
    assert!(report.to_string().contains("p99"));
}

#[test]
fn echo_scenario_counts_every_round_trip() {
    let server = start_server();
    let config = config(server.local_addr().unwrap(), Scenario::Echo);
    let result = run(&config);
    assert_clean(&config, &result);
    assert_eq!(result.counters.deliveries, 0);
    assert_eq!(result.latency.len(), result.counters.replies);
    server.shutdown();
    server.join();
}

#[test]
fn chat_scenario_delivers_every_message_to_the_whole_room() {
    let server = start_server();
    let config = config(server.local_addr().unwrap(), Scenario::Chat);
    let result = run(&config);
    assert_clean(&config, &result);
    let c = &result.counters;
    assert_eq!(c.expected_deliveries, c.sent * 2, "rooms of 2: {c:?}");
    assert_eq!(c.deliveries, c.expected_deliveries, "{c:?}");
    assert_eq!(result.latency.len(), c.deliveries);
    server.shutdown();
    server.join();
}

#[test]
fn move_scenario_counts_deliveries_and_pings() {
    let server = start_server();
    let config = config(server.local_addr().unwrap(), Scenario::Move);
    let result = run(&config);
    assert_clean(&config, &result);
    let c = &result.counters;
    // The server sends each move to the other members of the room (here: one), not to the mover. S_MOVE carries no send time, so deliveries are counted by
    // arrival: moves sent in the warmup but delivered after it count too. Close to one per move, not exact.
    assert!(c.deliveries > 0 && c.deliveries.abs_diff(c.sent) <= c.sent / 10 + 50, "{c:?}");
    assert_eq!(result.latency.len(), c.replies);
    server.shutdown();
    server.join();
}

#[test]
fn no_server_means_connect_failures() {
    // Bind then drop: a port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = config(addr, Scenario::Echo);
    let result = run(&config);
    let c = &result.counters;
    assert_eq!((c.bots, c.connected, c.errors.connect_failed), (4, 0, 4), "{c:?}");
    assert_eq!(Report::new(&config, &result).connected, 0);
}

#[test]
fn paced_bots_keep_to_the_rate() {
    let server = start_server();
    let mut config = config(server.local_addr().unwrap(), Scenario::Echo);
    config.bot.rate = 50.0;
    let result = run(&config);
    assert_clean(&config, &result);
    // 4 bots at 50/s: at most one message per bot per 20 ms of measured time, plus a tick at each edge.
    let most = 4.0 * 50.0 * result.measured.as_secs_f64() + 8.0;
    let sent = result.counters.sent as f64;
    assert!(sent <= most && sent >= most / 4.0, "sent {sent}, at most {most}");
    server.shutdown();
    server.join();
}

#[test]
fn several_addresses_share_the_fleet_and_a_prefix_names_it() {
    let (first, second) = (start_server(), start_server());
    let mut config = config(first.local_addr().unwrap(), Scenario::Echo);
    config.bot.addrs.push(second.local_addr().unwrap());
    config.bot.name_prefix = "fleet2".into();
    let result = run(&config);
    assert_clean(&config, &result);
    // Four bots over two servers: two each, logged in under the prefix (a refused name would show as an error).
    assert_eq!(first.metrics().connections_total, 2);
    assert_eq!(second.metrics().connections_total, 2);
    for server in [first, second] {
        server.shutdown();
        server.join();
    }
}

/// A free port below Linux's ephemeral range (32768 and up by default), so that no outgoing connection takes it
/// while the server that had it is down.
fn port_outside_the_ephemeral_range() -> std::net::SocketAddr {
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (0..10_000u16)
        .map(|i| 20_000 + (start - 20_000 + i) % 10_000)
        .find_map(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok()?.local_addr().ok())
        .expect("a free port between 20000 and 30000")
}

fn start_server_on(addr: std::net::SocketAddr) -> ServerHandle<GameProtocol> {
    let options = ServerOptions { addr, workers: 1, rate_limit: None, ..ServerOptions::default() };
    options.start().expect("server starts")
}

/// Polls the live counters until `done` holds (at most 30 s: a bound against hanging, not a timing assertion).
fn wait_live(live: &LiveCounters, what: &str, done: impl Fn(&bots::stats::LiveSnapshot) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done(&live.snapshot()) {
        assert!(std::time::Instant::now() < deadline, "not {what} within 30 s: {:?}", live.snapshot());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn relogin_bots_come_back_after_the_server_restarts() {
    let addr = port_outside_the_ephemeral_range();
    let first = start_server_on(addr);
    let mut config = config(addr, Scenario::Chat);
    config.bot.relogin = true;
    config.bot.rate = 50.0;
    config.warmup = Duration::ZERO;
    // Ended by the stop below.
    config.duration = Duration::from_secs(3600);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let live = Arc::new(LiveCounters::default());
    let stop = Arc::new(tokio::sync::Notify::new());
    let fleet = runtime.spawn({
        let (config, live, stop) = (config.clone(), Arc::clone(&live), Arc::clone(&stop));
        async move { fleet::run(&config, live, async move { stop.notified().await }).await }
    });

    wait_live(&live, "all four chatting", |s| s.connected == 4 && s.sent > 0);
    // The demo's shutdown kicks every session with "server shutting down"; the bots' attempts to come back are
    // refused until the second server listens on the same port.
    first.shutdown();
    first.join();
    wait_live(&live, "all four kicked", |s| s.disconnects == 4);
    let second = start_server_on(addr);
    wait_live(&live, "all four back", |s| s.relogins == 4 && s.connected == 4);
    let back = live.snapshot().sent;
    wait_live(&live, "sending again", |s| s.sent >= back + 8);
    stop.notify_one();
    let result = runtime.block_on(fleet).unwrap();

    let c = &result.counters;
    assert_eq!((c.connected, c.disconnects, c.relogins, c.connected_at_end), (4, 4, 4, 4), "{c:?}");
    let kicked = std::collections::BTreeMap::from([("server shutting down".to_owned(), 4)]);
    assert_eq!(c.errors.kicked, kicked, "{c:?}");
    // The kicks, and each failed attempt to come back (refused while no server listened) with its cause.
    assert_eq!(c.errors.total(), 4 + c.relogin_failures, "{c:?}");
    assert_eq!(c.replies + c.abandoned, c.sent, "answered, or in flight when the server went: {c:?}");
    assert!(c.abandoned <= 4 * 2, "at most the window of each lost session: {c:?}");
    // The second server saw every bot log in again.
    assert_eq!(second.metrics().connections_total, 4);
    let report = Report::new(&config, &result);
    assert!(report.to_string().contains("disconnects 4  re-logins 4 (--relogin on)"), "{report}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!((json["relogins"].as_u64(), json["connected_at_end"].as_u64()), (Some(4), Some(4)));
    second.shutdown();
    second.join();
}

#[test]
fn without_relogin_a_kicked_bot_stops_and_is_counted_once() {
    let server = start_server();
    let mut config = config(server.local_addr().unwrap(), Scenario::Echo);
    config.warmup = Duration::ZERO;
    config.duration = Duration::from_secs(3600);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let live = Arc::new(LiveCounters::default());
    let fleet = runtime.spawn({
        let (config, live) = (config.clone(), Arc::clone(&live));
        // With every bot stopped, the fleet's drain has nothing to wait for; the run ends at its duration, so stop it.
        async move {
            let stopped = async {
                while live.snapshot().disconnects < 4 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            fleet::run(&config, Arc::clone(&live), stopped).await
        }
    });
    wait_live(&live, "all four sending", |s| s.connected == 4 && s.sent > 0);
    server.shutdown();
    server.join();
    let result = runtime.block_on(fleet).unwrap();
    let c = &result.counters;
    assert_eq!((c.connected, c.disconnects, c.relogins, c.connected_at_end), (4, 4, 0, 0), "{c:?}");
    assert_eq!(c.errors.kicked, std::collections::BTreeMap::from([("server shutting down".to_owned(), 4)]));
    assert_eq!((c.errors.total(), c.relogin_failures), (4, 0), "one failure per bot: {c:?}");
}

#[test]
fn bots_play_over_tls_with_the_roots_they_are_given() {
    let ca = test_support::tls::TestCa::new("bots");
    let options = ServerOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        rate_limit: None,
        tls: Some(ca.server_config()),
        ..ServerOptions::default()
    };
    let server = options.start().expect("server starts");
    let mut config = config(server.local_addr().unwrap(), Scenario::Chat);
    let trust = |roots| BotTls {
        config: packet_runtime::transport::tls::client_config(roots),
        server_name: test_support::tls::SERVER_NAME.into(),
    };
    config.bot.tls =
        Some(trust(packet_runtime::transport::tls::roots_from_pem_file(ca.ca_file()).expect("the CA file loads")));
    let result = run(&config);
    assert_clean(&config, &result);
    // Bots that trust another CA connect to nothing.
    config.bot.tls = Some(trust(test_support::tls::TestCa::new("stranger").roots()));
    let refused = run(&config);
    assert_eq!((refused.counters.connected, refused.counters.errors.connect_failed), (0, 4), "{:?}", refused.counters);
    server.shutdown();
    let report = server.join();
    assert_eq!(report.metrics.tls_handshake_failures, 4, "{report:?}");
}

/// `--handshake` against a server that requires it (`server --handshake`): every bot opens with its hello and plays;
/// bots without it are refused before they log in, with the server's reason.
#[test]
fn bots_with_the_handshake_play_on_a_server_that_requires_it() {
    let options = ServerOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        rate_limit: None,
        handshake: true,
        auth: None,
        ..ServerOptions::default()
    };
    let server = options.start().expect("server starts");
    let mut config = config(server.local_addr().unwrap(), Scenario::Chat);
    config.bot.handshake = true;
    let result = run(&config);
    assert_clean(&config, &result);

    config.bot.handshake = false;
    let refused = run(&config);
    assert_eq!(refused.counters.connected, 0, "{:?}", refused.counters);
    let kicked: Vec<_> = refused.counters.errors.kicked.iter().collect();
    assert!(
        matches!(kicked.as_slice(), [(reason, 4)] if reason.contains("requires the version handshake")),
        "{kicked:?}"
    );
    server.shutdown();
    server.join();
}

/// `--auth-secret-file` on both sides: bots sign their logins and play; bots without the secret are refused before
/// the game hears of them, with the server's reason.
#[test]
fn bots_with_the_secret_log_in_to_a_server_that_checks_tokens() {
    let key = demo_protocol::token::TokenKey::new(b"the bots' test secret").unwrap();
    let options = ServerOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        rate_limit: None,
        auth: Some(key.clone()),
        ..ServerOptions::default()
    };
    let server = options.start().expect("server starts");
    let mut config = config(server.local_addr().unwrap(), Scenario::Chat);
    config.bot.auth = Some(key);
    assert_clean(&config, &run(&config));

    config.bot.auth = None;
    let refused = run(&config);
    assert_eq!(refused.counters.connected, 0, "{:?}", refused.counters);
    let kicked: Vec<_> = refused.counters.errors.kicked.iter().collect();
    assert!(
        matches!(kicked.as_slice(), [(reason, 4)] if *reason == "authentication refused: a token is required"),
        "{kicked:?}"
    );
    server.shutdown();
    server.join();
}
