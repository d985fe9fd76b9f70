//! A whole server over in-memory pipes, driven by a script of client operations: shared by the `session` fuzz
//! target and `tests/tests/properties.rs` (included there with `#[path]`).
//!
//! The server runs the demo protocol with small limits so that a short script reaches them: 1 KiB frames, a 4 KiB
//! send queue (slow consumer), a rate limit of 32 packets in a burst, 2 KiB pipes, a 250 ms flush deadline (a
//! paused reader holds a closing session that long). The game replies, broadcasts
//! and kicks; the IO hook answers pings, kicks on bad frames and skips unknown ids.
//!
//! Checked for every script:
//! - nothing panics, on the server (handlers, IO hook, driver) or in the client readers;
//! - every byte the server sends is a well-formed frame holding a decodable server packet (a session cut off
//!   mid-write may end inside a frame);
//! - a write never stalls (the server reads, or closes, within the flush deadline);
//! - after a half-close the server closes the session; after the script every connection is closed, the logic
//!   thread saw one `on_connect` and one `on_disconnect` per connection, `connections_open` is 0, the closes by
//!   reason add up to the connections, and every pool block is back (`outstanding == 0`).
//!
//! [`Harness::finish`] shuts the server down and checks the [`ShutdownReport`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use packet_runtime::frame::FrameCodec;
use packet_runtime::transport::memory::{self, MemoryConnector};
use packet_runtime::{
    BadFrame, BadFrameAction, CloseReason, Compact, Context, DecodeError, IoAction, IoHandler, Logic, PacketSet,
    RateLimit, Request, Server, ServerHandle, Session, ShutdownReport,
};
use tests::game::{ClientPacket, ClientPacketHandler, GameProtocol, ServerPacket};
use tests::proto;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::codec::Decoder;

/// Connections open at once at most.
pub(crate) const MAX_CONNECTIONS: usize = 4;
/// Room id that makes the game kick the session.
pub(crate) const KICK_ROOM: u32 = 777;
/// The server's largest frame.
pub(crate) const MAX_FRAME: usize = 1024;
/// Guards against hangs; reaching one is a finding, never synchronisation.
const HANG: Duration = Duration::from_secs(10);
/// `Read` operations honoured per script (each lets the server run for about a millisecond).
const READS_PER_SCRIPT: usize = 8;

/// One client operation. `conn` picks a live connection modulo their number; operations on no connection are skipped.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Opens a connection (up to [`MAX_CONNECTIONS`]).
    Connect,
    /// Writes raw bytes.
    Write { conn: usize, bytes: Vec<u8> },
    /// Writes a frame with a correct compact header and any id and payload.
    Frame { conn: usize, id: u16, payload: Vec<u8> },
    /// Writes a valid packet.
    Packet { conn: usize, packet: ClientPacket },
    /// Lets the server and the connection's reader run for a moment.
    Read { conn: usize },
    /// Stops or restarts the connection's reader (a stopped reader makes the client a slow consumer).
    Pause { conn: usize },
    /// Shuts down the write side; the server must then close the session.
    HalfClose { conn: usize },
    /// Drops the connection (both directions) at once.
    Drop { conn: usize },
}

/// What the logic thread saw, counted.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) connected: AtomicU64,
    pub(crate) disconnected: AtomicU64,
}

struct Game {
    counts: Arc<Counts>,
}

impl Logic for Game {
    type Protocol = GameProtocol;

    fn on_connect(&mut self, _ctx: &mut Context<'_, GameProtocol>, _session: &Session<GameProtocol>) {
        // Release: pairs with the harness's Acquire load, which then sees everything this session did before.
        self.counts.connected.fetch_add(1, Ordering::Release);
    }

    fn on_packet(
        &mut self,
        ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        packet: ClientPacket,
    ) {
        packet.dispatch(self, &mut Request::new(ctx, session));
    }

    fn on_disconnect(
        &mut self,
        ctx: &mut Context<'_, GameProtocol>,
        session: &Session<GameProtocol>,
        _reason: &CloseReason,
    ) {
        assert!(session.send(&proto::SChat { player_id: 0, msg: "gone".into() }).is_err(), "send after close");
        assert!(ctx.session(session.id()).is_none(), "a disconnected session is no longer listed");
        self.counts.disconnected.fetch_add(1, Ordering::Release);
    }
}

type Req<'r, 'c> = Request<'r, 'c, GameProtocol>;

impl ClientPacketHandler<Req<'_, '_>> for Game {
    fn on_c_login(&mut self, req: &mut Req<'_, '_>, packet: proto::CLogin) {
        let _ = req.session.send(&proto::SLogin {
            success: !packet.name.is_empty(),
            player_id: req.session.id().as_u64(),
            ..Default::default()
        });
    }

