//! The bot load generator for the demo game, as a library: the `bots` binary and the benchmark harness (`bench`'s
//! `loadtest`) drive servers with it. It speaks the protocol through `demo-protocol` and does not depend on the
//! game, so it can load any server that speaks it. Never prints.
//!
//! # Layout
//! - [`bot`]: one client's life (setup, scenario loop with its in-flight window, drain) and the scenarios.
//! - [`fleet`]: runs all bots through the phases of a run and merges what they measured.
//! - [`stats`]: counters per bot, the shared latency histogram, the live counters behind a progress line.

pub mod bot;
pub mod fleet;
pub mod stats;
