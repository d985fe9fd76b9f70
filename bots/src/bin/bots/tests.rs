//! The load generator against the demo server, started in-process: each scenario for a short run with 4 bots in
//! rooms of 2, checking that the counts add up and nothing failed.

use std::sync::Arc;
use std::time::Duration;

use demo_protocol::GameProtocol;
use packet_runtime::ServerHandle;
use server::ServerOptions;

use super::report::Report;
use bots::bot::{BotConfig, Scenario};
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
