//! The server framework: IO threads own sockets, one logic thread owns the game, and shutdown is an explicit,
//! ordered sequence.
//!
//! ```text
//!             IO threads (tokio, `workers`)                       logic thread (one)
//!  accept ──► driver per session ──decode──► IoHandler ──Forward──► inbox ──► Logic::on_packet
//!                 ▲   writes batches with write_vectored                        │
//!                 └──────────── per-session send queue ◄── Session::send ◄──────┘ (lock-free)
//! ```
//!
//! Shutdown (`ServerHandle::shutdown` then `join`, or `run_until_signal`):
//! 1. stop accepting and close the listener;
//! 2. `Logic::on_shutdown` (the app may broadcast a goodbye), then every session is asked to close;
//! 3. each session flushes its queue up to `close_flush_timeout`, then its socket closes;
//! 4. the logic thread runs every `on_disconnect` and exits (after at most `shutdown_timeout`);
//! 5. the IO runtime shuts down with a timeout, from the joining thread (never inside an async context);
//! 6. every thread is joined and a [`ShutdownReport`] returned.
//!
//! - `config`: [`ServerConfig`] and [`RateLimit`], the defaults.
//! - `logic`: [`Logic`], [`Context`], the logic thread.
//! - `io_hook`: [`IoHandler`], the IO-thread hook (ping/echo without the hop; bad-frame decisions).
//! - `acceptor`: the accept loop. `driver`: the per-session IO task; `write_batch`: its frames waiting to be written.
//! - `inbox`: the logic thread's bounded inbox, a ring allocated once (no allocation per event).
//! - `auth`: the authentication step ([`ServerBuilder::authenticate`], [`AuthLimits`]): a session's first packet
//!   goes to the application's hook before the game hears of the session. (The version handshake it may follow is
//!   [`crate::handshake`]; both are carried out by the driver.)

mod acceptor;
mod auth;
mod config;
mod driver;
mod inbox;
mod io_hook;
mod logic;
mod rate_limit;
mod remote;
#[cfg(feature = "tls")]
mod tls;
mod write_batch;

pub use auth::{AuthFault, AuthLimits, AuthRequest, Verdict};

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use std::{fmt, io};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::{RateLimit, ServerConfig};
pub use io_hook::{BadFrameAction, ForwardAll, FrameAction, IoAction, IoHandler};
pub use logic::{Context, HandOverError, Logic, Request};
pub use remote::RemoteSessions;

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::export::{Exported, MetricsExport};
use crate::frame::{HeaderKind, with_header};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::packet_ptr::PacketPtr;
use crate::pool::{MessagePool, PoolConfig};
use crate::session::CloseReason;
use crate::session::SessionIds;
use crate::session::outbox::SpareLists;
use crate::session::remote::RemoteDirectory;
use crate::transport::Listener;
use crate::{PacketOf, Protocol};
use logic::LogicEvent;

/// Entry point: `Server::<MyProtocol>::builder()`.
#[derive(Debug)]
pub struct Server<P: Protocol>(PhantomData<fn() -> P>);

