//! `dashboard`: the panels of the Grafana dashboard (`docs/grafana/packet-toolkit.json`) drawn from the demo's own
//! metrics, scraped from its `/metrics` during a bots run: no Grafana runs here, so this is what it would show.
//!
//! ```text
//! cargo build --release -p bench --bins
//! cargo run --release -p bench --bin dashboard                     # about 30 s; writes docs/dashboard.png
//! cargo run --release -p bench --bin dashboard -- --quick --out /tmp/d.png
//! ```
//!
//! The run: a chat fleet plays for `--duration`; an echo fleet joins after a third of it and plays for a third
//! (plus its own setup and drain); then, for a third more, a hostile client a second sends a frame that does not
//! decode (bad-frame closes); the fleets' bots leave when they are done (peer closes, and resets of bots that close
//! with replies still unread). The server (the `game_server` binary next to this one: the demo with the probe) is scraped every
//! `--every`. Each panel takes its title and its place from the dashboard's JSON and computes what its queries
//! ask for from the scrapes: `rate()` as the difference over the last `--window` (as `$__rate_interval` spans a
//! few scrapes), `histogram_quantile(0.99, ...)` from the bucket differences over the same window, interpolated
//! within a bucket as Prometheus does. Prints one line per panel with the figures drawn.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bots::bot::{BotConfig, Scenario};
use bots::fleet::{self, FleetConfig};
use bots::stats::LiveCounters;
use clap::Parser;
use demo_protocol::proto::CChat;
use packet_runtime::Packet;
use plotters::prelude::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The dashboard's JSON, compiled in: the picture follows its panels.
const DASHBOARD: &str = include_str!("../../../docs/grafana/packet-toolkit.json");

