//! Why a session ended: [`CloseReason`], its detail-free [`CloseKind`] and the [`BadFrame`] it may carry.
//!
//! A module of its own at the crate root so that both the sessions (which record a reason) and the metrics (which
//! count closes by kind) depend on it, and neither on the other.

use std::{fmt, io};

use crate::DecodeError;
use crate::frame::FrameFault;
use crate::handshake::HandshakeFault;
use crate::server::AuthFault;

/// Why a session closed. Passed to `on_disconnect` and counted in the metrics by [`CloseKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed the connection (end of stream), possibly mid-frame.
    PeerClosed,
    /// Reading or writing failed (for example a reset connection).
    Io(io::ErrorKind),
    /// Nothing was received for the configured idle timeout.
    IdleTimeout,
    /// The session's send queue went over its byte limit: the peer does not read fast enough.
    SlowConsumer,
    /// The peer sent more packets than the rate limit allows.
    RateLimited,
    /// The peer sent more bytes than the byte rate limit allows.
    ByteRateLimited,
    /// The connection was refused because the server had `max_connections` open. It never became a session: only
    /// the close notice hook sees this reason.
    ServerFull,
    /// The connection was refused because its address had `max_connections_per_address` open. It never became a
    /// session: only the close notice hook sees this reason.
    AddressFull,
    /// The peer sent a frame that could not be accepted.
    BadFrame(BadFrame),
    /// The version handshake failed: mismatched protocols, no hello where the server requires one, a malformed or
    /// repeated control frame (see [`crate::handshake`]).
    Handshake(HandshakeFault),
    /// The authentication step did not let the connection in: refused, too slow, too many waiting, or another
    /// packet first (see `ServerBuilder::authenticate`).
    Auth(AuthFault),
    /// A handler panicked while processing one of this session's packets.
    HandlerPanic,
    /// The application closed the session (for example after a kick).
    Closed,
    /// The server is shutting down.
    ServerShutdown,
    /// The session moved to another shard (`Context::hand_over`). Only on the shard it left; the connection stays.
    HandedOver,
    /// The gateway holding the connection closed it for a reason that carries details this process cannot
    /// rebuild (an IO error, a bad frame): its kind, and the gateway's description.
    Relayed {
        /// What kind of close it was on the gateway.
        kind: CloseKind,
        /// The gateway's description of it.
        detail: String,
    },
}

impl CloseReason {
    /// Whether the runtime itself closes gracefully for this reason and so sends the application's close notice
    /// first (`ServerBuilder::close_notice`): a bad frame, a rate limit, the idle timeout, a refused connection, a
    /// handler panic, shutdown. Not for closes the application asked for (it sends its own kick), nor the peer's,
    /// nor for a peer cut off because it does not read (it would not read the notice either).
    pub fn gets_notice(&self) -> bool {
        matches!(
            self.kind(),
            CloseKind::BadFrame
                | CloseKind::Handshake
                | CloseKind::Auth
                | CloseKind::RateLimited
                | CloseKind::ByteRateLimited
                | CloseKind::IdleTimeout
                | CloseKind::ServerFull
                | CloseKind::AddressFull
                | CloseKind::HandlerPanic
                | CloseKind::ServerShutdown
        )
    }

