//! The typed client: sends only the protocol's client-to-server packets, receives its server-to-client enum.
//!
//! Used by tests, examples and the load generator. Generic over the stream like the server, so it also runs over
//! Unix sockets and in-memory pipes.
//!
//! ```no_run
//! # use packet_runtime::{Protocol, PacketOf};
//! # async fn demo<P: Protocol, T: PacketOf<P::ClientToServer>>(hello: T) -> Result<(), packet_runtime::client::ClientError> {
//! let mut client = packet_runtime::Client::<P>::connect("127.0.0.1:7777").await?;
//! client.send(&hello).await?;
//! let reply = client.recv().await?;
//! # Ok(()) }
//! ```

use core::fmt;
use core::marker::PhantomData;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::frame::{FrameFault, FrameHeader, HeaderKind, parse_frame, with_header};
use crate::handshake::{CONTROL_ID, HandshakeFault, Hello, HelloKind};
use crate::{DecodeError, EncodeError, PacketOf, PacketSet, Protocol};

/// A client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server closed the connection between frames.
    #[error("connection closed by the server")]
    Closed,
    /// The server closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The server sent a frame with an unacceptable header.
    #[error(transparent)]
    Fault(#[from] FrameFault),
    /// The server sent a packet that does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A packet to send could not be encoded (too large for the header): the same [`EncodeError`] a server
    /// session returns for the same packet. Nothing was queued.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The connection failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The version handshake failed ([`Client::handshake`]): the server runs another protocol (both fingerprints
    /// named), or did not answer the hello.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeFault),
}

/// A connection to a server of protocol `P`.
pub struct Client<P: Protocol, S = TcpStream> {
    reader: ClientReader<P, ReadHalf<S>>,
    writer: ClientWriter<P, WriteHalf<S>>,
}

impl<P: Protocol, S> fmt::Debug for Client<P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("header", &self.reader.header).finish_non_exhaustive()
    }
}

impl<P: Protocol> Client<P, TcpStream> {
    /// Connects over TCP (with `TCP_NODELAY`), compact header, 64 KiB maximum frame.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client::new(stream))
    }
}

/// A client connection over TLS ([`Client::connect_tls`]).
#[cfg(feature = "tls")]
pub type TlsClient<P> = Client<P, crate::transport::tls::client::TlsStream<TcpStream>>;

#[cfg(feature = "tls")]
impl<P: Protocol> Client<P, crate::transport::tls::client::TlsStream<TcpStream>> {
    /// Connects over TCP (with `TCP_NODELAY`), then TLS: the server must present a certificate for `server_name`
    /// that `config` trusts ([`client_config`](crate::transport::tls::client_config) makes one of a root store of
    /// your choosing). A refused certificate is an [`Io`](ClientError::Io) error of kind `InvalidData`.
    pub async fn connect_tls(
        addr: impl ToSocketAddrs,
        server_name: &str,
        config: std::sync::Arc<crate::transport::tls::ClientConfig>,
    ) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client::new(crate::transport::tls::connect(stream, server_name, config).await?))
    }
}

impl<P: Protocol, S: AsyncRead + AsyncWrite> Client<P, S> {
    /// Wraps a connected stream, compact header, 64 KiB maximum frame.
    pub fn new(stream: S) -> Self {
        let (read, write) = tokio::io::split(stream);
        Client { reader: ClientReader::new(read), writer: ClientWriter::new(write) }
    }

    /// Uses another header layout (it must match the server's).
    pub fn with_header(mut self, header: HeaderKind) -> Self {
        self.reader.header = header;
        self.writer.header = header;
        self
    }

    /// Refuses received frames larger than `bytes`.
    pub fn with_max_frame(mut self, bytes: usize) -> Self {
        self.reader.max_frame = bytes;
        self
    }

    /// Encodes and writes one packet.
    pub async fn send<T: PacketOf<P::ClientToServer>>(&mut self, packet: &T) -> Result<(), ClientError> {
        self.writer.send(packet).await
    }

