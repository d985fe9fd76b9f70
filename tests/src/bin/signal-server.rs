//! A test server process for the signal test: prints `listening on ADDR`, runs until SIGINT/SIGTERM, shuts down in
//! order, prints the report and exits 0 (1 if pool blocks were left outstanding).

use packet_runtime::Server;
use tests::game::GameProtocol;

fn main() -> std::io::Result<()> {
    #[derive(Debug)]
    struct Idle;
    impl packet_runtime::Logic for Idle {
        type Protocol = GameProtocol;
        fn on_packet(
            &mut self,
            _ctx: &mut packet_runtime::Context<'_, GameProtocol>,
            session: &packet_runtime::Session<GameProtocol>,
            packet: tests::game::ClientPacket,
        ) {
            if let tests::game::ClientPacket::CPing(ping) = packet {
                let _ = session.send(&tests::proto::SPong { client_time: ping.client_time, server_time: 0 });
            }
        }
    }
    let handle = Server::<GameProtocol>::builder().workers(1).start(Idle)?;
    handle.watch_signals()?;
    println!("listening on {}", handle.local_addr().expect("tcp"));
    let report = handle.join();
    println!("sessions closed: {}", report.sessions_closed);
    println!("pool outstanding: {}", report.pool_outstanding);
    std::process::exit(if report.pool_outstanding == 0 { 0 } else { 1 });
}
