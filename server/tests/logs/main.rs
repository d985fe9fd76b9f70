//! What the server writes to its log: the real binary, its standard error captured. Client-supplied strings are
//! logged escaped (`?name`), so a name cannot forge a log line or put a raw escape byte on an operator's terminal;
//! what a client can repeat at will (over-long chat lines) is never a `WARN` or `ERROR` line per packet; the `server
//! started` line shows the values in effect; at the default level every line logged on behalf of a session, on its
//! IO thread and on the logic thread, names the session (its `session{id=..}` span).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use demo_protocol::proto::{CChat, CLogin};
use packet_runtime::Packet;
use test_support::demo::{GameClient, enter, login};
use test_support::{drain_until_closed, expect, frame, runtime};

/// The names of the issue that reach the log, the forged line first.
const HOSTILE_NAMES: &[&str] = &[
    "x\nZ ERROR fake: forged\x1b[31m",
    "\x00",
    "a\nb\x1b[31mRED",
    "\u{200B}",
    "\u{202E}gnp.exe",
    "\u{FFFF}",
    "\r\x1b[2Kcleared",
];

/// Starts the binary with debug logs; returns it with the address it announced.
fn spawn_server() -> (Child, SocketAddr, BufReader<ChildStdout>) {
    spawn_server_logging(Some("debug"))
}

/// Starts the binary with `RUST_LOG` set to `filter` (`None`: unset, the default `info`).
fn spawn_server_logging(filter: Option<&str>) -> (Child, SocketAddr, BufReader<ChildStdout>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command.args(["--addr", "127.0.0.1:0", "--workers", "1", "--max-frame", "65535", "--idle-timeout", "0"]);
    match filter {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the server binary starts");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = stdout;
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = tx.send(None);
                return;
            }
            if let Some(addr) = line.trim_end().strip_prefix("listening on ") {
                let _ = tx.send(Some((addr.parse::<SocketAddr>().unwrap(), stdout)));
                return;
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some((addr, stdout))) => (child, addr, stdout),
        other => {
            let _ = child.kill();
            panic!("no `listening on` line: {:?}", other.map(|o| o.map(|(a, _)| a)));
        }
    }
}

/// SIGTERM, then everything the server wrote to standard error.
fn stop(mut child: Child, mut stdout: BufReader<ChildStdout>) -> String {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = stdout.read_to_end(&mut rest);
        let mut log = Vec::new();
        stderr.read_to_end(&mut log).unwrap();
        let _ = tx.send((child.wait(), log));
    });
    let (status, log) = rx.recv_timeout(Duration::from_secs(30)).expect("the server exits");
    assert_eq!(status.unwrap().code(), Some(0), "clean exit");
    String::from_utf8(log).expect("the log is UTF-8")
}

