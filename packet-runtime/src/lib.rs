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
//! - [`transport`]: where connections come from (TCP, Unix sockets, in-memory pipes).
//! - [`client`]: [`Client`], the typed client.
//! - `metrics`: the counters behind [`MetricsSnapshot`].
//! - `__private`: helpers the generated code calls. Not a public API.
#![doc = include_str!("guide.md")]

pub mod client;
pub mod frame;
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

pub use client::Client;
pub use metrics::MetricsSnapshot;
pub use packet::Packet;
pub use packet_derive::{Packet, define_packets};
pub use packet_ptr::{EncodeError, PacketBuilder, PacketPtr};
pub use pool::{MessagePool, PoolConfig, PoolStats};
pub use protocol::{DecodeError, Direction, PacketInfo, PacketOf, PacketSet, Protocol};
pub use server::{
    Context, FrameAction, HandOverError, IoAction, IoHandler, Logic, RemoteSessions, Request, Server, ServerHandle,
    ShutdownReport,
};
pub use session::remote::{HandOver, RemoteDirectory, RemoteId, RemoteLink};
pub use session::{CloseReason, Encoded, FrameError, Session, SessionId};

/// The prost version this runtime is built against. Use it (`packet_runtime::prost::Message`) so user code and the
/// runtime agree on one version of the `Message` trait.
pub use prost;
