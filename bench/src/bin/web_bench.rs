//! WebSocket beside TCP on one demo server: echo and room chat, the same load over each, alternating rounds
//! (`bench::transports`, which `tls_bench` runs with TLS and wss too).
//!
//! Starts `target/release/server --addr 127.0.0.1:0 --web 127.0.0.1:0 --rate-limit 0 --workers 1` and, per round
//! and transport, runs 100 clients for `SECONDS`: echo (each keeps 8 32-byte `C_ECHO` in flight) and chat (rooms of
//! 50, each client keeps 8 chats in flight, a chat counting once per recipient). Prints per transport the medians of
//! messages (or deliveries) per second and the server's CPU per message, which is what the transport costs the
//! server; the load generator's own CPU is printed too (it shares the 2 CPUs).
//!
//!   cargo build --release -p server -p bench && target/release/web_bench [ROUNDS] [SECONDS]

use bench::transports::{Transport, compare};

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    compare(&[Transport::Tcp, Transport::Ws], rounds, seconds);
}
