//! `raw_echo`: reads bytes and writes the same bytes back, parsing nothing. The upper limit for `loadtest`'s echo
//! scenario: no framing, no decoding, no queue, one read and one write per batch of whatever arrived.
//!
//! ```text
//! cargo run --release -p bench --bin raw_echo -- --addr 127.0.0.1:0
//! ```
//!
//! Prints `listening on ADDR`; on SIGTERM or Ctrl-C stops accepting, shuts the runtime down and prints a `probe:` line
//! (allocations, CPU time, peak RSS; also on SIGUSR1), like the demo server.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[global_allocator]
static ALLOC: bench::probe::CountingAlloc = bench::probe::CountingAlloc;

/// Byte echo server: the limit for the echo benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed).
    #[arg(long, default_value = "127.0.0.1:7779")]
    addr: SocketAddr,
    /// Runtime worker threads [default: the number of CPUs].
    #[arg(long)]
    workers: Option<usize>,
}

/// Bytes read at once.
const CHUNK: usize = 8 * 1024;

async fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; CHUNK];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn main() -> ExitCode {
    bench::probe::configure_from_env();
    let args = Args::parse();
    if let Err(error) = bench::probe::serve_until_signal(args.addr, args.workers, serve) {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    println!("shutdown complete");
    println!("{}", bench::probe::ProcessStats::of_self().to_line());
    ExitCode::SUCCESS
}
