//! A server process for the signal tests: prints `listening on ADDR`, runs until SIGINT/SIGTERM, shuts down in
//! order, prints the report and exits 0 (1 if pool blocks were left outstanding).
//!
//! With `SIGNAL_SERVER_HANG_ON_SHUTDOWN=1` its `on_shutdown` never returns, to prove that a second signal exits at
//! once (status 130).

use std::io::Write;

use packet_runtime::{Context, Logic, Server, Session};
use tests::game::{ClientPacket, GameProtocol};

#[derive(Debug)]
struct PingOnly {
    hang_on_shutdown: bool,
}

impl Logic for PingOnly {
    type Protocol = GameProtocol;

    fn on_packet(
        &mut self,
        _ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        packet: ClientPacket,
    ) {
        if let ClientPacket::CPing(ping) = packet {
            let _ = session.send(&tests::proto::SPong { client_time: ping.client_time, server_time: 0 });
        }
    }

    fn on_shutdown(&mut self, _ctx: &mut Context<'_, GameProtocol>) {
        if self.hang_on_shutdown {
            println!("on_shutdown: hanging");
            let _ = std::io::stdout().flush();
            loop {
                std::thread::park();
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let hang_on_shutdown = std::env::var_os("SIGNAL_SERVER_HANG_ON_SHUTDOWN").is_some();
    let handle = Server::<GameProtocol>::builder().workers(1).start(PingOnly { hang_on_shutdown })?;
    handle.watch_signals()?;
    println!("listening on {}", handle.local_addr().expect("tcp"));
    std::io::stdout().flush()?;
    let report = handle.join();
    println!("sessions closed: {}", report.sessions_closed);
    println!("pool outstanding: {}", report.pool_outstanding);
    std::process::exit(if report.pool_outstanding == 0 { 0 } else { 1 });
}
