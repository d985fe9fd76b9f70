//! The ordered shutdown: under load, on signals, and when the handle is dropped without `join`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use packet_runtime::CloseKind;
use tests::game::ServerPacket;
use tests::proto;

use crate::support::*;

#[test]
fn shutdown_under_load_flushes_goodbyes_and_reports_zero_outstanding() {
    const CLIENTS: usize = 300;
    let server = start(builder().max_connections(Some(10_000)));
    let runtime = client_runtime();
    let (goodbyes_tx, goodbyes) = mpsc::channel();
    let mut started = Vec::new();
    for i in 0..CLIENTS {
        let addr = server.addr;
        let goodbyes_tx = goodbyes_tx.clone();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        started.push(ready);
        runtime.spawn(async move {
            let client = connect(addr).await;
            let (mut reader, mut writer) = client.into_split();
            let _ = ready_tx.send(());
            let chatter = tokio::spawn(async move {
                for n in 0u64.. {
                    let sent = if n % 10 == 0 {
                        writer.send(&proto::CChat { msg: format!("{i}:{n}") }).await
                    } else {
                        writer.send(&proto::CEcho { data: n.to_le_bytes().to_vec() }).await
                    };
                    if sent.is_err() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            });
            let mut goodbye = false;
            while let Ok(packet) = reader.recv().await {
                goodbye |= matches!(packet, ServerPacket::SKick(ref k) if k.reason == "server shutting down");
            }
            chatter.abort();
            let _ = goodbyes_tx.send(goodbye);
        });
    }
    drop(goodbyes_tx);
    runtime.block_on(async {
        for ready in started {
            within("client connected", ready).await.unwrap();
        }
        // Wait until every connection is a session and real traffic flows before pulling the plug.
        while server.handle.metrics().connections_total < CLIENTS as u64
            || server.handle.metrics().frames_in < 5 * CLIENTS as u64
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    server.handle.shutdown();
    let report = join_within(server.handle, Duration::from_secs(60), "shutdown completes under load");
    assert_eq!(report.sessions_closed, CLIENTS as u64);
    assert_eq!(report.pool_outstanding, 0, "{report:?}");
    assert!(!report.logic_thread_panicked);
    let journal = server.journal.lock().unwrap();
    assert!(journal.shutdown_called);
    assert_eq!(journal.disconnected.len(), CLIENTS);
    let got_goodbye = goodbyes.iter().filter(|g| *g).count();
    assert_eq!(got_goodbye, CLIENTS, "every client saw the goodbye broadcast from on_shutdown");
    assert!(report.metrics.closed(CloseKind::ServerShutdown) > 0);
}

#[test]
fn dropping_the_handle_inside_an_async_context_neither_blocks_nor_panics() {
    let server = start(builder());
    let addr = server.addr;
    let journal = server.journal.clone();
    client_runtime().block_on(async move {
        let mut client = connect(addr).await;
        client.send(&proto::CPing { client_time: 1 }).await.unwrap();
        within("pong", client.recv()).await.unwrap();
        drop(server.handle); // inside an async context: must not panic or block
        let (got, _) = drain_until_closed(&mut client).await;
        assert!(got.iter().all(|p| matches!(p, ServerPacket::SKick(_))), "{got:?}");
    });
    // The background shutdown runs every on_disconnect.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while journal.lock().unwrap().disconnected.is_empty() {
        assert!(std::time::Instant::now() < deadline, "background shutdown never finished");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_to_a_server_process_shuts_it_down_and_exits_zero() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signal-server"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the server binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").unwrap();
    let addr: std::net::SocketAddr = first.strip_prefix("listening on ").expect("listening line").parse().unwrap();
    client_runtime().block_on(async {
        let mut client = connect(addr).await;
        client.send(&proto::CPing { client_time: 9 }).await.unwrap();
        within("pong", client.recv()).await.unwrap();
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        // The server closes us as part of its shutdown.
        drain_until_closed(&mut client).await;
    });
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}, output {rest:?}");
    assert!(rest.iter().any(|l| l == "pool outstanding: 0"), "{rest:?}");
    assert!(rest.iter().any(|l| l == "sessions closed: 1"), "{rest:?}");
}

#[test]
fn a_second_signal_exits_at_once_while_shutdown_hangs() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signal-server"))
        .env("SIGNAL_SERVER_HANG_ON_SHUTDOWN", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("listening on "));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    // The first signal is in progress when the hang is reported; the second must end the process.
    assert_eq!(lines.next().unwrap().unwrap(), "on_shutdown: hanging");
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
}

