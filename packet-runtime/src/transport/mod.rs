//! The swappable IO layer: where connections come from.
//!
//! The session driver only needs `AsyncRead + AsyncWrite`; a [`Listener`] hands out such streams. TCP is the default,
//! Unix sockets and in-memory pipes ([`memory`]) are provided, WebSocket for browsers (`websocket`, behind the
//! `websocket` feature), TLS over any of them (`tls`, behind the `tls` feature), and [`Either`] serves two listeners
//! at once (TCP and WebSocket on one server).
//!
//! A listener that admits a connection in stages (a TLS or WebSocket handshake before the session) gets the
//! server's [`Admission`] through [`Listener::admit`], so that its handshakes in progress count toward
//! `max_connections` like sessions do.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::{fmt, io};

use tokio::io::{AsyncRead, AsyncWrite};

/// Where a peer connected from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerAddr {
    /// A TCP peer.
    Tcp(std::net::SocketAddr),
    /// A WebSocket peer (a browser): the TCP address it connected from.
    WebSocket(std::net::SocketAddr),
    /// A Unix-socket peer (usually unnamed).
    Unix(Option<std::path::PathBuf>),
    /// An in-memory peer, numbered in connection order.
    Memory(u64),
    /// A client of a gateway in another process (a shard's remote session): the gateway's node id and the
    /// client's address as the gateway saw it.
    Remote {
        /// The gateway's node id.
        gateway: u64,
        /// The client's address, as the gateway printed it.
        addr: String,
    },
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Tcp(addr) => addr.fmt(f),
            PeerAddr::WebSocket(addr) => write!(f, "ws:{addr}"),
            PeerAddr::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            PeerAddr::Unix(None) => f.write_str("unix:(unnamed)"),
            PeerAddr::Memory(n) => write!(f, "memory:{n}"),
            PeerAddr::Remote { gateway, addr } => write!(f, "{addr} via gateway {gateway:016x}"),
        }
    }
}

/// A source of connections.
pub trait Listener: Send + 'static {
    /// The connection type.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, PeerAddr)>> + Send;

    /// Bounds the kernel's send buffer of a freshly accepted `stream` to about `bytes` (`SO_SNDBUF`), so that the
    /// memory a session can pin is its send queue limit plus this. Default: nothing (a transport without a kernel
    /// buffer).
    fn limit_send_buffer(stream: &Self::Stream, bytes: usize) -> io::Result<()> {
        let _ = (stream, bytes);
        Ok(())
    }

    /// Makes the coming close of `stream` abortive: the peer gets a reset and the kernel frees the connection's
    /// buffers at once, instead of keeping unsent bytes (and the FIN behind them) for a peer that does not read.
    /// Called just before the stream is dropped, for sessions cut off as slow consumers or whose flush deadline
    /// passed. Default: nothing (the stream is closed as usual).
    fn abortive_close(stream: &Self::Stream) {
        let _ = stream;
    }

    /// Bytes written to `stream` that the peer has not acknowledged yet (the kernel's send queue), if the transport
    /// can tell. A closing session whose peer acknowledged everything stops lingering at once. Default: `None`
    /// (the session lingers until the peer closes or the deadline passes).
    fn unacknowledged(stream: &Self::Stream) -> Option<usize> {
        let _ = stream;
        None
    }

    /// Called once by the server's accept loop before its first `accept`: the server's connection limit, for a
    /// listener whose connections wait in a handshake before they become sessions. Default: nothing (a listener
    /// that hands out connections at once).
    fn admit(&mut self, admission: Admission) {
        let _ = admission;
    }
}

/// The server's connection limit as a staged listener sees it: sessions open plus handshakes in progress stay
/// within `max_connections`. Cheap to clone; outside a server ([`Admission::unlimited`]) nothing is limited.
#[derive(Debug, Clone)]
pub struct Admission {
    shared: Arc<AdmissionShared>,
}

#[derive(Debug)]
struct AdmissionShared {
    /// Its `handshakes_pending`: handshakes begun and not yet handed to the accept loop (or failed).
    metrics: Arc<crate::metrics::Metrics>,
    max: Option<usize>,
}

impl Admission {
    pub(crate) fn new(metrics: Arc<crate::metrics::Metrics>, max: Option<usize>) -> Self {
        Admission { shared: Arc::new(AdmissionShared { metrics, max }) }
    }

