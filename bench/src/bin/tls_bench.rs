//! TLS beside clear text on the demo server: echo and room chat, the same load over TCP, TLS, WebSocket and wss,
//! alternating within each round.
//!
//! Starts two `target/release/server --rate-limit 0 --workers 1` with `--web`: one in clear text, one with
//! `--tls-cert`/`--tls-key` (a certificate made at start by a private CA, ECDSA P-256, as `rcgen` makes them).
//! Per round and transport it runs `CLIENTS` clients for `SECONDS`: echo (each keeps `WINDOW` 32-byte `C_ECHO` in
//! flight) and chat (rooms of `ROOM`, `WINDOW` chats in flight per client, a chat counting once per recipient).
//! Prints per transport the medians of messages (or deliveries) per second and the CPU per message of the server
//! that served them, which is what the transport costs the server; the load generator's own CPU is printed too (it
//! shares the 2 CPUs and does the client side of every handshake and record). Handshakes happen before the
//! measured window: this is the cost of a session's traffic, not of connecting.
//!
//!   cargo build --release -p server -p bench && target/release/tls_bench [ROUNDS] [SECONDS]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use demo_protocol::proto::{CChat, CEcho, CEnterRoom, CLogin};
use futures_util::{SinkExt, StreamExt};
use packet_runtime::transport::tls::{self, ClientConfig};
use packet_runtime::{Packet, PacketPtr};
use test_support::tls::{SERVER_NAME, TestCa};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 100;
const ROOM: usize = 50;
const WINDOW: usize = 8;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Transport {
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    const ALL: [Transport; 4] = [Transport::Tcp, Transport::Tls, Transport::Ws, Transport::Wss];

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

/// Where the two servers listen: (TCP, web) in clear text, then with TLS.
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
#[allow(clippy::too_many_arguments)]
async fn client(
    transport: Transport,
    addrs: Addrs,
    config: Arc<ClientConfig>,
    index: usize,
    chat: bool,
    counted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    ready: Arc<tokio::sync::Barrier>,
) {
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
    ready.wait().await;
    let payload = vec![7u8; 32];
    for _ in 0..WINDOW {
        if chat {
            conn.send(&CChat { msg: "x".repeat(32) }).await;
        } else {
            conn.send(&CEcho { data: payload.clone() }).await;
        }
    }
    let mine = if chat { demo_protocol::proto::SChat::ID } else { demo_protocol::proto::SEcho::ID };
    while !stop.load(Ordering::Relaxed) && conn.recv(&mut ids).await {
        let got = ids.iter().filter(|&&id| id == mine).count();
        counted.fetch_add(got as u64, Ordering::Relaxed);
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

/// One run's messages per second, server CPU per message and load generator CPU per message.
type Run = (f64, f64, f64);

fn cpu(pid: u32) -> f64 {
    bench::probe::cpu_secs(&pid.to_string()).unwrap_or(0.0)
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

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let ca = TestCa::new("tls-bench");
    let files = ca.server_files("server");
    let config = ca.client_config();
    let (mut plain, plain_addrs) = server(&[]);
    let (mut secure, secure_addrs) =
        server(&["--tls-cert".as_ref(), files.cert.as_os_str(), "--tls-key".as_ref(), files.key.as_os_str()]);
    let addrs = Addrs { plain: plain_addrs, secure: secure_addrs };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let contenders: Vec<(&str, bool, Transport)> = [("echo", false), ("chat", true)]
        .into_iter()
        .flat_map(|(load, chat)| Transport::ALL.into_iter().map(move |t| (load, chat, t)))
        .collect();
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); contenders.len()];
    for round in 0..rounds {
        for (slot, &(load, chat, transport)) in contenders.iter().enumerate() {
            let pid = if transport.secure() { secure.id() } else { plain.id() };
            let counted = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let ready = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|i| {
                    let (counted, stop, ready) = (Arc::clone(&counted), Arc::clone(&stop), Arc::clone(&ready));
                    let index = (round * contenders.len() + slot) * CLIENTS + i;
                    runtime.spawn(client(transport, addrs, Arc::clone(&config), index, chat, counted, stop, ready))
                })
                .collect();
            runtime.block_on(ready.wait());
            std::thread::sleep(Duration::from_millis(500));
            let (start_count, start_cpu, start_self) =
                (counted.load(Ordering::Relaxed), cpu(pid), cpu(std::process::id()));
            let started = Instant::now();
            std::thread::sleep(Duration::from_secs(seconds));
            let (count, elapsed) = (counted.load(Ordering::Relaxed) - start_count, started.elapsed().as_secs_f64());
            let (server_cpu, self_cpu) = (cpu(pid) - start_cpu, cpu(std::process::id()) - start_self);
            stop.store(true, Ordering::Relaxed);
            for task in tasks {
                task.abort();
            }
            std::thread::sleep(Duration::from_millis(500));
            let per = |cpu: f64| cpu * 1e6 / count.max(1) as f64;
            println!(
                "round {round} {load:>4} {:>9}: {:>9.0} msgs/s, server {:.2} us/msg, load generator {:.2} us/msg",
                transport.name(),
                count as f64 / elapsed,
                per(server_cpu),
                per(self_cpu)
            );
            results[slot].push((count as f64 / elapsed, per(server_cpu), per(self_cpu)));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\nmedians of {rounds} rounds of {seconds} s, {CLIENTS} clients, window {WINDOW}, rooms of {ROOM}:");
    for (&(load, _, transport), runs) in contenders.iter().zip(&results) {
        let rate = median(runs.iter().map(|r| r.0).collect());
        let server_cpu = median(runs.iter().map(|r| r.1).collect());
        let gen_cpu = median(runs.iter().map(|r| r.2).collect());
        println!(
            "  {load} over {:>9}: {rate:>9.0} msgs/s, server {server_cpu:.2} us/msg, load generator {gen_cpu:.2} us/msg",
            transport.name()
        );
    }
    for child in [&mut plain, &mut secure] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
