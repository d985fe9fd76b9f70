//! One bot: connect, log in, enter a room, then run the scenario with a window of requests in flight until told to
//! stop. Never prints; everything it sees ends up in its [`Counters`] and the shared latency histogram.
//!
//! # Scenarios
//! - `echo`: C_ECHO whose payload starts with the send time (8 bytes, little-endian, ns since the run's start);
//!   S_ECHO is the reply and gives the round trip.
//! - `chat`: C_CHAT whose text is `"<send time ns> <bot index>"`. The server broadcasts S_CHAT to the whole room,
//!   the sender included: the sender's own copy is its reply, and every copy at every receiver is a delivery whose
//!   latency is measured from the time in the text.
//! - `move`: C_MOVE followed by a C_PING carrying the send time. A position cannot carry a timestamp (the fields
//!   are `f32`), so S_MOVE broadcasts are only counted (throughput), and the S_PONG is both the reply that frees the
//!   window slot and the latency sample. The latency is the ping's round trip behind the move, not the move's fan-out.
//!
//! # Losing the session, and logging in again
//! A bot whose session ends before the run does (S_KICK, the server closing or resetting the connection, no reply
//! within the timeout) counts a disconnect and, without `relogin`, stops there. With `relogin` it forgets what it
//! had in flight (counted as abandoned), waits a backoff ([`RELOGIN_BACKOFF_FIRST`] doubling to
//! [`RELOGIN_BACKOFF_MAX`]), connects again to its own address, logs in under the same name, re-enters its room
//! and goes on with its load; a failed attempt (refused connection, a kick such as "no game server available", a
//! refused name while the server still holds the old session, no answer) is counted and retried after the next,
//! longer, backoff, until the run's drain begins. The first login is not retried: a bot that never got in fails
//! the setup as before. A packet the bot cannot decode ends it in either case: logging in again would hide a bug.
//!
//! # Window and pacing
//! At most `in_flight` requests are outstanding; a reply frees a slot. With `rate = 0` the window is refilled at
//! once (closed loop); otherwise one request is sent per `1/rate` tick when a slot is free, and ticks that find the
//! window full are dropped. Late ticks are caught up in a burst (so rates above the timer's 1 ms resolution are
//! still met), but only up to the free slots.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use demo_protocol::proto;
use demo_protocol::token::TokenKey;
use demo_protocol::{GameProtocol, ServerPacket};
use packet_runtime::transport::EitherStream;
use packet_runtime::transport::tls::{self, ClientConfig};
use packet_runtime::{Client, ClientError, ClientReader, ClientWriter};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::time::MissedTickBehavior;

use crate::stats::{Counters, LatencySink, LiveCounters};

/// What the bots do once in their room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// C_CHAT to the room; every S_CHAT at every member is a delivery.
    Chat,
    /// C_MOVE (+ C_PING for latency); every S_MOVE at every member is a delivery.
    Move,
    /// C_ECHO with a payload; S_ECHO is the reply.
    Echo,
}

/// The settings every bot shares.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// The servers (a cluster's gateways, or one server): bot `n` connects to `addrs[n % addrs.len()]`. Never empty.
    pub addrs: Vec<SocketAddr>,
    /// Bot `n` logs in as `<name_prefix>-<n>` (two fleets against one cluster need different prefixes: names are
    /// unique among the players online).
    pub name_prefix: String,
    /// What to send.
    pub scenario: Scenario,
    /// Bots per room: bot `n` enters room `n / room_size`.
    pub room_size: usize,
    /// Messages per second per bot; 0 sends whenever the window has room.
    pub rate: f64,
    /// Requests outstanding per bot.
    pub in_flight: usize,
    /// Echo payload size in bytes (at least the 8-byte timestamp).
    pub payload: usize,
    /// How long a bot waits for its login, or for any reply while requests are outstanding, before giving up.
    pub timeout: Duration,
    /// The server is a raw byte mirror (`raw_echo`), not a game server: no login and no room; the bot's own
    /// `C_ECHO` frame coming back is the reply. Only meaningful for [`Scenario::Echo`].
    pub mirror: bool,
    /// Log in again after a kick, a close or a timeout, and go on (see the module docs); otherwise the bot stops.
    pub relogin: bool,
    /// Open every connection with the version handshake (`Client::handshake`, as a server run with `--handshake`
    /// requires); a mismatched fingerprint ends the bot (counted as a kick naming both fingerprints).
    pub handshake: bool,
    /// Sign each login with this key (`--auth-secret-file`), as a server run with the same secret requires: a token
    /// for the bot's name, valid for an hour from each login.
    pub auth: Option<TokenKey>,
    /// Connect over TLS: the handshake is part of connecting. `None`: clear text.
    pub tls: Option<BotTls>,
}