    fn on_c_enter_room(&mut self, req: &mut Req<'_, '_>, packet: proto::CEnterRoom) {
        if packet.room_id == KICK_ROOM {
            let _ = req.session.kick(&proto::SKick { reason: "kicked".into() });
            return;
        }
        let players = req
            .ctx
            .sessions()
            .map(|s| proto::PlayerInfo { player_id: s.id().as_u64(), name: s.peer().to_string(), pos: None })
            .collect();
        let _ = req.session.send(&proto::SEnterRoom { success: true, players, ..Default::default() });
    }

    fn on_c_move(&mut self, req: &mut Req<'_, '_>, packet: proto::CMove) {
        let _ = req.ctx.broadcast_all(&proto::SMove { player_id: req.session.id().as_u64(), pos: packet.pos });
    }

    fn on_c_chat(&mut self, req: &mut Req<'_, '_>, packet: proto::CChat) {
        let _ = req.ctx.broadcast_all(&proto::SChat { player_id: req.session.id().as_u64(), msg: packet.msg });
    }

    fn on_c_ping(&mut self, req: &mut Req<'_, '_>, packet: proto::CPing) {
        let _ = req.session.send(&proto::SPong { client_time: packet.client_time, server_time: 0 });
    }

    fn on_c_echo(&mut self, req: &mut Req<'_, '_>, packet: proto::CEcho) {
        let _ = req.session.send(&proto::SEcho { data: packet.data });
    }
}

/// Pings are answered on the IO thread; bad frames get a kick naming the fault; unknown ids are skipped (their
/// boundary is known), everything else closes.
struct Io;

impl IoHandler<GameProtocol> for Io {
    fn on_packet(&self, session: &Session<GameProtocol>, packet: ClientPacket) -> IoAction<ClientPacket> {
        match packet {
            ClientPacket::CPing(ping) if ping.client_time % 2 == 0 => {
                let _ = session.send(&proto::SPong { client_time: ping.client_time, server_time: 1 });
                IoAction::Handled
            }
            other => IoAction::Forward(other),
        }
    }

    fn on_bad_frame(&self, session: &Session<GameProtocol>, bad: &BadFrame) -> BadFrameAction {
        if matches!(bad, BadFrame::Decode(DecodeError::UnknownId { .. })) {
            return BadFrameAction::Skip;
        }
        let _ = session.send(&proto::SKick { reason: bad.to_string() });
        BadFrameAction::Close
    }
}

/// One client connection: the write half is ours, a task reads and checks everything the server sends.
struct Conn {
    writer: Option<WriteHalf<DuplexStream>>,
    reader: JoinHandle<()>,
    paused: watch::Sender<bool>,
}

impl Conn {
    fn open(connector: &MemoryConnector) -> Conn {
        let stream = connector.connect().expect("the listener is alive");
        let (read, write) = tokio::io::split(stream);
        let (paused, paused_rx) = watch::channel(false);
        Conn { writer: Some(write), reader: tokio::spawn(read_server(read, paused_rx)), paused }
    }

    fn toggle_reader(&self) {
        self.paused.send_modify(|paused| *paused = !*paused);
    }

    async fn write(&mut self, bytes: &[u8]) {
        let Some(writer) = &mut self.writer else { return };
        match tokio::time::timeout(HANG, writer.write_all(bytes)).await {
            Ok(Ok(())) => {}
            // The server closed the connection.
            Ok(Err(_)) => self.writer = None,
            Err(_) => panic!("a write stalled for {HANG:?}: the server neither reads nor closes"),
        }
    }

    async fn half_close(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            let _ = writer.shutdown().await;
        }
    }

    /// Half-closes, then waits for the server to close its side.
    async fn finish(mut self) {
        self.paused.send_replace(false);
        self.half_close().await;
        match tokio::time::timeout(HANG, &mut self.reader).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("reader task failed: {e}"),
            Err(_) => panic!("the server did not close the session within {HANG:?} of the client's half-close"),
        }
    }

    async fn drop_now(self) {
        drop(self.writer);
        self.reader.abort();
        match self.reader.await {
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            _ => {}
        }
    }
}

/// Reads until the server closes; every complete frame must be a server packet.
async fn read_server(mut read: ReadHalf<DuplexStream>, mut paused: watch::Receiver<bool>) {
    let mut codec = FrameCodec::<Compact>::new(usize::MAX);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        // The sender lives as long as the connection; once it is gone, nobody pauses any more.
        let _ = paused.wait_for(|paused| !paused).await;
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while let Some(frame) = codec.decode(&mut buf).expect("the server sends well-formed frames") {
            if let Err(e) = ServerPacket::decode(frame.id, &frame.payload) {
                panic!("the server sent an undecodable frame (id {}): {e}", frame.id);
            }
        }
        buf.reserve(4096);
    }
}

