//! The README's "encoded once" and "batched, vectored writes", counted over a real loopback server: a broadcast
//! to N sessions runs the packet's encoder once and takes one pool block whatever N is, and broadcasts to a room of
//! 100 at saturation go out with at most one `write_vectored` call per four frames.

mod fixed_room;

use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;

use fixed_room::{CChat, CEchoLogic, CHAT_ENCODES, CHAT_LEN, ECHO_LEN, RawClient};
use packet_runtime::{MetricsSnapshot, ServerHandle};

/// The tests run one at a time: `CHAT_ENCODES` counts the whole process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Connects `count` members and waits until the logic thread has each in the room (it answers an echo of the logic
/// thread after handling the session's connect).
fn join_room(server: &ServerHandle<fixed_room::FixedProtocol>, count: usize) -> Vec<RawClient> {
    let addr = server.local_addr().expect("tcp");
    let mut hello = Vec::new();
    fixed_room::push_frame(&mut hello, &CEchoLogic { seq: 9 });
    (0..count)
        .map(|_| {
            let mut member = RawClient::connect(addr);
            member.send(&hello);
            assert_eq!(member.read_frames(1, ECHO_LEN, 101), 9);
            member
        })
        .collect()
}

/// Waits until the drivers have added up the frames they wrote (they flush their counters at the end of a poll,
/// which can come just after the peer read the bytes).
fn metrics_after(server: &ServerHandle<fixed_room::FixedProtocol>, frames_out: u64) -> MetricsSnapshot {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let metrics = server.metrics();
        if metrics.frames_out >= frames_out {
            return metrics;
        }
        assert!(std::time::Instant::now() < deadline, "frames written: {} of {frames_out}", metrics.frames_out);
        std::thread::yield_now();
    }
}

#[test]
fn a_broadcast_encodes_once_and_takes_one_block_whatever_the_room_size() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for room in [1, 10, 100] {
        let server = fixed_room::start(room);
        let mut members = join_room(&server, room);
        let mut line = Vec::new();
        fixed_room::push_frame(&mut line, &CChat { seq: 5 });
        // Only the server encodes an `SChat` in this process; the client's frame above is a `CChat`.
        let encodes = CHAT_ENCODES.load(Relaxed);
        let blocks = server.pool().stats().total.acquisitions();
        members[0].send(&line);
        let from = members[0].read_frames(1, CHAT_LEN, 102);
        for member in &mut members[1..] {
            assert_eq!(member.read_frames(1, CHAT_LEN, 102), from, "room of {room}: the same line");
        }
        assert_eq!(CHAT_ENCODES.load(Relaxed) - encodes, 1, "room of {room}: encoded once");
        assert_eq!(server.pool().stats().total.acquisitions() - blocks, 1, "room of {room}: one pool block");
        drop(members);
        server.shutdown();
        let report = server.join();
        assert_eq!(report.pool_outstanding, 0, "room of {room}: the block went back");
    }
}

#[test]
fn broadcasts_to_a_room_of_100_at_saturation_take_at_most_one_write_per_four_frames() {
    const ROOM: usize = 100;
    const LINES: usize = 2_000;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let server = fixed_room::start(ROOM);
    let mut members = join_room(&server, ROOM);
    let mut speaker = members[0].try_clone();
    let mut lines = Vec::new();
    for seq in 1..=LINES as u64 {
        fixed_room::push_frame(&mut lines, &CChat { seq });
    }
    // Each member's echo reply counted (a driver adds its counts at the end of a poll, maybe after the read).
    let before = metrics_after(&server, ROOM as u64);
    assert_eq!(before.frames_out, ROOM as u64, "only the echoes of the join went out before the lines");
    std::thread::scope(|s| {
        // The speaker writes every line at once, as fast as the server reads; every member reads them all.
        s.spawn(|| speaker.send(&lines));
        for member in members.iter_mut() {
            s.spawn(|| member.read_frames(LINES, CHAT_LEN, 102));
        }
    });
    let delivered = (ROOM * LINES) as u64;
    let after = metrics_after(&server, before.frames_out + delivered);
    let frames = after.frames_out - before.frames_out;
    let writes = after.write_calls - before.write_calls;
    assert_eq!(frames, delivered, "every line reached every member once");
    assert!(writes > 0, "the frames went out through write calls");
    assert!(
        writes * 4 <= frames,
        "{writes} write calls for {frames} frames ({:.1} frames per write)",
        frames as f64 / writes as f64
    );
    eprintln!("{frames} frames in {writes} write calls ({:.1} per write)", frames as f64 / writes as f64);
    drop(members);
    server.shutdown();
    assert_eq!(server.join().pool_outstanding, 0);
}