/// How bots connect over TLS.
#[derive(Debug, Clone)]
pub struct BotTls {
    /// The roots the bots trust (`--tls-ca`), in a client configuration every bot shares.
    pub config: Arc<ClientConfig>,
    /// The name the server's certificate must carry (`--tls-server-name`).
    pub server_name: String,
}

/// A bot's connection: clear text or TLS.
type BotStream = EitherStream<TcpStream, tls::client::TlsStream<TcpStream>>;

/// Connects to `addr` as `tls` says (`TCP_NODELAY` either way).
async fn connect(addr: SocketAddr, tls: Option<&BotTls>) -> Result<Client<GameProtocol, BotStream>, Failure> {
    let stream = TcpStream::connect(addr).await.map_err(|_| Failure::ConnectFailed)?;
    stream.set_nodelay(true).map_err(|_| Failure::ConnectFailed)?;
    let stream = match tls {
        None => EitherStream::A(stream),
        Some(tls) => EitherStream::B(
            tls::connect(stream, &tls.server_name, Arc::clone(&tls.config))
                .await
                .map_err(|_| Failure::ConnectFailed)?,
        ),
    };
    Ok(Client::new(stream))
}

/// The version string of a bot's hello.
pub const VERSION: &str = concat!("packet-demo-bots ", env!("CARGO_PKG_VERSION"));

/// The wait before the first attempt to log in again.
pub const RELOGIN_BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between attempts to log in again; each failed attempt doubles the wait up to this.
pub const RELOGIN_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The wait after `failed` failed attempts to log in again.
fn relogin_backoff(failed: u32) -> Duration {
    RELOGIN_BACKOFF_FIRST.saturating_mul(1 << failed.min(16)).min(RELOGIN_BACKOFF_MAX)
}

/// Where the whole fleet is. Bots follow it through a `watch` channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Connecting, logging in, entering rooms.
    Setup,
    /// Sending (the warmup is part of this phase).
    Run,
    /// No new requests; waiting for the replies to those in flight.
    Drain,
    /// Disconnect now.
    Stop,
}

/// The run's time base: timestamps are nanoseconds since `origin`, and only messages sent at or after `measure_from`
/// count.
#[derive(Debug)]
pub struct Clock {
    origin: Instant,
    measure_from: AtomicU64,
}

impl Clock {
    /// A clock starting now; nothing is measured until [`start_measuring`](Self::start_measuring).
    pub fn new() -> Self {
        Clock { origin: Instant::now(), measure_from: AtomicU64::new(u64::MAX) }
    }

    /// Nanoseconds since the clock started.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Measures messages sent from `after` from now on. Call before announcing [`Phase::Run`]: the phase channel
    /// publishes the value to the bots.
    pub fn start_measuring(&self, after: Duration) {
        let from = self.now_ns().saturating_add(u64::try_from(after.as_nanos()).unwrap_or(u64::MAX));
        // Relaxed: the `watch` send of `Phase::Run` that follows orders this store before the bots' loads.
        self.measure_from.store(from, Ordering::Relaxed);
    }

