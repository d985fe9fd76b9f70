//! TLS beside clear text on the demo server: echo and room chat, the same load over TCP, TLS, WebSocket and wss,
//! alternating within each round (`bench::transports`).
//!
//! Starts two `target/release/server --rate-limit 0 --workers 1` with `--web`: one in clear text, one with
//! `--tls-cert`/`--tls-key` (a certificate made at start by a private CA, ECDSA P-256, as `rcgen` makes them).
//! Prints per transport the medians of messages (or deliveries) per second and the CPU per message of the server
//! that served them, and the load generator's own CPU (it shares the 2 CPUs and does the client side of every
//! handshake and record). Handshakes happen before the measured window: this is the cost of a session's traffic,
//! not of connecting.
//!
//!   cargo build --release -p server -p bench && target/release/tls_bench [ROUNDS] [SECONDS]

use bench::transports::{Transport, compare};

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    compare(&Transport::ALL, rounds, seconds);
}
