//! `raw_echo`: reads bytes and writes the same bytes back, parsing nothing. The upper limit for `loadtest`'s echo
//! scenario: no framing, no decoding, no queue, one read and one write per batch of whatever arrived.
//!
//! ```text
//! cargo run --release -p server --bin raw_echo -- --addr 127.0.0.1:0
//! ```
//!
//! Prints `listening on ADDR`; on SIGTERM or Ctrl-C stops accepting, shuts the runtime down and prints a `probe:` line
//! (allocations, CPU time, peak RSS; also on SIGUSR1), like the demo server.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

#[global_allocator]
static ALLOC: server::probe::CountingAlloc = server::probe::CountingAlloc;

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
    server::probe::configure_from_env();
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.workers {
        builder.worker_threads(workers.max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(accept_until_signal(args.addr));
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Err(error) = served {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    println!("shutdown complete");
    println!("{}", server::probe::ProcessStats::of_self().to_line());
    ExitCode::SUCCESS
}

async fn accept_until_signal(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    server::probe::report_on_sigusr1()?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
        }
    }
}
