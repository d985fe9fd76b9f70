//! The demo server's load over its transports, side by side: `web_bench` (TCP and WebSocket) and `tls_bench` (those
//! and TLS, wss) are this, with another list of transports.
//!
//! Starts `target/release/server --rate-limit 0 --workers 1` with `--web`, in clear text, and, when a transport asks
//! for it, a second one with `--tls-cert`/`--tls-key` (a certificate made at start by a private CA, ECDSA P-256).
//! Per round and transport it runs `CLIENTS` clients for `SECONDS`: echo (each keeps `WINDOW` 32-byte `C_ECHO` in
//! flight) and chat (rooms of `ROOM`, `WINDOW` chats in flight per client, a chat counting once per recipient).
//! Prints per transport the medians of messages (or deliveries) per second and the CPU per message of the server
//! that served them, which is what the transport costs the server; the load generator's own CPU is printed too (it
//! shares the 2 CPUs). Handshakes happen before the measured window: this is the cost of a session's traffic, not of
//! connecting.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use demo_protocol::proto::{CChat, CEcho, CEnterRoom, CLogin};
use futures_util::{SinkExt, StreamExt};
use packet_runtime::transport::tls::{self, ClientConfig};
use packet_runtime::{Packet, PacketPtr};
use test_support::tls::{SERVER_NAME, TestCa};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::window::{self, Load, Run};

const CLIENTS: usize = 100;
const ROOM: usize = 50;
const WINDOW: usize = 8;

/// How the clients reach the server.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Transport {
    /// Frames on TCP.
    Tcp,
    /// Frames on TLS over TCP (`--tls-cert`).
    Tls,
    /// Binary WebSocket messages (`--web`).
    Ws,
    /// Binary WebSocket messages over TLS (`--web` with `--tls-cert`).
    Wss,
}

impl Transport {
    /// Every transport, in the order `tls_bench` runs them.
    pub const ALL: [Transport; 4] = [Transport::Tcp, Transport::Tls, Transport::Ws, Transport::Wss];

    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "websocket",
            Transport::Wss => "wss",
        }
    }

    fn secure(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection that sends frames and yields the ids of frames received.
enum Conn {
    Stream(Pin<Box<dyn Io>>, Vec<u8>),
    Ws(Box<tokio_tungstenite::WebSocketStream<Pin<Box<dyn Io>>>>),
}

/// Where the servers listen: (TCP, web) in clear text, then with TLS (the clear-text ones when none runs).
#[derive(Clone, Copy)]
struct Addrs {
    plain: (SocketAddr, SocketAddr),
    secure: (SocketAddr, SocketAddr),
}

impl Conn {
    async fn open(transport: Transport, addrs: Addrs, config: &Arc<ClientConfig>) -> Conn {
        let (tcp, web) = if transport.secure() { addrs.secure } else { addrs.plain };
        let target = if matches!(transport, Transport::Tcp | Transport::Tls) { tcp } else { web };
        let stream = tokio::net::TcpStream::connect(target).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let stream: Pin<Box<dyn Io>> = if transport.secure() {
            Box::pin(tls::connect(stream, SERVER_NAME, Arc::clone(config)).await.unwrap())
        } else {
            Box::pin(stream)
        };
        match transport {
            Transport::Tcp | Transport::Tls => Conn::Stream(stream, Vec::new()),
            Transport::Ws | Transport::Wss => {
                let scheme = if transport.secure() { "wss" } else { "ws" };
                let url = format!("{scheme}://{SERVER_NAME}:{}/ws", web.port());
                let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
                Conn::Ws(Box::new(ws))
            }
        }
    }

    async fn send<P: Packet>(&mut self, packet: &P) {
        let frame = PacketPtr::encode(packet).unwrap();
        match self {
            Conn::Stream(stream, _) => stream.write_all(frame.as_slice()).await.unwrap(),
            Conn::Ws(ws) => ws.send(Message::Binary(bytes::Bytes::copy_from_slice(frame.as_slice()))).await.unwrap(),
        }
    }

    /// Ids of the frames of the next read (a stream) or message (WebSocket).
    async fn recv(&mut self, ids: &mut Vec<u16>) -> bool {
        ids.clear();
        match self {
            Conn::Stream(stream, buf) => {
                let mut chunk = [0u8; 16384];
                let n = match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                let mut at = 0;
                while buf.len() - at >= 4 {
                    let size = u16::from_le_bytes([buf[at], buf[at + 1]]) as usize;
                    if buf.len() - at < size {
                        break;
                    }
                    ids.push(u16::from_le_bytes([buf[at + 2], buf[at + 3]]));
                    at += size;
                }
                buf.drain(..at);
                true
            }
            Conn::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(data))) => {
                        let mut at = 0;
                        while at + 4 <= data.len() {
                            let size = u16::from_le_bytes([data[at], data[at + 1]]) as usize;
                            ids.push(u16::from_le_bytes([data[at + 2], data[at + 3]]));
                            at += size;
                        }
                        return true;
                    }
                    Some(Ok(_)) => continue,
                    _ => return false,
                }
            },
        }
    }
}