/// Draws the Grafana dashboard's panels from a bots run against the demo server.
#[derive(Debug, Parser)]
#[command(name = "dashboard")]
struct Args {
    /// Length of the run.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// A few seconds, small fleets.
    #[arg(long)]
    quick: bool,
    /// Time between scrapes (the demo copies its sampled counters into the exposition every second).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    every: Duration,
    /// The window of the rates and the p99 (Grafana's `$__rate_interval`: a few scrape intervals).
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    window: Duration,
    /// The PNG to write.
    #[arg(long, default_value = "docs/dashboard.png")]
    out: PathBuf,
    /// Where `game_server` is [default: next to this binary].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// One scrape: seconds since the start, and every sample.
#[derive(Debug, Clone)]
struct Scrape {
    at: f64,
    samples: BTreeMap<String, f64>,
}

/// A line of a panel: its legend and its points.
#[derive(Debug, Clone)]
struct Line {
    legend: String,
    points: Vec<(f64, f64)>,
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.quick {
        args.duration = args.duration.min(Duration::from_secs(3));
        args.every = args.every.min(Duration::from_millis(500));
        args.window = args.window.min(Duration::from_secs(1));
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    bench::fonts::register()?;
    let dashboard: Value = serde_json::from_str(DASHBOARD).map_err(|e| format!("the dashboard JSON: {e}"))?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)).ok_or("--bin-dir")?,
    };
    let mut server = DemoServer::start(&bin_dir)?;
    let scrapes = drive_and_scrape(args, &server);
    server.stop();
    let scrapes = scrapes?;
    if scrapes.len() < 3 {
        return Err(format!("only {} scrapes", scrapes.len()));
    }
    let panels = dashboard["panels"].as_array().ok_or("the dashboard has no panels")?;
    let mut drawn = Vec::new();
    for panel in panels {
        let id = panel["id"].as_u64().ok_or("a panel without an id")?;
        let title = panel["title"].as_str().ok_or("a panel without a title")?;
        let lines = panel_lines(id, &scrapes, args.window.as_secs_f64())?;
        let unit = panel["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("short").to_owned();
        let place = &panel["gridPos"];
        let grid = [&place["x"], &place["y"], &place["w"], &place["h"]].map(|v| v.as_u64().unwrap_or(0) as u32);
        println!(
            "{title}: {}",
            lines
                .iter()
                .map(|line| format!("{} (max {:.3})", line.legend, line.points.iter().map(|p| p.1).fold(0.0, f64::max)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        drawn.push((title.to_owned(), unit, grid, lines));
    }
    draw(&args.out, dashboard["title"].as_str().unwrap_or("dashboard"), &drawn).map_err(|e| e.to_string())?;
    println!("picture: {}", args.out.display());
    Ok(())
}

/// The demo server with `--metrics-addr`: its two addresses.
struct DemoServer {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
}

impl DemoServer {
    fn start(bin_dir: &Path) -> Result<DemoServer, String> {
        let binary = bin_dir.join("game_server");
        let mut child = Command::new(&binary)
            .args([
                "--addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
                "--rate-limit",
                "0",
                "--idle-timeout",
                "0",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut metrics, mut addr): (Option<SocketAddr>, Option<SocketAddr>) = (None, None);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("metrics listening on ") {
                    metrics = a.parse().ok();
                } else if let Some(a) = line.strip_prefix("listening on ") {
                    addr = a.parse().ok();
                }
                if let (Some(metrics), Some(addr)) = (metrics, addr) {
                    let _ = tx.send((addr, metrics));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok((addr, metrics)) => Ok(DemoServer { child, addr, metrics }),
            Err(_) => {
                let _ = child.kill();
                Err("the server did not print its addresses".into())
            }
        }
    }

    fn stop(&mut self) {
        // SAFETY: `kill` takes plain integers; the pid is our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Runs the fleets and the hostile client while a thread scrapes.
fn drive_and_scrape(args: &Args, server: &DemoServer) -> Result<Vec<Scrape>, String> {
    let (chatters, echoers) = if args.quick { (12, 4) } else { (200, 50) };
    let third = args.duration / 3;
    let done = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (done, metrics, every) = (Arc::clone(&done), server.metrics, args.every);
        std::thread::spawn(move || scrape_until(metrics, every, &done))
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio");
    let addr = server.addr;
    let fleet_config = |scenario, clients, room_size, duration: Duration, prefix: &str| FleetConfig {
        bot: BotConfig {
            addrs: vec![addr],
            name_prefix: prefix.into(),
            scenario,
            room_size,
            // Paced: a dashboard of a saturated server shows the saturation, not the game.
            rate: 20.0,
            in_flight: 4,
            payload: 64,
            timeout: Duration::from_secs(10),
            mirror: false,
            relogin: false,
            handshake: false,
            auth: None,
            tls: None,
        },
        clients,
        duration,
        warmup: Duration::ZERO,
        connect_parallel: 32,
    };
    let chat = fleet_config(Scenario::Chat, chatters, 20, args.duration, "chat");
    let echo = fleet_config(Scenario::Echo, echoers, echoers, third, "echo");
    let failures = runtime.block_on(async move {
        let chat = tokio::spawn(async move {
            fleet::run(&chat, Arc::new(LiveCounters::default()), std::future::pending()).await.counters.errors.total()
        });
        tokio::time::sleep(third).await;
        let echo = fleet::run(&echo, Arc::new(LiveCounters::default()), std::future::pending()).await;
        let hostile_until = tokio::time::Instant::now() + third;
        while tokio::time::Instant::now() < hostile_until {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
                let _ = stream.write_all(&test_frame(CChat::ID, &[0xff, 0xff])).await;
                // Its kick, then the server's close.
                let mut rest = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest)).await;
            }
            tokio::time::sleep(Duration::from_secs(1).min(third / 4)).await;
        }
        chat.await.unwrap_or(1) + echo.counters.errors.total()
    });
    // A last scrape after everyone left.
    std::thread::sleep(args.every * 3);
    done.store(true, Ordering::Relaxed);
    let scrapes = scraper.join().map_err(|_| "the scraper panicked")??;
    if failures > 0 {
        return Err(format!("{failures} bots failed"));
    }
    Ok(scrapes)
}

/// `size | id | payload`, the compact header.
fn test_frame(id: u16, payload: &[u8]) -> Vec<u8> {
    let size = (4 + payload.len()) as u16;
    let mut frame = Vec::with_capacity(size as usize);
    frame.extend_from_slice(&size.to_le_bytes());
    frame.extend_from_slice(&id.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn scrape_until(metrics: SocketAddr, every: Duration, done: &AtomicBool) -> Result<Vec<Scrape>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into();
    let start = Instant::now();
    let mut scrapes = Vec::new();
    while !done.load(Ordering::Relaxed) {
        let mut response =
            agent.get(format!("http://{metrics}/metrics")).call().map_err(|e| format!("scrape failed: {e}"))?;
        let body = response.body_mut().read_to_string().map_err(|e| format!("scrape failed: {e}"))?;
        scrapes.push(Scrape { at: start.elapsed().as_secs_f64(), samples: parse(&body) });
        std::thread::sleep(every);
    }
    Ok(scrapes)
}

fn parse(exposition: &str) -> BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of label `label` in a series `name{a="x",b="y"}`.
fn label<'a>(series: &'a str, label: &str) -> Option<&'a str> {
    let start = series.find(&format!("{label}=\""))? + label.len() + 2;
    let end = series[start..].find('"')? + start;
    Some(&series[start..end])
}

/// Series of metric `name`, grouped by the value of `by` (summed within a group, as `sum by (by)` does).
fn grouped(scrape: &Scrape, name: &str, by: &str) -> BTreeMap<String, f64> {
    let mut groups = BTreeMap::new();
    for (series, value) in &scrape.samples {
        let family = series.split('{').next().unwrap_or(series);
        if family == name {
            *groups.entry(label(series, by).unwrap_or("").to_owned()).or_insert(0.0) += value;
        }
    }
    groups
}

/// `sum by (by) (rate(name[window]))`; groups that never moved are left out.
fn rates(scrapes: &[Scrape], name: &str, by: &str, legend: &str, window: f64) -> Vec<Line> {
    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, now) in scrapes.iter().enumerate() {
        let Some(then) = scrapes[..i].iter().rev().find(|s| now.at - s.at >= window) else { continue };
        let (before, after) = (grouped(then, name, by), grouped(now, name, by));
        let dt = (now.at - then.at).max(1e-9);
        for (group, value) in after {
            let rate = (value - before.get(&group).copied().unwrap_or(0.0)).max(0.0) / dt;
            lines.entry(group).or_default().push((now.at, rate));
        }
    }
    lines
        .into_iter()
        .filter(|(_, points)| points.iter().any(|p| p.1 > 0.0))
        .map(|(group, points)| Line { legend: format!("{legend} {group}").trim().to_owned(), points })
        .collect()
}

/// A gauge over time (`sum` over its series).
fn gauge(scrapes: &[Scrape], name: &str, legend: &str) -> Line {
    let points = scrapes.iter().map(|s| (s.at, grouped(s, name, "__none__").values().sum())).collect();
    Line { legend: legend.to_owned(), points }
}

/// `histogram_quantile(q, sum by (packet, le) (rate(name_bucket[window])))`, per packet with samples.
fn quantiles(scrapes: &[Scrape], name: &str, q: f64, window: f64) -> Vec<Line> {
    // packet -> (le -> cumulative count), per scrape.
    let buckets = |scrape: &Scrape| {
        let mut by_packet: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (series, value) in &scrape.samples {
            if series.split('{').next() != Some(name) {
                continue;
            }
            let (Some(packet), Some(le)) = (label(series, "packet"), label(series, "le")) else { continue };
            let le: f64 = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
            by_packet.entry(packet.to_owned()).or_default().push((le, *value));
        }
        for list in by_packet.values_mut() {
            list.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        by_packet
    };
    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, now) in scrapes.iter().enumerate() {
        let Some(then) = scrapes[..i].iter().rev().find(|s| now.at - s.at >= window) else { continue };
        let (before, after) = (buckets(then), buckets(now));
        for (packet, counts) in after {
            let old = before.get(&packet);
            let delta: Vec<(f64, f64)> = counts
                .iter()
                .map(|&(le, count)| {
                    let was = old.and_then(|o| o.iter().find(|b| b.0 == le)).map_or(0.0, |b| b.1);
                    (le, count - was)
                })
                .collect();
            if let Some(value) = quantile(q, &delta) {
                lines.entry(packet).or_default().push((now.at, value));
            }
        }
    }
    lines.into_iter().map(|(packet, points)| Line { legend: packet, points }).collect()
}

/// Prometheus's `histogram_quantile` over cumulative `(le, count)` buckets: linear within the bucket the rank
/// falls in; the highest finite bound when it falls in `+Inf`. `None` without samples.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let within = if count > lower.1 { (rank - lower.1) / (count - lower.1) } else { 0.0 };
            return Some(lower.0 + (le - lower.0) * within);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

/// What a panel of the dashboard shows, computed as its queries would.
fn panel_lines(id: u64, scrapes: &[Scrape], window: f64) -> Result<Vec<Line>, String> {
    Ok(match id {
        1 => vec![gauge(scrapes, "packet_sessions", "sessions")],
        2 => {
            let mut lines = rates(scrapes, "packet_frames_in_total", "packet", "in", window);
            lines.extend(rates(scrapes, "packet_frames_out_total", "packet", "out", window));
            lines
        }
        3 => quantiles(scrapes, "packet_handler_seconds_bucket", 0.99, window),
        4 => rates(scrapes, "packet_closes_total", "reason", "", window),
        5 => vec![
            gauge(scrapes, "packet_pool_blocks_outstanding", "outstanding blocks"),
            gauge(scrapes, "packet_pool_bytes_retained", "retained bytes"),
        ],
        other => return Err(format!("panel {other} of the dashboard has no drawing here: add it")),
    })
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Pixels per grid unit (Grafana's grid is 24 wide; a unit of height is about 30 px there).
const UNIT_W: u32 = 70;
const UNIT_H: u32 = 42;

fn draw(
    out: &Path,
    title: &str,
    panels: &[(String, String, [u32; 4], Vec<Line>)],
) -> Result<(), Box<dyn std::error::Error>> {
    let height = panels.iter().map(|(_, _, [_, y, _, h], _)| y + h).max().unwrap_or(8) * UNIT_H + 40;
    let root = BitMapBackend::new(out, (24 * UNIT_W, height)).into_drawing_area();
    root.fill(&RGBColor(250, 250, 250))?;
    root.draw(&Text::new(title.to_owned(), (12, 10), ("sans-serif", 22).into_font().style(FontStyle::Bold)))?;
    let grid = root.margin(40, 0, 0, 0);
    let end = panels.iter().flat_map(|p| &p.3).flat_map(|l| &l.points).map(|p| p.0).fold(1.0, f64::max);
    for (title, unit, [x, y, w, h], lines) in panels {
        let area = grid.clone().shrink((x * UNIT_W, y * UNIT_H), (w * UNIT_W, h * UNIT_H)).margin(6, 6, 6, 6);
        area.fill(&WHITE)?;
        let top = lines.iter().flat_map(|l| &l.points).map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.15;
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 17))
            .margin(8)
            .x_label_area_size(26)
            .y_label_area_size(72)
            .build_cartesian_2d(0f64..end, 0f64..top)?;
        let unit = unit.clone();
        chart
            .configure_mesh()
            .light_line_style(RGBColor(235, 235, 235))
            .x_desc("seconds into the run")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format_value(*y, &unit))
            .label_style(("sans-serif", 12))
            .draw()?;
        for (i, line) in lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), color.stroke_width(2)).point_size(2))?
                .label(line.legend.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        if lines.is_empty() {
            area.draw(&Text::new("no data", (40, 60), ("sans-serif", 14)))?;
        } else {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(RGBColor(200, 200, 200))
                .label_font(("sans-serif", 12))
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

/// A y-axis label in the panel's Grafana unit.
fn format_value(y: f64, unit: &str) -> String {
    match unit {
        "s" if y < 0.001 => format!("{:.0} µs", y * 1e6),
        "s" => format!("{:.1} ms", y * 1e3),
        "reqps" | "ops" => format!("{}/s", short(y)),
        _ => short(y),
    }
}

fn short(y: f64) -> String {
    match y.abs() {
        v if v >= 1e6 => format!("{:.1}M", y / 1e6),
        v if v >= 1e3 => format!("{:.1}k", y / 1e3),
        v if v >= 10.0 || v == 0.0 => format!("{y:.0}"),
        _ => format!("{y:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_prometheus() {
        // 100 samples: 50 at or under 1, 40 more at or under 2, 10 beyond.
        let buckets = [(1.0, 50.0), (2.0, 90.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(0.5, &buckets), Some(1.0));
        assert_eq!(quantile(0.7, &buckets), Some(1.5));
        assert_eq!(quantile(0.99, &buckets), Some(2.0), "in +Inf: the highest finite bound");
        assert_eq!(quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
    }

    #[test]
    fn labels_and_groups_read_the_exposition() {
        let scrape = Scrape {
            at: 1.0,
            samples: parse("a_total{packet=\"X\",le=\"0.5\"} 2\na_total{packet=\"Y\"} 3\nb 1\n# HELP a_total x\n"),
        };
        assert_eq!(label("a_total{packet=\"X\",le=\"0.5\"}", "le"), Some("0.5"));
        let groups = grouped(&scrape, "a_total", "packet");
        assert_eq!(groups.get("X"), Some(&2.0));
        assert_eq!(groups.get("Y"), Some(&3.0));
        assert_eq!(grouped(&scrape, "b", "packet").get(""), Some(&1.0));
    }

    #[test]
    fn every_panel_of_the_dashboard_has_a_drawing() {
        let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
        let scrapes = vec![Scrape { at: 0.0, samples: BTreeMap::new() }, Scrape { at: 1.0, samples: BTreeMap::new() }];
        for panel in dashboard["panels"].as_array().unwrap() {
            assert!(panel_lines(panel["id"].as_u64().unwrap(), &scrapes, 1.0).is_ok(), "{}", panel["title"]);
        }
    }
}
