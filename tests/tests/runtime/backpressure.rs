//! The bounded inbox from the IO threads to the logic thread: a logic thread slower than its clients pushes back
//! on them (TCP flow control) instead of queueing without bound, and loses, reorders or misattributes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use packet_runtime::{CloseReason, Context, IoAction, IoHandler, Logic, RateLimit, Server, Session, SessionId};
use tests::game::{ClientPacket, GameProtocol, ServerPacket};
use tests::proto;

use crate::support::*;

#[derive(Debug, Default)]
struct SlowJournal {
    connected: Vec<SessionId>,
    disconnected: Vec<(SessionId, CloseReason)>,
    pings: HashMap<SessionId, Vec<u64>>,
}

/// Takes 2 ms per packet: at most ~500 packets/s.
#[derive(Debug, Default)]
struct SlowLogic {
    journal: Arc<Mutex<SlowJournal>>,
}

impl Logic for SlowLogic {
    type Protocol = GameProtocol;

    fn on_connect(&mut self, _ctx: &mut Context<'_, GameProtocol>, session: &Session<GameProtocol>) {
        self.journal.lock().unwrap().connected.push(session.id());
    }

    fn on_packet(
        &mut self,
        _ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        packet: ClientPacket,
    ) {
        std::thread::sleep(Duration::from_millis(2));
        if let ClientPacket::CPing(ping) = packet {
            self.journal.lock().unwrap().pings.entry(session.id()).or_default().push(ping.client_time);
        }
    }

    fn on_disconnect(
        &mut self,
        _ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        reason: &CloseReason,
    ) {
        self.journal.lock().unwrap().disconnected.push((session.id(), reason.clone()));
    }
}

/// Answers `C_ECHO` on the IO thread; everything else goes to the (slow) logic thread.
#[derive(Debug, Default)]
struct EchoIo;

impl IoHandler<GameProtocol> for EchoIo {
    fn on_packet(&self, session: &Session<GameProtocol>, packet: ClientPacket) -> IoAction<ClientPacket> {
        match packet {
            ClientPacket::CEcho(echo) => {
                let _ = session.send(&proto::SEcho { data: echo.data });
                IoAction::Handled
            }
            other => IoAction::Forward(other),
        }
    }
}

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_slow_logic_thread_pushes_back_on_its_clients_and_loses_nothing() {
    const CLIENTS: usize = 20;
    const PER_CLIENT: u64 = 250; // 50 packets/s for 5 s
    const CAPACITY: usize = 64;
    let logic = SlowLogic::default();
    let journal = Arc::clone(&logic.journal);
    let handle = Server::<GameProtocol>::builder()
        .workers(2)
        .inbox_capacity(CAPACITY)
        // Well above what the clients send, but far below what arrives at once after a pause without forgiveness.
        .rate_limit(Some(RateLimit { per_second: 100, burst: 20 }))
        .idle_timeout(Some(Duration::from_secs(1)))
        .io_handler(EchoIo)
        .start(logic)
        .expect("server starts");
    let addr = handle.local_addr().unwrap();
    let rss_before = rss_kib("VmRSS:");
    let runtime = client_runtime();
    let peak_depth = runtime.block_on(async {
        let mut senders = Vec::new();
        for _ in 0..CLIENTS {
            senders.push(tokio::spawn(async move {
                let mut client = connect(addr).await;
                let mut ticks = tokio::time::interval(Duration::from_millis(20));
                for i in 0..PER_CLIENT {
                    ticks.tick().await;
                    client.send(&proto::CPing { client_time: i }).await.expect("never closed by the server");
                }
                client
            }));
        }
        // Served meanwhile, through the IO hook, although the inbox is full most of the time.
        let mut bystander = connect(addr).await;
        let mut peak_depth = 0;
        let mut rss_peak = 0;
        for i in 0u64..50 {
            bystander.send(&proto::CEcho { data: i.to_le_bytes().to_vec() }).await.unwrap();
            match within("an echo while the logic thread is swamped", bystander.recv()).await.unwrap() {
                ServerPacket::SEcho(echo) => assert_eq!(echo.data, i.to_le_bytes()),
                other => panic!("expected an echo, got {other:?}"),
            }
            let metrics = handle.metrics();
            assert!(metrics.inbox_depth <= CAPACITY as u64, "inbox depth {} over {CAPACITY}", metrics.inbox_depth);
            peak_depth = peak_depth.max(metrics.inbox_depth);
            rss_peak = rss_peak.max(rss_kib("VmRSS:"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut clients = Vec::new();
        for sender in senders {
            clients.push(within("a client's 250 packets", sender).await.unwrap());
        }
        // Every packet is handled before its session's disconnect.
        drop(clients);
        drop(bystander);
        let deadline = std::time::Instant::now() + 2 * test_support::GUARD;
        while journal.lock().unwrap().disconnected.len() < CLIENTS + 1 {
            assert!(std::time::Instant::now() < deadline, "not every disconnect was seen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "backpressure: VmRSS {rss_before} KiB before, {rss_peak} KiB peak while swamped (client and server in \
             one process); inbox depth at most {peak_depth} of {CAPACITY} when sampled"
        );
        peak_depth
    });
    handle.shutdown();
    let report = join_within(handle, test_support::GUARD, "the server to shut down");
    let metrics = &report.metrics;
    assert!(metrics.inbox_stalls > 0, "the inbox never filled: the test did not exercise backpressure");
    assert!(metrics.inbox_peak <= CAPACITY as u64, "inbox peak {} over {CAPACITY}", metrics.inbox_peak);
    assert!(peak_depth <= CAPACITY as u64);
    let journal = journal.lock().unwrap();
    assert_eq!(journal.connected.len(), CLIENTS + 1, "every connect seen");
    assert_eq!(journal.disconnected.len(), CLIENTS + 1, "every disconnect seen");
    for (id, reason) in &journal.disconnected {
        assert_eq!(*reason, CloseReason::PeerClosed, "{id} closed for {reason}, not by its client");
    }
    let expected: Vec<u64> = (0..PER_CLIENT).collect();
    let senders: Vec<_> = journal.connected.iter().filter(|id| journal.pings.contains_key(id)).collect();
    assert_eq!(senders.len(), CLIENTS);
    for id in senders {
        assert_eq!(journal.pings[id], expected, "every packet of {id}, in order");
    }
    assert_eq!(report.pool_outstanding, 0);
}