impl<P: Protocol> Server<P> {
    /// A builder with the defaults of [`ServerConfig`].
    pub fn builder() -> ServerBuilder<P> {
        ServerBuilder {
            config: ServerConfig::default(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            pool: None,
            io_handler: Arc::new(ForwardAll),
            directory: None,
            close_notice: None,
            export: None,
            auth: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Configures and starts a server.
pub struct ServerBuilder<P: Protocol> {
    config: ServerConfig,
    bind: SocketAddr,
    pool: Option<MessagePool>,
    io_handler: Arc<dyn IoHandler<P>>,
    directory: Option<Arc<dyn RemoteDirectory>>,
    close_notice: Option<CloseNotice>,
    export: Option<MetricsExport>,
    auth: Option<auth::AuthHook<P>>,
    /// TLS on every listener `start` and `start_with_websocket` open ([`tls`](Self::tls)).
    #[cfg(feature = "tls")]
    tls: Option<crate::transport::tls::TlsConfig>,
}

/// The application's close notice ([`ServerBuilder::close_notice`]), type-erased: the reason in, the encoded frame
/// out.
pub(crate) type CloseNotice = Arc<dyn Fn(&CloseReason, &MessagePool, HeaderKind) -> Option<PacketPtr> + Send + Sync>;

impl<P: Protocol> fmt::Debug for ServerBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("bind", &self.bind)
            .field("export", &self.export)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> ServerBuilder<P> {
    /// TCP address to listen on for [`start`](Self::start). Default `127.0.0.1:0` (any free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// IO worker threads. Default: the number of CPUs.
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers.max(1);
        self
    }

    /// Connections beyond this are closed at once (counted as rejected). Default 10,000; `None` for no limit.
    pub fn max_connections(mut self, max: Option<usize>) -> Self {
        self.config.max_connections = max;
        self
    }

    /// Connections from one IP address beyond this are refused (with the close notice for
    /// [`CloseReason::AddressFull`]), counted in `connections_rejected`. Default `None` (off): players behind one
    /// NAT share an address, so pick a generous number.
    pub fn max_connections_per_address(mut self, max: Option<usize>) -> Self {
        self.config.max_connections_per_address = max;
        self
    }

    /// Largest accepted frame, header included. Default 16 KiB; capped at what the header can describe.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.config.max_frame = bytes;
        self
    }

    /// Bytes a session may have queued before it is closed as a slow consumer. Default 1 MiB.
    pub fn send_queue_limit(mut self, bytes: usize) -> Self {
        self.config.send_queue_limit = bytes;
        self
    }

    /// How long a session's queue may stay over `send_queue_limit` (a burst its recipient is draining) before it is
    /// cut off as a slow consumer. Default 1 s.
    pub fn send_queue_grace(mut self, grace: Duration) -> Self {
        self.config.send_queue_grace = grace;
        self
    }

    /// Kernel send buffer of each accepted socket (`SO_SNDBUF`). Default 256 KiB; `None` for the kernel's default
    /// (autotuned, up to 4 MiB on Linux). What a session can pin is its hard queue bound
    /// (`send_queue_limit` times [`ServerConfig::SEND_QUEUE_BURST_FACTOR`]) plus this.
    pub fn send_buffer(mut self, bytes: Option<usize>) -> Self {
        self.config.send_buffer = bytes;
        self
    }

    /// Close sessions that send nothing for this long. Default 60 s; `None` to never.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Events the IO threads may have waiting for the logic thread (connections and packets; at least 1). When it
    /// is full, a session whose next packet does not fit stops being read until there is room (TCP flow control
    /// pushes back on its client), the accept loop waits too, and every other session is still served; nothing is
    /// dropped or reordered. Its slots are allocated once, by `start`: forwarding a packet never allocates. Default
    /// 8,192.
    pub fn inbox_capacity(mut self, events: usize) -> Self {
        self.config.inbox_capacity = events.max(1);
        self
    }

    /// Period of `Logic::on_tick`. Default 50 ms; `None` for no ticks.
    pub fn tick(mut self, period: Option<Duration>) -> Self {
        self.config.tick = period;
        self
    }

    /// Per-session packet rate limit. Default 1,000/s with bursts of 2,000; `None` for no limit.
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.config.rate_limit = limit;
        self
    }

    /// Per-session limit on bytes read, beside the packet rate limit: `per_second` bytes a second, bursts of `burst`
    /// bytes (at least 8 KiB, one read). Past it the session gets the close notice and closes as
    /// [`CloseReason::ByteRateLimited`]. Default 4 MiB/s with bursts of 8 MiB; `None` for no limit.
    pub fn byte_rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.config.byte_rate_limit = limit;
        self
    }

    /// Frame header layout. Default [`HeaderKind::Compact`].
    pub fn header(mut self, header: HeaderKind) -> Self {
        self.config.header = header;
        self
    }

    /// How long a closing session may flush. Default 3 s.
    pub fn close_flush_timeout(mut self, timeout: Duration) -> Self {
        self.config.close_flush_timeout = timeout;
        self
    }

    /// How long shutdown waits for sessions to close. Default 10 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Whether every session must open with the version handshake (a hello stating the client's protocol
    /// fingerprint, [`crate::handshake`]). Default `false`: a hello that comes first is answered, but clients that
    /// never send one keep working. When required, a session reaches the game (`Logic::on_connect`) only once its
    /// hello matched; a first frame that is not a hello, or a mismatched fingerprint, closes it with
    /// [`CloseReason::Handshake`] and the close notice. The idle timeout bounds how long a client may wait before
    /// sending it.
    pub fn require_handshake(mut self, required: bool) -> Self {
        self.config.handshake.required = required;
        self
    }

