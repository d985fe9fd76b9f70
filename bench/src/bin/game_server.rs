//! The demo game server with the statistics probe around it: the benchmark harness's `server` contender.
//!
//! It runs [`server::cli::main`], the very code of the `server` binary (same flags, same `listening on` line, same
//! summary), with two additions the harness needs and the demo should not carry: a counting global allocator, and a
//! `probe: ...` line on stdout at every `SIGUSR1` and once after the summary (see `bench::probe`).
//!
//! ```text
//! cargo run --release -p bench --bin game_server -- --addr 127.0.0.1:0 --rate-limit 0
//! ```

use std::process::ExitCode;

use bench::probe::{self, CountingAlloc, ProcessStats};

/// Counts heap allocations for the harness; see `bench::probe`.
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() -> ExitCode {
    probe::configure_from_env();
    // Before the server announces its address: the harness sends SIGUSR1 as soon as it has read that line, and the
    // default action of SIGUSR1 would end the process.
    if let Err(error) = probe::report_on_sigusr1() {
        eprintln!("warning: cannot report statistics on SIGUSR1: {error}");
    }
    let status = server::cli::main();
    println!("{}", ProcessStats::of_self().to_line());
    status
}
