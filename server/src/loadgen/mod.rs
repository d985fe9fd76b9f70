//! The bot load generator, as a library: the `bots` binary and the `loadtest` benchmark harness drive servers
//! with it. Never prints.
//!
//! - [`bot`]: one client's life (setup, scenario loop with its in-flight window, drain) and the scenarios.
//! - [`fleet`]: runs all bots through the phases of a run and merges what they measured.
//! - [`stats`]: counters per bot, the shared latency histogram, the live counters behind a progress line.

pub mod bot;
pub mod fleet;
pub mod stats;
