//! The demo's operations endpoint, scraped over HTTP (ureq) from the real binary while a fleet of bots plays: the
//! figures match what the bots did, and every other client's mischief is counted under its reason.
//!
//! The exposition scraped in the middle of the run is saved to `$CARGO_TARGET_TMPDIR/metrics-exposition.prom`:
//! `.ci/run` checks it with `promtool check metrics` (Debian's `prometheus` package). The Grafana dashboard in
//! `docs/grafana/` asks only for metrics such a scrape shows.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bots::bot::{BotConfig, Scenario};
use bots::fleet::{self, FleetConfig, Mark};
use bots::stats::LiveCounters;
use demo_protocol::GameProtocol;
use demo_protocol::proto::CChat;
use packet_runtime::{Packet, Protocol};
use test_support::demo::GameClient;
use test_support::{drain_until_closed, frame, runtime};

/// Where the mid-run exposition is kept for `.ci/run`'s `promtool check metrics`.
const EXPOSITION: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/metrics-exposition.prom");

/// The binary, its game address and its metrics address.
struct Server {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--workers", "1", "--rate-limit", "0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut metrics, mut addr) = (None, None);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("metrics listening on ") {
                    metrics = a.parse::<SocketAddr>().ok();
                } else if let Some(a) = line.strip_prefix("listening on ") {
                    addr = a.parse::<SocketAddr>().ok();
                }
                if let (Some(metrics), Some(addr)) = (metrics, addr) {
                    // Then go on reading (the summary at exit must not meet a closed pipe).
                    let _ = tx.send((addr, metrics));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((addr, metrics)) => {
                assert_ne!(metrics.port(), 0, "the real port is printed");
                Server { child, addr, metrics }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("no `metrics listening on` and `listening on` lines");
            }
        }
    }

    /// SIGTERM, then a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success());
        assert_eq!(self.child.wait().expect("the server exits").code(), Some(0));
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// `GET path`: the status and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut response = agent().get(format!("http://{addr}{path}")).call().expect("the endpoint answers");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().expect("a text body"))
}

/// The samples of an exposition: `name{labels}` as written, to its value.
fn samples(exposition: &str) -> BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            (series.to_owned(), value.parse().unwrap_or_else(|_| panic!("a number in {line:?}")))
        })
        .collect()
}

