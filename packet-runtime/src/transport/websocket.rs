//! WebSocket, for browsers: a [`WebSocketListener`] accepts TCP connections, answers plain HTTP requests for the
//! pages it was given (a browser demo, say), and upgrades requests for its path (`/ws` by default) to WebSocket
//! sessions that the runtime drives like any other stream: every per-session limit of TCP holds (frame size, packet
//! and byte rates, idle timeout, send queue, slow consumer).
//!
//! **Framing.** Each binary message carries one or more whole frames, the same bytes as on TCP, in both
//! directions: what the driver writes in one gathered write leaves as one message, so a client must accept several
//! frames in one message. A text message, a message that ends inside a frame, or a message over
//! [`WebSocketConfig::max_message`] is refused with a [`TransportFault`]: the session gets the close notice, as for
//! any bad frame, then closes. Ping/pong and the close handshake are the library's (tokio-tungstenite);
//! permessage-deflate is never negotiated (tungstenite does not implement it).
//!
//! **Handshakes** run in tasks of their own, at most [`WebSocketConfig::max_handshakes`] at once (more are refused
//! with `503`), each within [`WebSocketConfig::handshake_timeout`]: a socket that opens and sends nothing costs a
//! task until then, never a session, and never holds up the accept loop. Origins: any by default (a game server
//! usually wants browsers from anywhere); [`WebSocketConfig::allowed_origins`] restricts them (`403` otherwise).
//! A handshake in progress counts toward the server's `max_connections` like a session (the connection is closed
//! at once when sessions and handshakes fill it).
//!
//! **wss** (the `tls` feature): with [`WebSocketConfig::tls`], every connection does its TLS handshake first, and
//! the HTTP request, the pages and the upgrade run over the TLS stream; `handshake_timeout` and `max_handshakes`
//! cover both handshakes together.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::{self, Message, error::CapacityError};

use super::{Admission, Listener, PeerAddr};
use crate::close::TransportFault;
use crate::frame::{FrameHeader, HeaderKind, with_header};

/// Longest HTTP request head read before a request is refused.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// How a [`WebSocketListener`] serves.
#[derive(Debug, Clone)]
pub struct WebSocketConfig {
    /// The path upgraded to the game's WebSocket endpoint. Default `/ws`.
    pub path: String,
    /// `Origin`s allowed to upgrade; `None` (the default) allows any, and requests without an `Origin` (non-browser
    /// clients). With a list, a request whose `Origin` is not in it is refused with `403`.
    pub allowed_origins: Option<Vec<String>>,
    /// A connection that has not completed its HTTP request and upgrade within this is closed. Default 10 s.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once; further connections are refused with `503` while they last. Default 1024.
    pub max_handshakes: usize,
    /// Largest message accepted, in bytes. Default 1 MiB.
    pub max_message: usize,
    /// The frame header of the server's protocol (to check that messages carry whole frames). Default compact.
    pub header: HeaderKind,
    /// Plain HTTP pages served by `GET`, by path: content type and body (the browser demo).
    pub pages: Vec<Page>,
    /// Answers requests for paths no page serves (a development endpoint, say); `None` (the default): `404`.
    pub responder: Option<Responder>,
    /// Serve https and wss instead of http and ws: the TLS handshake before the HTTP request. Default `None`.
    /// `ServerBuilder::tls` sets it. (Its own handshake limits are not used here: `handshake_timeout` and
    /// `max_handshakes` above cover both handshakes.)
    #[cfg(feature = "tls")]
    pub tls: Option<super::tls::TlsConfig>,
}

/// Answers a plain HTTP request for a path no [`Page`] serves: called with the path and the query string (after
/// `?`, not decoded); `Some(page)` is sent with `200` (its `path` is not looked at), `None` is a `404`. It runs on
/// the IO thread doing the HTTP exchange: it must not block.
#[derive(Clone)]
pub struct Responder(pub std::sync::Arc<RespondFn>);