    /// Encodes a packet into the write buffer without writing it; [`flush`](Self::flush) writes everything queued
    /// in one go (pipelining).
    pub fn queue<T: PacketOf<P::ClientToServer>>(&mut self, packet: &T) -> Result<(), ClientError> {
        self.writer.queue(packet)
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.writer.flush().await
    }

    /// Writes raw bytes as they are (for testing how a server handles bad input).
    #[cfg(feature = "test-util")]
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.writer.send_raw(bytes).await
    }

    /// Waits for the next packet.
    pub async fn recv(&mut self) -> Result<P::ServerToClient, ClientError> {
        self.reader.recv().await
    }

    /// Waits for the next frame and lends its id and payload, undecoded and uncopied, until the next call.
    pub async fn recv_frame(&mut self) -> Result<(u16, &[u8]), ClientError> {
        self.reader.recv_frame().await
    }

    /// The version handshake ([`crate::handshake`]): sends a hello with `P`'s fingerprint and `version` (cut to
    /// 64 bytes), which must be the connection's first frame, and waits for the server's. Returns the server's
    /// hello when the fingerprints match; [`ClientError::Handshake`] naming both fingerprints when they do not (the
    /// server then closes the connection after its close notice, which stays readable with [`recv`](Self::recv)),
    /// or when the server sent something else first (a server that predates the handshake refuses packet id 0).
    pub async fn handshake(&mut self, version: impl Into<String>) -> Result<Hello, ClientError> {
        let hello = Hello::of::<P>(version);
        self.writer.send_control(&hello.payload(HelloKind::FromClient)).await?;
        let (id, range) = self.reader.next_frame().await?;
        if id != CONTROL_ID {
            // Put it back: it is the server's reply to something (its close notice, most likely).
            self.reader.start = range.start - self.reader.header.header_len();
            return Err(HandshakeFault::NoAnswer { id }.into());
        }
        let answer = Hello::parse(&self.reader.buf[range], HelloKind::FromServer)?;
        if answer.fingerprint != hello.fingerprint {
            return Err(HandshakeFault::Mismatch {
                client: hello.fingerprint,
                client_version: hello.version,
                server: answer.fingerprint,
                server_version: answer.version,
            }
            .into());
        }
        Ok(answer)
    }

    /// Splits into independently usable halves (for example one task sending, one receiving).
    pub fn into_split(self) -> (ClientReader<P, ReadHalf<S>>, ClientWriter<P, WriteHalf<S>>) {
        (self.reader, self.writer)
    }
}

/// The receiving half of a [`Client`].
pub struct ClientReader<P: Protocol, R> {
    read: R,
    buf: Vec<u8>,
    start: usize,
    header: HeaderKind,
    max_frame: usize,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol, R> fmt::Debug for ClientReader<P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientReader").field("buffered", &(self.buf.len() - self.start)).finish_non_exhaustive()
    }
}

impl<P: Protocol, R: AsyncRead + Unpin> ClientReader<P, R> {
    fn new(read: R) -> Self {
        ClientReader {
            read,
            buf: Vec::with_capacity(8 * 1024),
            start: 0,
            header: HeaderKind::Compact,
            max_frame: 64 * 1024,
            _protocol: PhantomData,
        }
    }

    /// Waits for the next packet.
    pub async fn recv(&mut self) -> Result<P::ServerToClient, ClientError> {
        let (id, range) = self.next_frame().await?;
        Ok(P::ServerToClient::decode(id, &self.buf[range])?)
    }

    /// Waits for the next frame and returns its id and payload without decoding it.
    pub async fn recv_raw(&mut self) -> Result<(u16, Vec<u8>), ClientError> {
        let (id, range) = self.next_frame().await?;
        Ok((id, self.buf[range].to_vec()))
    }

    /// The next packet if a whole frame of it is already buffered; `Ok(None)` otherwise. Never waits and never
    /// reads from the socket: after [`recv`](Self::recv) returned, this drains what the same read brought in
    /// without going back through the caller's `select!` for every packet.
    pub fn try_recv(&mut self) -> Result<Option<P::ServerToClient>, ClientError> {
        match self.buffered_frame()? {
            Some((id, range)) => Ok(Some(P::ServerToClient::decode(id, &self.buf[range])?)),
            None => Ok(None),
        }
    }

