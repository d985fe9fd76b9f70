//! For the tests that count what the network path does (allocations, encodes, pool blocks, write calls): a protocol
//! of fixed-size fields only (no string, no bytes, so decoding allocates nothing and every frame of a kind has the
//! same length), a game with one room, and raw std clients that write pre-encoded frames and read into fixed
//! buffers, so that they allocate nothing either once connected.
// `enum_variant_names`: the client packets all start with `C`, the naming every protocol here uses.
#![allow(dead_code, unreachable_pub, clippy::enum_variant_names)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use packet_runtime::prost::bytes::{Buf, BufMut};
use packet_runtime::prost::encoding::{DecodeContext, WireType};
use packet_runtime::{
    Context, IoAction, IoHandler, Logic, MessagePool, Packet, PacketPtr, PoolConfig, Server, ServerHandle, Session,
    SessionId,
};

/// Echo, answered on the IO thread by [`EchoOnIo`].
#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1)]
pub struct CEchoIo {
    #[prost(fixed64, tag = "1")]
    pub seq: u64,
}

/// Echo, answered by the logic thread.
#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 2)]
pub struct CEchoLogic {
    #[prost(fixed64, tag = "1")]
    pub seq: u64,
}

/// A chat line to the room: the logic thread broadcasts an [`SChat`] to every member.
#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 3)]
pub struct CChat {
    #[prost(fixed64, tag = "1")]
    pub seq: u64,
}

/// The answer to either echo.
#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 101)]
pub struct SEcho {
    #[prost(fixed64, tag = "1")]
    pub seq: u64,
}

/// The fields of [`SChat`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChatLine {
    #[prost(fixed64, tag = "1")]
    pub from: u64,
    #[prost(fixed64, tag = "2")]
    pub seq: u64,
}

/// Times an [`SChat`] was encoded (its `encode_raw` ran), in the whole process.
pub static CHAT_ENCODES: AtomicU64 = AtomicU64::new(0);

/// A chat line as the room gets it. prost by hand around [`ChatLine`], to count encodes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SChat(pub ChatLine);