    /// An authentication step: every session's first packet (after the version handshake, if required) must be a
    /// `T`, which goes to `hook` with who sent it; the session reaches the game only once the hook's future
    /// resolves to [`Verdict::Accept`], and the packet then reaches the game as its first. [`Verdict::Refuse`], a
    /// first packet of another type, or no acceptance within [`AuthLimits::deadline`] close the connection with
    /// the close notice for [`CloseReason::Auth`]. The future runs on the session's IO thread, so it may wait on a
    /// database or a token service without holding up the logic thread or other sessions (it must not block its
    /// thread). Connections waiting to authenticate have their own limits ([`auth_limits`](Self::auth_limits)).
    /// Default: no authentication step.
    pub fn authenticate<T, F, Fut>(mut self, hook: F) -> Self
    where
        T: PacketOf<P::ClientToServer>,
        F: Fn(AuthRequest, T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Verdict> + Send + 'static,
    {
        self.auth = Some(auth::AuthHook::new(hook));
        self
    }

    /// The limits of connections not yet authenticated ([`AuthLimits`]: 5 s, 1,000 at once, 1 KiB frames by
    /// default). Only with [`authenticate`](Self::authenticate).
    pub fn auth_limits(mut self, limits: AuthLimits) -> Self {
        self.config.auth = limits;
        self
    }

    /// The version string the server's hello carries (at most 64 bytes; longer is cut). Default
    /// `"packet-runtime <version>"`.
    pub fn server_version(mut self, version: impl Into<String>) -> Self {
        self.config.handshake.version = crate::Hello::of::<P>(version).version;
        self
    }

    /// The configuration so far (as [`start`](Self::start) will use it, before `max_frame` is capped to what the
    /// header can describe).
    pub fn settings(&self) -> &ServerConfig {
        &self.config
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// The pool frames are encoded into. Default: a pool of the server's own, so that the shutdown report's
    /// outstanding count is exact.
    pub fn pool(mut self, pool: MessagePool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The packet a peer gets before every graceful close the runtime initiates: a bad frame, the packet or byte
    /// rate limit, the idle timeout, shutdown, a handler panic, and connections refused at `max_connections` or
    /// `max_connections_per_address` (which never become sessions; the notice is written to their socket before it
    /// is closed). `notice` gets the reason ([`CloseReason::gets_notice`] says which) and returns the packet, or
    /// `None` for no notice. The notice is the last frame the peer gets: it is queued behind everything sent before
    /// the close and flushed under `close_flush_timeout`. Closes the application asks for (`Session::kick`,
    /// `close`) and cut-offs of peers that do not read (slow consumers) get none. Runs on IO threads and on the
    /// logic thread: it must not block; a panic in it means no notice. Default: no notice.
    pub fn close_notice<T, F>(mut self, notice: F) -> Self
    where
        T: PacketOf<P::ServerToClient>,
        F: Fn(&CloseReason) -> Option<T> + Send + Sync + 'static,
    {
        self.close_notice = Some(Arc::new(move |reason: &CloseReason, pool: &MessagePool, header: HeaderKind| {
            let packet = catch_unwind(AssertUnwindSafe(|| notice(reason)))
                .map_err(|_| tracing::error!(%reason, "the close notice hook panicked; no notice"))
                .ok()??;
            with_header!(header, H => PacketPtr::encode_in::<H, T>(pool, &packet))
                .map_err(|error| tracing::error!(%reason, %error, "the close notice does not encode; no notice"))
                .ok()
        }));
        self
    }

    /// Records the server's figures through the [`metrics`] facade, into whatever recorder the application
    /// installed before calling `start` (the names and labels: [`crate::export`]). Default: off. Off, a frame costs
    /// one branch more than before; on, a few atomic adds per poll and two clock reads per handled packet, never an
    /// allocation or a lookup per frame (docs/OPERATIONS.md, docs/BENCHMARKS.md).
    pub fn export_metrics(mut self, export: MetricsExport) -> Self {
        self.export = Some(export);
        self
    }

    /// The IO-thread hook. Default [`ForwardAll`].
    pub fn io_handler(mut self, handler: impl IoHandler<P>) -> Self {
        self.io_handler = Arc::new(handler);
        self
    }

    /// How this server reaches sessions of the cluster that are not its own ([`Context::send_remote`]). Set by the
    /// cluster layer on a shard; without it `send_remote` reaches nobody.
    pub fn remote_directory(mut self, directory: Arc<dyn RemoteDirectory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Binds the TCP address and starts the IO threads and the logic thread.
    pub fn start<L: Logic<Protocol = P>>(self, logic: L) -> io::Result<ServerHandle<P>> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.start_tls(logic);
        }
        let addr = self.bind;
        let mut local = None;
        let handle = self.start_on(
            || {
                let std_listener = std::net::TcpListener::bind(addr)?;
                std_listener.set_nonblocking(true)?;
                local = Some(std_listener.local_addr()?);
                tokio::net::TcpListener::from_std(std_listener)
            },
            logic,
        )?;
        let mut handle = handle;
        handle.local_addr = local;
        Ok(handle)
    }

    /// [`start`](Self::start) with a WebSocket listener beside the TCP one: browsers connect to `web` (bound by the
    /// caller, who knows its address), native clients to [`bind`](Self::bind). Both kinds of session are the same
    /// to the game and live under the same limits. `config.header` is set to this server's.
    #[cfg(feature = "websocket")]
    pub fn start_with_websocket<L: Logic<Protocol = P>>(
        self,
        logic: L,
        web: std::net::TcpListener,
        mut config: crate::transport::websocket::WebSocketConfig,
    ) -> io::Result<ServerHandle<P>> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.start_tls_with_websocket(logic, web, config);
        }
        use crate::transport::{Either, websocket::WebSocketListener};
        let addr = self.bind;
        config.header = self.config.header;
        let mut local = None;
        let mut handle = self.start_on(
            || {
                let std_listener = std::net::TcpListener::bind(addr)?;
                std_listener.set_nonblocking(true)?;
                local = Some(std_listener.local_addr()?);
                Ok(Either(tokio::net::TcpListener::from_std(std_listener)?, WebSocketListener::new(web, config)?))
            },
            logic,
        )?;
        handle.local_addr = local;
        Ok(handle)
    }

