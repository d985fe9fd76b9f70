//! The wire format as a peer sees it: test vectors, split frames, pipelined frames.

use packet_runtime::frame::HeaderKind;
use tests::game::ServerPacket;
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
            client.send(&proto::CLogin { name: "reader".into() }).await.unwrap();
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