/// Fills a session that never reads: another client chats large messages until the server holds a backlog for the
/// silent one (its socket buffers full, frames still queued). Returns both clients so they stay connected.
async fn silent_session_with_a_backlog(
    server: &TestServer,
) -> (packet_runtime::Client<tests::game::GameProtocol>, TestClient) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let silent = packet_runtime::Client::new(socket.connect(server.addr).await.unwrap());
    let mut talker = connect(server.addr).await;
    let big = "y".repeat(8 * 1024);
    let mut received = 0u64;
    // The talker reads its own copies (it is a room member too), so only the silent session backs up. Each chat is
    // written twice when both read; stop once the silent session is at least 64 frames (a write batch) behind.
    while server.handle.metrics().frames_out + 64 > received * 2 || received < 64 {
        talker.send(&proto::CChat { msg: big.clone() }).await.unwrap();
        within("own chat", talker.recv()).await.unwrap();
        received += 1;
        assert!(received < 10_000, "the silent session never backed up");
    }
    (silent, talker)
}

#[test]
fn close_flush_timeout_ends_a_session_that_cannot_be_flushed() {
    let server =
        start(builder().close_flush_timeout(Duration::from_millis(300)).shutdown_timeout(Duration::from_secs(60)));
    let runtime = client_runtime();
    let _clients = runtime.block_on(silent_session_with_a_backlog(&server));
    server.handle.shutdown();
    let report = join_within(server.handle, Duration::from_secs(30), "the flush deadline ends the stuck session");
    assert_eq!(report.sessions_closed, 2);
    assert!(report.frames_dropped > 0, "the silent session's backlog was dropped at the deadline: {report:?}");
    assert_eq!(report.pool_outstanding, 0);
}

#[test]
fn shutdown_timeout_runs_on_disconnect_for_sessions_that_never_finish_closing() {
    // The flush deadline is far away, so only the shutdown timeout can end the stuck session.
    let server =
        start(builder().close_flush_timeout(Duration::from_secs(120)).shutdown_timeout(Duration::from_millis(300)));
    let runtime = client_runtime();
    let _clients = runtime.block_on(silent_session_with_a_backlog(&server));
    server.handle.shutdown();
    let report = join_within(server.handle, Duration::from_secs(30), "the shutdown timeout ends the wait");
    assert_eq!(report.sessions_closed, 2, "on_disconnect ran for every session, the stuck one included");
    assert_eq!(report.pool_outstanding, 0, "the IO runtime's shutdown dropped the stuck driver and its frames");
    let journal = server.journal.lock().unwrap();
    assert_eq!(journal.disconnected.len(), 2);
    assert!(journal.disconnected.iter().all(|(_, reason)| *reason == packet_runtime::CloseReason::ServerShutdown));
}

#[test]
fn shutdown_ends_the_linger_of_clients_that_read_everything_without_waiting_for_the_flush_deadline() {
    // Clients that read everything but never close their end: each session's linger (half-closed, waiting for the
    // peer's end of stream) ends as soon as the peer has acknowledged all we sent, not at the 30 s deadline.
    const CLIENTS: usize = 300;
    let server =
        start(builder().close_flush_timeout(Duration::from_secs(30)).shutdown_timeout(Duration::from_secs(60)));
    let runtime = client_runtime();
    let (goodbyes_tx, goodbyes) = mpsc::channel();
    let (release_tx, release) = tokio::sync::watch::channel(false);
    runtime.block_on(async {
        for _ in 0..CLIENTS {
            let mut client = connect(server.addr).await;
            client.send(&proto::CPing { client_time: 1 }).await.unwrap();
            within("pong", client.recv()).await.unwrap();
            let goodbyes_tx = goodbyes_tx.clone();
            let mut release = release.clone();
            tokio::spawn(async move {
                let (got, end) = drain_until_closed(&mut client).await;
                let goodbye = matches!(got.last(), Some(ServerPacket::SKick(k)) if k.reason == "server shutting down");
                let _ = goodbyes_tx.send((goodbye, test_support::is_close(&end)));
                // Read everything, saw the end, and still does not close: kept open until the test is done.
                let _ = release.wait_for(|done| *done).await;
                drop(client);
            });
        }
    });
    drop(goodbyes_tx);
    server.handle.shutdown();
    // The hang guard, well under the 30 s deadline: the join fails the test if shutdown waits for it.
    let report = join_within(server.handle, Duration::from_secs(20), "shutdown waited for the flush deadline");
    let ends: Vec<_> = (0..CLIENTS)
        .map(|_| goodbyes.recv_timeout(test_support::GUARD).expect("timed out waiting for a client's goodbye"))
        .collect();
    let _ = release_tx.send(true);
    assert!(ends.iter().all(|&(goodbye, closed)| goodbye && closed), "every client got its goodbye, then the end");
    assert_eq!(report.sessions_closed, CLIENTS as u64);
    assert_eq!(report.metrics.closed(CloseKind::ServerShutdown), CLIENTS as u64);
    assert_eq!(report.pool_outstanding, 0);
}