/// The frame a [`Op::Packet`] writes.
pub(crate) fn packet_frame(packet: &ClientPacket) -> Vec<u8> {
    let mut payload = Vec::with_capacity(packet.encoded_len());
    packet.encode_payload(&mut payload);
    raw_frame(packet.id(), &payload)
}

/// A frame with a correct compact header (the payload is cut to what the header can describe).
pub(crate) fn raw_frame(id: u16, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(u16::MAX as usize - 4)];
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&((4 + payload.len()) as u16).to_le_bytes());
    frame.extend_from_slice(&id.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A running server plus the client side's runtime.
pub(crate) struct Harness {
    handle: ServerHandle<GameProtocol>,
    connector: MemoryConnector,
    client: tokio::runtime::Runtime,
    counts: Arc<Counts>,
    /// Connections opened by every script so far.
    opened: AtomicU64,
}

impl Harness {
    pub(crate) fn start() -> Harness {
        let (listener, connector) = memory::listener(2048);
        let counts = Arc::new(Counts::default());
        let handle = Server::<GameProtocol>::builder()
            .workers(1)
            .max_frame(MAX_FRAME)
            .send_queue_limit(4 * 1024)
            .rate_limit(Some(RateLimit { per_second: 1_000, burst: 32 }))
            .close_flush_timeout(Duration::from_millis(250))
            .tick(None)
            .io_handler(Io)
            .start_on(move || Ok(listener), Game { counts: Arc::clone(&counts) })
            .expect("server starts");
        let client = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("client runtime");
        Harness { handle, connector, client, counts, opened: AtomicU64::new(0) }
    }

    /// Runs one script, closes its connections and checks that the server is back to rest.
    pub(crate) fn run(&self, ops: &[Op]) {
        self.client.block_on(async {
            let mut conns: Vec<Conn> = Vec::new();
            let mut reads = 0;
            for op in ops {
                let pick = |conns: &[Conn], conn: usize| (!conns.is_empty()).then(|| conn % conns.len());
                match op {
                    Op::Connect => {
                        if conns.len() < MAX_CONNECTIONS {
                            conns.push(Conn::open(&self.connector));
                            self.opened.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Op::Write { conn, bytes } => {
                        if let Some(i) = pick(&conns, *conn) {
                            conns[i].write(bytes).await;
                        }
                    }
                    Op::Frame { conn, id, payload } => {
                        if let Some(i) = pick(&conns, *conn) {
                            conns[i].write(&raw_frame(*id, payload)).await;
                        }
                    }
                    Op::Packet { conn, packet } => {
                        if let Some(i) = pick(&conns, *conn) {
                            conns[i].write(&packet_frame(packet)).await;
                        }
                    }
                    Op::Read { conn } => {
                        if pick(&conns, *conn).is_some() && reads < READS_PER_SCRIPT {
                            reads += 1;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    Op::Pause { conn } => {
                        if let Some(i) = pick(&conns, *conn) {
                            conns[i].toggle_reader();
                        }
                    }
                    Op::HalfClose { conn } => {
                        if let Some(i) = pick(&conns, *conn) {
                            conns[i].half_close().await;
                        }
                    }
                    Op::Drop { conn } => {
                        if let Some(i) = pick(&conns, *conn) {
                            conns.swap_remove(i).drop_now().await;
                        }
                    }
                }
            }
            for conn in conns {
                conn.finish().await;
            }
        });
        self.wait_until_quiet();
    }

    /// Waits until every connection opened so far has been disconnected and every pool block is back.
    fn wait_until_quiet(&self) {
        let opened = self.opened.load(Ordering::Relaxed);
        let deadline = Instant::now() + HANG;
        loop {
            let connected = self.counts.connected.load(Ordering::Acquire);
            let disconnected = self.counts.disconnected.load(Ordering::Acquire);
            let metrics = self.handle.metrics();
            let closes: u64 = metrics.closes.iter().map(|(_, n)| n).sum();
            let outstanding = metrics.pool.outstanding();
            if connected == opened && disconnected == opened && metrics.connections_open == 0 && outstanding == 0 {
                assert_eq!(closes, opened, "closes by reason add up to the connections: {:?}", metrics.closes);
                assert_eq!(metrics.connections_total, opened);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not quiet after {HANG:?}: opened {opened}, connected {connected}, disconnected {disconnected}, \
                 open {}, pool outstanding {outstanding}",
                metrics.connections_open
            );
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Shuts the server down and checks the report: one closed session per connection, every pool block back, no
    /// panic anywhere.
    pub(crate) fn finish(self) -> ShutdownReport {
        let opened = self.opened.load(Ordering::Relaxed);
        self.handle.shutdown();
        let report = self.handle.join();
        assert_eq!(report.sessions_closed, opened, "{report:?}");
        assert_eq!(report.pool_outstanding, 0, "{report:?}");
        assert!(!report.logic_thread_panicked, "{report:?}");
        assert_eq!(report.handler_panics, 0, "{report:?}");
        report
    }
}