fn scrape(addr: SocketAddr) -> (String, BTreeMap<String, f64>) {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    let parsed = samples(&body);
    (body, parsed)
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

/// Scrapes until every `(series, value)` of `expected` holds (the drivers add their counts at the end of a poll,
/// after the reply that told the client its frame was read); fails with the last figures after 30 s.
fn scrape_until(addr: SocketAddr, expected: &[(String, f64)]) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, samples) = scrape(addr);
        let wrong: Vec<_> = expected
            .iter()
            .filter(|(series, want)| samples.get(series) != Some(want))
            .map(|(s, w)| (s, w, samples.get(s)))
            .collect();
        if wrong.is_empty() {
            return samples;
        }
        assert!(Instant::now() < deadline, "figures never matched (series, expected, scraped): {wrong:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_scrape_while_bots_play_matches_what_they_did() {
    const BOTS: usize = 12;
    let server = Server::start(&[]);
    let (metrics, addr) = (server.metrics, server.addr);
    let live = Arc::new(LiveCounters::default());
    let config = FleetConfig {
        bot: BotConfig {
            addrs: vec![addr],
            name_prefix: "bot".into(),
            scenario: Scenario::Chat,
            room_size: 4,
            rate: 0.0,
            in_flight: 2,
            payload: 0,
            timeout: Duration::from_secs(10),
            mirror: false,
            relogin: false,
            handshake: false,
            auth: None,
            tls: None,
        },
        clients: BOTS,
        duration: Duration::from_millis(600),
        warmup: Duration::from_millis(100),
        connect_parallel: 16,
    };
    let mut during = None;
    let mut mid_run = None;
    let result = runtime().block_on(fleet::run_marked(&config, Arc::clone(&live), std::future::pending(), |mark| {
        match mark {
            // Every bot is connected, logged in and in its room.
            Mark::MeasureStart => during = Some((scrape(metrics).1, get(metrics, "/readyz"), get(metrics, "/healthz"))),
            Mark::MeasureEnd => mid_run = Some(scrape(metrics).0),
        }
    }));
    assert_eq!(result.counters.errors.total(), 0, "{:#?}", result.counters);
    assert_eq!(result.counters.connected, BOTS as u64);

    let (during, readyz, healthz) = during.expect("a scrape at the start of the measured time");
    assert_eq!(value(&during, "packet_sessions"), BOTS as f64, "sessions = the connected bots");
    assert_eq!(readyz, (200, "ready\n".to_owned()));
    assert_eq!(healthz, (200, "ok\n".to_owned()));
    let mid_run = mid_run.expect("a scrape at the end of the measured time");
    std::fs::write(EXPOSITION, &mid_run).expect("the exposition is saved for promtool");
    let fingerprint = format!("{:016x}", GameProtocol::FINGERPRINT);
    let build_info =
        format!("packet_build_info{{version=\"{}\",fingerprint=\"{fingerprint}\"}}", env!("CARGO_PKG_VERSION"));
    assert_eq!(value(&samples(&mid_run), &build_info), 1.0, "{mid_run}");

    // Two hostile clients: a C_CHAT whose payload does not decode, and an id the protocol does not have.
    runtime().block_on(async {
        for bad in [frame(CChat::ID, &[0xff, 0xff]), frame(9_999, &[])] {
            let mut client: GameClient = test_support::connect(addr).await;
            client.send_raw(&bad).await.unwrap();
            let (packets, _) = drain_until_closed(&mut client).await;
            assert_eq!(packets.len(), 1, "one kick: {packets:?}");
        }
    });

    let chats = live.snapshot().sent;
    assert!(chats > 0);
    let n = BOTS as f64;
    let series = |name: &str, label: &str, value: &str| format!("{name}{{{label}=\"{value}\"}}");
    let frames_in = |packet: &str| series("packet_frames_in_total", "packet", packet);
    let frames_out = |packet: &str| series("packet_frames_out_total", "packet", packet);
    let closes = |reason: &str| series("packet_closes_total", "reason", reason);
    let expected = [
        (frames_in("C_LOGIN"), n),
        (frames_in("C_ENTER_ROOM"), n),
        // The bots' chats, and the malformed one (a complete frame, counted before it is decoded).
        (frames_in("C_CHAT"), chats as f64 + 1.0),
        (frames_in("unknown"), 1.0),
        (frames_in("C_ECHO"), 0.0),
        (frames_out("S_LOGIN"), n),
        (frames_out("S_ENTER_ROOM"), n),
        // The close notice of each hostile client.
        (frames_out("S_KICK"), 2.0),
        (closes("bad_frame"), 2.0),
        (closes("peer_closed"), n),
        (closes("slow_consumer"), 0.0),
        ("packet_connections_total".to_owned(), n + 2.0),
        ("packet_sessions".to_owned(), 0.0),
        // Every chat that decoded reached its handler once; the logins too.
        (series("packet_handler_seconds_count", "packet", "C_CHAT"), chats as f64),
        (series("packet_handler_seconds_count", "packet", "C_LOGIN"), n),
    ];
    let after = scrape_until(metrics, &expected);
    // Every chat is one S_CHAT at each member of the sender's room (4), its sender included.
    assert_eq!(value(&after, &frames_out("S_CHAT")), chats as f64 * 4.0);
    // The handler histogram has the runtime's buckets, 1 us to 100 ms, and +Inf.
    let bounds: Vec<f64> = after
        .keys()
        .filter_map(|series| series.strip_prefix("packet_handler_seconds_bucket{packet=\"C_CHAT\",le=\""))
        .map(|rest| rest.trim_end_matches("\"}").parse().expect("a bound"))
        .collect();
    let mut expected_bounds = packet_runtime::export::HANDLER_BUCKETS.to_vec();
    expected_bounds.push(f64::INFINITY);
    let mut sorted = bounds.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(sorted, expected_bounds, "{bounds:?}");
    assert!(value(&after, "packet_logic_batch_seconds_count") > 0.0);
    assert!(value(&after, "packet_bytes_in_total") > 0.0 && value(&after, "packet_bytes_out_total") > 0.0);
    for gauge in ["packet_logic_inbox_depth", "packet_pool_blocks_outstanding", "packet_pool_bytes_retained"] {
        assert!(value(&after, gauge) >= 0.0, "{gauge}");
    }
    assert_eq!(get(metrics, "/nope").0, 404);
    server.stop();
}

