//! The end-of-run report: built from a [`FleetResult`], rendered as a table or serialised as one JSON object.

use std::collections::BTreeMap;
use std::fmt::{self, Write};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use bots::bot::Scenario;
use bots::fleet::{FleetConfig, FleetResult};
use bots::stats::{Errors, LiveSnapshot};

/// Everything a run reports. Field names are the JSON keys.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// The server's address.
    pub(crate) addr: String,
    /// The scenario run.
    pub(crate) scenario: Scenario,
    /// Bots started.
    pub(crate) clients: u64,
    /// Bots that connected, logged in and entered their room.
    pub(crate) connected: u64,
    /// Bots connected when the run stopped (`connected + relogins - disconnects`).
    pub(crate) connected_at_end: u64,
    /// Whether bots logged in again after losing their session (`--relogin`).
    pub(crate) relogin: bool,
    /// Sessions that ended before the run did (kicked, closed, timed out); the causes are in `errors`.
    pub(crate) disconnects: u64,
    /// Sessions started again after a disconnect.
    pub(crate) relogins: u64,
    /// Attempts to log in again that failed and were retried.
    pub(crate) relogin_failures: u64,
    /// Requests in flight when their session ended early: sent, never answered.
    pub(crate) abandoned: u64,
    /// Bots per room.
    pub(crate) room_size: usize,
    /// Requests outstanding per bot.
    pub(crate) in_flight: usize,
    /// Messages per second per bot (0: as fast as the window allows).
    pub(crate) rate: f64,
    /// Echo payload bytes.
    pub(crate) payload: usize,
    /// Warmup before measuring, seconds.
    pub(crate) warmup_secs: f64,
    /// Measured sending time, seconds.
    pub(crate) duration_secs: f64,
    /// Whether Ctrl-C ended the run early.
    pub(crate) interrupted: bool,
    /// Scenario messages sent while measuring.
    pub(crate) sent: u64,
    /// Replies to the bots' own requests (S_ECHO, own S_CHAT, S_PONG after C_MOVE).
    pub(crate) replies: u64,
    /// S_CHAT / S_MOVE received by all bots.
    pub(crate) deliveries: u64,
    /// Chat only: deliveries a lossless server owes (each chat times its room's members).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expected_deliveries: Option<u64>,
    /// Packets received outside the measurement.
    pub(crate) other_received: u64,
    /// Sent messages per second.
    pub(crate) sent_per_sec: f64,
    /// Deliveries per second (replies per second for echo).
    pub(crate) received_per_sec: f64,
    /// Latency in microseconds: echo and move round trips, chat sender-to-receiver.
    pub(crate) latency_us: LatencySummary,
    /// Failures by kind.
    pub(crate) errors: Errors,
    /// Sum of every failure.
    pub(crate) errors_total: u64,
}

/// Percentiles of the latency histogram, microseconds. All 0 without samples.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct LatencySummary {
    /// Samples recorded.
    pub(crate) samples: u64,
    /// Mean.
    pub(crate) mean: f64,
    /// Median.
    pub(crate) p50: u64,
    /// 90th percentile.
    pub(crate) p90: u64,
    /// 99th percentile.
    pub(crate) p99: u64,
    /// 99.9th percentile.
    pub(crate) p999: u64,
    /// Largest.
    pub(crate) max: u64,
}