    /// The reason without its details, for counting.
    pub fn kind(&self) -> CloseKind {
        match self {
            CloseReason::PeerClosed => CloseKind::PeerClosed,
            CloseReason::Io(_) => CloseKind::Io,
            CloseReason::IdleTimeout => CloseKind::IdleTimeout,
            CloseReason::SlowConsumer => CloseKind::SlowConsumer,
            CloseReason::RateLimited => CloseKind::RateLimited,
            CloseReason::ByteRateLimited => CloseKind::ByteRateLimited,
            CloseReason::ServerFull => CloseKind::ServerFull,
            CloseReason::AddressFull => CloseKind::AddressFull,
            CloseReason::BadFrame(_) => CloseKind::BadFrame,
            CloseReason::Handshake(_) => CloseKind::Handshake,
            CloseReason::Auth(_) => CloseKind::Auth,
            CloseReason::HandlerPanic => CloseKind::HandlerPanic,
            CloseReason::Closed => CloseKind::Closed,
            CloseReason::ServerShutdown => CloseKind::ServerShutdown,
            CloseReason::HandedOver => CloseKind::HandedOver,
            CloseReason::Relayed { kind, .. } => *kind,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed the connection"),
            CloseReason::Io(kind) => write!(f, "io error: {kind}"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::SlowConsumer => f.write_str("send queue over its limit (slow consumer)"),
            CloseReason::RateLimited => f.write_str("packet rate limit exceeded"),
            CloseReason::ByteRateLimited => f.write_str("byte rate limit exceeded"),
            CloseReason::ServerFull => f.write_str("server full"),
            CloseReason::AddressFull => f.write_str("too many connections from this address"),
            CloseReason::BadFrame(bad) => write!(f, "bad frame: {bad}"),
            CloseReason::Handshake(fault) => write!(f, "handshake failed: {fault}"),
            CloseReason::Auth(fault) => fault.fmt(f),
            CloseReason::HandlerPanic => f.write_str("a handler panicked"),
            CloseReason::Closed => f.write_str("closed by the server"),
            CloseReason::ServerShutdown => f.write_str("server shutdown"),
            CloseReason::HandedOver => f.write_str("handed over to another shard"),
            CloseReason::Relayed { detail, .. } => f.write_str(detail),
        }
    }
}

/// [`CloseReason`] without details.
///
/// Non-exhaustive like [`CloseReason`]: a new reason for closing a session is not a breaking change. Iterate
/// [`CloseKind::ALL`] instead of listing the kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each variant mirrors the documented `CloseReason` variant of the same name
pub enum CloseKind {
    PeerClosed,
    Io,
    IdleTimeout,
    SlowConsumer,
    RateLimited,
    BadFrame,
    HandlerPanic,
    Closed,
    ServerShutdown,
    HandedOver,
    ByteRateLimited,
    ServerFull,
    AddressFull,
    Handshake,
    Auth,
}

impl CloseKind {
    /// The kind's name in `snake_case`, as the cluster's wire format and metrics labels spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseKind::PeerClosed => "peer_closed",
            CloseKind::Io => "io",
            CloseKind::IdleTimeout => "idle_timeout",
            CloseKind::SlowConsumer => "slow_consumer",
            CloseKind::RateLimited => "rate_limited",
            CloseKind::BadFrame => "bad_frame",
            CloseKind::HandlerPanic => "handler_panic",
            CloseKind::Closed => "closed",
            CloseKind::ServerShutdown => "server_shutdown",
            CloseKind::HandedOver => "handed_over",
            CloseKind::ByteRateLimited => "byte_rate_limited",
            CloseKind::ServerFull => "server_full",
            CloseKind::AddressFull => "address_full",
            CloseKind::Handshake => "handshake",
            CloseKind::Auth => "auth",
        }
    }

    /// The kind a [`as_str`](Self::as_str) name stands for.
    pub fn from_name(name: &str) -> Option<CloseKind> {
        CloseKind::ALL.iter().copied().find(|kind| kind.as_str() == name)
    }

    /// Every kind, in declaration order (the order of [`crate::MetricsSnapshot::closes`]). A slice, not an
    /// array, so that its length is not part of the public API.
    pub const ALL: &'static [CloseKind] = &[
        CloseKind::PeerClosed,
        CloseKind::Io,
        CloseKind::IdleTimeout,
        CloseKind::SlowConsumer,
        CloseKind::RateLimited,
        CloseKind::BadFrame,
        CloseKind::HandlerPanic,
        CloseKind::Closed,
        CloseKind::ServerShutdown,
        CloseKind::HandedOver,
        CloseKind::ByteRateLimited,
        CloseKind::ServerFull,
        CloseKind::AddressFull,
        CloseKind::Handshake,
        CloseKind::Auth,
    ];
}

/// A frame the server refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadFrame {
    /// The header was unacceptable (size below the header or above the maximum). The stream is out of sync: the
    /// session always closes.
    #[error(transparent)]
    Fault(#[from] FrameFault),
    /// The header was fine but the id is unknown or the payload does not decode. The frame boundary is known.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The transport refused what carried the frames (a WebSocket text message, a frame split across messages).
    /// The session always closes.
    #[error(transparent)]
    Transport(#[from] TransportFault),
}

/// What a message-based transport (WebSocket) refuses before any frame is looked at. A transport reports it as
/// the `io::Error` source of a failed read (`io::Error::new(InvalidData, fault)`); the driver turns it into
/// [`BadFrame::Transport`], so the peer gets the close notice like for any bad frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportFault {
    /// A text message: the protocol's frames are binary.
    #[error("a text message (frames travel in binary messages)")]
    TextMessage,
    /// A message that ends inside a frame: each message must carry whole frames.
    #[error("a message ending inside a frame (each message carries whole frames)")]
    SplitFrame,
    /// A message longer than the transport accepts.
    #[error("a message of {size} bytes over the {max}-byte limit")]
    MessageTooLarge {
        /// Its size, as far as it was read.
        size: usize,
        /// The limit.
        max: usize,
    },
}

impl BadFrame {
    /// Whether the next frame can still be found (true for decode errors, false for header faults).
    pub fn boundary_known(&self) -> bool {
        matches!(self, BadFrame::Decode(_))
    }
}

#[cfg(test)]
mod tests {
    use super::CloseKind;

    /// The metrics index their counters by `kind as usize` over `CloseKind::ALL`: it must list every kind once, in
    /// declaration order.
    #[test]
    fn all_lists_every_kind_in_declaration_order() {
        for (index, &kind) in CloseKind::ALL.iter().enumerate() {
            assert_eq!(kind as usize, index, "{kind:?}");
            // Exhaustive: a new variant fails to compile here, the reminder to add it to `ALL`.
            match kind {
                CloseKind::PeerClosed
                | CloseKind::Io
                | CloseKind::IdleTimeout
                | CloseKind::SlowConsumer
                | CloseKind::RateLimited
                | CloseKind::BadFrame
                | CloseKind::HandlerPanic
                | CloseKind::Closed
                | CloseKind::ServerShutdown
                | CloseKind::HandedOver
                | CloseKind::ByteRateLimited
                | CloseKind::ServerFull
                | CloseKind::AddressFull
                | CloseKind::Handshake
                | CloseKind::Auth => {}
            }
            assert_eq!(CloseKind::from_name(kind.as_str()), Some(kind), "names round-trip");
        }
        assert_eq!(CloseKind::ALL.len(), CloseKind::Auth as usize + 1);
    }
}
