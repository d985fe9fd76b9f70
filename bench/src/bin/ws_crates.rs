//! Two WebSocket crates as a server under the same load: tokio-tungstenite (what `packet-runtime`'s listener is built
//! on) and tokio-websockets, alternating rounds, side by side in one run (issue 17, docs/CLIENTS.md).
//!
//! Each server is a child process (this binary with `--serve tungstenite|websockets`) on a tokio runtime with one
//! worker thread, accepting WebSocket connections on loopback and answering every binary message: `echo` sends it
//! back once, `fanout` sends it back `FAN` times (fed, then one flush). Both take messages up to 1 MiB
//! (`MAX_MESSAGE`), negotiate no permessage-deflate (neither implements it) and set `TCP_NODELAY`.
//!
//! The load is the same for both, from one client implementation (tokio-tungstenite's client, on one worker thread of
//! this process), so only the server side differs: `CLIENTS` connections, each keeping `WINDOW` 64-byte binary
//! messages in flight (a new one for each answer, or for each `FAN` answers), for `SECONDS` after a 1 s warm-up.
//! Per run: answers received per second, the server's CPU per answer (utime + stime of its `/proc/<pid>/stat` over
//! the measured seconds) and the load generator's. Rounds alternate the order (A B, B A, ...); medians are printed
//! with the ratio tokio-websockets / tokio-tungstenite of the medians and the median of each round's own ratio.
//!
//!   cargo build --release -p bench --bin ws_crates && target/release/ws_crates [ROUNDS] [SECONDS]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use bench::window::{self, Load, Run, median};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::{self, Message};

const CLIENTS: usize = 50;
const WINDOW: usize = 8;
const PAYLOAD: usize = 64;
const FAN: usize = 10;
const MAX_MESSAGE: usize = 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Crate {
    Tungstenite,
    Websockets,
}

