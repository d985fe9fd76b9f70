//! Measuring the demo game beside what it is compared with. Nothing here is part of the toolkit users depend on: the
//! library's crates carry no benchmark plumbing, and this crate is the only one in the workspace with a counting
//! global allocator.
//!
//! # Layout
//! - [`probe`]: what every benchmarked server process reports about itself (heap allocations through a counting
//!   global allocator, CPU time, peak RSS), on `SIGUSR1` and at exit, and the scaffolding the hand-written
//!   contenders share.
//! - `src/bin/loadtest.rs`: the side-by-side harness. It starts each contender as a child process on loopback, drives
//!   it with the bots (the `bots` library), and reports throughput, latency, CPU, memory and allocations per message.
//! - `src/bin/game_server.rs`: the demo game server (`server::cli`, exactly what the `server` binary runs) with the
//!   probe installed: the harness's `server` contender.
//! - `src/bin/baseline.rs`: the hand-written tokio-util + prost server the toolkit is measured against.
//! - `src/bin/raw_echo.rs`: a byte echo that parses nothing, the floor for the echo scenario.
//! - `src/bin/soak.rs`: the long-running soak of the real game with memory readings over time.
//! - `src/bin/dashboard.rs`: the Grafana dashboard's panels drawn from the demo's own metrics, scraped during a
//!   bots run (`docs/dashboard.png`). [`fonts`]: the font every chart draws text with.
//! - [`transports`]: the demo's echo and chat load over TCP, TLS, WebSocket and wss side by side, which
//!   `src/bin/web_bench.rs` and `src/bin/tls_bench.rs` run; [`window`]: one measured window of a client load against
//!   a server process (what those and `src/bin/ws_crates.rs` share).

pub mod fonts;
pub mod probe;
pub mod transports;
pub mod window;