/// One client's load: `WINDOW` requests in flight, a new one for each of its own answers; counts what arrives.
async fn client(transport: Transport, addrs: Addrs, config: Arc<ClientConfig>, index: usize, chat: bool, load: Load) {
    let mut conn = Conn::open(transport, addrs, &config).await;
    let mut ids = Vec::new();
    if chat {
        conn.send(&CLogin { name: format!("b{index}"), ..Default::default() }).await;
        conn.send(&CEnterRoom { room_id: (index / ROOM) as u32 + 1 }).await;
        // Until our own room entry is answered.
        'entered: while conn.recv(&mut ids).await {
            if ids.contains(&demo_protocol::proto::SEnterRoom::ID) {
                break 'entered;
            }
        }
    }
    load.ready.wait().await;
    let payload = vec![7u8; 32];
    for _ in 0..WINDOW {
        if chat {
            conn.send(&CChat { msg: "x".repeat(32) }).await;
        } else {
            conn.send(&CEcho { data: payload.clone() }).await;
        }
    }
    let mine = if chat { demo_protocol::proto::SChat::ID } else { demo_protocol::proto::SEcho::ID };
    while !load.stop.load(Ordering::Relaxed) && conn.recv(&mut ids).await {
        let got = ids.iter().filter(|&&id| id == mine).count();
        load.counted.fetch_add(got as u64, Ordering::Relaxed);
        // Echo: every answer is ours. Chat: a room's chats reach everyone; keep our window by sending one per
        // ROOM chats received (on average one of ours).
        let refill = if chat { got / ROOM + usize::from(got % ROOM > index % ROOM) } else { got };
        for _ in 0..refill {
            if chat {
                conn.send(&CChat { msg: "x".repeat(32) }).await;
            } else {
                conn.send(&CEcho { data: payload.clone() }).await;
            }
        }
    }
}

/// Starts the demo server with `extra` flags; its (TCP, web) addresses.
fn server(extra: &[&std::ffi::OsStr]) -> (Child, (SocketAddr, SocketAddr)) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut server = Command::new(root.join("target/release/server"))
        .args(["--addr", "127.0.0.1:0", "--web", "127.0.0.1:0", "--rate-limit", "0", "--workers", "1"])
        .args(["--max-connections", "0", "--tick-ms", "0"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("target/release/server (cargo build --release -p server)");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let (mut tcp, mut web) = (None, None);
    while web.is_none() {
        let line = lines.next().expect("the server's `listening on` lines").unwrap();
        tcp = tcp.or(line.strip_prefix("listening on ").and_then(|a| a.parse::<SocketAddr>().ok()));
        web = line.strip_prefix("web listening on ").and_then(|a| a.parse::<SocketAddr>().ok());
    }
    (server, (tcp.unwrap(), web.unwrap()))
}

/// Runs echo then chat over each of `transports`, `rounds` times alternating, `seconds` a window; prints every
/// window and the medians.
pub fn compare(transports: &[Transport], rounds: usize, seconds: u64) {
    let ca = TestCa::new("transports-bench");
    let config = ca.client_config();
    let (plain, plain_addrs) = server(&[]);
    let mut children = vec![plain];
    let mut addrs = Addrs { plain: plain_addrs, secure: plain_addrs };
    if transports.iter().any(|t| t.secure()) {
        let files = ca.server_files("server");
        let (secure, secure_addrs) =
            server(&["--tls-cert".as_ref(), files.cert.as_os_str(), "--tls-key".as_ref(), files.key.as_os_str()]);
        children.push(secure);
        addrs.secure = secure_addrs;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let contenders: Vec<(&str, bool, Transport)> = [("echo", false), ("chat", true)]
        .into_iter()
        .flat_map(|(load, chat)| transports.iter().map(move |&t| (load, chat, t)))
        .collect();
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); contenders.len()];
    for round in 0..rounds {
        for (slot, &(load, chat, transport)) in contenders.iter().enumerate() {
            let pid = children[usize::from(transport.secure())].id();
            let first = (round * contenders.len() + slot) * CLIENTS;
            let run = window::measure(&runtime, pid, CLIENTS, Duration::from_millis(500), seconds, |i, load| {
                client(transport, addrs, Arc::clone(&config), first + i, chat, load)
            });
            println!(
                "round {round} {load:>4} {:>9}: {:>9.0} msgs/s, server {:.2} us/msg, load generator {:.2} us/msg",
                transport.name(),
                run.0,
                run.1,
                run.2
            );
            results[slot].push(run);
        }
    }
    println!("\nmedians of {rounds} rounds of {seconds} s, {CLIENTS} clients, window {WINDOW}, rooms of {ROOM}:");
    for (&(load, _, transport), runs) in contenders.iter().zip(&results) {
        let m = |f: fn(&Run) -> f64| window::median(runs.iter().map(f).collect());
        println!(
            "  {load} over {:>9}: {:>9.0} msgs/s, server {:.2} us/msg, load generator {:.2} us/msg",
            transport.name(),
            m(|r| r.0),
            m(|r| r.1),
            m(|r| r.2)
        );
    }
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
}