#[test]
fn hostile_names_and_chat_leave_no_raw_control_bytes_and_no_forged_line_in_a_debug_log() {
    let (child, addr, stdout) = spawn_server();
    runtime().block_on(async {
        let mut hostile: GameClient = test_support::connect(addr).await;
        for name in HOSTILE_NAMES {
            hostile.send(&CLogin { name: (*name).into(), ..Default::default() }).await.unwrap();
            assert!(!expect!(&mut hostile, SLogin).success, "{name:?} is refused");
        }
        let (mut chatter, _) = login(addr, "chatter").await;
        enter(&mut chatter, 1).await;
        // Over the limit, again and again: refused each time, logged at most at debug.
        for _ in 0..50 {
            chatter.send(&CChat { msg: format!("\x1b[2J{}", "x".repeat(60_000)) }).await.unwrap();
            expect!(&mut chatter, SChatRefused);
        }
        chatter.send(&CChat { msg: "\x1b[31mred\nZ ERROR fake: chat".into() }).await.unwrap();
        expect!(&mut chatter, SChat);
        // Their disconnects are logged (`player left`, with the name) during the shutdown at the latest.
        drop((hostile, chatter));
    });
    let log = stop(child, stdout);

    let raw: Vec<(usize, char)> = log
        .char_indices()
        .filter(|&(_, c)| (c.is_control() && c != '\n') || matches!(u32::from(c), 0x200B | 0x202A..=0x202E | 0xFFFF))
        .collect();
    assert!(raw.is_empty(), "raw control or invisible characters in the log at {raw:?}:\n{log}");
    for line in log.lines() {
        // tracing's format without ANSI: `<timestamp>  <LEVEL> <target>: ...`; a forged line starts otherwise.
        assert!(line.starts_with(|c: char| c.is_ascii_digit()), "a line that is not a log record: {line:?}");
        let level = line.split_whitespace().nth(1).unwrap_or_default();
        assert!(matches!(level, "INFO" | "DEBUG" | "TRACE"), "{level} line: {line:?}");
    }
    // The refused names are there, escaped, so an operator can still see what was tried.
    assert!(log.contains(r#"name="x\nZ ERROR fake: forged\u{1b}[31m""#), "{log}");
    assert!(log.contains(r#"name="\u{202e}gnp.exe""#), "{log}");
    assert!(log.contains("login refused"), "{log}");
}

#[test]
fn the_started_line_shows_the_values_in_effect() {
    let (child, addr, stdout) = spawn_server();
    let log = stop(child, stdout);
    let started = log.lines().find(|l| l.contains("server started")).unwrap_or_else(|| panic!("{log}"));
    for field in [format!("addr={addr}"), "workers=1".into(), "max_frame=65535".into(), "idle_timeout=None".into()] {
        assert!(started.contains(&field), "{field} in {started:?}");
    }
}

/// The span a line was logged in: `id` and `peer` of `session{id=3v0 peer=127.0.0.1:5555}: ...`.
fn session_span(line: &str) -> Option<(&str, &str)> {
    let (_, rest) = line.split_once(" session{id=")?;
    let (fields, _) = rest.split_once("}: ")?;
    fields.split_once(" peer=")
}

#[test]
fn at_the_default_level_every_line_about_a_session_names_it_on_the_io_and_the_logic_thread() {
    let (child, addr, stdout) = spawn_server_logging(None);
    runtime().block_on(async {
        let (alice, _) = login(addr, "alice").await;
        let (mut bob, _) = login(addr, "bob").await;
        enter(&mut bob, 1).await;
        bob.send(&CChat { msg: "hello".into() }).await.unwrap();
        expect!(&mut bob, SChat);
        // A C_CHAT whose payload does not decode: kicked, closed for a bad frame.
        let (mut mallory, _) = login(addr, "mallory").await;
        mallory.send_raw(&frame(CChat::ID, &[0xff, 0xff])).await.unwrap();
        drain_until_closed(&mut mallory).await;
        drop((alice, bob));
    });
    let log = stop(child, stdout);

    // Lines not about a session: the process's own.
    for line in log.lines().filter(|line| session_span(line).is_none()) {
        let process = ["server started", "signal received", "status"];
        assert!(process.iter().any(|message| line.contains(message)), "a line without its session: {line:?}\n{log}");
    }
    let lines = |message: &str| -> Vec<&str> { log.lines().filter(|line| line.contains(message)).collect() };
    let mut ids = Vec::new();
    for name in ["alice", "bob", "mallory"] {
        // The logic thread's line, in the session's span.
        let login = lines("logged in player_id=")
            .into_iter()
            .find(|line| line.contains(&format!("name=\"{name}\"")))
            .unwrap_or_else(|| panic!("no login line for {name}:\n{log}"));
        assert_eq!(login.split_whitespace().nth(1), Some("INFO"), "{login}");
        let (id, peer) = session_span(login).unwrap();
        assert!(peer.starts_with("127.0.0.1:"), "{login}");
        // The IO side's lines (the acceptor, the driver) and the logic thread's departure carry the same session.
        let of_session =
            |message: &str| lines(message).into_iter().filter(|line| session_span(line) == Some((id, peer))).count();
        assert_eq!(of_session("packet_runtime::server::acceptor: connected"), 1, "{name} ({id}):\n{log}");
        assert_eq!(of_session("packet_runtime::server::driver: session closed"), 1, "{name} ({id}):\n{log}");
        assert_eq!(of_session("server::game: player left"), 1, "{name} ({id}):\n{log}");
        ids.push(id);
    }
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2], "{ids:?}");
    let kicked = lines("session closed reason=bad frame: malformed payload for C_CHAT");
    assert_eq!(kicked.len(), 1, "{log}");
    assert_eq!(session_span(kicked[0]).map(|(id, _)| id), Some(ids[2]), "mallory's: {log}");
}
