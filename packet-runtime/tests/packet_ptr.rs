//! `PacketPtr` and `PacketBuilder`: framing, sharing, interop.

mod common;

use std::io::Write;

use bytes::BufMut;
use common::{Blob, Chat, Move};
use packet_runtime::{
    Compact, DecodeError, Direction, EncodeError, FrameTooLarge, MessagePool, Packet, PacketBuilder, PacketInfo,
    PacketPtr, PacketSet, PoolConfig, Protocol, Wide,
};
use prost::Message;

fn pool() -> MessagePool {
    MessagePool::new(PoolConfig::default())
}

#[test]
fn handle_is_pointer_sized() {
    assert_eq!(size_of::<PacketPtr>(), size_of::<usize>());
    assert_eq!(size_of::<Option<PacketPtr>>(), size_of::<usize>());
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PacketPtr>();
    send_sync::<PacketBuilder>();
    send_sync::<MessagePool>();
}

#[test]
fn encode_writes_compact_header_then_payload() {
    let pool = pool();
    let msg = Chat { text: "hello".into() };
    let packet = PacketPtr::encode_in::<Compact, _>(&pool, &msg).unwrap();
    let payload = msg.encode_to_vec();
    assert_eq!(packet.len(), 4 + payload.len());
    assert_eq!(&packet[..2], &(packet.len() as u16).to_le_bytes());
    assert_eq!(&packet[2..4], &7u16.to_le_bytes());
    assert_eq!(packet.payload(), &payload[..]);
    assert_eq!(packet.packet_id(), Some(Chat::ID));
    assert_eq!(packet.header_len(), 4);
    assert_eq!(Chat::decode(packet.payload()).unwrap(), msg);
}

#[test]
fn encode_uses_the_global_pool() {
    let before = MessagePool::global().stats().total.acquisitions();
    let packet = PacketPtr::encode(&Move::sample()).unwrap();
    assert!(MessagePool::global().stats().total.acquisitions() > before);
    assert_eq!(Move::decode(packet.payload()).unwrap(), Move::sample());
}

#[test]
fn encode_wide_header() {
    let pool = pool();
    let msg = Blob { data: vec![9; 300] };
    let packet = PacketPtr::encode_in::<Wide, _>(&pool, &msg).unwrap();
    assert_eq!(&packet[..4], &(packet.len() as u32).to_le_bytes());
    assert_eq!(&packet[4..6], &1000u16.to_le_bytes());
    assert_eq!(packet.header_len(), 6);
    assert_eq!(packet.packet_id(), Some(1000));
    assert_eq!(Blob::decode(packet.payload()).unwrap(), msg);
}

#[test]
fn empty_message_is_a_header_only_frame() {
    let pool = pool();
    let packet = PacketPtr::encode_in::<Compact, _>(&pool, &Chat::default()).unwrap();
    assert_eq!(&packet[..], &[4, 0, 7, 0]);
    assert!(packet.payload().is_empty());
}

#[test]
fn too_large_payload_is_an_error_not_a_truncation() {
    let pool = pool();
    let msg = Blob { data: vec![1; 70_000] };
    let len = 4 + msg.encoded_len();
    let err = PacketPtr::encode_in::<Compact, _>(&pool, &msg).unwrap_err();
    assert_eq!(err, EncodeError::TooLarge(FrameTooLarge { len, max: 65_535 }));
    assert_eq!(pool.stats().total.acquisitions(), 0, "nothing acquired for a rejected frame");

    // The wide header carries it, in an oversize (unpooled) block.
    let packet = PacketPtr::encode_in::<Wide, _>(&pool, &msg).unwrap();
    assert_eq!(packet.len(), 6 + msg.encoded_len());
    assert_eq!(Blob::decode(packet.payload()).unwrap(), msg);
    assert_eq!(pool.stats().oversize.misses, 1);
}

#[test]
fn largest_compact_frame_fits_the_largest_class() {
    let pool = pool();
    // 65,535-byte frame: 4 header + 1 tag + 3 length + 65,527 data.
    let msg = Blob { data: vec![3; 65_527] };
    let packet = PacketPtr::encode_in::<Compact, _>(&pool, &msg).unwrap();
    assert_eq!(packet.len(), 65_535);
    assert_eq!(pool.stats().classes[4].misses, 1);
    assert_eq!(pool.stats().oversize.misses, 0);
}