impl Crate {
    fn name(self) -> &'static str {
        match self {
            Crate::Tungstenite => "tungstenite",
            Crate::Websockets => "websockets",
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The servers.

/// Copies of each binary message to send back.
fn copies(fanout: bool) -> usize {
    if fanout { FAN } else { 1 }
}

async fn serve_tungstenite(stream: TcpStream) {
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else { return };
    while let Some(Ok(message)) = ws.next().await {
        let Message::Binary(data) = &message else { continue };
        // The mode travels in the message's first byte (the client's choice), so one server serves both loads.
        let n = copies(data[0] == 1);
        for _ in 0..n {
            if ws.feed(message.clone()).await.is_err() {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

async fn serve_websockets(stream: TcpStream) {
    let builder = tokio_websockets::ServerBuilder::new()
        .limits(tokio_websockets::Limits::default().max_payload_len(Some(MAX_MESSAGE)));
    let Ok((_request, mut ws)) = builder.accept(stream).await else { return };
    while let Some(Ok(message)) = ws.next().await {
        if !message.is_binary() {
            continue;
        }
        let n = copies(message.as_payload()[0] == 1);
        for _ in 0..n {
            if ws.feed(message.clone()).await.is_err() {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

fn serve(which: Crate) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening on {}", listener.local_addr().unwrap());
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            match which {
                Crate::Tungstenite => tokio::spawn(serve_tungstenite(stream)),
                Crate::Websockets => tokio::spawn(serve_websockets(stream)),
            };
        }
    });
}

// ---------------------------------------------------------------------------------------------------------------
// The load.

/// One client: `WINDOW` messages in flight, a new one per answer (echo) or per `FAN` answers (fan-out); counts answers.
async fn client(addr: SocketAddr, fanout: bool, load: Load) {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream).await.unwrap();
    let mut payload = vec![7u8; PAYLOAD];
    payload[0] = u8::from(fanout);
    let message = Message::Binary(bytes::Bytes::from(payload));
    load.ready.wait().await;
    for _ in 0..WINDOW {
        ws.send(message.clone()).await.unwrap();
    }
    let per_request = copies(fanout) as u64;
    let mut answers = 0u64;
    while !load.stop.load(Ordering::Relaxed) {
        match ws.next().await {
            Some(Ok(Message::Binary(data))) => {
                assert_eq!(data.len(), PAYLOAD, "the server answers with the message it was sent");
                load.counted.fetch_add(1, Ordering::Relaxed);
                answers += 1;
                if answers.is_multiple_of(per_request) {
                    ws.send(message.clone()).await.unwrap();
                }
            }
            Some(Ok(_)) => continue,
            _ => return,
        }
    }
}

/// One run after a 1 s warm-up: answers per second, server CPU per answer and load generator CPU per answer (µs).
fn run(runtime: &tokio::runtime::Runtime, server: &Child, addr: SocketAddr, fanout: bool, seconds: u64) -> Run {
    window::measure(runtime, server.id(), CLIENTS, Duration::from_secs(1), seconds, |_, load| {
        client(addr, fanout, load)
    })
}

fn start(which: Crate) -> (Child, SocketAddr) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--serve", which.name()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let addr = line.strip_prefix("listening on ").and_then(|a| a.parse().ok()).expect("listening on ADDR");
    (child, addr)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        match args.get(1).map(String::as_str) {
            Some("tungstenite") => serve(Crate::Tungstenite),
            Some("websockets") => serve(Crate::Websockets),
            _ => panic!("--serve tungstenite|websockets"),
        }
        return;
    }
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(7);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let mut servers = [start(Crate::Tungstenite), start(Crate::Websockets)];
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let loadavg = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string();
    println!(
        "{} CPUs, load average {}; {CLIENTS} clients, window {WINDOW}, {PAYLOAD}-byte messages, fan-out {FAN}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    // results[load][crate]
    let mut results: [[Vec<Run>; 2]; 2] = Default::default();
    for round in 0..rounds {
        for (l, (load, fanout)) in [("echo", false), ("fanout", true)].into_iter().enumerate() {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for c in order {
                let (child, addr) = &servers[c];
                let r = run(&runtime, child, *addr, fanout, seconds);
                println!(
                    "round {round} {load:>6} {:>18}: {:>9.0} msgs/s, server {:.2} us/msg, load generator {:.2} us/msg",
                    ["tokio-tungstenite", "tokio-websockets"][c],
                    r.0,
                    r.1,
                    r.2
                );
                results[l][c].push(r);
            }
        }
    }
    println!("\nmedians of {rounds} rounds of {seconds} s (load average now {}):", loadavg());
    for (l, load) in ["echo", "fanout"].into_iter().enumerate() {
        let m = |c: usize, f: fn(&Run) -> f64| median(results[l][c].iter().map(f).collect());
        for (c, name) in ["tokio-tungstenite", "tokio-websockets"].into_iter().enumerate() {
            println!(
                "  {load:>6} {name:>18}: {:>9.0} msgs/s, server {:.2} us/msg, load generator {:.2} us/msg",
                m(c, |r| r.0),
                m(c, |r| r.1),
                m(c, |r| r.2)
            );
        }
        // Each round's own ratio too (the two runs of a round are next to each other in time, so they share the
        // machine's load more closely than the medians do).
        let paired =
            |f: fn(&Run) -> f64| median(results[l][1].iter().zip(&results[l][0]).map(|(b, a)| f(b) / f(a)).collect());
        println!(
            "  {load:>6} tokio-websockets / tokio-tungstenite: throughput {:.2}x, server CPU per msg {:.2}x \
             (median of the rounds' own ratios: {:.2}x, {:.2}x)",
            m(1, |r| r.0) / m(0, |r| r.0),
            m(1, |r| r.1) / m(0, |r| r.1),
            paired(|r| r.0),
            paired(|r| r.1)
        );
    }
    for (child, _) in &mut servers {
        let _ = child.kill();
        let _ = child.wait();
    }
}
