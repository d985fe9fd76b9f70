//! The wire format as a peer sees it: test vectors, split frames, pipelined frames.

use packet_runtime::{
    ClientError, Context, EncodeError, FrameTooLarge, HeaderKind, IoAction, IoHandler, Logic, Server, Session,
};
use tests::game::{ClientPacket, GameProtocol, ServerPacket};
use tests::proto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// The byte-exact example of docs/PROTOCOL.md: C_PING{client_time: 300} and the S_PONG it gets.
#[test]
fn protocol_md_test_vector_round_trips_over_tcp() {
    let server = start(builder());
    client_runtime().block_on(async {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        // size 7 | id 1010 (0x03F2) | field 1 varint 300 = 08 AC 02
        stream.write_all(&[0x07, 0x00, 0xF2, 0x03, 0x08, 0xAC, 0x02]).await.unwrap();
        let mut reply = [0u8; 9];
        within("pong bytes", stream.read_exact(&mut reply)).await.unwrap();
        // size 9 | id 1011 (0x03F3) | field 1 varint 300 | field 2 varint 1
        assert_eq!(reply, [0x09, 0x00, 0xF3, 0x03, 0x08, 0xAC, 0x02, 0x10, 0x01]);
    });
    server.handle.shutdown();
    assert_eq!(server.handle.join().pool_outstanding, 0);
}

