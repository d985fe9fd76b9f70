//! Typed game packets over pooled, reference-counted frames.
//!
//! Game code annotates prost messages with a packet id (`#[derive(Packet)]`), lists them per direction in a
//! protocol (`define_packets!`), and gets typed enums, a decoder from `(id, payload)` and a dispatch table that calls
//! one typed handler method per packet. Mistakes (duplicate ids, a packet sent in the wrong direction, a missing
//! handler) are compile errors.
//!
//! # Layout
//! - [`packet`]: the [`Packet`] trait that `#[derive(Packet)]` implements (id and name of one message).
//! - [`protocol`]: [`Protocol`], [`PacketSet`] and [`PacketOf`], the traits `define_packets!` implements: the packet
//!   sets per direction, their decoder, and the compile-time direction check; [`DecodeError`].
//! - [`frame`]: the wire header layouts (compact `u16 size | u16 id`, wide `u32 size | u16 id`).
//! - [`pool`]: [`MessagePool`], size-classed frame blocks with a per-thread L1 cache in front of a global free list.
//! - [`packet_ptr`]: [`PacketPtr`], a pointer-sized, reference-counted handle to one encoded frame in a pooled block.
//! - [`session`]: [`Session`] (the handle game code holds), [`SessionId`], [`CloseReason`], the send queue.
//! - [`server`]: [`Server`] builder, [`Logic`] (the game, on the logic thread), [`IoHandler`] (the IO-thread hook),
//!   [`ServerHandle`] with the ordered shutdown.
//! - [`transport`]: where connections come from (TCP, Unix sockets, in-memory pipes; WebSocket and TLS behind the
//!   `websocket` and `tls` features).
//! - [`client`]: [`Client`], the typed client.
//! - [`handshake`]: the optional version handshake at connect (control frames of packet id 0).
//! - `metrics`: the counters behind [`MetricsSnapshot`]. [`export`]: [`MetricsExport`], the same figures (and per
//!   packet ones) through the `metrics` facade, with the names a Prometheus exporter shows.
//! - `__private`: helpers the generated code calls. Not a public API.
//!
//! # One `use` for the whole API
//! Every type that a root item names in its signature (its errors, its settings, the handles it returns) is
//! exported from the root as well, so code built on the runtime needs no module paths:
//!
//! ```
//! use packet_runtime::{
//!     // packets and protocols
//!     DecodeError, Direction, Packet, PacketInfo, PacketOf, PacketSet, Protocol, define_packets,
//!     // frames and the pool
//!     ClassStats, Compact, EncodeError, FrameFault, FrameHeader, FrameTooLarge, HeaderKind, MessagePool,
//!     PacketBuilder, PacketPtr, PoolConfig, PoolStats, Wide,
//!     // the server
//!     BadFrameAction, Context, ForwardAll, IoAction, IoHandler, Listener, Logic, MetricsExport, MetricsSnapshot, RateLimit,
//!     Request, Server, ServerBuilder, ServerConfig, ServerHandle, ShutdownHandle, ShutdownReport,
//!     // sessions and why they close
//!     BadFrame, CloseKind, CloseReason, TransportFault, Encoded, FrameError, PeerAddr, SendError, Session, SessionId,
//!     // the cluster seam: remote sessions, hand-over, the gateway hooks
//!     FrameAction, HandOver, HandOverError, RemoteDirectory, RemoteId, RemoteLink, RemoteSessions,
//!     // the client
//!     Client, ClientError, ClientReader, ClientWriter,
//!     // the version handshake and the authentication step
//!     HandshakeConfig, HandshakeFault, Hello, AuthFault, AuthLimits, AuthRequest, Verdict,
//! };
//! # let _ = (ServerConfig::default(), PoolConfig::default(), HeaderKind::default(), CloseKind::ALL);
//! ```
#![doc = include_str!("guide.md")]
#![warn(missing_docs)]

pub mod client;
mod close;
pub mod export;
pub mod frame;
pub mod handshake;
mod metrics;
pub mod packet;
pub mod packet_ptr;
pub mod pool;
pub mod protocol;
pub mod server;
pub mod session;
pub mod transport;

mod loom;

#[doc(hidden)]
pub mod __private;

// Everything a root item names in its signature is exported here too (the doc test at the top keeps it so).
pub use client::{Client, ClientError, ClientReader, ClientWriter};
pub use close::{BadFrame, CloseKind, CloseReason, TransportFault};
pub use export::MetricsExport;
pub use frame::{Compact, FrameFault, FrameHeader, FrameTooLarge, HeaderKind, Wide};
pub use handshake::{HandshakeConfig, HandshakeFault, Hello};
pub use metrics::MetricsSnapshot;
pub use packet::Packet;
pub use packet_derive::{Packet, define_packets};
pub use packet_ptr::{EncodeError, PacketBuilder, PacketPtr};
pub use pool::{ClassStats, MessagePool, PoolConfig, PoolStats};
pub use protocol::{DecodeError, Direction, PacketInfo, PacketOf, PacketSet, Protocol};
pub use server::{
    AuthFault, AuthLimits, AuthRequest, BadFrameAction, Context, ForwardAll, FrameAction, HandOverError, IoAction,
    IoHandler, Logic, RateLimit, RemoteSessions, Request, Server, ServerBuilder, ServerConfig, ServerHandle,
    ShutdownHandle, ShutdownReport, Verdict,
};
pub use session::remote::{HandOver, RemoteDirectory, RemoteId, RemoteLink};
pub use session::{Encoded, FrameError, SendError, Session, SessionId};
pub use transport::{Listener, PeerAddr};

/// The prost version this runtime is built against. Use it (`packet_runtime::prost::Message`) so user code and the
/// runtime agree on one version of the `Message` trait.
pub use prost;
