//! Limits that are on by default: queue limit (slow consumer), max connections, idle timeout, rate limit.

use std::time::Duration;

use packet_runtime::{Client, ClientError, CloseKind, CloseReason, RateLimit};
use tests::game::ServerPacket;
use tests::proto;
use tokio::net::TcpSocket;

use crate::support::*;

#[test]
fn a_slow_reader_is_cut_off_while_a_fast_one_keeps_receiving() {
    let server = start(builder().send_queue_limit(256 * 1024));
    let delivered = client_runtime().block_on(async {
        // The slow client never reads, with a tiny receive buffer so the kernel cannot hide it for long.
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let slow_stream = socket.connect(server.addr).await.unwrap();
        let mut slow = Client::<tests::game::GameProtocol>::new(slow_stream);
        slow.send(&proto::CLogin { name: "slow".into(), ..Default::default() }).await.unwrap();

        let fast = connect(server.addr).await;
        let (mut reader, mut writer) = fast.into_split();
        // The fast client reads everything it is sent; the writer stays at most a few chats ahead of it so that
        // the fast client itself is never the slow consumer.
        let (progress_tx, mut progress) = tokio::sync::watch::channel(0u64);
        let receiving = tokio::spawn(async move {
            let mut chats = 0u64;
            loop {
                match within("chat", reader.recv()).await.unwrap() {
                    ServerPacket::SChat(chat) if chat.msg == "last" => return chats,
                    ServerPacket::SChat(_) => {
                        chats += 1;
                        let _ = progress_tx.send(chats);
                    }
                    _ => {}
                }
            }
        });
        let big = "x".repeat(8 * 1024);
        let mut sent = 0u64;
        let mut after_cut = 0;
        while after_cut < 50 {
            within("fast reader progress", progress.wait_for(|got| got + 8 >= sent)).await.unwrap();
            writer.send(&proto::CChat { msg: big.clone() }).await.unwrap();
            sent += 1;
            assert!(sent < 100_000, "the slow consumer was never cut off");
            if server.handle.metrics().queue_overflows > 0 {
                after_cut += 1;
            }
        }
        writer.send(&proto::CChat { msg: "last".into() }).await.unwrap();
        let delivered = within("fast reader", receiving).await.unwrap();
        assert_eq!(delivered, sent, "the fast reader got every chat");
        // The cut-off reaches the slow client as a closed connection once it reads what it was sent, not only as a
        // counter. (That the abort wakes a driver whose batch is full and socket blocked is proven by
        // shutdown::close_flush_timeout_ends_a_session_that_cannot_be_flushed, which hangs without it.)
        let (_, closed) = drain_until_closed(&mut slow).await;
        assert!(matches!(closed, ClientError::Closed | ClientError::Truncated | ClientError::Io(_)), "{closed:?}");
        delivered
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert!(delivered > 0);
    assert_eq!(report.metrics.closed(CloseKind::SlowConsumer), 1);
    assert_eq!(report.pool_outstanding, 0);
    let journal = server.journal.lock().unwrap();
    let slow_id = journal.connected[0];
    assert!(journal.disconnected.contains(&(slow_id, CloseReason::SlowConsumer)), "{:?}", journal.disconnected);
}

#[test]
fn connections_beyond_the_limit_are_closed_at_once() {
    let server = start(builder().max_connections(Some(2)));
    client_runtime().block_on(async {
        let mut kept = Vec::new();
        for _ in 0..2 {
            let mut client = connect(server.addr).await;
            client.send(&proto::CPing { client_time: 1 }).await.unwrap();
            within("pong", client.recv()).await.unwrap();
            kept.push(client);
        }
        let mut rejected = connect(server.addr).await;
        let (got, end) = drain_until_closed(&mut rejected).await;
        // Never a session, but told why before the close.
        assert!(matches!(&got[..], [ServerPacket::SKick(kick)] if kick.reason == "server full"), "{got:?}");
        assert!(test_support::is_close(&end), "{end:?}");
        assert_eq!(server.handle.metrics().connections_rejected, 1);
        drop(kept);
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.sessions_closed, 2, "a rejected connection never becomes a session");
}

#[test]
fn idle_and_slowloris_sessions_time_out_while_active_ones_stay() {
    let server = start(builder().idle_timeout(Some(Duration::from_millis(600))));
    client_runtime().block_on(async {
        let mut idle = connect(server.addr).await;
        let mut slowloris = connect(server.addr).await;
        slowloris.send_raw(&[0x20, 0x00, 0xE8, 0x03, 0x0A]).await.unwrap(); // a frame that never completes
        let mut active = connect(server.addr).await;
        let idle_closed = tokio::spawn(async move { drain_until_closed(&mut idle).await });
        let slowloris_closed = tokio::spawn(async move { drain_until_closed(&mut slowloris).await });
        // Keep the active one busy for well over the timeout.
        for i in 0..20 {
            active.send(&proto::CPing { client_time: i }).await.unwrap();
            within("pong", active.recv()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        within("idle close", idle_closed).await.unwrap();
        within("slowloris close", slowloris_closed).await.unwrap();
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.metrics.closed(CloseKind::IdleTimeout), 2);
    let journal = server.journal.lock().unwrap();
    let active_id = journal.connected[2];
    let (_, active_reason) = journal.disconnected.iter().find(|(id, _)| *id == active_id).unwrap();
    // It left on its own or was closed by the shutdown, depending on which the server saw first; never idle.
    assert!(matches!(active_reason, CloseReason::PeerClosed | CloseReason::ServerShutdown), "{active_reason:?}");
}

#[test]
fn a_flood_past_the_rate_limit_is_closed() {
    let server = start(builder().rate_limit(Some(RateLimit { per_second: 10, burst: 20 })));
    client_runtime().block_on(async {
        let mut flooder = connect(server.addr).await;
        for i in 0..200 {
            flooder.queue(&proto::CPing { client_time: i }).unwrap();
        }
        flooder.flush().await.unwrap();
        let (got, end) = drain_until_closed(&mut flooder).await;
        let (kick, served) = got.split_last().expect("the close notice at least");
        assert!(served.len() <= 20, "at most the burst was served, got {}", served.len());
        assert!(served.iter().all(|packet| matches!(packet, ServerPacket::SPong(_))), "{served:?}");
        // The close is graceful, and says why before it.
        assert!(matches!(kick, ServerPacket::SKick(k) if k.reason == "packet rate limit exceeded"), "{kick:?}");
        assert!(test_support::is_close(&end), "{end:?}");
        assert_serves(server.addr).await;
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.metrics.closed(CloseKind::RateLimited), 1);
}

/// A listener whose every accept fails with EMFILE, counting the attempts.
struct ExhaustedListener(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl packet_runtime::Listener for ExhaustedListener {
    type Stream = tokio::io::DuplexStream;

    async fn accept(&mut self) -> std::io::Result<(Self::Stream, packet_runtime::PeerAddr)> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(std::io::Error::from_raw_os_error(24)) // EMFILE
    }
}

#[test]
fn accept_errors_from_exhausted_descriptors_back_off_instead_of_spinning() {
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let listener = ExhaustedListener(attempts.clone());
    let handle = builder().start_on(move || Ok(listener), TestGame::default()).unwrap();
    // With a 10 ms first backoff doubling to 1 s, half a second allows about 6 attempts; a spinning loop would make
    // hundreds of thousands. The bound only fails on spinning, never on a slow machine.
    std::thread::sleep(Duration::from_millis(500));
    let made = attempts.load(std::sync::atomic::Ordering::Relaxed);
    assert!((1..=12).contains(&made), "{made} accept attempts in 500 ms");
    assert_eq!(handle.metrics().accept_errors, made);
    handle.shutdown();
    handle.join();
}

#[test]
fn on_tick_runs_at_the_configured_period() {
    let server = start(builder().tick(Some(Duration::from_millis(5))));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.journal.lock().unwrap().ticks < 5 {
        assert!(std::time::Instant::now() < deadline, "ticks never came");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.handle.shutdown();
    server.handle.join();
}

/// The server-side sockets in `/proc/net/tcp{,6}` from local port `local` to remote port `remote`: (state, bytes in
/// the send queue). States are the kernel's numbers (`04` is FIN-WAIT-1).
fn server_sockets(local: u16, remote: u16) -> Vec<(u8, u64)> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |field: &str| field.rsplit(':').next().and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if fields.len() > 4 && port(fields[1]) == Some(local) && port(fields[2]) == Some(remote) {
                let state = u8::from_str_radix(fields[3], 16).unwrap_or(0);
                let tx_queue = fields[4].split(':').next().and_then(|hex| u64::from_str_radix(hex, 16).ok());
                found.push((state, tx_queue.unwrap_or(0)));
            }
        }
    }
    found
}

#[test]
fn a_peer_that_never_reads_is_reset_and_its_socket_freed_while_a_reader_gets_every_chat() {
    let server = start(builder().send_queue_limit(128 * 1024).send_buffer(Some(64 * 1024)));
    client_runtime().block_on(async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let slow_stream = socket.connect(server.addr).await.unwrap();
        let slow_port = slow_stream.local_addr().unwrap().port();
        let mut slow = Client::<tests::game::GameProtocol>::new(slow_stream);
        slow.send(&proto::CLogin { name: "slow".into(), ..Default::default() }).await.unwrap();

        let fast = connect(server.addr).await;
        let (mut reader, mut writer) = fast.into_split();
        let (progress_tx, mut progress) = tokio::sync::watch::channel(0u64);
        let receiving = tokio::spawn(async move {
            let mut chats = 0u64;
            loop {
                match within("chat", reader.recv()).await.unwrap() {
                    ServerPacket::SChat(chat) if chat.msg == "last" => return chats,
                    ServerPacket::SChat(_) => {
                        chats += 1;
                        let _ = progress_tx.send(chats);
                    }
                    _ => {}
                }
            }
        });
        let big = "x".repeat(8 * 1024);
        let mut sent = 0u64;
        while server.handle.metrics().closed(CloseKind::SlowConsumer) == 0 {
            within("fast reader progress", progress.wait_for(|got| got + 8 >= sent)).await.unwrap();
            writer.send(&proto::CChat { msg: big.clone() }).await.unwrap();
            sent += 1;
            assert!(sent < 100_000, "the slow consumer was never cut off");
        }
        // The session is reported closed only after its socket is: by now the kernel must not be keeping a
        // backlog for a peer that does not read (a graceful close would leave it in FIN-WAIT-1 with its send queue
        // full, for minutes).
        let left = server_sockets(server.addr.port(), slow_port);
        assert!(!left.iter().any(|&(state, tx)| state == 4 && tx > 0), "server socket lingers: {left:?}");
        assert!(left.is_empty(), "the server's socket to the slow peer is gone: {left:?}");
        // The cut-off peer learns it: a reset (or an end of stream), not a connection that just goes quiet.
        let (_, end) = drain_until_closed(&mut slow).await;
        assert!(test_support::is_close(&end) || matches!(end, ClientError::Truncated), "{end:?}");
        // The reader in the same room kept getting everything.
        for _ in 0..20 {
            within("fast reader progress", progress.wait_for(|got| got + 8 >= sent)).await.unwrap();
            writer.send(&proto::CChat { msg: big.clone() }).await.unwrap();
            sent += 1;
        }
        writer.send(&proto::CChat { msg: "last".into() }).await.unwrap();
        assert_eq!(within("fast reader", receiving).await.unwrap(), sent, "the reader got every chat");
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.metrics.closed(CloseKind::SlowConsumer), 1);
    assert_eq!(report.pool_outstanding, 0);
}

#[test]
fn connections_beyond_the_per_address_limit_are_refused_with_the_notice_while_other_addresses_connect() {
    let server = start(builder().max_connections_per_address(Some(2)));
    client_runtime().block_on(async {
        let mut kept = Vec::new();
        for _ in 0..2 {
            let mut client = connect(server.addr).await;
            client.send(&proto::CPing { client_time: 1 }).await.unwrap();
            within("pong", client.recv()).await.unwrap();
            kept.push(client);
        }
        let mut refused = connect(server.addr).await;
        let (got, end) = drain_until_closed(&mut refused).await;
        assert!(
            matches!(&got[..], [ServerPacket::SKick(kick)] if kick.reason == CloseReason::AddressFull.to_string()),
            "{got:?}"
        );
        assert!(test_support::is_close(&end), "{end:?}");
        assert_eq!(server.handle.metrics().connections_rejected, 1);
        // Another address (127.0.0.2 is loopback too) is not limited by this one's connections.
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut other = Client::<tests::game::GameProtocol>::new(socket.connect(server.addr).await.unwrap());
        other.send(&proto::CPing { client_time: 2 }).await.unwrap();
        assert!(matches!(within("pong", other.recv()).await.unwrap(), ServerPacket::SPong(_)));
        // A closed connection frees its address's slot.
        drop(kept.pop());
        let deadline = std::time::Instant::now() + test_support::GUARD;
        loop {
            let mut again = connect(server.addr).await;
            again.send(&proto::CPing { client_time: 3 }).await.unwrap();
            if let Ok(ServerPacket::SPong(_)) = within("pong or notice", again.recv()).await {
                break;
            }
            // The server had not seen the close yet: the refusal is the notice, then the close.
            assert!(std::time::Instant::now() < deadline, "the slot was never freed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert!(report.metrics.connections_rejected >= 1);
    assert_eq!(report.sessions_closed, report.metrics.connections_total, "refused connections are no sessions");
}

#[test]
fn a_client_past_the_byte_rate_limit_is_closed_with_the_notice_while_a_modest_one_stays() {
    let limit = RateLimit { per_second: 20_000, burst: 16 * 1024 };
    let server = start(builder().byte_rate_limit(Some(limit)));
    client_runtime().block_on(async {
        let mut modest = connect(server.addr).await;
        let mut flooder = connect(server.addr).await;
        // 40 KiB at once: well past the 16 KiB burst, with few packets (the packet limit is not what stops it).
        for _ in 0..10 {
            flooder.queue(&proto::CEcho { data: vec![7; 4096] }).unwrap();
        }
        flooder.flush().await.unwrap();
        let (got, end) = drain_until_closed(&mut flooder).await;
        let (kick, served) = got.split_last().expect("the close notice at least");
        assert!(served.len() < 10, "the limit stopped it, {} echoes served", served.len());
        assert!(matches!(kick, ServerPacket::SKick(k) if k.reason == "byte rate limit exceeded"), "{kick:?}");
        assert!(test_support::is_close(&end), "{end:?}");
        // 1 KiB every 200 ms: about a quarter of the rate, for longer than the burst would last.
        for i in 0..10 {
            modest.send(&proto::CEcho { data: vec![i; 1024] }).await.unwrap();
            assert!(matches!(within("echo", modest.recv()).await.unwrap(), ServerPacket::SEcho(_)));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.metrics.closed(CloseKind::ByteRateLimited), 1);
    assert_eq!(report.metrics.closed(CloseKind::RateLimited), 0);
}

#[test]
fn one_players_burst_does_not_get_attentive_readers_cut_off() {
    const READERS: usize = 50;
    const CHATS: usize = 100;
    // The default queue limit (1 MiB), below what the burst puts in every reader's queue at once (~1.6 MB).
    let server = start(builder());
    let runtime = client_runtime();
    let counts = runtime.block_on(async {
        let mut readers = Vec::new();
        for _ in 0..READERS {
            let mut reader = connect(server.addr).await;
            reader.send(&proto::CPing { client_time: 0 }).await.unwrap();
            within("pong", reader.recv()).await.unwrap();
            readers.push(tokio::spawn(async move {
                let mut chats = 0;
                while chats < CHATS {
                    match within("every chat", reader.recv()).await {
                        Ok(ServerPacket::SChat(_)) => chats += 1,
                        Ok(_) => {}
                        Err(end) => panic!("an attentive reader was cut off after {chats} chats: {end:?}"),
                    }
                }
                chats
            }));
        }
        let (mut own, mut writer) = connect(server.addr).await.into_split();
        // The sender reads its own copies too: it is a reader of the room like the others.
        let own_copies = tokio::spawn(async move {
            let mut chats = 0;
            while chats < CHATS {
                if let ServerPacket::SChat(_) = within("own chats", own.recv()).await.expect("not cut off") {
                    chats += 1;
                }
            }
            chats
        });
        let line = "y".repeat(16_000);
        for _ in 0..CHATS {
            writer.queue(&proto::CChat { msg: line.clone() }).unwrap();
        }
        writer.flush().await.unwrap(); // ~1.6 MB in one write
        let mut counts = vec![within("own copies", own_copies).await.unwrap()];
        for reader in readers {
            counts.push(within("a reader", reader).await.unwrap());
        }
        drop(writer);
        counts
    });
    assert!(counts.iter().all(|&chats| chats == CHATS), "{counts:?}");
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.metrics.closed(CloseKind::SlowConsumer), 0);
    assert_eq!(report.metrics.queue_overflows, 0);
}
