//! The README's "0 heap allocations per message", over a real loopback server, counted in the whole process after
//! warm-up: echoes (answered on the IO thread and by the logic thread), chat lines the logic thread broadcasts to a
//! room of 100, and frames a plain thread relays to that room as a cluster's gateway does (`send_encoded_all`, one
//! `Command::Frames` per member) make exactly none in the measured window, loaded machine or not. No allowance: the logic thread's
//! inbox is a ring allocated when the server starts (`packet-runtime/src/server/inbox.rs`), not tokio's channel,
//! whose blocks could be allocated anew when two IO threads forwarded packets at once.
//!
//! The counting `#[global_allocator]` (the `alloc-counter` crate) counts every thread while the measured window is
//! open: the server's IO threads and logic thread, and the clients. The clients are plain threads with raw
//! `TcpStream`s that write pre-encoded frames and read into fixed buffers (`fixed_room::RawClient`), and the
//! protocol has fixed-size fields only, so nothing in the window has a reason to allocate but the runtime. This
//! binary holds this one test, so that the test harness (which allocates when a test starts or ends) is idle while
//! the window is open. A failure prints the backtrace of every allocation counted (up to `alloc_counter::TRACED`).
//!
//! What warm-up is for, and why it is enough: the buffers the runtime reuses (frame lists, pool blocks) are sized or
//! reserved for the load up front, not grown to it, and the load is bounded (each client waits for its echoes; the
//! chat's speaker is at most two bursts ahead of the slowest member), so no buffer meets a new high-water mark in the
//! window. Warm-up only lets every session, channel and thread reach its working state.

mod fixed_room;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use alloc_counter::{Counted, CountingAllocator, ProcessWindow};
use fixed_room::{CChat, CEchoIo, CEchoLogic, ChatLine, FixedServer, RawClient, SChat};
use packet_runtime::{Encoded, HeaderKind};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs every worker `warm_up` rounds, then opens the window, runs them `measured` rounds more and closes it once all
/// are done. Returns the allocations the whole process made in the window. Nothing here allocates between opening
/// and closing: the threads exist already and wait by spinning on atomics.
fn allocations_in_window(workers: Vec<Box<dyn FnMut(usize) + Send + '_>>, warm_up: usize, measured: usize) -> Counted {
    let ready = AtomicUsize::new(0);
    let go = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let count = workers.len();
    let mut counted = None;
    std::thread::scope(|s| {
        for mut work in workers {
            let (ready, go, done) = (&ready, &go, &done);
            s.spawn(move || {
                for round in 0..warm_up {
                    work(round);
                }
                ready.fetch_add(1, SeqCst);
                while !go.load(SeqCst) {
                    std::thread::yield_now();
                }
                for round in warm_up..warm_up + measured {
                    work(round);
                }
                done.fetch_add(1, SeqCst);
            });
        }
        while ready.load(SeqCst) < count {
            std::thread::yield_now();
        }
        let window = ProcessWindow::open();
        go.store(true, SeqCst);
        while done.load(SeqCst) < count {
            std::thread::yield_now();
        }
        counted = Some(window.close());
    });
    counted.expect("the window was closed")
}

const ROOM: usize = 100;
const ECHO_CLIENTS: usize = 4;
/// Echo requests per client per round, half to the IO hook, half to the logic thread: with 4 clients, at most 32
/// events are in the logic thread's inbox at once, forwarded by both IO threads.
const ECHO_BURST: usize = 16;
/// Chat lines the room's speaker sends per round.
const CHAT_BURST: usize = 16;
const WARM_UP: usize = 100;
/// Rounds in the measured window: 64,000 echoes (4 clients x 16 x 1,000); 16,000 chat lines, 1,600,000 deliveries.
const MEASURED: usize = 1000;