impl prost::Message for SChat {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        CHAT_ENCODES.fetch_add(1, Relaxed);
        self.0.encode_raw(buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        self.0.merge_field(tag, wire_type, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

impl Packet for SChat {
    const ID: u16 = 102;
    const NAME: &'static str = "SChat";
}

packet_runtime::define_packets! {
    /// Fixed-size packets only.
    pub protocol FixedProtocol {
        client_to_server FixedClient { CEchoIo, CEchoLogic, CChat }
        server_to_client FixedServer { SEcho, SChat }
    }
}

/// Frame lengths (Compact header: 4 bytes; a fixed64 field: 1 tag byte + 8). Every `seq` and `from` the tests use
/// is non-zero, since proto3 leaves a zero field out.
pub const REQUEST_LEN: usize = 4 + 9;
pub const ECHO_LEN: usize = 4 + 9;
pub const CHAT_LEN: usize = 4 + 18;

/// Every session the room saw connect, for a test that sends to them from a thread of its own (as a cluster's
/// gateway does): [`start_sharing`].
pub type Handles = Arc<Mutex<Vec<Session<FixedProtocol>>>>;

/// Everyone connected is in the room.
#[derive(Debug)]
pub struct Room {
    members: Vec<SessionId>,
    handles: Option<Handles>,
}

impl Room {
    pub fn new(capacity: usize) -> Room {
        Room { members: Vec::with_capacity(capacity), handles: None }
    }
}

impl Logic for Room {
    type Protocol = FixedProtocol;

    fn on_connect(&mut self, _ctx: &mut Context<'_, FixedProtocol>, session: &Session<FixedProtocol>) {
        self.members.push(session.id());
        if let Some(handles) = &self.handles {
            handles.lock().unwrap().push(session.clone());
        }
    }

    fn on_packet(
        &mut self,
        ctx: &mut Context<'_, FixedProtocol>,
        session: &Session<FixedProtocol>,
        packet: FixedClient,
    ) {
        match packet {
            FixedClient::CEchoLogic(echo) => {
                let _ = session.send(&SEcho { seq: echo.seq });
            }
            FixedClient::CChat(chat) => {
                let line = SChat(ChatLine { from: session.id().as_u64() + 1, seq: chat.seq });
                ctx.broadcast(self.members.iter().copied(), &line).expect("a chat line encodes");
            }
            FixedClient::CEchoIo(_) => unreachable!("answered on the IO thread"),
        }
    }

    fn on_disconnect(
        &mut self,
        _ctx: &mut Context<'_, FixedProtocol>,
        session: &Session<FixedProtocol>,
        _reason: &packet_runtime::CloseReason,
    ) {
        self.members.retain(|&id| id != session.id());
    }
}

/// Answers [`CEchoIo`] on the IO thread; forwards the rest.
#[derive(Debug)]
pub struct EchoOnIo;

impl IoHandler<FixedProtocol> for EchoOnIo {
    fn on_packet(&self, session: &Session<FixedProtocol>, packet: FixedClient) -> IoAction<FixedClient> {
        match packet {
            FixedClient::CEchoIo(echo) => {
                let _ = session.send(&SEcho { seq: echo.seq });
                IoAction::Handled
            }
            other => IoAction::Forward(other),
        }
    }
}

/// Blocks the test server's pool holds from the start (all its frames come from the smallest class): more than
/// the tests ever have in flight and in the threads' caches at once (a few hundred), so that no block is allocated
/// however that peaks.
pub const RESERVED_BLOCKS: usize = 1024;

/// A server with nothing timed (no tick, no idle timeout, no rate limit), `members` room for the room, and a pool
/// with [`RESERVED_BLOCKS`].
pub fn start(members: usize) -> ServerHandle<FixedProtocol> {
    start_room(Room::new(members))
}

/// [`start`], and the handle of every session that connects (a clone, taken in `on_connect`).
pub fn start_sharing(members: usize) -> (ServerHandle<FixedProtocol>, Handles) {
    let handles = Handles::default();
    let room = Room { handles: Some(Arc::clone(&handles)), ..Room::new(members) };
    (start_room(room), handles)
}

fn start_room(room: Room) -> ServerHandle<FixedProtocol> {
    let pool = MessagePool::new(PoolConfig::default());
    assert_eq!(pool.reserve(CHAT_LEN, RESERVED_BLOCKS), RESERVED_BLOCKS);
    Server::<FixedProtocol>::builder()
        .pool(pool)
        .workers(2)
        .rate_limit(None)
        .idle_timeout(None)
        .tick(None)
        .io_handler(EchoOnIo)
        .start(room)
        .expect("server starts")
}

/// Appends the frame of `packet` to `out` (before any measured window: this allocates).
pub fn push_frame<T: Packet>(out: &mut Vec<u8>, packet: &T) {
    out.extend_from_slice(&PacketPtr::encode::<T>(packet).expect("encodes"));
}

/// A blocking client: writes whole pre-encoded bursts, reads into a fixed buffer.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Box<[u8; 64 * 1024]>,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connects");
        stream.set_nodelay(true).expect("nodelay");
        // The suites' hang guard: a frame that never comes fails the test instead of blocking it.
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("read timeout");
        stream.set_write_timeout(Some(std::time::Duration::from_secs(30))).expect("write timeout");
        RawClient { stream, buf: Box::new([0; 64 * 1024]) }
    }

    /// A second client on the same connection (for a thread that reads while another writes).
    pub fn try_clone(&self) -> RawClient {
        RawClient { stream: self.stream.try_clone().expect("clones"), buf: Box::new([0; 64 * 1024]) }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("server reads");
    }

    /// Reads `count` frames of `len` bytes each with packet id `id`; returns the sum of their first fixed64 field
    /// (the `seq` of an echo, the `from` of a chat), so the caller can check what came back without keeping it.
    pub fn read_frames(&mut self, count: usize, len: usize, id: u16) -> u64 {
        let per_read = self.buf.len() / len;
        let mut left = count;
        let mut sum = 0u64;
        while left > 0 {
            let n = left.min(per_read);
            let bytes = &mut self.buf[..n * len];
            self.stream.read_exact(bytes).expect("server writes");
            for frame in bytes.chunks_exact(len) {
                let (size, got) = (u16::from_le_bytes([frame[0], frame[1]]), u16::from_le_bytes([frame[2], frame[3]]));
                assert!(size as usize == len && got == id, "unexpected frame: size {size}, id {got}");
                let mut field = [0; 8];
                field.copy_from_slice(&frame[5..13]);
                sum = sum.wrapping_add(u64::from_le_bytes(field));
            }
            left -= n;
        }
        sum
    }
}