#[test]
fn clone_shares_the_block_and_counts_references() {
    let pool = pool();
    let a = PacketPtr::encode_in::<Compact, _>(&pool, &Chat { text: "x".into() }).unwrap();
    assert_eq!(a.ref_count(), 1);
    let b = a.clone();
    assert!(PacketPtr::ptr_eq(&a, &b));
    assert_eq!(a.as_ptr(), b.as_ptr());
    assert_eq!(a.ref_count(), 2);
    drop(a);
    assert_eq!(b.ref_count(), 1);
    assert_eq!(pool.stats().outstanding(), 1);
    drop(b);
    assert_eq!(pool.stats().outstanding(), 0);

    let c = PacketPtr::encode_in::<Compact, _>(&pool, &Chat { text: "x".into() }).unwrap();
    let d = PacketPtr::encode_in::<Compact, _>(&pool, &Chat { text: "x".into() }).unwrap();
    assert_eq!(c, d, "equal bytes");
    assert!(!PacketPtr::ptr_eq(&c, &d));
}

#[test]
fn last_drop_on_another_thread_returns_the_block() {
    let pool = pool();
    let packet = PacketPtr::encode_in::<Compact, _>(&pool, &Move::sample()).unwrap();
    let holders: Vec<PacketPtr> = (0..8).map(|_| packet.clone()).collect();
    drop(packet);
    let threads: Vec<_> = holders
        .into_iter()
        .map(|p| {
            std::thread::spawn(move || {
                assert_eq!(Move::decode(p.payload()).unwrap(), Move::sample());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0);
    assert_eq!(stats.total.retained, 1, "returned exactly once");
}

#[test]
fn builder_freeze_makes_a_raw_frame() {
    let pool = pool();
    let mut builder = PacketBuilder::with_capacity_in(&pool, 10);
    assert!(builder.is_empty());
    assert!(builder.capacity() >= 10);
    builder.extend_from_slice(&[1, 2, 3]);
    builder.put_u8(4);
    builder.put_slice(&[5, 6]);
    assert_eq!(builder.as_slice(), &[1, 2, 3, 4, 5, 6]);
    let packet = builder.freeze();
    assert_eq!(&packet[..], &[1, 2, 3, 4, 5, 6]);
    assert_eq!(packet.packet_id(), None);
    assert_eq!(packet.payload(), &[1, 2, 3, 4, 5, 6]);
}

#[test]
fn builder_freeze_framed_reads_the_header_as_written() {
    let pool = pool();
    let mut builder = PacketBuilder::with_capacity_in(&pool, 16);
    // A malformed frame: the size field says 200, only 6 bytes follow.
    builder.extend_from_slice(&[200, 0, 9, 0, 0xAA, 0xBB]);
    let packet = builder.freeze_framed::<Compact>();
    assert_eq!(packet.packet_id(), Some(9));
    assert_eq!(packet.payload(), &[0xAA, 0xBB]);

    let mut short = PacketBuilder::with_capacity_in(&pool, 16);
    short.extend_from_slice(&[1, 2]);
    assert_eq!(short.freeze_framed::<Compact>().packet_id(), None);
}

#[test]
fn builder_io_write_stops_at_capacity() {
    let pool = pool();
    let mut builder = PacketBuilder::with_capacity_in(&pool, 100);
    let cap = builder.capacity();
    let big = vec![7u8; cap + 10];
    assert_eq!(builder.write(&big).unwrap(), cap);
    assert_eq!(builder.write(&[1]).unwrap(), 0);
    assert_eq!(builder.write_all(&[1]).unwrap_err().kind(), std::io::ErrorKind::WriteZero);
    assert_eq!(builder.remaining_mut(), 0);
}

#[test]
#[should_panic(expected = "PacketBuilder overflow")]
fn builder_overflow_panics() {
    let pool = pool();
    let mut builder = PacketBuilder::with_capacity_in(&pool, 128);
    builder.extend_from_slice(&[0; 129]);
}

#[test]
fn dropped_builder_returns_its_block() {
    let pool = pool();
    let builder = PacketBuilder::with_capacity_in(&pool, 300);
    assert_eq!(pool.stats().outstanding(), 1);
    drop(builder);
    assert_eq!(pool.stats().outstanding(), 0);
    assert_eq!(pool.stats().classes[1].retained, 1);
}

#[test]
fn into_bytes_is_zero_copy() {
    let pool = pool();
    let packet = PacketPtr::encode_in::<Compact, _>(&pool, &Chat { text: "zero copy".into() }).unwrap();
    let ptr = packet.as_ptr();
    let expected = packet.to_vec();
    let bytes = packet.into_bytes();
    assert_eq!(bytes.as_ptr(), ptr);
    assert_eq!(&bytes[..], &expected[..]);
    let slice = bytes.slice(4..);
    drop(bytes);
    assert_eq!(pool.stats().outstanding(), 1, "the slice keeps the block");
    drop(slice);
    assert_eq!(pool.stats().outstanding(), 0);
}

#[test]
fn packet_outlives_its_dropped_pool() {
    let pool = pool();
    let packet = PacketPtr::encode_in::<Compact, _>(&pool, &Chat { text: "survivor".into() }).unwrap();
    let clone = packet.clone();
    drop(pool);
    let t = std::thread::spawn(move || drop(clone));
    t.join().unwrap();
    assert_eq!(Chat::decode(packet.payload()).unwrap().text, "survivor");
}

// A hand-written protocol, as `define_packets!` will generate it, to exercise `encode_set_in`.
#[derive(Debug)]
enum ToClient {
    Chat(Chat),
    Blob(Blob),
}

struct Game;

impl Protocol for Game {
    type ClientToServer = ToClient;
    type ServerToClient = ToClient;
    const NAME: &'static str = "Game";
    const PACKETS: &'static [PacketInfo] = &[];
    const FINGERPRINT: u64 = 0;
}

impl PacketSet for ToClient {
    type Protocol = Game;
    const DIRECTION: Direction = Direction::ServerToClient;
    const PACKETS: &'static [PacketInfo] = &[];

    fn decode(id: u16, payload: &[u8]) -> Result<Self, DecodeError> {
        let malformed = |source| DecodeError::Malformed { id, name: "?", source };
        match id {
            Chat::ID => Chat::decode(payload).map(ToClient::Chat).map_err(malformed),
            Blob::ID => Blob::decode(payload).map(ToClient::Blob).map_err(malformed),
            _ => Err(DecodeError::UnknownId { id, direction: Self::DIRECTION }),
        }
    }
    fn id(&self) -> u16 {
        match self {
            ToClient::Chat(_) => Chat::ID,
            ToClient::Blob(_) => Blob::ID,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            ToClient::Chat(_) => Chat::NAME,
            ToClient::Blob(_) => Blob::NAME,
        }
    }
    fn contains(id: u16) -> bool {
        id == Chat::ID || id == Blob::ID
    }
    fn encoded_len(&self) -> usize {
        match self {
            ToClient::Chat(m) => m.encoded_len(),
            ToClient::Blob(m) => m.encoded_len(),
        }
    }
    fn encode_payload(&self, buf: &mut impl bytes::BufMut) {
        match self {
            ToClient::Chat(m) => m.encode_raw(buf),
            ToClient::Blob(m) => m.encode_raw(buf),
        }
    }
}

#[test]
fn encode_set_in_frames_the_held_packet() {
    let pool = pool();
    let value = ToClient::Blob(Blob { data: vec![5; 40] });
    let packet = PacketPtr::encode_set_in::<Compact, _>(&pool, &value).unwrap();
    let direct = PacketPtr::encode_in::<Compact, _>(&pool, &Blob { data: vec![5; 40] }).unwrap();
    assert_eq!(packet, direct);
    assert_eq!(packet.packet_id(), Some(Blob::ID));
    match ToClient::decode(packet.packet_id().unwrap(), packet.payload()).unwrap() {
        ToClient::Blob(b) => assert_eq!(b.data, vec![5; 40]),
        other => panic!("{other:?}"),
    }
    let chat = PacketPtr::encode_set(&ToClient::Chat(Chat { text: "set".into() })).unwrap();
    assert_eq!(chat.packet_id(), Some(Chat::ID));
}

/// Handles read and dropped on two threads while a third reuses the block once it is back: every read happens
/// before the reuse writes (the `Release` decrement of each handle and the `Acquire` load of the last one). The
/// values prove that a reader never saw the next frame's bytes; the ordering itself is what ThreadSanitizer and
/// Miri check when `.ci/run` runs this file under them (a `Relaxed` decrement is reported there).
#[test]
fn reads_on_other_threads_happen_before_the_block_is_reused() {
    const ROUNDS: u8 = if cfg!(miri) { 5 } else { 200 };
    // No L1: a released block goes back to the global list, where the next acquisition finds it.
    let pool = MessagePool::new(PoolConfig::default().uniform_caps(64, 0));
    let frame_of = |byte: u8| {
        let mut builder = PacketBuilder::with_capacity_in(&pool, 64);
        builder.extend_from_slice(&[byte; 64]);
        builder.freeze()
    };
    for round in 0..ROUNDS {
        let frame = frame_of(round);
        let block = frame.as_ptr();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let copy = frame.clone();
                std::thread::spawn(move || copy.iter().map(|&byte| u32::from(byte)).sum::<u32>())
            })
            .collect();
        drop(frame);
        // Acquire until the same block comes back; nothing else orders this thread after the readers.
        let mut held = Vec::new();
        let reused = loop {
            let next = frame_of(!round);
            if next.as_ptr() == block {
                break next;
            }
            held.push(next);
            if held.len() == 32 {
                held.clear();
                std::thread::yield_now();
            }
        };
        assert_eq!(&reused[..], &[!round; 64]);
        for reader in readers {
            assert_eq!(reader.join().unwrap(), u32::from(round) * 64, "a reader saw the next frame's bytes");
        }
    }
    assert_eq!(pool.stats().outstanding(), 0);
}
