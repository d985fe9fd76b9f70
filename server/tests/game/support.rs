//! The game suite's fixtures: the shared ones (`../common`, `test-support`) and a server whose game counters the
//! test can read.

pub(crate) use crate::common::*;

use server::{GameStats, ServerOptions};

/// A server with `options`, and a handle to its game's counters.
pub(crate) fn start_counting(options: &ServerOptions) -> (TestServer, GameStats) {
    let game = options.game();
    let stats = game.stats();
    (TestServer::started(options.builder().start(game)), stats)
}

/// A 32-character name, unique per `i`: the longest in ASCII.
pub(crate) fn long_name(i: usize) -> String {
    format!("{i:0>6}-{}", "n".repeat(25))
}