/// What a [`Responder`] calls: the path and the query string in, the page to send (or none) out.
pub type RespondFn = dyn Fn(&str, &str) -> Option<Page> + Send + Sync;

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responder(..)")
    }
}

/// A page a [`WebSocketListener`] serves over plain HTTP.
#[derive(Debug, Clone)]
pub struct Page {
    /// The request path (`/`, `/client.js`).
    pub path: String,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its body.
    pub body: Bytes,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            path: "/ws".into(),
            allowed_origins: None,
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 1024,
            max_message: 1024 * 1024,
            header: HeaderKind::Compact,
            pages: Vec::new(),
            responder: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// A listener of WebSocket sessions (and plain HTTP pages) on one TCP port. Create it inside the server's runtime
/// (in [`ServerBuilder::start_on`](crate::server::ServerBuilder::start_on)'s closure): its accept loop is a task.
#[derive(Debug)]
pub struct WebSocketListener {
    incoming: mpsc::Receiver<(WebSocketStream, PeerAddr)>,
    local_addr: SocketAddr,
    accept_loop: tokio::task::JoinHandle<()>,
    /// The server's connection limit, given by [`Listener::admit`] after the accept loop started.
    admission: Arc<OnceLock<Admission>>,
}

impl Drop for WebSocketListener {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl WebSocketListener {
    /// Serves on `listener` (bound already, so the caller knows its address). Must run inside a tokio runtime.
    pub fn new(listener: std::net::TcpListener, config: WebSocketConfig) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let local_addr = listener.local_addr()?;
        // Completed handshakes wait here for the server's accept loop; a few are plenty (it takes them at once).
        let (tx, incoming) = mpsc::channel(64);
        let admission = Arc::new(OnceLock::new());
        let accept_loop = tokio::spawn(accept_loop(listener, Arc::new(config), tx, Arc::clone(&admission)));
        Ok(WebSocketListener { incoming, local_addr, accept_loop, admission })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Listener for WebSocketListener {
    type Stream = WebSocketStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, PeerAddr)> {
        match self.incoming.recv().await {
            Some(accepted) => Ok(accepted),
            None => Err(io::Error::other("the WebSocket accept loop ended")),
        }
    }

    fn limit_send_buffer(stream: &Self::Stream, bytes: usize) -> io::Result<()> {
        socket2::SockRef::from(stream.tcp()).set_send_buffer_size(bytes)
    }

    fn abortive_close(stream: &Self::Stream) {
        let _ = socket2::SockRef::from(stream.tcp()).set_linger(Some(Duration::ZERO));
    }

    fn unacknowledged(stream: &Self::Stream) -> Option<usize> {
        <TcpListener as Listener>::unacknowledged(stream.tcp())
    }

