//! Command-line flags.

use std::time::Duration;

use clap::Parser;

use bots::bot::Scenario;

/// Load generator for the demo game server: many bot clients log in, enter rooms and chat, move or echo, then a
/// report of throughput, latency percentiles and errors is printed.
///
/// Example: `cargo run --release -p bots -- --clients 500 --room-size 50 --scenario chat`
#[derive(Debug, Clone, Parser)]
#[command(name = "bots", version)]
pub(crate) struct Args {
    /// The server's address (host:port), or several, comma-separated (a cluster's gateways): bot N connects to
    /// the N-th modulo their number.
    #[arg(long, default_value = "127.0.0.1:7777")]
    pub(crate) addr: String,

    /// Bot N logs in as `<PREFIX>-N`. Two fleets against one server or cluster need different prefixes (names are
    /// unique among the players online).
    #[arg(long, default_value = "bot")]
    pub(crate) name_prefix: String,

    /// Number of bot clients. Bot N logs in as `<name-prefix>-N`.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) clients: u32,

    /// Bots per room: bot N enters room N / room-size.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) room_size: u32,

    /// What the bots send. chat: C_CHAT, every S_CHAT at every room member is a delivery; latency is send to
    /// delivery. move: C_MOVE, S_MOVE deliveries are counted; latency comes from a C_PING sent after each move.
    /// echo: C_ECHO, latency is the S_ECHO round trip.
    #[arg(long, value_enum, default_value_t = Scenario::Chat)]
    pub(crate) scenario: Scenario,

    /// Measured sending time (after the warmup), e.g. 30s, 2m.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,

    /// Sending time before measuring starts; its messages are not counted.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub(crate) warmup: Duration,

    /// Messages per second per client; 0 sends as fast as the in-flight window allows. Mind the server's packet
    /// rate limit (the demo server closes a client above 1,000 packets/s unless started with `--rate-limit 0`); the
    /// move scenario sends two packets (C_MOVE + C_PING) per message.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) rate: f64,

    /// Requests outstanding per client: a new one is sent when a reply to an own request arrives (for chat, the
    /// sender's own copy of its S_CHAT).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) in_flight: u32,

    /// Echo payload size in bytes (the first 8 carry the send time; smaller values are raised to 8).
    #[arg(long, default_value_t = 64)]
    pub(crate) payload: usize,

    /// How long to wait for a login, or for a reply while requests are outstanding, before counting a timeout
    /// (the bot then stops).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,

    /// Connection attempts in progress at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) connect_parallel: u32,

    /// Log in again after a kick (S_KICK), a closed connection or a timeout: wait 100 ms (doubling to 2 s after
    /// each failed attempt), reconnect to the same address, log in under the same name, re-enter the room and go
    /// on. Without it a bot stops at its first failure. The report counts disconnects, kicks by reason and
    /// re-logins either way.
    #[arg(long)]
    pub(crate) relogin: bool,

    /// Open every connection with the version handshake (the protocol's fingerprint and the bots' version), as a
    /// server run with `--handshake` requires. A server of another build refuses it: the report counts a kick
    /// naming both fingerprints.
    #[arg(long)]
    pub(crate) handshake: bool,

    /// Sign every login with the secret in this file (a server run with `--auth-secret-file` and the same file
    /// requires it): a token for the bot's name, valid for an hour. The secret is never taken from the command line.
    #[arg(long)]
    pub(crate) auth_secret_file: Option<std::path::PathBuf>,

    /// Print a status line to stderr this often (e.g. 1s): elapsed time, bots connected, messages sent and
    /// received, errors, disconnects, kicks by reason, re-logins. For logs and scripts; the live progress line on
    /// a terminal shows the same. 0 (the default) prints none.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub(crate) status_every: Duration,

    /// Print the report as one JSON object on stdout (no progress line).
    #[arg(long)]
    pub(crate) json: bool,

    /// Connect over TLS, trusting the certificates in this PEM file (a private CA, or the server's own
    /// self-signed certificate) and nothing else. The handshake is part of connecting.
    #[arg(long)]
    pub(crate) tls_ca: Option<std::path::PathBuf>,

    /// With `--tls-ca`: the name the server's certificate must carry.
    #[arg(long, default_value = "localhost", requires = "tls_ca")]
    pub(crate) tls_server_name: String,
}

impl Args {
    /// Rejects values clap cannot check on its own.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !self.rate.is_finite() || self.rate < 0.0 {
            return Err(format!("--rate must be a number >= 0, got {}", self.rate));
        }
        if self.duration.is_zero() {
            return Err("--duration must be more than 0".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_command_line() {
        let args = Args::try_parse_from([
            "bots",
            "--addr",
            "127.0.0.1:7777",
            "--clients",
            "500",
            "--room-size",
            "50",
            "--scenario",
            "move",
            "--duration",
            "30s",
            "--rate",
            "20",
            "--in-flight",
            "4",
            "--warmup",
            "2s",
            "--json",
            "--relogin",
            "--status-every",
            "500ms",
        ])
        .unwrap();
        assert_eq!((args.clients, args.room_size, args.in_flight), (500, 50, 4));
        assert_eq!(args.scenario, Scenario::Move);
        assert_eq!((args.duration, args.warmup), (Duration::from_secs(30), Duration::from_secs(2)));
        assert!(args.json && args.relogin);
        assert_eq!(args.status_every, Duration::from_millis(500));
        args.validate().unwrap();
    }

    #[test]
    fn relogin_and_status_lines_are_off_by_default() {
        let args = Args::try_parse_from(["bots"]).unwrap();
        assert!(!args.relogin);
        assert_eq!(args.status_every, Duration::ZERO);
    }

    #[test]
    fn rejects_a_negative_rate() {
        let args = Args::try_parse_from(["bots", "--rate=-1"]).unwrap();
        assert!(args.validate().is_err());
    }
}
