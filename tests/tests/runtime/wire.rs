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