    fn admit(&mut self, admission: Admission) {
        let _ = self.admission.set(admission);
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<WebSocketConfig>,
    ready: mpsc::Sender<(WebSocketStream, PeerAddr)>,
    admission: Arc<OnceLock<Admission>>,
) {
    let slots = Arc::new(Semaphore::new(config.max_handshakes.max(1)));
    let unlimited = Admission::unlimited();
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and the like: back off a little instead of spinning.
                tracing::warn!(%error, "WebSocket accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let admission = admission.get().unwrap_or(&unlimited).clone();
        let Some(pending) = admission.begin() else {
            tracing::debug!(%addr, "max_connections reached (sessions and handshakes); connection closed");
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            admission.rejected();
            #[cfg(feature = "tls")]
            if config.tls.is_some() {
                // No plain HTTP answer on a TLS port.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                continue;
            }
            tokio::spawn(async move {
                let mut stream = Conn::Plain(stream);
                let _ = respond(&mut stream, "503 Service Unavailable", "text/plain", b"too many handshakes").await;
            });
            continue;
        };
        let (config, ready) = (Arc::clone(&config), ready.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + config.handshake_timeout;
            let peer = PeerAddr::WebSocket(addr);
            let Some(conn) = secure(stream, &peer, &config, deadline, &admission).await else { return };
            let handshake = tokio::time::timeout_at(deadline, handshake(conn, &config));
            match handshake.await {
                Ok(Ok(Some(ws))) => {
                    drop(slot);
                    let _ = ready.send((ws, peer)).await;
                    drop(pending);
                }
                Ok(Ok(None)) => {}
                Ok(Err(error)) => tracing::debug!(%addr, %error, "WebSocket handshake failed"),
                Err(_) => tracing::debug!(%addr, "WebSocket handshake timed out"),
            }
        });
    }
}

/// The TLS handshake first, with `tls` (wss); `None`: it failed (logged and counted).
async fn secure(
    stream: TcpStream,
    peer: &PeerAddr,
    config: &WebSocketConfig,
    deadline: tokio::time::Instant,
    admission: &Admission,
) -> Option<Conn> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &config.tls {
        let timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
        return super::tls::handshake(stream, peer, tls, timeout, admission).await.map(|s| Conn::Tls(Box::new(s)));
    }
    let _ = (peer, config, deadline, admission);
    Some(Conn::Plain(stream))
}

/// Reads the request head; serves a page, refuses, or upgrades. `Ok(None)`: answered over plain HTTP.
async fn handshake(mut stream: Conn, config: &WebSocketConfig) -> io::Result<Option<WebSocketStream>> {
    let mut head = Vec::with_capacity(1024);
    let (path, query, upgrade, origin) = loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                let header = |name: &str| {
                    request
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .map(str::to_owned)
                };
                let upgrade = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
                let target = request.path.unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                break (path.to_owned(), query.to_owned(), upgrade, header("origin"));
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_REQUEST_HEAD => continue,
            _ => {
                respond(&mut stream, "400 Bad Request", "text/plain", b"bad request").await?;
                return Ok(None);
            }
        }
    };
    if path == config.path && upgrade {
        if let (Some(allowed), Some(origin)) = (&config.allowed_origins, &origin)
            && !allowed.iter().any(|a| a == origin)
        {
            respond(&mut stream, "403 Forbidden", "text/plain", b"origin not allowed").await?;
            return Ok(None);
        }
        if config.allowed_origins.is_some() && origin.is_none() {
            respond(&mut stream, "403 Forbidden", "text/plain", b"origin required").await?;
            return Ok(None);
        }
        let ws_config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(config.max_message))
            .max_frame_size(Some(config.max_message));
        let rewound = Rewind { prefix: Bytes::from(head), inner: stream };
        let ws =
            tokio_tungstenite::accept_async_with_config(rewound, Some(ws_config)).await.map_err(io::Error::other)?;
        return Ok(Some(WebSocketStream {
            ws,
            read: Bytes::new(),
            header: config.header,
            max_message: config.max_message,
            eof: false,
        }));
    }
    let answer = match config.pages.iter().find(|page| page.path == path) {
        Some(page) => Some(page.clone()),
        None => config.responder.as_ref().and_then(|responder| (responder.0)(&path, &query)),
    };
    match answer {
        Some(page) => respond(&mut stream, "200 OK", page.content_type, &page.body).await?,
        None => respond(&mut stream, "404 Not Found", "text/plain", b"not found").await?,
    }
    Ok(None)
}

async fn respond(stream: &mut Conn, status: &str, content_type: &str, body: &[u8]) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

/// A connection of the WebSocket listener: clear text, or TLS (wss).
#[derive(Debug)]
enum Conn {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<super::tls::TlsStream<TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Conn::Tls(tls) => tls.get_ref().0,
        }
    }
}