/// A short chat among a few bots: enough for every metric, histograms included, to be in the exposition.
fn exposition_after_a_short_chat(server: &Server) -> String {
    let config = FleetConfig {
        bot: BotConfig {
            addrs: vec![server.addr],
            name_prefix: "bot".into(),
            scenario: Scenario::Chat,
            room_size: 3,
            rate: 0.0,
            in_flight: 1,
            payload: 0,
            timeout: Duration::from_secs(10),
            mirror: false,
            relogin: false,
            handshake: false,
            auth: None,
            tls: None,
        },
        clients: 3,
        duration: Duration::from_millis(200),
        warmup: Duration::ZERO,
        connect_parallel: 3,
    };
    let result = runtime().block_on(fleet::run(&config, Arc::new(LiveCounters::default()), std::future::pending()));
    assert_eq!(result.counters.errors.total(), 0, "{:#?}", result.counters);
    scrape(server.metrics).0
}

/// The metric names an exposition offers to queries: each family (`# TYPE name kind`), and a histogram's
/// `_bucket`, `_sum` and `_count` series.
fn queryable_names(exposition: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').expect("`# TYPE name kind`");
        names.push(name.to_owned());
        if kind == "histogram" {
            names.extend(["_bucket", "_sum", "_count"].map(|suffix| format!("{name}{suffix}")));
        }
    }
    names
}

/// Every PromQL expression of a dashboard: its panels' targets and its query variables (of a Grafana
/// `label_values(selector, label)`, the selector).
fn queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            found.push(target["expr"].as_str().expect("an expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("variables") {
        let query = variable["query"]["query"].as_str().expect("a variable query");
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.rsplit_once(','))
            .map_or(query, |(selector, _label)| selector);
        found.push(selector.trim().to_owned());
    }
    found
}

/// PromQL's aggregation operators and keywords: never metric names.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
];

/// The metric names in a PromQL expression: identifiers outside label matchers and strings that are neither
/// functions (`(` follows) nor keywords, nor label names in `by (...)`.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let (mut depth_braces, mut in_string) = (0, false);
    let mut in_by = false;
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => in_string = !in_string,
            // Label matchers and range selectors (`[5m]`, `[$__rate_interval]`) hold no metric names.
            '{' | '[' if !in_string => depth_braces += 1,
            '}' | ']' if !in_string => depth_braces -= 1,
            ')' if !in_string => in_by = false,
            _ if in_string || depth_braces > 0 => {}
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
                if matches!(word.as_str(), "by" | "without" | "on" | "ignoring") {
                    in_by = true;
                } else if !in_by && next != Some('(') && !KEYWORDS.contains(&word.as_str()) {
                    names.push(word);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

#[test]
fn every_dashboard_query_names_a_metric_the_server_exports() {
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/grafana/packet-toolkit.json")).expect("the dashboard is JSON");
    let titles: Vec<&str> =
        dashboard["panels"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Sessions", "Messages/s by packet", "Handler p99 by packet", "Closes by reason", "Pool"]);

    let server = Server::start(&[]);
    let exposition = exposition_after_a_short_chat(&server);
    server.stop();
    let exported = queryable_names(&exposition);
    for expr in queries(&dashboard) {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{expr:?} names no metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "{expr:?} asks for {name}, which the server does not export: {exported:?}"
            );
        }
    }
}

#[test]
fn the_query_parser_finds_metrics_and_skips_functions_labels_and_strings() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (packet, le) (rate(packet_handler_seconds_bucket{node=~"$node"}[$__rate_interval])))"#
        ),
        ["packet_handler_seconds_bucket"]
    );
    assert_eq!(metric_names(r#"sum(a_total{x="b_total"}) / b"#), ["a_total", "b"]);
    assert_eq!(metric_names(r#"sum by (node) (x) > 0 and on (node) y"#), ["x", "y"]);
    assert_eq!(metric_names("rate(c_total[5m]) * 2"), ["c_total"]);
}