    /// Starts a shard: the logic thread and no listener. Its sessions are remote (their connections held by
    /// gateways in other processes) and come in through the returned [`RemoteSessions`]; everything else (the
    /// `Logic`, ticks, the ordered shutdown) is as for [`start`](Self::start).
    pub fn start_remote<L: Logic<Protocol = P>>(self, logic: L) -> io::Result<(ServerHandle<P>, RemoteSessions<P>)> {
        let handle = self.start_on(|| Ok(NoListener), logic)?;
        let sessions = RemoteSessions { shared: Arc::clone(&handle.shared) };
        Ok((handle, sessions))
    }

    /// Starts on any [`Listener`]: `make_listener` runs inside the IO runtime, so it may create tokio IO objects
    /// (`UnixListener::bind`, …).
    pub fn start_on<L, T>(self, make_listener: impl FnOnce() -> io::Result<T>, logic: L) -> io::Result<ServerHandle<P>>
    where
        L: Logic<Protocol = P>,
        T: Listener,
    {
        let mut config = self.config;
        config.max_frame = config.max_frame.min(config.header.max_frame_len()).max(config.header.header_len());
        let pool = self.pool.unwrap_or_else(|| MessagePool::new(PoolConfig::default()));
        let io_pool = pool.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.workers)
            .thread_name("packet-io")
            .on_thread_start(move || driver::prepare_io_thread(&io_pool))
            .enable_all()
            .build()?;
        let listener = {
            let _enter = runtime.enter();
            make_listener()?
        };
        let (inbox, inbox_rx) = mpsc::unbounded_channel();
        let (io_inbox, io_inbox_rx) = inbox::channel(config.inbox_capacity.max(1));
        // Resolved here, with the recorder in effect for the caller (a local one around `start` is honoured).
        let exported = self.export.as_ref().map(Exported::register::<P>);
        let shared = Arc::new(ServerShared {
            config,
            metrics: Arc::new(Metrics::new(exported)),
            pool,
            ids: SessionIds::default(),
            inbox,
            io_inbox,
            io_handler: self.io_handler,
            stop_accepting: CancellationToken::new(),
            logic_done: CancellationToken::new(),
            spare_lists: Arc::new(SpareLists::new()),
            directory: self.directory,
            close_notice: self.close_notice,
            auth: self.auth,
            auth_pending: std::sync::atomic::AtomicUsize::new(0),
            per_address: std::sync::Mutex::new(std::collections::HashMap::new()),
        });
        let logic_shared = Arc::clone(&shared);
        // Built here, not on the new thread: a failure is this call's error instead of a panic nobody sees.
        let logic_runtime = logic::runtime()?;
        let logic_thread = std::thread::Builder::new().name("packet-logic".into()).spawn(move || {
            let done = logic_shared.logic_done.clone();
            // Cancelled also if the logic thread dies: whoever waits for the end must not wait forever.
            let _done = done.drop_guard();
            logic::run(logic, inbox_rx, io_inbox_rx, logic_shared, logic_runtime)
        })?;
        runtime.spawn(acceptor::run(listener, Arc::clone(&shared)));
        if let Some(export) = &shared.metrics.export {
            runtime.spawn(sample_pool(Arc::clone(&shared), export.sample_every));
        }
        Ok(ServerHandle { shared, runtime: Some(runtime), logic_thread: Some(logic_thread), local_addr: None })
    }
}

