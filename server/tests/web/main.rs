//! The demo over WebSocket (`--web`), as a browser would use it: the same frames as TCP in binary messages, the
//! same game, the same limits, the close notice for what the transport refuses, and the page over plain HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use demo_protocol::proto::{CChat, CEcho, CEnterRoom, CLogin, CPing};
use demo_protocol::{GameProtocol, ServerPacket};
use futures_util::{SinkExt, StreamExt};
use packet_runtime::Packet;
use server::ServerOptions;
use test_support::demo::{enter, login, server_packets};
use test_support::{TestServer, encode, expect, frame, runtime, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A server with TCP on one port and `--web` on another, as the binary builds it.
fn start(options: &ServerOptions, origins: &[String]) -> (TestServer<GameProtocol>, SocketAddr) {
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web_addr = web.local_addr().unwrap();
    let handle = options.builder().start_with_websocket(options.game(), web, server::web::config(origins, None));
    (TestServer::started(handle), web_addr)
}

fn options() -> ServerOptions {
    ServerOptions { workers: 2, rate_limit: None, ..ServerOptions::with_addr("127.0.0.1:0".parse().unwrap()) }
}

async fn ws_connect(addr: SocketAddr, origin: Option<&str>) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!("ws://{addr}/ws"))
            .unwrap();
    if let Some(origin) = origin {
        request.headers_mut().insert("Origin", origin.parse().unwrap());
    }
    within("the WebSocket handshake", tokio_tungstenite::client_async(request, stream)).await.map(|(ws, _)| ws)
}

