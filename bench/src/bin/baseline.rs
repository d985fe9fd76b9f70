//! `baseline`: the demo game's protocol subset (login, enter room, chat, move, ping, echo) written the way a good
//! Rust engineer would without this toolkit, as the yardstick for `loadtest`.
//!
//! ```text
//! cargo run --release -p bench --bin baseline -- --addr 127.0.0.1:0 --mode batched
//! ```
//!
//! - tokio multi-thread runtime, one task per connection reading through tokio-util's `LengthDelimitedCodec`
//!   (configured for the compact header, see [`codec`]), prost decode of the generated `demo_protocol::proto` structs and a
//!   `match` on the packet id;
//! - rooms in an `Arc<Mutex<HashMap>>`; a broadcast is encoded once into `Bytes` and cloned to each member;
//! - per connection, a writer task fed by a bounded mpsc of encoded frames, writing through `FramedWrite`:
//!   `--mode send` calls `SinkExt::send` per frame (a flush each), `--mode batched` `feed`s everything queued, then
//!   flushes once.
//!
//! Prints `listening on ADDR`; on SIGTERM or Ctrl-C stops accepting, shuts the runtime down and prints a
//! `probe:` line (allocations, CPU time, peak RSS; also on SIGUSR1), like the demo server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use clap::{Parser, ValueEnum};
use demo_protocol::proto::{
    CChat, CEcho, CEnterRoom, CLogin, CMove, CPing, PlayerInfo, PosInfo, SChat, SDespawn, SEcho, SEnterRoom, SKick,
    SLogin, SMove, SPong, SSpawn,
};
use futures_util::{SinkExt, StreamExt};
use packet_runtime::Packet;
use prost::Message;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

#[global_allocator]
static ALLOC: bench::probe::CountingAlloc = bench::probe::CountingAlloc;

/// How the writer task writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `SinkExt::send` per frame: encode, then flush each one.
    Send,
    /// `SinkExt::feed` every frame queued, then one flush.
    Batched,
}

/// The hand-written tokio + tokio-util + prost baseline server.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed).
    #[arg(long, default_value = "127.0.0.1:7778")]
    addr: SocketAddr,
    /// How the per-connection writer flushes.
    #[arg(long, value_enum, default_value_t = Mode::Batched)]
    mode: Mode,
    /// Runtime worker threads [default: the number of CPUs].
    #[arg(long)]
    workers: Option<usize>,
    /// Largest frame accepted, header included.
    #[arg(long, default_value_t = 16 * 1024)]
    max_frame: usize,
    /// Frames queued to one connection's writer; a broadcast to a full queue is dropped (and counted).
    #[arg(long, default_value_t = 8192)]
    queue_frames: usize,
}

/// The compact header `u16 size | u16 id | payload`, little-endian, `size` counting the whole frame.
///
/// `LengthDelimitedCodec` sees a 2-byte length field whose value is 2 more than the bytes that follow it (the field
/// counts itself), hence `length_adjustment(-2)`; `num_skip(2)` drops only the length field, so a decoded frame is
/// `id | payload`. Encoding takes `id | payload` and writes `len + 2` in front of it (`num_skip` does not apply to
/// encoding). On decoding, `max_frame_length` is checked against the length field's raw value, i.e. the whole frame
/// (tests below); on encoding against `id | payload`, 2 bytes less, which only matters for frames we write.
fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_offset(0)
        .length_field_length(2)
        .length_adjustment(-2)
        .num_skip(2)
        .little_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

const C_LOGIN: u16 = CLogin::ID;
const C_ENTER_ROOM: u16 = CEnterRoom::ID;
const C_MOVE: u16 = CMove::ID;
const C_CHAT: u16 = CChat::ID;
const C_PING: u16 = CPing::ID;
const C_ECHO: u16 = CEcho::ID;

/// `id | payload` of a server packet, ready for the codec.
fn encode<M: Message + Packet>(msg: &M) -> Bytes {
    let mut buf = BytesMut::with_capacity(2 + msg.encoded_len());
    buf.put_u16_le(M::ID);
    msg.encode_raw(&mut buf);
    buf.freeze()
}

/// One player in a room, as the others need it.
struct Member {
    session: u64,
    info: PlayerInfo,
    tx: mpsc::Sender<Bytes>,
}

struct Shared {
    rooms: Mutex<HashMap<u32, Vec<Member>>>,
    next_player: AtomicU64,
    next_session: AtomicU64,
    /// Broadcast frames dropped because a member's queue was full.
    dropped: AtomicU64,
    max_frame: usize,
    queue_frames: usize,
    mode: Mode,
}