/// Copies the sampled figures into the recorder every `period`: frames per packet and bytes (counted by the drivers
/// without the recorder), and the pool gauges (a pool snapshot takes the pool's lock of thread caches: not per
/// event). Ends with the IO runtime.
async fn sample_pool<P: Protocol>(shared: Arc<ServerShared<P>>, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let Some(export) = &shared.metrics.export else { return };
        let metrics = &shared.metrics;
        export.sample((
            metrics.bytes_in.load(std::sync::atomic::Ordering::Relaxed),
            metrics.bytes_out.load(std::sync::atomic::Ordering::Relaxed),
        ));
        let stats = shared.pool.stats();
        export.pool_outstanding.set(stats.outstanding() as f64);
        export.pool_retained.set(stats.total.bytes_retained as f64);
    }
}

/// The listener of a shard: never yields a connection; the accept loop only waits for shutdown.
struct NoListener;

impl Listener for NoListener {
    type Stream = tokio::io::DuplexStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, crate::transport::PeerAddr)> {
        std::future::pending().await
    }
}

/// What the IO side and the logic thread share. The fields' roles in shutdown: `stop_accepting` ends the accept
/// loop (step 1); `inbox` carries the `Shutdown` event to the logic thread (step 2) and every disconnect (step 4);
/// `io_inbox` carries the acceptor's last event, `AcceptorStopped`, behind every `Connected`.
pub(crate) struct ServerShared<P: Protocol> {
    pub(crate) config: ServerConfig,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) pool: MessagePool,
    pub(crate) ids: SessionIds,
    /// Events that must never wait: shutdown, the end of a session's stream and its disconnect (each carrying how
    /// many events the session put in `io_inbox` before it, so that the logic thread handles it after them), and
    /// every event of remote sessions (their gateway's link paces them).
    pub(crate) inbox: mpsc::UnboundedSender<LogicEvent<P>>,
    /// The bounded inbox: local sessions' connections and packets. Full, it pushes back on the IO side. Its ring
    /// of `inbox_capacity` events is allocated here, once (`inbox`).
    pub(crate) io_inbox: inbox::Sender<LogicEvent<P>>,
    pub(crate) io_handler: Arc<dyn IoHandler<P>>,
    pub(crate) stop_accepting: CancellationToken,
    /// Cancelled when the logic thread exits: the ordered shutdown is done but for the IO threads' last flush.
    pub(crate) logic_done: CancellationToken,
    /// Frame lists the drivers hand back to the logic thread's outbox once drained.
    pub(crate) spare_lists: Arc<SpareLists>,
    /// How to reach sessions of other shards (a cluster's shard only).
    pub(crate) directory: Option<Arc<dyn RemoteDirectory>>,
    pub(crate) close_notice: Option<CloseNotice>,
    /// The authentication hook ([`ServerBuilder::authenticate`]).
    pub(crate) auth: Option<auth::AuthHook<P>>,
    /// Connections waiting to authenticate now (bounded by `AuthLimits::max_pending`).
    pub(crate) auth_pending: std::sync::atomic::AtomicUsize,
    /// Open connections per IP address, kept only with `max_connections_per_address`.
    per_address: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