/// Every frame of the next binary message, decoded.
async fn packets(ws: &mut Ws) -> Vec<ServerPacket> {
    loop {
        match within("a message", ws.next()).await.expect("a message").expect("not an error") {
            Message::Binary(data) => return server_packets(&data),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
}

/// The next packet, over as many messages as it takes.
async fn next(ws: &mut Ws, pending: &mut Vec<ServerPacket>) -> ServerPacket {
    while pending.is_empty() {
        *pending = packets(ws).await;
        pending.reverse();
    }
    pending.pop().unwrap()
}

/// Reads until the server closes; the notice it sent last, if any.
async fn kicked(ws: &mut Ws) -> String {
    let mut reason = None;
    loop {
        match within("the server to close", ws.next()).await {
            Some(Ok(Message::Binary(data))) => {
                for packet in server_packets(&data) {
                    if let ServerPacket::SKick(kick) = packet {
                        reason = Some(kick.reason);
                    }
                }
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
    reason.expect("a close notice before the close")
}

#[test]
fn a_browser_plays_with_a_tcp_client_in_one_room_with_several_frames_per_message() {
    let (server, web) = start(&options(), &[]);
    runtime().block_on(async {
        let mut ws = ws_connect(web, None).await.expect("upgrades");
        let mut pending = Vec::new();
        ws.send(Message::Binary(encode(&CLogin { name: "browser".into(), ..Default::default() }).into()))
            .await
            .unwrap();
        let ServerPacket::SLogin(login_reply) = next(&mut ws, &mut pending).await else { panic!("S_LOGIN") };
        assert!(login_reply.success);
        // Two frames in one message: both answered.
        let mut two = encode(&CPing { client_time: 5 });
        two.extend(encode(&CEcho { data: b"hi".to_vec() }));
        ws.send(Message::Binary(two.into())).await.unwrap();
        let mut replies = vec![next(&mut ws, &mut pending).await, next(&mut ws, &mut pending).await];
        replies.sort_by_key(|p| matches!(p, ServerPacket::SEcho(_)));
        assert!(matches!(&replies[0], ServerPacket::SPong(p) if p.client_time == 5), "{replies:?}");
        assert!(matches!(&replies[1], ServerPacket::SEcho(e) if e.data == b"hi"), "{replies:?}");

        ws.send(Message::Binary(encode(&CEnterRoom { room_id: 3 }).into())).await.unwrap();
        assert!(matches!(next(&mut ws, &mut pending).await, ServerPacket::SEnterRoom(e) if e.success));
        let (mut native, native_id) = login(server.addr, "native").await;
        enter(&mut native, 3).await;
        assert!(matches!(next(&mut ws, &mut pending).await, ServerPacket::SSpawn(_)));
        native.send(&CChat { msg: "hello browser".into() }).await.unwrap();
        match next(&mut ws, &mut pending).await {
            ServerPacket::SChat(chat) => assert_eq!((chat.player_id, chat.msg.as_str()), (native_id, "hello browser")),
            other => panic!("expected the chat, got {other:?}"),
        }
        let own = expect!(&mut native, SChat);
        assert_eq!(own.msg, "hello browser", "a room chat reaches its sender too");
        ws.send(Message::Binary(encode(&CChat { msg: "hello native".into() }).into())).await.unwrap();
        let chat = expect!(&mut native, SChat);
        assert_eq!((chat.player_id, chat.msg.as_str()), (login_reply.player_id, "hello native"));
        ws.close(None).await.unwrap();
    });
    server.stop();
}

#[test]
fn what_the_transport_refuses_gets_the_close_notice() {
    let (server, web) = start(&options(), &[]);
    runtime().block_on(async {
        let mut text = ws_connect(web, None).await.unwrap();
        text.send(Message::text("hello")).await.unwrap();
        assert_eq!(kicked(&mut text).await, "bad frame: a text message (frames travel in binary messages)");

        let mut split = ws_connect(web, None).await.unwrap();
        let login = encode(&CLogin { name: "halves".into(), ..Default::default() });
        split.send(Message::Binary(Bytes::copy_from_slice(&login[..5]))).await.unwrap();
        split.send(Message::Binary(Bytes::copy_from_slice(&login[5..]))).await.unwrap();
        assert_eq!(
            kicked(&mut split).await,
            "bad frame: a message ending inside a frame (each message carries whole frames)"
        );

        let mut large = ws_connect(web, None).await.unwrap();
        let big = frame(CChat::ID, &vec![b'x'; 20_000]);
        large.send(Message::Binary(big.into())).await.unwrap();
        assert_eq!(kicked(&mut large).await, "frame of 20004 bytes over the 16384 limit");
    });
    let report = server.stop();
    assert_eq!(report.metrics.connections_total, 3);
}

#[test]
fn the_rate_limit_holds_over_websocket_too() {
    let (server, web) = start(&ServerOptions { rate_limit: Some(100), ..options() }, &[]);
    runtime().block_on(async {
        let mut ws = ws_connect(web, None).await.unwrap();
        let mut burst = Vec::new();
        for i in 0..400 {
            burst.extend(encode(&CPing { client_time: i }));
        }
        ws.send(Message::Binary(burst.into())).await.unwrap();
        assert_eq!(kicked(&mut ws).await, "more than 100 packets/s");
    });
    server.stop();
}

/// A plain HTTP GET on the web address; the status line and body.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = String::new();
    within("the HTTP response", stream.read_to_string(&mut response)).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[test]
fn the_web_address_serves_the_page_and_refuses_other_origins_when_told() {
    let allowed = vec!["https://game.example".to_owned()];
    let (server, web) = start(&options(), &allowed);
    runtime().block_on(async {
        let (status, body) = get(web, "/").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body.as_bytes(), &server::web::pages()[0].body[..], "the embedded page");
        assert_eq!(get(web, "/nothing-here").await.0, "HTTP/1.1 404 Not Found");
        match ws_connect(web, Some("https://evil.example")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
            other => panic!("expected a 403, got {other:?}"),
        }
        let mut ws = ws_connect(web, Some("https://game.example")).await.expect("the allowed origin upgrades");
        ws.send(Message::Binary(encode(&CPing { client_time: 1 }).into())).await.unwrap();
        assert!(matches!(packets(&mut ws).await[..], [ServerPacket::SPong(_)]));
    });
    server.stop();
}

#[test]
fn a_socket_that_never_finishes_its_handshake_is_closed_by_the_deadline_and_holds_up_no_one() {
    use packet_runtime::transport::Listener;
    use packet_runtime::transport::websocket::{WebSocketConfig, WebSocketListener};
    let rt = runtime();
    rt.block_on(async {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let config = WebSocketConfig { handshake_timeout: Duration::from_millis(500), ..WebSocketConfig::default() };
        let mut listener = WebSocketListener::new(std_listener, config).unwrap();
        // Ten sockets that send nothing.
        let mut silent = Vec::new();
        for _ in 0..10 {
            silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // A real client upgrades meanwhile: the accept loop is not held up by them.
        let client = tokio::spawn(ws_connect(addr, None));
        let (_stream, peer) = within("the real client's session", listener.accept()).await.unwrap();
        assert!(matches!(peer, packet_runtime::PeerAddr::WebSocket(_)), "{peer:?}");
        client.await.unwrap().expect("the real client upgraded");
        // The silent ones are closed by the deadline.
        let started = std::time::Instant::now();
        for mut socket in silent {
            let mut buf = [0u8; 16];
            assert_eq!(within("the deadline to close a silent socket", socket.read(&mut buf)).await.unwrap(), 0);
        }
        println!("silent sockets closed {:?} after the 500 ms deadline's start", started.elapsed());
    });
}

#[test]
fn an_idle_browser_is_told_and_closed_like_a_tcp_client() {
    let options = ServerOptions { idle_timeout: Some(Duration::from_millis(300)), ..options() };
    let (server, web) = start(&options, &[]);
    runtime().block_on(async {
        let mut ws = ws_connect(web, None).await.unwrap();
        assert_eq!(kicked(&mut ws).await, "idle for 300 ms");
    });
    server.stop();
}

#[test]
fn a_browser_that_does_not_read_is_cut_off_as_a_slow_consumer_and_no_one_else_is() {
    use packet_runtime::CloseKind;
    let options = ServerOptions { send_queue_limit: 64 * 1024, ..options() };
    let (server, web) = start(&options, &[]);
    runtime().block_on(async {
        let mut ws = ws_connect(web, None).await.unwrap();
        ws.send(Message::Binary(encode(&CLogin { name: "sleeper".into(), ..Default::default() }).into()))
            .await
            .unwrap();
        ws.send(Message::Binary(encode(&CEnterRoom { room_id: 8 }).into())).await.unwrap();
        let (mut chatter, chatter_id) = login(server.addr, "chatter").await;
        enter(&mut chatter, 8).await;
        // The sleeper never reads again; the chatter floods the room until the sleeper is cut off, reading its own
        // chat back before each next one, so that its queue stays empty however loaded the machine is. How much
        // the kernel's buffers absorb before the sleeper's queue grows (the receiver's autotunes to megabytes on
        // loopback) depends on the machine, so there is no fixed count; the 30 s guard covers the loop.
        let line = "z".repeat(250);
        within("the flood to cut the sleeper off", async {
            while server.metrics().closed(CloseKind::SlowConsumer) == 0 {
                chatter.send(&CChat { msg: line.clone() }).await.unwrap();
                loop {
                    match chatter.recv().await.unwrap() {
                        ServerPacket::SChat(chat) if chat.player_id == chatter_id => break,
                        _ => {}
                    }
                }
            }
        })
        .await;
        server.until("the sleeper cut off as a slow consumer", |m| m.closed(CloseKind::SlowConsumer) == 1).await;
        assert_eq!(server.metrics().connections_open, 1, "the chatter is still connected");
        drop(ws);
    });
    server.stop();
}

/// `--dev-tokens`: the web listener answers `/dev-token?name=NAME` with a token the server's check accepts; without
/// it the path is a 404 (what the browser demo takes as "no token needed").
#[test]
fn the_development_endpoint_mints_tokens_only_when_asked_to() {
    let key = demo_protocol::token::TokenKey::new(b"the web suite's secret").unwrap();
    let options = ServerOptions { auth: Some(key.clone()), ..options() };
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web_addr = web.local_addr().unwrap();
    let handle =
        options.builder().start_with_websocket(options.game(), web, server::web::config(&[], Some(key.clone())));
    let server = TestServer::started(handle);
    let (plain, plain_web) = start(&options, &[]);
    runtime().block_on(async {
        let (status, token) = http_get(web_addr, "/dev-token?name=al%C3%A9").await;
        assert_eq!(status, 200);
        assert_eq!(key.verify("alé", &token), Ok(()), "{token}");
        // The token logs in over the WebSocket, like the browser demo does.
        let mut ws = ws_connect(web_addr, None).await.unwrap();
        ws.send(Message::Binary(encode(&CLogin { name: "alé".into(), token }).into())).await.unwrap();
        let reply = within("the login", ws.next()).await.unwrap().unwrap();
        assert!(matches!(server_packets(&reply.into_data())[..], [ServerPacket::SLogin(ref l)] if l.success));
        let (status, _) = http_get(plain_web, "/dev-token?name=alice").await;
        assert_eq!(status, 404);
    });
    server.stop();
    plain.stop();
}

/// A plain HTTP GET: the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    within("the HTTP response", stream.read_to_string(&mut response)).await.unwrap();
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}
