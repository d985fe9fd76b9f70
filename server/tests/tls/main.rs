//! The demo over TLS (`--tls-cert`, `--tls-key`, `ServerBuilder::tls`), with certificates made at test time by a CA
//! of each test's own: a whole session, certificates refused, the handshake deadline, pending handshakes under
//! `max_connections`, a flood of stalled handshakes, wss, bad files, the log line of a failed handshake, and the
//! binary reloading its certificate on SIGHUP while its sessions stay up.
//!
//! Every wait is on an event (a packet, a close, a counter, a line the binary prints) under the 30 s guard.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use demo_protocol::proto::{CChat, CEcho, CPing};
use demo_protocol::{GameProtocol, ServerPacket};
use futures_util::{SinkExt, StreamExt};
use packet_runtime::ClientError;
use packet_runtime::transport::tls::{self as rt_tls, TlsConfig};
use server::ServerOptions;
use test_support::demo::{enter, log_in, server_packets};
use test_support::tls::{SERVER_NAME, TestCa, connect, try_connect};
use test_support::{TestServer, encode, expect, runtime, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

fn options(tls: TlsConfig) -> ServerOptions {
    ServerOptions {
        workers: 2,
        rate_limit: None,
        tls: Some(tls),
        ..ServerOptions::with_addr("127.0.0.1:0".parse().unwrap())
    }
}

fn start(options: &ServerOptions) -> TestServer<GameProtocol> {
    TestServer::started(options.start())
}

/// Reads from a socket until the server closes it (EOF or reset); what arrived before.
async fn until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match within("the server to close the socket", stream.read(&mut buf)).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn is_refused_certificate(error: &ClientError) -> bool {
    matches!(error, ClientError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData)
}

#[test]
fn a_whole_demo_session_runs_over_tls() {
    let ca = TestCa::new("session");
    let server = start(&options(ca.server_config()));
    let config = ca.client_config();
    runtime().block_on(async {
        let mut alice = connect::<GameProtocol>(server.addr, &config).await;
        let mut bob = connect::<GameProtocol>(server.addr, &config).await;
        let alice_id = log_in(&mut alice, "alice").await;
        let bob_id = log_in(&mut bob, "bob").await;
        assert!(enter(&mut alice, 1).await.is_empty());
        let listed = enter(&mut bob, 1).await;
        assert_eq!(listed.iter().map(|p| p.player_id).collect::<Vec<_>>(), [alice_id]);
        let spawn = expect!(&mut alice, SSpawn);
        assert_eq!(spawn.players[0].player_id, bob_id);

        alice.send(&CChat { msg: "over tls".into() }).await.unwrap();
        for client in [&mut alice, &mut bob] {
            let chat = expect!(client, SChat);
            assert_eq!((chat.player_id, chat.msg.as_str()), (alice_id, "over tls"));
        }
        // Answered on the IO thread, beside the TLS stream's own buffers.
        bob.send(&CEcho { data: vec![7u8; 10_000] }).await.unwrap();
        assert_eq!(expect!(&mut bob, SEcho).data.len(), 10_000);
        bob.send(&CPing { client_time: 42 }).await.unwrap();
        assert_eq!(expect!(&mut bob, SPong).client_time, 42);
    });
    let metrics = server.metrics();
    assert_eq!((metrics.connections_total, metrics.tls_handshake_failures), (2, 0), "{metrics:?}");
    server.stop();
}

#[test]
fn a_certificate_the_client_does_not_trust_is_refused_and_costs_no_session() {
    let ca = TestCa::new("trusted");
    let stranger = TestCa::new("stranger");
    let server = start(&options(ca.server_config()));
    runtime().block_on(async {
        let error = try_connect::<GameProtocol>(server.addr, &stranger.client_config()).await.unwrap_err();
        assert!(is_refused_certificate(&error), "an unknown issuer is refused: {error:?}");
        // The right CA, the wrong name: refused too.
        let wrong_name = packet_runtime::client::TlsClient::<GameProtocol>::connect_tls(
            server.addr,
            "elsewhere",
            ca.client_config(),
        );
        let error = within("a TLS connection", wrong_name).await.unwrap_err();
        assert!(is_refused_certificate(&error), "a certificate for another name is refused: {error:?}");
        // Clear text on a TLS port is no session either.
        let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        raw.write_all(&encode(&CPing { client_time: 1 })).await.unwrap();
        until_closed(&mut raw).await;

        server.until("three failed handshakes", |m| m.tls_handshake_failures == 3).await;
        // The server goes on serving whoever trusts it.
        let mut client = connect::<GameProtocol>(server.addr, &ca.client_config()).await;
        log_in(&mut client, "trusting").await;
    });
    let report = server.stop();
    assert_eq!(report.metrics.connections_total, 1, "only the trusting client became a session: {report:?}");
}

#[test]
fn a_handshake_that_stalls_is_closed_by_its_deadline() {
    let ca = TestCa::new("deadline");
    let server = start(&options(ca.server_config().handshake_timeout(Duration::from_millis(300))));
    runtime().block_on(async {
        let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        server.until("the handshake to begin", |m| m.handshakes_pending == 1).await;
        assert!(until_closed(&mut silent).await.is_empty(), "nothing is sent to a client that sent nothing");
        server.until("the stalled handshake counted as failed", |m| m.tls_handshake_failures == 1).await;
        assert_eq!(server.metrics().handshakes_pending, 0);
    });
    let report = server.stop();
    assert_eq!(report.metrics.connections_total, 0, "{report:?}");
}

#[test]
fn handshakes_in_progress_count_toward_max_connections() {
    let ca = TestCa::new("limit");
    let tls = ca.server_config().handshake_timeout(Duration::from_secs(1));
    let server = start(&ServerOptions { max_connections: Some(3), ..options(tls) });
    let config = ca.client_config();
    runtime().block_on(async {
        let mut player = connect::<GameProtocol>(server.addr, &config).await;
        log_in(&mut player, "player").await;
        let mut stalled = Vec::new();
        for _ in 0..2 {
            stalled.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
        }
        server.until("two handshakes pending", |m| m.handshakes_pending == 2).await;
        // One session and two handshakes fill the three places: the next connection is closed at once.
        let error = try_connect::<GameProtocol>(server.addr, &config).await.unwrap_err();
        assert!(!is_refused_certificate(&error), "closed, not refused for its certificate: {error:?}");
        assert_eq!(server.metrics().connections_rejected, 1);
        // The stalled ones pass their deadline and give their places back.
        for mut socket in stalled {
            until_closed(&mut socket).await;
        }
        server.until("the stalled handshakes gone", |m| m.handshakes_pending == 0).await;
        let mut late = connect::<GameProtocol>(server.addr, &config).await;
        log_in(&mut late, "late").await;
        player.send(&CPing { client_time: 5 }).await.unwrap();
        assert_eq!(expect!(&mut player, SPong).client_time, 5);
    });
    let report = server.stop();
    assert_eq!(report.metrics.connections_total, 2, "{report:?}");
}

#[test]
fn a_thousand_stalled_handshakes_do_not_stop_a_real_client() {
    const STALLED: usize = 1_000;
    let ca = TestCa::new("flood");
    let server = start(&options(ca.server_config()));
    runtime().block_on(async {
        let mut stalled = Vec::with_capacity(STALLED);
        for _ in 0..STALLED {
            stalled.push(within("connect", tokio::net::TcpStream::connect(server.addr)).await.unwrap());
        }
        server.until("every stalled handshake pending", |m| m.handshakes_pending == STALLED as u64).await;
        let mut client = connect::<GameProtocol>(server.addr, &ca.client_config()).await;
        log_in(&mut client, "real").await;
        enter(&mut client, 2).await;
        client.send(&CChat { msg: "still served".into() }).await.unwrap();
        assert_eq!(expect!(&mut client, SChat).msg, "still served");
        assert_eq!(server.metrics().handshakes_pending, STALLED as u64, "the stalled ones are still waiting");
        drop(stalled);
        server.until("the stalled handshakes gone", |m| m.handshakes_pending == 0).await;
    });
    let report = server.stop();
    assert_eq!(report.metrics.connections_total, 1, "{report:?}");
    assert_eq!(report.metrics.tls_handshake_failures, STALLED as u64, "each closed handshake is counted");
}

type Wss = tokio_tungstenite::WebSocketStream<rt_tls::client::TlsStream<tokio::net::TcpStream>>;

#[test]
fn wss_and_https_serve_the_game_and_the_page_over_tls() {
    let ca = TestCa::new("wss");
    let options = options(ca.server_config());
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web_addr = web.local_addr().unwrap();
    let server = TestServer::started(options.builder().start_with_websocket(
        options.game(),
        web,
        server::web::config(&[], None),
    ));
    let config = ca.client_config();
    let secure = async |addr: SocketAddr| {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        within("the TLS handshake", rt_tls::connect(tcp, SERVER_NAME, Arc::clone(&config))).await.unwrap()
    };
    runtime().block_on(async {
        let mut page = secure(web_addr).await;
        page.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut response = Vec::new();
        within("the page", page.read_to_end(&mut response)).await.unwrap();
        assert!(response.starts_with(b"HTTP/1.1 200 OK"), "{}", String::from_utf8_lossy(&response[..40]));

        let request = format!("wss://{SERVER_NAME}:{}/ws", web_addr.port());
        let (mut ws, _): (Wss, _) =
            within("the WebSocket upgrade", tokio_tungstenite::client_async(request, secure(web_addr).await))
                .await
                .unwrap();
        ws.send(Message::Binary(Bytes::from(encode(&CPing { client_time: 9 })))).await.unwrap();
        let pong = loop {
            match within("a message", ws.next()).await.unwrap().unwrap() {
                Message::Binary(data) => break server_packets(&data),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a binary message, got {other:?}"),
            }
        };
        assert!(matches!(&pong[..], [ServerPacket::SPong(p)] if p.client_time == 9), "{pong:?}");

        // Clear text on the wss port is refused like on the TCP one.
        let mut raw = tokio::net::TcpStream::connect(web_addr).await.unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        assert!(!until_closed(&mut raw).await.starts_with(b"HTTP"), "no page in clear text");
        server.until("the clear-text request counted", |m| m.tls_handshake_failures == 1).await;
        ws.close(None).await.unwrap();
    });
    server.stop();
}

#[test]
fn certificate_files_that_do_not_load_are_named_in_the_error() {
    let ca = TestCa::new("files");
    let other = TestCa::new("other");
    let good = ca.server_files("good");
    let foreign = other.server_files("foreign");
    let empty = ca.dir().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = ca.dir().join("missing.pem");
    let cases = [
        (&missing, &good.key, &missing, "cannot read"),
        (&empty, &good.key, &empty, "no PEM certificate"),
        (&good.cert, &empty, &empty, "no PEM private key"),
        (&good.cert, &good.cert, &good.cert, "no PEM private key"),
        (&good.cert, &foreign.key, &foreign.key, "key"),
    ];
    for (cert, key, named, says) in cases {
        let error = TlsConfig::from_pem_files(cert, key).unwrap_err().to_string();
        assert!(error.contains(&named.display().to_string()), "{cert:?} {key:?}: names {named:?}: {error}");
        assert!(error.contains(says), "{cert:?} {key:?}: says {says:?}: {error}");
    }
    // The binary refuses them before it starts, with the same words and status 2.
    let output = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(&good.cert)
        .arg("--tls-key")
        .arg(&foreign.key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&foreign.key.display().to_string()), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening on"));
}

/// The server binary, and its standard output read line by line on a thread (so that a hang fails the test).
struct Binary {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Its standard error (the log), line by line.
    log: mpsc::Receiver<String>,
}

/// Sends every line of `input` to the returned channel, from a thread of its own.
fn lines_of(input: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(input).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Binary {
    fn start(args: &[&str], files: &test_support::tls::PemFiles) -> (Binary, SocketAddr) {
        Binary::start_logging(args, files, "warn")
    }

    fn start_logging(args: &[&str], files: &test_support::tls::PemFiles, log: &str) -> (Binary, SocketAddr) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["--addr", "127.0.0.1:0", "--workers", "1", "--tls-cert"])
            .arg(&files.cert)
            .arg("--tls-key")
            .arg(&files.key)
            .args(args)
            .env("RUST_LOG", log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let lines = lines_of(stdout);
        let log = lines_of(child.stderr.take().unwrap());
        let mut binary = Binary { child, lines, log };
        let addr = binary.line_after("listening on ").parse().unwrap();
        (binary, addr)
    }

    /// The rest of the next line starting with `prefix` (earlier lines are skipped).
    fn line_after(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(test_support::GUARD) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(error) => {
                    let _ = self.child.kill();
                    panic!("no line starting with {prefix:?}: {error}");
                }
            }
        }
    }

    /// The next log line that contains every one of `words` (earlier lines are skipped).
    fn logged(&mut self, words: &[&str]) -> String {
        loop {
            match self.log.recv_timeout(test_support::GUARD) {
                Ok(line) if words.iter().all(|w| line.contains(w)) => return line,
                Ok(_) => {}
                Err(error) => {
                    let _ = self.child.kill();
                    panic!("no log line with {words:?}: {error}");
                }
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([name, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_binary_reloads_its_certificate_on_sighup_and_keeps_its_sessions() {
    let old_ca = TestCa::new("old");
    let new_ca = TestCa::new("new");
    let files = old_ca.server_files("server");
    let (mut binary, addr) = Binary::start(&["--idle-timeout", "0"], &files);
    let (old_trust, new_trust) = (old_ca.client_config(), new_ca.client_config());
    runtime().block_on(async {
        let mut early = connect::<GameProtocol>(addr, &old_trust).await;
        let early_id = log_in(&mut early, "early").await;
        enter(&mut early, 1).await;
        let error = try_connect::<GameProtocol>(addr, &new_trust).await.unwrap_err();
        assert!(is_refused_certificate(&error), "{error:?}");

        // The operator puts a certificate of another CA in place and sends SIGHUP.
        let renewed = new_ca.server_files("renewed");
        std::fs::copy(&renewed.cert, &files.cert).unwrap();
        std::fs::copy(&renewed.key, &files.key).unwrap();
        binary.signal("-HUP");
        assert_eq!(binary.line_after("tls "), "certificate reloaded");
        let mut late = connect::<GameProtocol>(addr, &new_trust).await;
        log_in(&mut late, "late").await;
        // A fresh client of the old CA (`old_trust` holds a session it could resume without any certificate).
        let error = try_connect::<GameProtocol>(addr, &old_ca.client_config()).await.unwrap_err();
        assert!(is_refused_certificate(&error), "handshakes present the new certificate: {error:?}");

        // A broken key on the next reload: the server says why and keeps the certificate it has.
        std::fs::write(&files.key, "not a key").unwrap();
        binary.signal("-HUP");
        let failed = binary.line_after("tls ");
        assert!(failed.starts_with("reload failed: ") && failed.contains(&files.key.display().to_string()), "{failed}");
        let mut later = connect::<GameProtocol>(addr, &new_trust).await;
        log_in(&mut later, "later").await;

        // The session from before the first reload is still up, on its old certificate.
        early.send(&CChat { msg: "still here".into() }).await.unwrap();
        let chat = expect!(&mut early, SChat);
        assert_eq!((chat.player_id, chat.msg.as_str()), (early_id, "still here"));
    });
    binary.signal("-TERM");
    assert_eq!(binary.line_after("shutdown "), "complete");
    let status = binary.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_failed_handshake_is_logged_with_the_peer_address() {
    let ca = TestCa::new("log");
    let files = ca.server_files("server");
    let (mut binary, addr) = Binary::start_logging(&[], &files, "warn,packet_runtime=debug");
    let peer = runtime().block_on(async {
        let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        until_closed(&mut raw).await;
        raw.local_addr().unwrap()
    });
    let line = binary.logged(&["TLS handshake failed", &peer.to_string()]);
    assert!(line.contains("DEBUG"), "{line}");
    binary.signal("-TERM");
    assert_eq!(binary.line_after("shutdown "), "complete");
}
