//! A minimal echo server: two hand-written packets, answered on the IO thread. Stops on Ctrl-C.
//!
//! ```text
//! cargo run -p examples --example echo_server -- --addr 127.0.0.1:7000 [--handshake]
//! ```
//!
//! The protocol, the logic and the IO hook live in `examples/src/lib.rs` (`examples::echo`) so that
//! `examples/tests/echo.rs` can start the same server in-process.

use std::net::SocketAddr;

use clap::Parser;

/// A minimal echo server.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: SocketAddr,
    /// Require the version handshake: a client's first frame must be a hello with the protocol's fingerprint.
    #[arg(long)]
    handshake: bool,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let server = examples::echo::builder(args.addr, packet_runtime::HeaderKind::Compact, 16 * 1024)
        .require_handshake(args.handshake)
        .start(examples::echo::EchoLogic)?;
    println!("echo server listening on {} (Ctrl-C to stop)", server.local_addr().expect("tcp server"));
    let report = server.run_until_signal()?;
    println!("stopped: {} sessions closed, {} frames dropped", report.sessions_closed, report.frames_dropped);
    Ok(())
}