impl LatencySummary {
    fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            samples: histogram.len(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

impl Report {
    /// Builds the report of a finished run.
    pub(crate) fn new(config: &FleetConfig, result: &FleetResult) -> Self {
        let c = &result.counters;
        let secs = result.measured.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let scenario = config.bot.scenario;
        let received = if scenario == Scenario::Echo { c.replies } else { c.deliveries };
        Report {
            addr: config.bot.addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            scenario,
            clients: c.bots,
            connected: c.connected,
            connected_at_end: c.connected_at_end,
            relogin: config.bot.relogin,
            disconnects: c.disconnects,
            relogins: c.relogins,
            relogin_failures: c.relogin_failures,
            abandoned: c.abandoned,
            room_size: config.bot.room_size,
            in_flight: config.bot.in_flight,
            rate: config.bot.rate,
            payload: config.bot.payload,
            warmup_secs: config.warmup.as_secs_f64(),
            duration_secs: secs,
            interrupted: result.interrupted,
            sent: c.sent,
            replies: c.replies,
            deliveries: c.deliveries,
            expected_deliveries: (scenario == Scenario::Chat).then_some(c.expected_deliveries),
            other_received: c.other_received,
            sent_per_sec: per_sec(c.sent),
            received_per_sec: per_sec(received),
            latency_us: LatencySummary::of(&result.latency),
            errors: c.errors.clone(),
            errors_total: c.errors.total(),
        }
    }

    /// The report as one line of JSON.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serialises")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scenario = match self.scenario {
            Scenario::Chat => "chat",
            Scenario::Move => "move",
            Scenario::Echo => "echo",
        };
        let rate = if self.rate > 0.0 { format!("{}/s per client", self.rate) } else { "unpaced".to_owned() };
        writeln!(f, "scenario      {scenario} against {} ({rate}, {} in flight)", self.addr, self.in_flight)?;
        writeln!(
            f,
            "clients       {} connected of {} (rooms of {}), {} at the end",
            self.connected, self.clients, self.room_size, self.connected_at_end
        )?;
        let relogin = if self.relogin { "on" } else { "off" };
        writeln!(
            f,
            "sessions      disconnects {}  re-logins {} (--relogin {relogin})  failed re-logins {}  abandoned requests {}",
            self.disconnects, self.relogins, self.relogin_failures, self.abandoned
        )?;
        let note = if self.interrupted { " (interrupted)" } else { "" };
        writeln!(f, "duration      {}{note}, after {} warmup", secs(self.duration_secs), secs(self.warmup_secs))?;
        writeln!(f, "sent          {:>12}  {:>12.0} msg/s", self.sent, self.sent_per_sec)?;
        writeln!(f, "replies       {:>12}", self.replies)?;
        if self.scenario != Scenario::Echo {
            let mut line = format!("deliveries    {:>12}  {:>12.0} /s", self.deliveries, self.received_per_sec);
            if let Some(expected) = self.expected_deliveries {
                let _ = write!(line, "  (expected {expected})");
            }
            writeln!(f, "{line}")?;
        } else {
            writeln!(f, "replies/s     {:>12.0}", self.received_per_sec)?;
        }
        writeln!(f, "other recv    {:>12}", self.other_received)?;
        let l = &self.latency_us;
        let what = match self.scenario {
            Scenario::Chat => "send to delivery",
            Scenario::Move => "ping round trip",
            Scenario::Echo => "round trip",
        };
        writeln!(f, "latency (µs)  {what}, {} samples", l.samples)?;
        writeln!(
            f,
            "              p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.0}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        )?;
        let e = &self.errors;
        writeln!(f, "errors        {}", self.errors_total)?;
        if self.errors_total > 0 {
            writeln!(
                f,
                "              connect failed {}  rejected {}  closed by server {}  decode {}  timeouts {}",
                e.connect_failed, e.rejected, e.closed_by_server, e.decode, e.timeouts
            )?;
            for (reason, n) in &e.kicked {
                writeln!(f, "              kicked ({reason}) {n}")?;
            }
        }
        Ok(())
    }
}

/// One status line (`--status-every`): `elapsed` since the start, then the live counters.
pub(crate) fn status_line(
    elapsed: Duration,
    live: &LiveSnapshot,
    kicks: &BTreeMap<String, u64>,
    clients: u64,
) -> String {
    format!(
        "status {:.1}s: connected {}/{clients} | sent {} | received {} | errors {} | {}",
        elapsed.as_secs_f64(),
        live.connected,
        live.sent,
        live.received,
        live.errors,
        sessions(live, kicks)
    )
}

/// `disconnects D | relogins R | kicked K (reason n, ...)`: how sessions ended and began again, for the status
/// line and the progress line.
pub(crate) fn sessions(live: &LiveSnapshot, kicks: &BTreeMap<String, u64>) -> String {
    let mut line = format!("disconnects {} | relogins {} | kicked {}", live.disconnects, live.relogins, live.kicked);
    if !kicks.is_empty() {
        let reasons: Vec<_> = kicks.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
        let _ = write!(line, " ({})", reasons.join(", "));
    }
    line
}

fn secs(s: f64) -> String {
    humantime::format_duration(Duration::from_millis((s * 1000.0).round() as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_names_every_count_and_each_kick_reason() {
        let live =
            LiveSnapshot { connected: 38, sent: 120, received: 480, errors: 3, disconnects: 3, relogins: 1, kicked: 3 };
        let kicks = BTreeMap::from([("game server lost".to_owned(), 2), ("server shutting down".to_owned(), 1)]);
        assert_eq!(
            status_line(Duration::from_millis(2_540), &live, &kicks, 40),
            "status 2.5s: connected 38/40 | sent 120 | received 480 | errors 3 | disconnects 3 | relogins 1 | \
             kicked 3 (game server lost 2, server shutting down 1)"
        );
        assert_eq!(sessions(&LiveSnapshot::default(), &BTreeMap::new()), "disconnects 0 | relogins 0 | kicked 0");
    }
}