    /// When measuring starts (ns since the origin), `u64::MAX` before [`start_measuring`](Self::start_measuring).
    pub fn measure_from(&self) -> u64 {
        self.measure_from.load(Ordering::Relaxed)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// What a bot shares with the fleet.
#[derive(Debug, Clone)]
pub struct FleetLink {
    /// The run's time base.
    pub clock: Arc<Clock>,
    /// The fleet's phase.
    pub phase: watch::Receiver<Phase>,
    /// Bots whose setup finished (successfully or not). Each bot adds 1 exactly once.
    pub ready: Arc<watch::Sender<usize>>,
    /// Bots that have nothing in flight any more after the run (drained, or stopped). Each bot adds 1 exactly once.
    pub settled: Arc<watch::Sender<usize>>,
    /// The progress line's counters.
    pub live: Arc<LiveCounters>,
    /// Caps connection attempts in progress, so a big fleet does not overflow the server's accept backlog.
    pub connecting: Arc<Semaphore>,
    /// Bots in each room (index: room id) whose setup succeeded; final once every bot is ready.
    pub rooms: Arc<[AtomicU64]>,
}

type Reader = ClientReader<GameProtocol, ReadHalf<BotStream>>;
type Writer = ClientWriter<GameProtocol, WriteHalf<BotStream>>;

/// Why a bot's session ended early, or an attempt to start one failed.
enum Failure {
    ConnectFailed,
    Rejected,
    Closed,
    Kicked(String),
    Decode,
    Timeout,
    /// The version handshake failed (the server runs another build of the protocol).
    Handshake(String),
}

impl Failure {
    /// Whether logging in again may help: not after a packet the bot cannot understand.
    fn retryable(&self) -> bool {
        !matches!(self, Failure::Decode | Failure::Handshake(_))
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Decode(_) | ClientError::Fault(_) => Failure::Decode,
            _ => Failure::Closed,
        }
    }
}

/// Runs bot `index` to the end of the run and returns its counters; its latency samples go to `latency`.
pub async fn run(index: usize, config: Arc<BotConfig>, link: FleetLink, latency: LatencySink) -> Counters {
    let mut bot = Bot {
        index,
        room: u32::try_from(index / config.room_size.max(1)).unwrap_or(u32::MAX),
        config,
        link,
        latency,
        counters: Counters { bots: 1, ..Counters::default() },
        ready_marked: false,
        settled_marked: false,
        in_flight: 0,
        room_members: 0,
    };
    let result = bot.run().await;
    bot.finish(result)
}

/// How a bot's run ended when the fleet stopped it (a failure it does not come back from is a [`Failure`]).
enum End {
    /// Connected when the fleet stopped.
    Stopped,
    /// Not connected when the fleet stopped (its session was lost and the run drained before a new one).
    Lost,
}

struct Bot {
    index: usize,
    room: u32,
    config: Arc<BotConfig>,
    link: FleetLink,
    latency: LatencySink,
    counters: Counters,
    ready_marked: bool,
    settled_marked: bool,
    /// Own requests without a reply yet.
    in_flight: usize,
    /// Bots in this bot's room when the run started, itself included.
    room_members: u64,
}

impl Bot {
    async fn run(&mut self) -> Result<End, Failure> {
        let (mut reader, mut writer) = self.login().await?;
        self.counters.connected = 1;
        self.link.live.connected();
        if let Some(members) = self.link.rooms.get(self.room as usize) {
            // Relaxed: read only after the fleet saw every bot ready and announced `Phase::Run`; the `watch`
            // channels on that path order this add before the reads.
            members.fetch_add(1, Ordering::Relaxed);
        }
        self.mark_ready();
        loop {
            let result = self.scenario(&mut reader, &mut writer).await;
            self.link.live.disconnected();
            // Best effort: the server sees a clean end of stream.
            let _ = writer.shutdown().await;
            let failure = match result {
                Ok(()) => return Ok(End::Stopped),
                Err(failure) => failure,
            };
            self.counters.disconnects += 1;
            self.link.live.lost();
            if self.link.clock.now_ns() >= self.link.clock.measure_from() {
                self.counters.abandoned += self.in_flight as u64;
            }
            self.in_flight = 0;
            if !(self.config.relogin && failure.retryable()) {
                return Err(failure);
            }
            self.count(failure);
            match self.relogin().await {
                Some((r, w)) => (reader, writer) = (r, w),
                None => return Ok(End::Lost),
            }
            self.counters.relogins += 1;
            self.link.live.relogged_in();
        }
    }