#[test]
fn echo_and_broadcast_over_loopback_allocate_nothing_after_warm_up() {
    let (server, handles) = fixed_room::start_sharing(ROOM + ECHO_CLIENTS);
    let addr = server.local_addr().expect("tcp");

    // Echo: each client sends a burst and reads every answer back before the next.
    let mut burst = Vec::new();
    for seq in 1..=ECHO_BURST as u64 {
        if seq % 2 == 0 {
            fixed_room::push_frame(&mut burst, &CEchoIo { seq });
        } else {
            fixed_room::push_frame(&mut burst, &CEchoLogic { seq });
        }
    }
    let expected_sum: u64 = (1..=ECHO_BURST as u64).sum();
    let mut clients: Vec<_> = (0..ECHO_CLIENTS).map(|_| RawClient::connect(addr)).collect();
    let before = settled_metrics(&server);
    let workers = clients
        .iter_mut()
        .map(|client| {
            let burst = &burst;
            Box::new(move |_round: usize| {
                client.send(burst);
                let sum = client.read_frames(ECHO_BURST, fixed_room::ECHO_LEN, 101);
                assert_eq!(sum, expected_sum, "every echo answered once");
            }) as Box<dyn FnMut(usize) + Send + '_>
        })
        .collect();
    let echo = allocations_in_window(workers, WARM_UP, MEASURED);
    let echoes = (ECHO_CLIENTS * ECHO_BURST * (WARM_UP + MEASURED)) as u64;
    // The drivers add their counts up at the end of a poll, which can come just after the clients read the replies.
    while server.metrics().frames_in - before.frames_in < echoes {
        std::thread::yield_now();
    }
    assert_eq!(server.metrics().frames_in - before.frames_in, echoes, "every echo went through the server");
    drop(clients);

    // Chat: one speaker sends bursts of lines; every member of the room reads each line. The speaker sends a round
    // once every member has read the round before the last: at most two bursts (32 lines) are on their way to any
    // member at once, which bounds what the server holds for a session (its lists, its write batch, the blocks).
    let members: Vec<_> = (0..ROOM).map(|_| RawClient::connect(addr)).collect();
    let mut speaker = members[0].try_clone();
    let mut lines = Vec::new();
    for seq in 1..=CHAT_BURST as u64 {
        fixed_room::push_frame(&mut lines, &CChat { seq });
    }
    // Every member is in the room before the first line: each answers an echo of the logic thread, which handles
    // the session's connect before its packets.
    let mut members: Vec<_> = members
        .into_iter()
        .map(|mut member| {
            let mut hello = Vec::new();
            fixed_room::push_frame(&mut hello, &CEchoLogic { seq: 7 });
            member.send(&hello);
            assert_eq!(member.read_frames(1, fixed_room::ECHO_LEN, 101), 7);
            member
        })
        .collect();
    let speaker_from = server_side_from(&mut speaker, &mut members);
    // Per round, the members that have read all of it.
    let rounds_read: Vec<AtomicUsize> = (0..WARM_UP + MEASURED).map(|_| AtomicUsize::new(0)).collect();
    let mut workers: Vec<Box<dyn FnMut(usize) + Send + '_>> = Vec::new();
    {
        let (rounds_read, lines) = (&rounds_read, &lines);
        workers.push(Box::new(move |round: usize| {
            if let Some(before_last) = round.checked_sub(2) {
                while rounds_read[before_last].load(SeqCst) < ROOM {
                    std::thread::yield_now();
                }
            }
            speaker.send(lines);
        }));
    }
    for member in members.iter_mut() {
        let rounds_read = &rounds_read;
        workers.push(Box::new(move |round: usize| {
            let sum = member.read_frames(CHAT_BURST, fixed_room::CHAT_LEN, 102);
            assert_eq!(sum, speaker_from * CHAT_BURST as u64, "every line from the speaker, once");
            rounds_read[round].fetch_add(1, SeqCst);
        }));
    }
    let before = settled_metrics(&server);
    let chat = allocations_in_window(workers, WARM_UP, MEASURED);
    let deliveries = (ROOM * CHAT_BURST * (WARM_UP + MEASURED)) as u64;
    // The drivers add their counts up at the end of a poll, which can come just after the members read the bytes.
    while server.metrics().frames_out - before.frames_out < deliveries {
        std::thread::yield_now();
    }
    assert_eq!(server.metrics().frames_out - before.frames_out, deliveries, "every line reached every member once");

    // Relay: what a cluster's gateway does with the frames a shard sends (`Gateway::hand`), without the cluster: a
    // plain thread copies each frame once into a pooled block (`Encoded::from_frame`) and hands one round's frames
    // to every member at once (`Session::send_encoded_all`: one `Command::Frames` list per member), paced like the
    // chat. What the gateway does around it (its NATS client and the per-message map it stages frames in) is not
    // covered.
    let sessions: Vec<_> = handles.lock().unwrap().iter().filter(|session| session.is_open()).cloned().collect();
    assert_eq!(sessions.len(), ROOM, "the room's members, the echo clients gone");
    const RELAY_FROM: u64 = 5;
    let mut relayed = Vec::new();
    for seq in 1..=CHAT_BURST as u64 {
        fixed_room::push_frame(&mut relayed, &SChat(ChatLine { from: RELAY_FROM, seq }));
    }
    let pool = server.pool().clone();
    let rounds_read: Vec<AtomicUsize> = (0..WARM_UP + MEASURED).map(|_| AtomicUsize::new(0)).collect();
    let mut workers: Vec<Box<dyn FnMut(usize) + Send + '_>> = Vec::new();
    {
        let (rounds_read, relayed, sessions, pool) = (&rounds_read, &relayed, &sessions, &pool);
        let mut frames: Vec<Encoded<FixedServer>> = Vec::with_capacity(CHAT_BURST);
        workers.push(Box::new(move |round: usize| {
            if let Some(before_last) = round.checked_sub(2) {
                while rounds_read[before_last].load(SeqCst) < ROOM {
                    std::thread::yield_now();
                }
            }
            for frame in relayed.chunks_exact(fixed_room::CHAT_LEN) {
                frames.push(Encoded::from_frame(pool, HeaderKind::Compact, frame).expect("a server-to-client frame"));
            }
            for session in sessions {
                session.send_encoded_all(&frames).expect("queued");
            }
            frames.clear();
        }));
    }
    for member in members.iter_mut() {
        let rounds_read = &rounds_read;
        workers.push(Box::new(move |round: usize| {
            let sum = member.read_frames(CHAT_BURST, fixed_room::CHAT_LEN, 102);
            assert_eq!(sum, RELAY_FROM * CHAT_BURST as u64, "every relayed frame, once");
            rounds_read[round].fetch_add(1, SeqCst);
        }));
    }
    let before = settled_metrics(&server);
    let relay = allocations_in_window(workers, WARM_UP, MEASURED);
    while server.metrics().frames_out - before.frames_out < deliveries {
        std::thread::yield_now();
    }
    assert_eq!(server.metrics().frames_out - before.frames_out, deliveries, "every relayed frame reached every member");
    drop(sessions);

    let measured_echoes = ECHO_CLIENTS * ECHO_BURST * MEASURED;
    eprintln!(
        "measured: {measured_echoes} echoes, {} allocations; {} chat lines, {} allocations; {} relayed frames, {} \
         allocations",
        echo.allocations,
        CHAT_BURST * MEASURED,
        chat.allocations,
        CHAT_BURST * MEASURED,
        relay.allocations
    );
    assert_eq!(echo.allocations, 0, "{measured_echoes} echoes after warm-up: {}", echo.report());
    let measured_deliveries = ROOM * CHAT_BURST * MEASURED;
    assert_eq!(
        chat.allocations,
        0,
        "{} chat lines to a room of {ROOM} ({measured_deliveries} deliveries) after warm-up: {}",
        CHAT_BURST * MEASURED,
        chat.report()
    );
    assert_eq!(
        relay.allocations,
        0,
        "{} frames relayed to a room of {ROOM} ({measured_deliveries} deliveries) after warm-up: {}",
        CHAT_BURST * MEASURED,
        relay.report()
    );
    drop(members);
    server.shutdown();
    let report = server.join();
    assert_eq!(report.pool_outstanding, 0, "{report:?}");
}

/// The `from` the server puts in the speaker's lines: sends one line and reads it back on every member.
fn server_side_from(speaker: &mut RawClient, members: &mut [RawClient]) -> u64 {
    let mut line = Vec::new();
    fixed_room::push_frame(&mut line, &CChat { seq: 1 });
    speaker.send(&line);
    let from = members[0].read_frames(1, fixed_room::CHAT_LEN, 102);
    for member in &mut members[1..] {
        assert_eq!(member.read_frames(1, fixed_room::CHAT_LEN, 102), from);
    }
    from
}

/// The server's counters once the drivers have added up everything written so far: they flush their counts at the
/// end of a poll, which can come just after the peer read the bytes, so a snapshot taken at once may miss the last
/// replies and count them in the next window. Waits until two reads 50 ms apart agree.
fn settled_metrics<P: packet_runtime::Protocol>(
    server: &packet_runtime::ServerHandle<P>,
) -> packet_runtime::MetricsSnapshot {
    let mut last = server.metrics();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = server.metrics();
        if (now.frames_out, now.frames_in) == (last.frames_out, last.frames_in) {
            return now;
        }
        last = now;
    }
}