macro_rules! conn_io {
    ($self:ident, $inner:ident => $call:expr) => {
        match $self.get_mut() {
            Conn::Plain($inner) => $call,
            #[cfg(feature = "tls")]
            Conn::Tls($inner) => $call,
        }
    };
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        conn_io!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        conn_io!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        conn_io!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        conn_io!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// The socket with the request head it was read from put back in front, for the WebSocket handshake to read.
#[derive(Debug)]
struct Rewind {
    prefix: Bytes,
    inner: Conn,
}

impl AsyncRead for Rewind {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One WebSocket session as a byte stream of frames: what the session driver reads and writes.
#[derive(Debug)]
pub struct WebSocketStream {
    ws: tokio_tungstenite::WebSocketStream<Rewind>,
    /// The rest of the last binary message.
    read: Bytes,
    header: HeaderKind,
    max_message: usize,
    eof: bool,
}

impl WebSocketStream {
    fn tcp(&self) -> &TcpStream {
        self.ws.get_ref().inner.tcp()
    }
}

fn fault(fault: TransportFault) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, fault)
}

/// Whether `message` holds whole frames only (a size field below the header is left for the driver to refuse).
fn whole_frames(message: &[u8], header: HeaderKind) -> bool {
    with_header!(header, H => {
        let mut at = 0;
        while at < message.len() {
            let Some((size, _)) = H::read(&message[at..]) else { return false };
            if size < H::LEN {
                return true;
            }
            at += size;
        }
        at == message.len()
    })
}

impl AsyncRead for WebSocketStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.read.is_empty() {
                let n = self.read.len().min(buf.remaining());
                buf.put_slice(&self.read[..n]);
                self.read.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                None | Some(Ok(Message::Close(_))) | Some(Err(tungstenite::Error::ConnectionClosed)) => {
                    self.eof = true;
                }
                Some(Ok(Message::Binary(data))) => {
                    if !whole_frames(&data, self.header) {
                        return Poll::Ready(Err(fault(TransportFault::SplitFrame)));
                    }
                    self.read = data;
                }
                Some(Ok(Message::Text(_))) => return Poll::Ready(Err(fault(TransportFault::TextMessage))),
                // Pings are answered by the library; pongs and raw frames carry nothing for us.
                Some(Ok(_)) => {}
                Some(Err(tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, .. }))) => {
                    let max = self.max_message;
                    return Poll::Ready(Err(fault(TransportFault::MessageTooLarge { size, max })));
                }
                Some(Err(tungstenite::Error::Io(error))) => return Poll::Ready(Err(error)),
                Some(Err(error)) => return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, error))),
            }
        }
    }
}

fn ws_error(error: tungstenite::Error) -> io::Error {
    match error {
        tungstenite::Error::Io(error) => error,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::other(other),
    }
}

impl WebSocketStream {
    fn send(&mut self, cx: &mut Context<'_>, message: impl FnOnce() -> Bytes) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_error)?;
        Pin::new(&mut self.ws).start_send(Message::Binary(message())).map_err(ws_error)?;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WebSocketStream {
    /// One message per write: the driver writes whole frames, so every message carries whole frames.
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.send(cx, || Bytes::copy_from_slice(buf)))?;
        Poll::Ready(Ok(buf.len()))
    }

    /// A gathered write is one message with every frame of it.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        ready!(self.send(cx, || {
            let mut message = Vec::with_capacity(total);
            for buf in bufs {
                message.extend_from_slice(buf);
            }
            Bytes::from(message)
        }))?;
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_error)
    }

    /// The WebSocket close handshake (a close frame), then the TCP shutdown.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {}
            Err(error) => return Poll::Ready(Err(ws_error(error))),
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_must_hold_whole_frames() {
        let frame = [6u8, 0, 1, 0, 0xaa, 0xbb];
        let two: Vec<u8> = frame.iter().chain(frame.iter()).copied().collect();
        assert!(whole_frames(&frame, HeaderKind::Compact));
        assert!(whole_frames(&two, HeaderKind::Compact), "several frames in one message");
        assert!(!whole_frames(&two[..9], HeaderKind::Compact), "the second frame cut short");
        assert!(!whole_frames(&frame[..2], HeaderKind::Compact), "a header cut short");
        assert!(whole_frames(&[1, 0, 0, 0], HeaderKind::Compact), "a size below the header is the driver's to refuse");
    }
}