impl<P: Protocol> ServerShared<P> {
    /// Counts a new connection from `peer` against `max_connections_per_address`: `Ok(Some(ip))` to release when
    /// it closes, `Ok(None)` when there is no limit (or no IP address), `Err` when the address is full.
    pub(crate) fn admit_address(&self, peer: &crate::PeerAddr) -> Result<Option<std::net::IpAddr>, ()> {
        let (Some(max), crate::PeerAddr::Tcp(addr) | crate::PeerAddr::WebSocket(addr)) =
            (self.config.max_connections_per_address, peer)
        else {
            return Ok(None);
        };
        let mut open = self.per_address.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(addr.ip()).or_insert(0);
        if *count >= max {
            return Err(());
        }
        *count += 1;
        Ok(Some(addr.ip()))
    }

    /// A connection [`admit_address`](Self::admit_address) counted closed.
    pub(crate) fn release_address(&self, ip: std::net::IpAddr) {
        let mut open = self.per_address.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }

    /// The application's notice for a close for `reason`, encoded, if the reason gets one and the application
    /// gives one.
    /// The counters, with the figures the server keeps outside `Metrics` (connections waiting to authenticate).
    pub(crate) fn metrics_snapshot(&self) -> MetricsSnapshot {
        let mut snapshot = self.metrics.snapshot(self.pool.stats());
        snapshot.auth_pending = self.auth_pending.load(std::sync::atomic::Ordering::Relaxed) as u64;
        snapshot
    }

    pub(crate) fn notice_for(&self, reason: &CloseReason) -> Option<PacketPtr> {
        let notice = self.close_notice.as_ref().filter(|_| reason.gets_notice())?;
        notice(reason, &self.pool, self.config.header)
    }

    fn shutdown(&self) {
        self.stop_accepting.cancel();
        let _ = self.inbox.send(LogicEvent::Shutdown);
    }
}

/// A running server. Stop it with [`shutdown`](Self::shutdown) and [`join`](Self::join), or hand control to
/// [`run_until_signal`](Self::run_until_signal).
///
/// Dropping the handle without `join` starts the same ordered shutdown and finishes it on a background thread: it
/// neither blocks the dropping thread nor panics (even inside an async context), but nobody waits for it.
pub struct ServerHandle<P: Protocol> {
    shared: Arc<ServerShared<P>>,
    /// The IO threads. Shut down in `join` after the logic thread exited, from a plain thread.
    runtime: Option<tokio::runtime::Runtime>,
    /// Exits once shutdown was requested and every session's `on_disconnect` ran.
    logic_thread: Option<JoinHandle<logic::LogicReport>>,
    local_addr: Option<SocketAddr>,
}

impl<P: Protocol> fmt::Debug for ServerHandle<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

/// Starts a server's ordered shutdown and waits for it, from anywhere: [`ServerHandle::shutdown_handle`]. Cheap to
/// clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    start: Arc<dyn Fn() + Send + Sync>,
    logic_done: CancellationToken,
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle").field("finished", &self.logic_done.is_cancelled()).finish()
    }
}

impl ShutdownHandle {
    /// Starts the ordered shutdown, as [`ServerHandle::shutdown`] does. Idempotent.
    pub fn shutdown(&self) {
        (self.start)();
    }

    /// Resolves once the logic thread has exited: every session's `on_disconnect` ran (or the thread died). What
    /// is left for [`ServerHandle::join`] is the IO threads' last flush.
    pub async fn finished(&self) {
        self.logic_done.cancelled().await;
    }
}

/// What [`ServerHandle::join`] reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Sessions whose `on_disconnect` ran.
    pub sessions_closed: u64,
    /// Queued frames discarded because their session closed before they were written.
    pub frames_dropped: u64,
    /// Pool blocks still held by someone after everything stopped. 0 unless the application keeps frames.
    pub pool_outstanding: u64,
    /// Panics caught in handlers over the server's life.
    pub handler_panics: u64,
    /// Whether the logic thread itself died (a bug in the runtime, not in handlers).
    pub logic_thread_panicked: bool,
    /// The final counters.
    pub metrics: MetricsSnapshot,
}

