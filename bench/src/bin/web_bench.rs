//! WebSocket beside TCP on one demo server: echo and room chat, the same load over each, alternating rounds.
//!
//! Starts `target/release/server --addr 127.0.0.1:0 --web 127.0.0.1:0 --rate-limit 0 --workers 1` and, per round
//! and transport, runs `CLIENTS` clients for `SECONDS`: echo (each keeps `WINDOW` 32-byte `C_ECHO` in flight) and
//! chat (rooms of `ROOM`, each client keeps `WINDOW` chats in flight, a chat counting once per recipient). Prints
//! per transport the medians of messages (or deliveries) per second and the server's CPU per message, which is what
//! the transport costs the server; the load generator's own CPU is printed too (it shares the 2 CPUs).
//!
//!   cargo build --release -p server -p bench && target/release/web_bench [ROUNDS] [SECONDS]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use demo_protocol::proto::{CChat, CEcho, CEnterRoom, CLogin};
use futures_util::{SinkExt, StreamExt};
use packet_runtime::{Packet, PacketPtr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 100;
const ROOM: usize = 50;
const WINDOW: usize = 8;

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Tcp,
    Ws,
}

/// A connection that sends frames and yields the ids of frames received.
enum Conn {
    Tcp(tokio::net::TcpStream, Vec<u8>),
    Ws(Box<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>),
}

impl Conn {
    async fn open(transport: Transport, tcp: SocketAddr, web: SocketAddr) -> Conn {
        match transport {
            Transport::Tcp => {
                let stream = tokio::net::TcpStream::connect(tcp).await.unwrap();
                stream.set_nodelay(true).unwrap();
                Conn::Tcp(stream, Vec::new())
            }
            Transport::Ws => {
                let stream = tokio::net::TcpStream::connect(web).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (ws, _) = tokio_tungstenite::client_async(format!("ws://{web}/ws"), stream).await.unwrap();
                Conn::Ws(Box::new(ws))
            }
        }
    }

    async fn send<P: Packet>(&mut self, packet: &P) {
        let frame = PacketPtr::encode(packet).unwrap();
        match self {
            Conn::Tcp(stream, _) => stream.write_all(frame.as_slice()).await.unwrap(),
            Conn::Ws(ws) => ws.send(Message::Binary(bytes::Bytes::copy_from_slice(frame.as_slice()))).await.unwrap(),
        }
    }

    /// Ids of the frames of the next read (TCP) or message (WebSocket).
    async fn recv(&mut self, ids: &mut Vec<u16>) -> bool {
        ids.clear();
        match self {
            Conn::Tcp(stream, buf) => {
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
async fn client(
    transport: Transport,
    addrs: (SocketAddr, SocketAddr),
    index: usize,
    chat: bool,
    counted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    ready: Arc<tokio::sync::Barrier>,
) {
    let mut conn = Conn::open(transport, addrs.0, addrs.1).await;
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

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut server = Command::new(root.join("target/release/server"))
        .args(["--addr", "127.0.0.1:0", "--web", "127.0.0.1:0", "--rate-limit", "0", "--workers", "1"])
        .args(["--max-connections", "0", "--tick-ms", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("target/release/server (cargo build --release -p server)");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let (mut tcp, mut web) = (None, None);
    while web.is_none() {
        let line = lines.next().unwrap().unwrap();
        tcp = tcp.or(line.strip_prefix("listening on ").and_then(|a| a.parse::<SocketAddr>().ok()));
        web = line.strip_prefix("web listening on ").and_then(|a| a.parse::<SocketAddr>().ok());
    }
    let addrs = (tcp.unwrap(), web.unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut results: Vec<(&str, &str, Vec<Run>)> =
        [("echo", "tcp"), ("echo", "websocket"), ("chat", "tcp"), ("chat", "websocket")]
            .into_iter()
            .map(|(load, name)| (load, name, Vec::new()))
            .collect();
    for round in 0..rounds {
        for (slot, (load, chat, transport)) in [
            ("echo", false, Transport::Tcp),
            ("echo", false, Transport::Ws),
            ("chat", true, Transport::Tcp),
            ("chat", true, Transport::Ws),
        ]
        .into_iter()
        .enumerate()
        {
            let counted = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let ready = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|i| {
                    let (counted, stop, ready) = (Arc::clone(&counted), Arc::clone(&stop), Arc::clone(&ready));
                    runtime.spawn(client(
                        transport,
                        addrs,
                        round * CLIENTS * 4 + slot * CLIENTS + i,
                        chat,
                        counted,
                        stop,
                        ready,
                    ))
                })
                .collect();
            runtime.block_on(ready.wait());
            std::thread::sleep(Duration::from_millis(500));
            let (start_count, start_cpu, start_self) =
                (counted.load(Ordering::Relaxed), cpu(server.id()), cpu(std::process::id()));
            let started = Instant::now();
            std::thread::sleep(Duration::from_secs(seconds));
            let (count, elapsed) = (counted.load(Ordering::Relaxed) - start_count, started.elapsed().as_secs_f64());
            let (server_cpu, self_cpu) = (cpu(server.id()) - start_cpu, cpu(std::process::id()) - start_self);
            stop.store(true, Ordering::Relaxed);
            for task in tasks {
                task.abort();
            }
            std::thread::sleep(Duration::from_millis(500));
            let per = |cpu: f64| cpu * 1e6 / count.max(1) as f64;
            println!(
                "round {round} {load:>4} {:>9}: {:>9.0} msgs/s, server {:.2} us/msg, load generator {:.2} us/msg",
                if transport == Transport::Tcp { "tcp" } else { "websocket" },
                count as f64 / elapsed,
                per(server_cpu),
                per(self_cpu)
            );
            results[slot].2.push((count as f64 / elapsed, per(server_cpu), per(self_cpu)));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\nmedians of {rounds} rounds of {seconds} s, {CLIENTS} clients, window {WINDOW}, rooms of {ROOM}:");
    for (load, name, runs) in &results {
        let rate = median(runs.iter().map(|r| r.0).collect());
        let server_cpu = median(runs.iter().map(|r| r.1).collect());
        let gen_cpu = median(runs.iter().map(|r| r.2).collect());
        println!(
            "  {load} over {name:>9}: {rate:>9.0} msgs/s, server {server_cpu:.2} us/msg, load generator {gen_cpu:.2} us/msg"
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}