    /// Connects, logs in and enters the room, within the timeout.
    async fn login(&mut self) -> Result<(Reader, Writer), Failure> {
        match tokio::time::timeout(self.config.timeout, self.setup()).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// Logs in again after a backoff, retrying with longer ones, until it succeeds (the session) or the run
    /// drains (`None`: the bot has nothing in flight and is settled).
    async fn relogin(&mut self) -> Option<(Reader, Writer)> {
        // A clone: the attempt itself borrows the bot.
        let mut phase = self.link.phase.clone();
        let mut failed = 0;
        loop {
            if *phase.borrow_and_update() >= Phase::Drain {
                self.mark_settled();
                return None;
            }
            let attempt = async {
                tokio::time::sleep(relogin_backoff(failed)).await;
                self.login().await
            };
            tokio::select! {
                // Any phase change is checked at the top; a fleet that is gone has stopped.
                changed = phase.changed() => if changed.is_err() {
                    self.mark_settled();
                    return None;
                },
                result = attempt => match result {
                    Ok(session) => return Some(session),
                    Err(failure) => {
                        self.counters.relogin_failures += 1;
                        self.count(failure);
                        failed += 1;
                    }
                },
            }
        }
    }

    /// Counts a failure by kind.
    fn count(&mut self, failure: Failure) {
        let errors = &mut self.counters.errors;
        match failure {
            Failure::ConnectFailed => errors.connect_failed += 1,
            Failure::Rejected => errors.rejected += 1,
            Failure::Closed => errors.closed_by_server += 1,
            Failure::Kicked(reason) => {
                self.link.live.kicked(&reason);
                *errors.kicked.entry(reason).or_default() += 1;
            }
            Failure::Handshake(reason) => {
                let reason = format!("handshake failed: {reason}");
                self.link.live.kicked(&reason);
                *errors.kicked.entry(reason).or_default() += 1;
            }
            Failure::Decode => errors.decode += 1,
            Failure::Timeout => errors.timeouts += 1,
        }
        self.link.live.error();
    }

    fn finish(mut self, result: Result<End, Failure>) -> Counters {
        match result {
            Ok(End::Stopped) => self.counters.connected_at_end = 1,
            Ok(End::Lost) => {}
            Err(failure) => self.count(failure),
        }
        self.mark_ready();
        self.mark_settled();
        self.latency.flush();
        self.counters
    }

    fn mark_ready(&mut self) {
        if !std::mem::replace(&mut self.ready_marked, true) {
            self.link.ready.send_modify(|n| *n += 1);
        }
    }

    fn mark_settled(&mut self) {
        if !std::mem::replace(&mut self.settled_marked, true) {
            self.link.settled.send_modify(|n| *n += 1);
        }
    }

    /// Connects (to its share of the addresses), logs in as `<prefix>-<index>` and enters the room; waits for both answers.
    async fn setup(&mut self) -> Result<(Reader, Writer), Failure> {
        let client = {
            let _permit = self.link.connecting.acquire().await.expect("never closed");
            let addr = self.config.addrs[self.index % self.config.addrs.len()];
            connect(addr, self.config.tls.as_ref()).await?
        };
        let mut client = client;
        if self.config.handshake {
            match client.handshake(VERSION).await {
                Ok(_) => {}
                Err(ClientError::Handshake(fault)) => return Err(Failure::Handshake(fault.to_string())),
                Err(other) => return Err(other.into()),
            }
        }
        let (mut reader, mut writer) = client.into_split();
        if self.config.mirror {
            return Ok((reader, writer));
        }
        let name = format!("{}-{}", self.config.name_prefix, self.index);
        let token = self.config.auth.as_ref().map(|key| key.mint(&name, Duration::from_secs(3600))).unwrap_or_default();
        writer.queue(&proto::CLogin { name, token }).map_err(|_| Failure::Closed)?;
        writer.queue(&proto::CEnterRoom { room_id: self.room }).map_err(|_| Failure::Closed)?;
        writer.flush().await.map_err(|_| Failure::Closed)?;
        let (mut logged_in, mut entered) = (false, false);
        while !(logged_in && entered) {
            let packet = reader.recv().await?;
            self.link.live.received(1);
            self.counters.other_received += 1;
            match packet {
                ServerPacket::SLogin(login) if login.success => logged_in = true,
                // A long listing comes in pages: entered once the last one (`more: false`) is in.
                ServerPacket::SEnterRoom(room) if room.success => entered = !room.more,
                ServerPacket::SLogin(_) | ServerPacket::SEnterRoom(_) => return Err(Failure::Rejected),
                ServerPacket::SKick(kick) => return Err(Failure::Kicked(kick.reason)),
                _ => {}
            }
        }
        Ok((reader, writer))
    }

    async fn scenario(&mut self, reader: &mut Reader, writer: &mut Writer) -> Result<(), Failure> {
        let mut phase = *self.link.phase.borrow_and_update();
        self.load_room_members(phase);
        let mut requests = Requests::new(self.index, self.config.payload);
        let mut measure_from = self.link.clock.measure_from();
        let paced = self.config.rate > 0.0;
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / self.config.rate.max(1e-9)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut ticks = 0usize;
        // The reply deadline: re-armed only when it fires, against the time of the last progress.
        let mut last_progress = tokio::time::Instant::now();
        let deadline = tokio::time::sleep(self.config.timeout);
        tokio::pin!(deadline);
        loop {
            if phase == Phase::Run {
                let room = self.config.in_flight - self.in_flight.min(self.config.in_flight);
                let burst = if paced { room.min(std::mem::take(&mut ticks)) } else { room };
                if burst > 0 {
                    if self.in_flight == 0 {
                        last_progress = tokio::time::Instant::now();
                    }
                    let now = self.link.clock.now_ns();
                    for _ in 0..burst {
                        requests.queue(self.config.scenario, writer, now).map_err(|_| Failure::Closed)?;
                    }
                    self.in_flight += burst;
                    self.link.live.sent(burst as u64);
                    if now >= measure_from {
                        self.counters.sent += burst as u64;
                        if self.config.scenario == Scenario::Chat {
                            self.counters.expected_deliveries += burst as u64 * self.room_members;
                        }
                    }
                    writer.flush().await.map_err(|_| Failure::Closed)?;
                }
            } else if phase == Phase::Drain && self.in_flight == 0 {
                self.mark_settled();
            }
            tokio::select! {
                biased;
                changed = self.link.phase.changed() => {
                    phase = if changed.is_ok() { *self.link.phase.borrow_and_update() } else { Phase::Stop };
                    measure_from = self.link.clock.measure_from();
                    self.load_room_members(phase);
                    if phase == Phase::Stop {
                        return Ok(());
                    }
                }
                packet = next_packet(reader, self.config.mirror) => {
                    // A close after the fleet stopped is not a failure; before, it is.
                    let stopped = |e| if phase == Phase::Stop { Ok(()) } else { Err(e) };
                    let mut packet = match packet {
                        Ok(packet) => packet,
                        Err(e) => return stopped(e),
                    };
                    // Everything the same read brought in is handled here, with one clock reading: going back
                    // through the `select!` per packet cost the bots more CPU than the servers they measure.
                    let now = self.link.clock.now_ns();
                    let mut received = 0;
                    let mut progress = false;
                    loop {
                        received += 1;
                        progress |= self.on_packet(packet, now, measure_from)?;
                        packet = match buffered_packet(reader, self.config.mirror) {
                            Ok(Some(packet)) => packet,
                            Ok(None) => break,
                            Err(e) => return stopped(e),
                        };
                    }
                    self.link.live.received(received);
                    if progress {
                        last_progress = tokio::time::Instant::now();
                    }
                }
                _ = ticker.tick(), if paced && phase == Phase::Run => ticks += 1,
                () = &mut deadline => {
                    let due = last_progress + self.config.timeout;
                    if self.in_flight > 0 && tokio::time::Instant::now() >= due {
                        return Err(Failure::Timeout);
                    }
                    let next = if self.in_flight > 0 { due } else { tokio::time::Instant::now() + self.config.timeout };
                    deadline.as_mut().reset(next);
                }
            }
        }
    }

    /// Learns the room's size once the run started (every bot's setup is over by then).
    fn load_room_members(&mut self, phase: Phase) {
        if phase >= Phase::Run && self.room_members == 0 {
            let members = self.link.rooms.get(self.room as usize).map(|m| m.load(Ordering::Relaxed));
            self.room_members = members.unwrap_or(1);
        }
    }

    /// Accounts for one packet, received at `now`. Returns whether it was a reply to one of this bot's requests.
    fn on_packet(&mut self, packet: ServerPacket, now: u64, measure_from: u64) -> Result<bool, Failure> {
        let (sent_at, own) = match (self.config.scenario, packet) {
            (Scenario::Echo, ServerPacket::SEcho(echo)) => {
                let Some(stamp) = echo.data.first_chunk::<8>() else { return Err(Failure::Decode) };
                (u64::from_le_bytes(*stamp), true)
            }
            (Scenario::Chat, ServerPacket::SChat(chat)) => {
                let Some((stamp, sender)) = parse_chat(&chat.msg) else {
                    // Somebody else's chat in the room (a human with a chat client): not ours to measure.
                    self.counters.other_received += 1;
                    return Ok(false);
                };
                (stamp, sender == self.index)
            }
            (Scenario::Move, ServerPacket::SPong(pong)) => (pong.client_time, true),
            (Scenario::Move, ServerPacket::SMove(_)) => {
                // No timestamp to check: count deliveries that arrive while measuring.
                if now >= measure_from {
                    self.counters.deliveries += 1;
                } else {
                    self.counters.other_received += 1;
                }
                return Ok(false);
            }
            (_, ServerPacket::SKick(kick)) => return Err(Failure::Kicked(kick.reason)),
            (_, _) => {
                self.counters.other_received += 1;
                return Ok(false);
            }
        };
        let measured = sent_at >= measure_from;
        if measured {
            self.latency.record_ns(now.saturating_sub(sent_at));
        } else {
            self.counters.other_received += 1;
        }
        if self.config.scenario == Scenario::Chat && measured {
            self.counters.deliveries += 1;
        }
        if own {
            self.in_flight = self.in_flight.saturating_sub(1);
            if measured {
                self.counters.replies += 1;
            }
        }
        Ok(own)
    }
}

/// The next packet from the server. From a mirror, the frames are the bot's own `C_ECHO`s, read as the `S_ECHO`
/// a game server would have answered. Cancel-safe, like [`ClientReader::recv`].
async fn next_packet(reader: &mut Reader, mirror: bool) -> Result<ServerPacket, Failure> {
    if !mirror {
        return Ok(reader.recv().await?);
    }
    let (id, payload) = reader.recv_frame().await?;
    mirrored_echo(id, payload)
}

/// The next packet if the last read already brought it in, without waiting; like [`next_packet`] otherwise.
fn buffered_packet(reader: &mut Reader, mirror: bool) -> Result<Option<ServerPacket>, Failure> {
    if !mirror {
        return Ok(reader.try_recv()?);
    }
    let Some((id, payload)) = reader.try_recv_frame()? else { return Ok(None) };
    mirrored_echo(id, payload).map(Some)
}

/// A mirror's frame (the bot's own `C_ECHO`) read as the `S_ECHO` a game server would have answered.
fn mirrored_echo(id: u16, payload: &[u8]) -> Result<ServerPacket, Failure> {
    if id != <proto::CEcho as packet_runtime::Packet>::ID {
        return Err(Failure::Decode);
    }
    let echo = <proto::CEcho as prost::Message>::decode(payload).map_err(|_| Failure::Decode)?;
    Ok(ServerPacket::SEcho(proto::SEcho { data: echo.data }))
}

/// `"<ns> <bot>"`, the chat text bots send.
fn parse_chat(msg: &str) -> Option<(u64, usize)> {
    let (stamp, sender) = msg.split_once(' ')?;
    Some((stamp.parse().ok()?, sender.parse().ok()?))
}

/// Reusable request messages, so a steady run allocates nothing per message but the chat text's growth.
struct Requests {
    index: usize,
    echo: proto::CEcho,
    chat: proto::CChat,
    step: u32,
}

impl Requests {
    fn new(index: usize, payload: usize) -> Self {
        let mut data = vec![0u8; payload.max(8)];
        for (i, byte) in data.iter_mut().enumerate().skip(8) {
            *byte = i as u8;
        }
        Requests { index, echo: proto::CEcho { data }, chat: proto::CChat { msg: String::with_capacity(32) }, step: 0 }
    }

