//! The real executable: it announces its address, serves, and on SIGTERM shuts down in order, prints its summary and
//! exits with status 0.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use demo_protocol::GameProtocol;
use demo_protocol::proto::CChat;
use packet_runtime::Protocol;

use crate::support::*;

#[test]
fn sigterm_shuts_the_binary_down_cleanly_with_a_summary() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--addr", "127.0.0.1:0", "--workers", "1", "--idle-timeout", "0", "--tick-ms", "10"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let pid = child.id();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());

    // Everything up to `listening on` arrives before we go on; read it on a thread so a hang fails the test.
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut banner = Vec::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let _ = tx.send(Err(banner));
                return stdout;
            }
            let done = line.starts_with("listening on ");
            banner.push(line);
            if done {
                let _ = tx.send(Ok(banner));
                return stdout;
            }
        }
    });
    let banner = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(banner)) => banner,
        other => {
            let _ = child.kill();
            panic!("no `listening on` line: {other:?}");
        }
    };
    let mut stdout = reader.join().unwrap();
    assert_eq!(banner[0].trim_end(), format!("protocol GameProtocol (fingerprint {:016x})", GameProtocol::FINGERPRINT));
    for packet in GameProtocol::PACKETS {
        let row = format!("{}  {:<14} {}", packet.id, packet.name, packet.direction);
        assert!(banner.iter().any(|line| line.contains(&row)), "packet table row {row:?} in {banner:?}");
    }
    let addr: SocketAddr = banner.last().unwrap().trim_end().strip_prefix("listening on ").unwrap().parse().unwrap();
    assert_ne!(addr.port(), 0, "the bound port is printed, not the requested 0");

    runtime().block_on(async {
        let (mut client, id) = login(addr, "last").await;
        enter(&mut client, 3).await;
        client.send(&CChat { msg: "bye".into() }).await.unwrap();
        assert_eq!(expect!(&mut client, SChat).player_id, id);

        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
        assert!(status.success());
        // Shutdown order: the game says goodbye, then the connection closes.
        let (got, end) = drain_until_closed(&mut client).await;
        assert!(is_close(&end), "{end:?}");
        assert_eq!(kick_reason(&got), "server shutting down");
    });

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        let _ = tx.send((child.wait(), rest, child));
    });
    let (status, summary, mut child) = rx.recv_timeout(Duration::from_secs(30)).expect("the server exits");
    let status = status.unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "clean exit; stdout:\n{summary}\nstderr:\n{stderr}");
    assert!(summary.contains("shutdown complete"), "{summary}");
    assert!(summary.contains("sessions:        1 accepted, 1 closed, 0 rejected"), "{summary}");
    assert!(summary.contains("closes:          ServerShutdown=1"), "{summary}");
    assert!(summary.contains("pool outstanding: 0"), "{summary}");
    // Login, enter, chat in; their three replies, the chat and the kick out.
    assert!(summary.contains("frames in/out:   3 / 4"), "{summary}");
}