#[test]
fn frames_split_byte_by_byte_are_reassembled() {
    let server = start(builder());
    client_runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let mut frame = Vec::new();
        for (i, data) in [b"first".as_slice(), b"second"].iter().enumerate() {
            let echo = proto::CEcho { data: data.to_vec() };
            frame.clear();
            let len = 4 + prost::Message::encoded_len(&echo);
            frame.extend_from_slice(&(len as u16).to_le_bytes());
            frame.extend_from_slice(&1012u16.to_le_bytes());
            prost::Message::encode(&echo, &mut frame).unwrap();
            for byte in &frame {
                client.send_raw(std::slice::from_ref(byte)).await.unwrap();
                tokio::task::yield_now().await;
            }
            match within("echo", client.recv()).await.unwrap() {
                ServerPacket::SEcho(reply) => assert_eq!(reply.data, *data, "frame {i}"),
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    server.handle.shutdown();
    assert_eq!(server.handle.join().pool_outstanding, 0);
}

#[test]
fn five_hundred_frames_in_one_write_are_answered_in_order() {
    let server = start(builder());
    client_runtime().block_on(async {
        let mut client = connect(server.addr).await;
        for i in 0..500u64 {
            // Alternate the IO-thread path (ping) and the logic path (echo): the order must hold per path.
            if i % 2 == 0 {
                client.queue(&proto::CPing { client_time: i }).unwrap();
            } else {
                client.queue(&proto::CEcho { data: i.to_le_bytes().to_vec() }).unwrap();
            }
        }
        client.flush().await.unwrap();
        let (mut next_ping, mut next_echo) = (0u64, 1u64);
        for _ in 0..500 {
            match within("reply", client.recv()).await.unwrap() {
                ServerPacket::SPong(pong) => {
                    assert_eq!(pong.client_time, next_ping);
                    next_ping += 2;
                }
                ServerPacket::SEcho(echo) => {
                    assert_eq!(echo.data, next_echo.to_le_bytes());
                    next_echo += 2;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((next_ping, next_echo), (500, 501));
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.metrics.frames_in, 500);
    assert_eq!(report.pool_outstanding, 0);
}

#[test]
fn wide_header_server_and_client_agree_on_large_frames() {
    let server = start(builder().header(HeaderKind::Wide).max_frame(256 * 1024));
    client_runtime().block_on(async {
        let mut client = connect(server.addr).await.with_header(HeaderKind::Wide).with_max_frame(256 * 1024);
        let data = vec![7u8; 100_000];
        client.send(&proto::CEcho { data: data.clone() }).await.unwrap();
        match within("large echo", client.recv()).await.unwrap() {
            ServerPacket::SEcho(echo) => assert_eq!(echo.data, data),
            other => panic!("unexpected {other:?}"),
        }
    });
    server.handle.shutdown();
    assert_eq!(server.handle.join().pool_outstanding, 0);
}

/// A packet too large for the compact header fails on the client with the same `EncodeError` a session returns,
/// and nothing of it is queued: the next packet goes through.
#[test]
fn a_frame_too_large_is_the_same_encode_error_on_the_client() {
    let server = start(builder());
    client_runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let err = client.send(&proto::CEcho { data: vec![0; 70_000] }).await.unwrap_err();
        match err {
            ClientError::Encode(EncodeError::TooLarge(FrameTooLarge { max, .. })) => assert_eq!(max, 65_535),
            other => panic!("unexpected {other:?}"),
        }
        client.send(&proto::CEcho { data: vec![1; 8] }).await.unwrap();
        match within("echo after the refused frame", client.recv()).await.unwrap() {
            ServerPacket::SEcho(echo) => assert_eq!(echo.data, vec![1; 8]),
            other => panic!("unexpected {other:?}"),
        }
    });
    server.handle.shutdown();
    assert_eq!(server.handle.join().pool_outstanding, 0);
}

/// Broadcasts to a peer that stops reading pile up behind a full socket: the logic thread keeps handing frames
/// over while the peer's driver cannot write, so they are appended to the list still waiting for it. When the peer
/// reads again, every one arrives, once, in order.
#[test]
fn broadcasts_to_a_peer_that_falls_behind_arrive_in_order() {
    const CHATS: usize = 20_000;
    // ~20 MB to the slow peer: far more than loopback's socket buffers take from a peer that is not reading (its
    // receive window stays near the initial 128 KiB), under the queue limit.
    let server = start(builder().send_queue_limit(64 << 20));
    client_runtime().block_on(async {
        let mut slow = connect(server.addr).await;
        let mut fast = connect(server.addr).await;
        // Both sessions are known to the logic thread before the first chat (a broadcast goes to every session).
        for client in [&mut slow, &mut fast] {
            client.send(&proto::CLogin { name: "reader".into(), ..Default::default() }).await.unwrap();
            assert!(matches!(within("login", client.recv()).await.unwrap(), ServerPacket::SLogin(_)));
        }
        let padding = "x".repeat(1000);
        let (mut fast_reader, mut fast_writer) = fast.into_split();
        let sender = tokio::spawn(async move {
            for i in 0..CHATS {
                fast_writer.queue(&proto::CChat { msg: format!("{i:06}{padding}") }).unwrap();
                if i % 64 == 63 {
                    fast_writer.flush().await.unwrap();
                }
            }
            fast_writer.flush().await.unwrap();
            fast_writer
        });
        // The sender's own copies come back in order; once the last is here, every chat was broadcast.
        for i in 0..CHATS {
            match within("own chat", fast_reader.recv()).await.unwrap() {
                ServerPacket::SChat(chat) => assert_eq!(&chat.msg[..6], format!("{i:06}")),
                other => panic!("unexpected {other:?}"),
            }
        }
        let _writer = sender.await.unwrap();
        for i in 0..CHATS {
            match within("slow chat", slow.recv()).await.unwrap() {
                ServerPacket::SChat(chat) => assert_eq!(&chat.msg[..6], format!("{i:06}"), "chat {i} out of order"),
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    server.handle.shutdown();
    let report = server.handle.join();
    assert_eq!(report.metrics.frames_dropped, 0);
    assert_eq!(report.pool_outstanding, 0);
}

/// `try_recv` hands out what the last read already buffered and never waits: after `recv` returned the first of
/// two pongs that arrived in one segment, the second is there; after it, nothing is.
#[test]
fn try_recv_drains_what_a_read_buffered_without_waiting() {
    let server = start(builder());
    client_runtime().block_on(async {
        let (mut reader, mut writer) = connect(server.addr).await.into_split();
        for client_time in [1, 2] {
            writer.queue(&proto::CPing { client_time }).unwrap();
        }
        writer.flush().await.unwrap();
        assert!(reader.try_recv().unwrap().is_none(), "nothing read yet");
        let mut times = Vec::new();
        while times.len() < 2 {
            let packet = match reader.try_recv().unwrap() {
                Some(packet) => packet,
                None => within("pong", reader.recv()).await.unwrap(),
            };
            let ServerPacket::SPong(pong) = packet else { panic!("expected a pong, got {packet:?}") };
            times.push(pong.client_time);
        }
        assert_eq!(times, [1, 2]);
        assert!(reader.try_recv().unwrap().is_none(), "only two pongs were sent");
        // The borrowing variants lend the undecoded payload.
        writer.send(&proto::CPing { client_time: 3 }).await.unwrap();
        let (id, payload) = within("pong frame", reader.recv_frame()).await.unwrap();
        assert_eq!(id, <proto::SPong as packet_runtime::Packet>::ID);
        assert_eq!(<proto::SPong as prost::Message>::decode(payload).unwrap().client_time, 3);
        assert!(reader.try_recv_frame().unwrap().is_none());
    });
    server.handle.shutdown();
    server.handle.join();
}

/// Forwards every `C_ECHO` it sees to the session that pinged first (and echoes it back to its sender), on the IO
/// thread: sends from one session's IO hook into another session's queue.
#[derive(Default)]
struct CrossIo {
    target: std::sync::Mutex<Option<Session<GameProtocol>>>,
}

impl IoHandler<GameProtocol> for CrossIo {
    fn on_packet(&self, session: &Session<GameProtocol>, packet: ClientPacket) -> IoAction<ClientPacket> {
        match packet {
            ClientPacket::CPing(ping) => {
                self.target.lock().unwrap().get_or_insert_with(|| session.clone());
                let _ = session.send(&proto::SPong { client_time: ping.client_time, server_time: 1 });
                IoAction::Handled
            }
            ClientPacket::CEcho(echo) => {
                let reply = proto::SEcho { data: echo.data };
                if let Some(target) = self.target.lock().unwrap().as_ref() {
                    let _ = target.send(&reply);
                }
                let _ = session.send(&reply);
                IoAction::Handled
            }
            other => IoAction::Forward(other),
        }
    }
}

/// An IO hook's reply to its own session goes straight into that session's write batch; frames another session's
/// hook queued for it on the same IO thread earlier must still go first. One IO thread, a peer that stops reading so
/// that its batch is full and the rest waits in its queue, then a ping whose pong must come after all of it.
#[test]
fn io_hook_replies_do_not_overtake_frames_queued_earlier_on_the_same_thread() {
    const ECHOES: usize = 20_000;
    let builder = Server::<GameProtocol>::builder()
        .workers(1)
        .rate_limit(None)
        .byte_rate_limit(None)
        .send_queue_limit(64 << 20)
        .io_handler(CrossIo::default());
    let server = start(builder);
    client_runtime().block_on(async {
        let mut target = connect(server.addr).await;
        target.send(&proto::CPing { client_time: 0 }).await.unwrap();
        assert!(matches!(within("first pong", target.recv()).await.unwrap(), ServerPacket::SPong(_)));
        // ~20 MB to the target, which is not reading: its socket fills, its batch fills, the rest stays queued.
        let (mut reader, mut writer) = connect(server.addr).await.into_split();
        let sender = tokio::spawn(async move {
            for i in 0..ECHOES {
                let mut data = vec![0u8; 1000];
                data[..8].copy_from_slice(&(i as u64).to_le_bytes());
                writer.queue(&proto::CEcho { data }).unwrap();
                if i % 64 == 63 {
                    writer.flush().await.unwrap();
                }
            }
            writer.flush().await.unwrap();
            writer
        });
        for _ in 0..ECHOES {
            assert!(matches!(within("own echo", reader.recv()).await.unwrap(), ServerPacket::SEcho(_)));
        }
        let _writer = sender.await.unwrap();
        // Every forwarded echo is queued for the target by now; its pong is queued after them.
        target.send(&proto::CPing { client_time: 1 }).await.unwrap();
        for i in 0..ECHOES {
            match within("forwarded echo", target.recv()).await.unwrap() {
                ServerPacket::SEcho(echo) => assert_eq!(echo.data[..8], (i as u64).to_le_bytes(), "echo {i}"),
                other => panic!("{other:?} overtook forwarded echo {i}"),
            }
        }
        match within("last pong", target.recv()).await.unwrap() {
            ServerPacket::SPong(pong) => assert_eq!(pong.client_time, 1),
            other => panic!("expected the pong, got {other:?}"),
        }
    });
    server.handle.shutdown();
    assert_eq!(server.handle.join().pool_outstanding, 0);
}

/// Sends from a task spawned on the logic thread's runtime (handlers run inside it, so `tokio::spawn` works there)
/// are not held for a batch that may never come: with no tick and no further events, the frame still arrives.
#[test]
fn a_task_spawned_on_the_logic_thread_can_send() {
    struct Spawner;
    impl Logic for Spawner {
        type Protocol = GameProtocol;

        fn on_connect(&mut self, _ctx: &mut Context<'_, GameProtocol>, session: &Session<GameProtocol>) {
            let session = session.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let _ = session.send(&proto::SKick { reason: "from a task".into() });
            });
        }

        fn on_packet(
            &mut self,
            _ctx: &mut Context<'_, GameProtocol>,
            _session: &Session<GameProtocol>,
            _packet: ClientPacket,
        ) {
        }
    }
    let handle = Server::<GameProtocol>::builder().workers(1).tick(None).start(Spawner).expect("server starts");
    let addr = handle.local_addr().expect("tcp address");
    client_runtime().block_on(async {
        let mut client = connect(addr).await;
        match within("the task's frame", client.recv()).await.unwrap() {
            ServerPacket::SKick(kick) => assert_eq!(kick.reason, "from a task"),
            other => panic!("expected the kick, got {other:?}"),
        }
    });
    handle.shutdown();
    assert_eq!(handle.join().pool_outstanding, 0);
}