impl Shared {
    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Vec<Member>>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sends to every member except `skip`; a full queue drops the frame for that member.
fn fan_out(shared: &Shared, members: &[Member], frame: &Bytes, skip: Option<u64>) {
    for member in members.iter().filter(|m| Some(m.session) != skip) {
        if let Err(mpsc::error::TrySendError::Full(_)) = member.tx.try_send(frame.clone()) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One connection's state, owned by its reading task.
struct Conn {
    session: u64,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Bytes>,
    player: Option<PlayerInfo>,
    room: Option<u32>,
}

/// Why a connection ends.
struct Kicked;

impl Conn {
    async fn reply<M: Message + Packet>(&self, msg: &M) -> Result<(), Kicked> {
        self.tx.send(encode(msg)).await.map_err(|_| Kicked)
    }

    async fn kick(&self, reason: String) -> Kicked {
        let _ = self.reply(&SKick { reason }).await;
        Kicked
    }

    async fn on_frame(&mut self, frame: BytesMut) -> Result<(), Kicked> {
        if frame.len() < 2 {
            return Err(self.kick("bad frame: shorter than its header".into()).await);
        }
        let id = u16::from_le_bytes([frame[0], frame[1]]);
        let payload = &frame[2..];
        let logged_in = self.player.is_some();
        match id {
            C_LOGIN => {
                let Ok(login) = CLogin::decode(payload) else { return Err(self.kick("bad C_LOGIN".into()).await) };
                let valid = (1..=32).contains(&login.name.chars().count());
                let reply = if logged_in || !valid {
                    SLogin { success: false, player_id: 0, ..SLogin::default() }
                } else {
                    let player_id = self.shared.next_player.fetch_add(1, Ordering::Relaxed);
                    self.player = Some(PlayerInfo { player_id, name: login.name, pos: Some(PosInfo::default()) });
                    SLogin { success: true, player_id, ..SLogin::default() }
                };
                self.reply(&reply).await
            }
            C_PING => {
                let Ok(ping) = CPing::decode(payload) else { return Err(self.kick("bad C_PING".into()).await) };
                let server_time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                self.reply(&SPong { client_time: ping.client_time, server_time }).await
            }
            C_ECHO => {
                let Ok(echo) = CEcho::decode(payload) else { return Err(self.kick("bad C_ECHO".into()).await) };
                self.reply(&SEcho { data: echo.data }).await
            }
            C_ENTER_ROOM | C_MOVE | C_CHAT if !logged_in => Err(self.kick("log in first".into()).await),
            C_ENTER_ROOM => {
                let Ok(enter) = CEnterRoom::decode(payload) else {
                    return Err(self.kick("bad C_ENTER_ROOM".into()).await);
                };
                self.enter_room(enter.room_id).await
            }
            C_CHAT => {
                let Ok(chat) = CChat::decode(payload) else { return Err(self.kick("bad C_CHAT".into()).await) };
                let (Some(room), Some(player)) = (self.room, &self.player) else { return Ok(()) };
                let frame = encode(&SChat { player_id: player.player_id, msg: chat.msg });
                let rooms = self.shared.rooms();
                if let Some(members) = rooms.get(&room) {
                    fan_out(&self.shared, members, &frame, None);
                }
                Ok(())
            }
            C_MOVE => {
                let Ok(moved) = CMove::decode(payload) else { return Err(self.kick("bad C_MOVE".into()).await) };
                let Some(pos) = moved.pos.filter(|p| [p.x, p.y, p.z, p.yaw].iter().all(|c| c.is_finite())) else {
                    return Ok(());
                };
                let (Some(room), Some(player)) = (self.room, &mut self.player) else { return Ok(()) };
                player.pos = Some(pos);
                let frame = encode(&SMove { player_id: player.player_id, pos: Some(pos) });
                let mut rooms = self.shared.rooms();
                if let Some(members) = rooms.get_mut(&room) {
                    if let Some(me) = members.iter_mut().find(|m| m.session == self.session) {
                        me.info.pos = Some(pos);
                    }
                    fan_out(&self.shared, members, &frame, Some(self.session));
                }
                Ok(())
            }
            other => Err(self.kick(format!("unknown packet id {other}")).await),
        }
    }

    async fn enter_room(&mut self, room: u32) -> Result<(), Kicked> {
        if self.room != Some(room) {
            self.leave_room();
        }
        let Some(me) = self.player.clone() else { return Ok(()) };
        let reply = {
            let mut rooms = self.shared.rooms();
            let members = rooms.entry(room).or_default();
            let others: Vec<PlayerInfo> =
                members.iter().filter(|m| m.session != self.session).map(|m| m.info.clone()).collect();
            if self.room != Some(room) {
                let spawn = encode(&SSpawn { players: vec![me.clone()] });
                fan_out(&self.shared, members, &spawn, None);
                members.push(Member { session: self.session, info: me, tx: self.tx.clone() });
                self.room = Some(room);
            }
            let total = u32::try_from(others.len()).unwrap_or(u32::MAX);
            // One page: the benchmark's rooms are small (the demo server pages long listings).
            SEnterRoom { success: true, players: others, room_id: room, total, ..SEnterRoom::default() }
        };
        self.reply(&reply).await
    }

    fn leave_room(&mut self) {
        let (Some(room), Some(player)) = (self.room.take(), &self.player) else { return };
        let mut rooms = self.shared.rooms();
        let Some(members) = rooms.get_mut(&room) else { return };
        members.retain(|m| m.session != self.session);
        if members.is_empty() {
            rooms.remove(&room);
        } else {
            let despawn = encode(&SDespawn { player_ids: vec![player.player_id] });
            fan_out(&self.shared, members, &despawn, None);
        }
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::channel(shared.queue_frames);
    let writer = tokio::spawn(write_loop(FramedWrite::new(write, codec(shared.max_frame)), rx, shared.mode));
    let mut frames = FramedRead::new(read, codec(shared.max_frame));
    let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let mut conn = Conn { session, shared, tx, player: None, room: None };
    while let Some(Ok(frame)) = frames.next().await {
        if conn.on_frame(frame).await.is_err() {
            break;
        }
    }
    conn.leave_room();
    // The last sender goes with `conn` (rooms dropped theirs in `leave_room`): the writer drains, then ends.
    drop(conn);
    let _ = writer.await;
}

async fn write_loop(
    mut sink: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    mut rx: mpsc::Receiver<Bytes>,
    mode: Mode,
) {
    while let Some(frame) = rx.recv().await {
        let written = match mode {
            Mode::Send => sink.send(frame).await,
            Mode::Batched => {
                async {
                    sink.feed(frame).await?;
                    while let Ok(frame) = rx.try_recv() {
                        sink.feed(frame).await?;
                    }
                    SinkExt::<Bytes>::flush(&mut sink).await
                }
                .await
            }
        };
        if written.is_err() {
            break;
        }
    }
}

fn main() -> ExitCode {
    bench::probe::configure_from_env();
    let args = Args::parse();
    let shared = Arc::new(Shared {
        rooms: Mutex::new(HashMap::new()),
        next_player: AtomicU64::new(1),
        next_session: AtomicU64::new(1),
        dropped: AtomicU64::new(0),
        max_frame: args.max_frame,
        queue_frames: args.queue_frames.max(1),
        mode: args.mode,
    });
    let served = bench::probe::serve_until_signal(args.addr, args.workers, |stream| serve(stream, Arc::clone(&shared)));
    if let Err(error) = served {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    println!("shutdown complete: {} broadcast frames dropped", shared.dropped.load(Ordering::Relaxed));
    println!("{}", bench::probe::ProcessStats::of_self().to_line());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use packet_runtime::frame::{Compact, parse_frame};
    use tokio_util::codec::{Decoder, Encoder};

    use super::*;

    /// A frame as the toolkit writes it: `u16 size | u16 id | payload`, size counting the whole frame.
    fn toolkit_frame(id: u16, payload: &[u8]) -> Vec<u8> {
        let size = (4 + payload.len()) as u16;
        [&size.to_le_bytes()[..], &id.to_le_bytes(), payload].concat()
    }

    #[test]
    fn codec_decodes_the_compact_header_keeping_the_id() {
        let payload = CEcho { data: vec![1, 2, 3] }.encode_to_vec();
        let mut buf = BytesMut::from(&toolkit_frame(C_ECHO, &payload)[..]);
        buf.extend_from_slice(&toolkit_frame(C_PING, &[])[..3]); // part of the next frame
        let mut codec = codec(16 * 1024);
        let frame = codec.decode(&mut buf).unwrap().expect("a whole frame");
        assert_eq!(&frame[..2], &C_ECHO.to_le_bytes());
        assert_eq!(CEcho::decode(&frame[2..]).unwrap().data, [1, 2, 3]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None, "3 bytes of the next frame are not a frame");
        buf.extend_from_slice(&toolkit_frame(C_PING, &[])[3..]);
        assert_eq!(&codec.decode(&mut buf).unwrap().expect("an empty packet")[..], &C_PING.to_le_bytes());
    }

    #[test]
    fn codec_encodes_what_the_toolkit_parses() {
        let msg = SEcho { data: vec![9; 100] };
        let mut out = BytesMut::new();
        codec(16 * 1024).encode(encode(&msg), &mut out).unwrap();
        assert_eq!(&out[..], &toolkit_frame(SEcho::ID, &msg.encode_to_vec())[..]);
        let parsed = parse_frame::<Compact>(&out, 16 * 1024).unwrap().expect("whole frame");
        assert_eq!((parsed.id, parsed.len), (SEcho::ID, out.len()));
    }

    #[test]
    fn codec_enforces_the_frame_limit_on_the_whole_frame() {
        let mut codec = codec(64);
        let mut fits = BytesMut::from(&toolkit_frame(C_ECHO, &[0; 60])[..]);
        assert!(codec.decode(&mut fits).unwrap().is_some());
        let mut too_big = BytesMut::from(&toolkit_frame(C_ECHO, &[0; 61])[..]);
        assert!(codec.decode(&mut too_big).is_err());
    }
}