impl<P: Protocol> ServerHandle<P> {
    /// The bound TCP address (servers started with [`ServerBuilder::start`]).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics_snapshot()
    }

    /// The pool frames are encoded into.
    pub fn pool(&self) -> &MessagePool {
        &self.shared.pool
    }

    /// Starts the ordered shutdown. Returns at once; idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }

    /// A handle that starts this server's shutdown from anywhere (another thread, a task, a callback) and can
    /// wait for its logic side to finish, while the `ServerHandle` itself stays with whoever will [`join`](Self::join).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        let shared = Arc::clone(&self.shared);
        ShutdownHandle { start: Arc::new(move || shared.shutdown()), logic_done: self.shared.logic_done.clone() }
    }

    /// Installs SIGINT/SIGTERM handling: the first signal starts [`shutdown`](Self::shutdown), a second one exits
    /// the process at once with status 130. Returns once the handlers are installed, so a signal sent afterwards is
    /// never lost to the default action.
    #[cfg(unix)]
    pub fn watch_signals(&self) -> io::Result<()> {
        self.watch_signals_then(|| async {})
    }

    /// [`watch_signals`](Self::watch_signals), awaiting `before()` between the first signal and the start of the
    /// shutdown (a cluster's shard announces there that it is leaving, so that gateways stop routing to it before it
    /// hands its sessions over). A second signal exits at once, also while `before` runs.
    #[cfg(unix)]
    pub fn watch_signals_then<F>(&self, before: impl FnOnce() -> F + Send + 'static) -> io::Result<()>
    where
        F: std::future::Future<Output = ()> + Send,
    {
        use tokio::signal::unix::{SignalKind, signal};
        let runtime = self.runtime.as_ref().expect("runtime present until join");
        let _enter = runtime.enter();
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let shared = Arc::clone(&self.shared);
        runtime.spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("signal received: shutting down (send it again to exit at once)");
            let second = async {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            };
            tokio::pin!(second);
            let second_came = tokio::select! {
                _ = before() => false,
                _ = &mut second => true,
            };
            if !second_came {
                shared.shutdown();
                second.await;
            }
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        });
        Ok(())
    }

    /// Waits for SIGINT or SIGTERM, then shuts down in order and returns the report.
    #[cfg(unix)]
    pub fn run_until_signal(self) -> io::Result<ShutdownReport> {
        self.watch_signals()?;
        Ok(self.join())
    }

    /// Waits until the server has shut down (call [`shutdown`](Self::shutdown) first, or from elsewhere), then
    /// stops the IO threads and joins every thread.
    ///
    /// Blocking: call it from a plain thread, not from inside an async runtime.
    pub fn join(mut self) -> ShutdownReport {
        let (report, logic_thread_panicked) = match self.logic_thread.take().map(JoinHandle::join) {
            Some(Ok(report)) => (report, false),
            Some(Err(_)) | None => (logic::LogicReport::default(), true),
        };
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(self.shared.config.close_flush_timeout + Duration::from_secs(1));
        }
        let metrics = self.metrics();
        ShutdownReport {
            sessions_closed: report.sessions_closed,
            frames_dropped: metrics.frames_dropped,
            pool_outstanding: metrics.pool.outstanding(),
            handler_panics: report.handler_panics,
            logic_thread_panicked,
            metrics,
        }
    }
}

impl<P: Protocol> Drop for ServerHandle<P> {
    fn drop(&mut self) {
        let (Some(runtime), logic_thread) = (self.runtime.take(), self.logic_thread.take()) else { return };
        self.shared.shutdown();
        let timeout = self.shared.config.close_flush_timeout + Duration::from_secs(1);
        // Finish on a plain thread: joining here could block an async caller, and dropping a runtime inside an
        // async context panics.
        let _ = std::thread::Builder::new().name("packet-shutdown".into()).spawn(move || {
            if let Some(thread) = logic_thread {
                let _ = thread.join();
            }
            runtime.shutdown_timeout(timeout);
        });
    }
}