    /// No limit, counted nowhere: for a listener used outside a server, or before the server called
    /// [`Listener::admit`].
    pub fn unlimited() -> Self {
        Admission::new(Arc::default(), None)
    }

    /// Room for one more handshake, held until the [`Pending`] is dropped (when the connection is handed to the
    /// accept loop, or its handshake fails). `None` when sessions and handshakes fill `max_connections`: the
    /// connection is counted as rejected, and the caller closes it.
    pub fn begin(&self) -> Option<Pending> {
        let shared = &self.shared;
        // Relaxed: a statistic-grade count; two handshakes racing for the last slot may both see room, which
        // exceeds the limit by at most the number of IO threads for an instant.
        let pending = shared.metrics.handshakes_pending.fetch_add(1, Ordering::Relaxed);
        let open = shared.metrics.connections_open.load(Ordering::Relaxed);
        if shared.max.is_some_and(|max| open.saturating_add(pending) >= max as u64) {
            shared.metrics.handshakes_pending.fetch_sub(1, Ordering::Relaxed);
            shared.metrics.rejected();
            return None;
        }
        Some(Pending { shared: Arc::clone(shared) })
    }

    /// Handshakes in progress now.
    pub fn pending(&self) -> u64 {
        self.shared.metrics.handshakes_pending.load(Ordering::Relaxed)
    }

    /// Counts a connection refused before its handshake for a reason of the listener's own (too many handshakes
    /// at once), like one refused at `max_connections`.
    pub fn rejected(&self) {
        self.shared.metrics.rejected();
    }

    /// Counts a TLS handshake that failed or passed its deadline (`packet_tls_handshake_failures_total`).
    pub fn handshake_failed(&self) {
        self.shared.metrics.tls_handshake_failed();
    }
}

/// One handshake's room under `max_connections` ([`Admission::begin`]); given back on drop.
#[derive(Debug)]
pub struct Pending {
    shared: Arc<AdmissionShared>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.shared.metrics.handshakes_pending.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, PeerAddr)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        // Game traffic is many small frames: never wait for Nagle.
        stream.set_nodelay(true)?;
        Ok((stream, PeerAddr::Tcp(addr)))
    }

    fn limit_send_buffer(stream: &Self::Stream, bytes: usize) -> io::Result<()> {
        socket2::SockRef::from(stream).set_send_buffer_size(bytes)
    }

    fn abortive_close(stream: &Self::Stream) {
        // SO_LINGER with a zero timeout: `close` sends a reset and discards the send buffer.
        if let Err(error) = socket2::SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO)) {
            tracing::debug!(%error, "SO_LINGER failed; the socket closes gracefully");
        }
    }

    fn unacknowledged(stream: &Self::Stream) -> Option<usize> {
        unacknowledged_bytes(stream)
    }
}

/// The bytes of a TCP socket's send queue the peer has not acknowledged (`SIOCOUTQ`, which Linux also names
/// `TIOCOUTQ`: `write_seq - snd_una`, so a FIN not yet acknowledged counts too).
#[cfg(target_os = "linux")]
fn unacknowledged_bytes(stream: &tokio::net::TcpStream) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: `stream` owns an open socket for the duration of the call, and TIOCOUTQ writes exactly one `c_int`
    // through the pointer, which points to a live, writable `c_int` on this stack frame.
    let result = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued as *mut libc::c_int) };
    if result == 0 { usize::try_from(queued).ok() } else { None }
}

#[cfg(not(target_os = "linux"))]
fn unacknowledged_bytes(_stream: &tokio::net::TcpStream) -> Option<usize> {
    None
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, PeerAddr)> {
        let (stream, addr) = tokio::net::UnixListener::accept(self).await?;
        Ok((stream, PeerAddr::Unix(addr.as_pathname().map(Into::into))))
    }

    fn limit_send_buffer(stream: &Self::Stream, bytes: usize) -> io::Result<()> {
        socket2::SockRef::from(stream).set_send_buffer_size(bytes)
    }
}

/// In-memory connections over `tokio::io::duplex` pipes: a whole server in one process without sockets, for tests
/// and simulations.
pub mod memory {
    use std::io;

    use tokio::io::DuplexStream;
    use tokio::sync::mpsc;