    /// Waits for the next frame and lends its id and payload, undecoded and uncopied, until the next call.
    pub async fn recv_frame(&mut self) -> Result<(u16, &[u8]), ClientError> {
        let (id, range) = self.next_frame().await?;
        Ok((id, &self.buf[range]))
    }

    /// Like [`try_recv`](Self::try_recv), lending the frame's id and payload undecoded and uncopied.
    pub fn try_recv_frame(&mut self) -> Result<Option<(u16, &[u8])>, ClientError> {
        Ok(self.buffered_frame()?.map(|(id, range)| (id, &self.buf[range])))
    }

    /// Takes the next whole frame out of the buffer, if there is one.
    fn buffered_frame(&mut self) -> Result<Option<(u16, std::ops::Range<usize>)>, ClientError> {
        let pending = &self.buf[self.start..];
        let found =
            with_header!(self.header, H => parse_frame::<H>(pending, self.max_frame)?.map(|f| (f.id, f.len, H::LEN)));
        Ok(found.map(|(id, len, header)| {
            let range = self.start + header..self.start + len;
            self.start += len;
            (id, range)
        }))
    }

    async fn next_frame(&mut self) -> Result<(u16, std::ops::Range<usize>), ClientError> {
        loop {
            if let Some(frame) = self.buffered_frame()? {
                return Ok(frame);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(8 * 1024);
            }
            if self.read.read_buf(&mut self.buf).await? == 0 {
                return Err(if self.buf.is_empty() { ClientError::Closed } else { ClientError::Truncated });
            }
        }
    }
}

/// The sending half of a [`Client`].
pub struct ClientWriter<P: Protocol, W> {
    write: W,
    buf: Vec<u8>,
    header: HeaderKind,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol, W> fmt::Debug for ClientWriter<P, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientWriter").field("queued", &self.buf.len()).finish_non_exhaustive()
    }
}

impl<P: Protocol, W: AsyncWrite + Unpin> ClientWriter<P, W> {
    fn new(write: W) -> Self {
        ClientWriter { write, buf: Vec::with_capacity(1024), header: HeaderKind::Compact, _protocol: PhantomData }
    }

    /// Encodes a packet into the write buffer; [`flush`](Self::flush) writes it.
    pub fn queue<T: PacketOf<P::ClientToServer>>(&mut self, packet: &T) -> Result<(), ClientError> {
        let len = self.header.header_len() + packet.encoded_len();
        let mut head = [0u8; 8];
        with_header!(self.header, H => H::write(&mut head, len, T::ID)).map_err(EncodeError::from)?;
        self.buf.reserve(len);
        self.buf.extend_from_slice(&head[..self.header.header_len()]);
        packet.encode_raw(&mut self.buf);
        Ok(())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.write.write_all(&self.buf).await?;
        self.buf.clear();
        Ok(self.write.flush().await?)
    }

    /// Encodes and writes one packet.
    pub async fn send<T: PacketOf<P::ClientToServer>>(&mut self, packet: &T) -> Result<(), ClientError> {
        self.queue(packet)?;
        self.flush().await
    }

    /// Writes one control frame (packet id 0) with `payload`.
    async fn send_control(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        let len = self.header.header_len() + payload.len();
        let mut head = [0u8; 8];
        with_header!(self.header, H => H::write(&mut head, len, CONTROL_ID)).map_err(EncodeError::from)?;
        self.buf.extend_from_slice(&head[..self.header.header_len()]);
        self.buf.extend_from_slice(payload);
        self.flush().await
    }

    /// Writes raw bytes as they are (for testing how a server handles bad input).
    #[cfg(feature = "test-util")]
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.write.write_all(bytes).await?;
        Ok(self.write.flush().await?)
    }

    /// Shuts the write direction down (the server sees end of stream).
    pub async fn shutdown(&mut self) -> Result<(), ClientError> {
        Ok(self.write.shutdown().await?)
    }
}