    fn queue(&mut self, scenario: Scenario, writer: &mut Writer, now: u64) -> Result<(), ClientError> {
        match scenario {
            Scenario::Echo => {
                self.echo.data[..8].copy_from_slice(&now.to_le_bytes());
                writer.queue(&self.echo)
            }
            Scenario::Chat => {
                use std::fmt::Write;
                self.chat.msg.clear();
                let _ = write!(self.chat.msg, "{now} {}", self.index);
                writer.queue(&self.chat)
            }
            Scenario::Move => {
                // Walk a circle around a point that depends on the bot, one degree per move.
                self.step = self.step.wrapping_add(1);
                let angle = (self.step % 360) as f32 * std::f32::consts::PI / 180.0;
                let base = (self.index % 100) as f32 * 10.0;
                let pos = proto::PosInfo { x: base + angle.cos(), y: base + angle.sin(), z: 0.0, yaw: angle };
                writer.queue(&proto::CMove { pos: Some(pos) })?;
                writer.queue(&proto::CPing { client_time: now })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relogin_backoff_doubles_from_100_ms_up_to_2_s() {
        let waits: Vec<_> = (0..8).map(|failed| relogin_backoff(failed).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_600, 2_000, 2_000, 2_000]);
        assert_eq!(relogin_backoff(u32::MAX), RELOGIN_BACKOFF_MAX, "no overflow however long it fails");
    }

    #[test]
    fn only_an_undecodable_packet_is_final() {
        assert!(!Failure::Decode.retryable());
        for failure in [
            Failure::ConnectFailed,
            Failure::Rejected,
            Failure::Closed,
            Failure::Kicked("game server lost".into()),
            Failure::Timeout,
        ] {
            assert!(failure.retryable());
        }
    }

    #[test]
    fn chat_text_round_trips() {
        assert_eq!(parse_chat("123456789 42"), Some((123_456_789, 42)));
        assert_eq!(parse_chat("hello there"), None);
        assert_eq!(parse_chat("123"), None);
    }
}