    use super::PeerAddr;

    /// Creates a connected listener/connector pair. `buffer` is each pipe's capacity in bytes.
    pub fn listener(buffer: usize) -> (MemoryListener, MemoryConnector) {
        let (tx, rx) = mpsc::unbounded_channel();
        (MemoryListener { rx, accepted: 0 }, MemoryConnector { tx, buffer })
    }

    /// The server side of [`listener`].
    #[derive(Debug)]
    pub struct MemoryListener {
        rx: mpsc::UnboundedReceiver<DuplexStream>,
        accepted: u64,
    }

    /// The client side of [`listener`]: cheap to clone.
    #[derive(Debug, Clone)]
    pub struct MemoryConnector {
        tx: mpsc::UnboundedSender<DuplexStream>,
        buffer: usize,
    }

    impl MemoryConnector {
        /// Opens a connection to the listener.
        pub fn connect(&self) -> io::Result<DuplexStream> {
            let (client, server) = tokio::io::duplex(self.buffer);
            self.tx.send(server).map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
            Ok(client)
        }
    }

    impl super::Listener for MemoryListener {
        type Stream = DuplexStream;

        async fn accept(&mut self) -> io::Result<(DuplexStream, PeerAddr)> {
            match self.rx.recv().await {
                Some(stream) => {
                    self.accepted += 1;
                    Ok((stream, PeerAddr::Memory(self.accepted)))
                }
                // Every connector is gone: no connection will ever come. Park like an idle TCP listener would.
                None => std::future::pending().await,
            }
        }
    }
}

/// Two listeners as one: connections from either, in the order they come. A server on TCP for native clients and
/// WebSocket for browsers is `Either(tcp, websocket)`.
#[derive(Debug)]
pub struct Either<A, B>(pub A, pub B);

/// A connection of an [`Either`] listener.
#[derive(Debug)]
pub enum EitherStream<A, B> {
    /// From the first listener.
    A(A),
    /// From the second.
    B(B),
}

impl<A: Listener, B: Listener> Listener for Either<A, B> {
    type Stream = EitherStream<A::Stream, B::Stream>;

    async fn accept(&mut self) -> io::Result<(Self::Stream, PeerAddr)> {
        tokio::select! {
            accepted = self.0.accept() => accepted.map(|(stream, peer)| (EitherStream::A(stream), peer)),
            accepted = self.1.accept() => accepted.map(|(stream, peer)| (EitherStream::B(stream), peer)),
        }
    }

    fn limit_send_buffer(stream: &Self::Stream, bytes: usize) -> io::Result<()> {
        match stream {
            EitherStream::A(a) => A::limit_send_buffer(a, bytes),
            EitherStream::B(b) => B::limit_send_buffer(b, bytes),
        }
    }

    fn abortive_close(stream: &Self::Stream) {
        match stream {
            EitherStream::A(a) => A::abortive_close(a),
            EitherStream::B(b) => B::abortive_close(b),
        }
    }

    fn unacknowledged(stream: &Self::Stream) -> Option<usize> {
        match stream {
            EitherStream::A(a) => A::unacknowledged(a),
            EitherStream::B(b) => B::unacknowledged(b),
        }
    }

    fn admit(&mut self, admission: Admission) {
        self.0.admit(admission.clone());
        self.1.admit(admission);
    }
}

macro_rules! either_io {
    ($self:ident, $inner:ident => $call:expr) => {
        match $self.get_mut() {
            EitherStream::A($inner) => $call,
            EitherStream::B($inner) => $call,
        }
    };
}

impl<A: AsyncRead + Unpin, B: AsyncRead + Unpin> AsyncRead for EitherStream<A, B> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        either_io!(self, s => std::pin::Pin::new(s).poll_read(cx, buf))
    }
}

impl<A: AsyncWrite + Unpin, B: AsyncWrite + Unpin> AsyncWrite for EitherStream<A, B> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        either_io!(self, s => std::pin::Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        either_io!(self, s => std::pin::Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            EitherStream::A(a) => a.is_write_vectored(),
            EitherStream::B(b) => b.is_write_vectored(),
        }
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        either_io!(self, s => std::pin::Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        either_io!(self, s => std::pin::Pin::new(s).poll_shutdown(cx))
    }
}

#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "websocket")]
pub mod websocket;
