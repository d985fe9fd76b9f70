//! The authentication step: a session's first packet (after the version handshake, where that is on) goes to an
//! application hook that accepts or refuses it, within a deadline, before the game hears of the session.
//!
//! Until the hook accepts, the session is not in `Context::sessions`, `Logic::on_connect` has not run, and no other
//! packet is read (the IO hook sees none either). The hook returns a future, polled by the session's own driver on
//! its IO thread: it may take its time (a database, a token service) without blocking the logic thread or the
//! other sessions; it must not block its thread (use `tokio::task::spawn_blocking` for blocking work). Accepted,
//! the session is admitted and the packet reaches the game as its first (a login the game handles as before).
//!
//! Connections waiting to authenticate have their own, lower limits ([`AuthLimits`]): how many may wait at once
//! (past it, new ones are refused at once with the close notice), the largest frame they may send, and the
//! deadline (then they are closed with the notice).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::session::SessionId;
use crate::transport::PeerAddr;
use crate::{DecodeError, PacketOf, Protocol};

/// What the authentication hook decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The session is admitted; the packet reaches the game as its first.
    Accept,
    /// The session is closed with the close notice for [`AuthFault::Refused`] with this reason.
    Refuse(String),
}

/// Who is authenticating: what the hook knows besides the packet.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthRequest {
    /// The session's id (not yet known to the game).
    pub session: SessionId,
    /// Where it connected from.
    pub peer: PeerAddr,
}

/// The limits of connections that have not authenticated yet. Lower than a session's, so that sockets that never
/// authenticate cannot push out players who did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// How long a connection may take from its accept to the hook's acceptance (handshake included). Default 5 s.
    pub deadline: Duration,
    /// Connections waiting to authenticate at once; past it, new ones are refused at once with the close notice
    /// for [`AuthFault::TooMany`]. Default 1,000.
    pub max_pending: usize,
    /// Largest frame a connection may send before it is accepted, header included. Default 1 KiB.
    pub max_frame: usize,
}

impl AuthLimits {
    /// Default [`deadline`](Self::deadline): 5 s.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);
    /// Default [`max_pending`](Self::max_pending): 1,000.
    pub const DEFAULT_MAX_PENDING: usize = 1_000;
    /// Default [`max_frame`](Self::max_frame): 1 KiB.
    pub const DEFAULT_MAX_FRAME: usize = 1024;
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            deadline: AuthLimits::DEFAULT_DEADLINE,
            max_pending: AuthLimits::DEFAULT_MAX_PENDING,
            max_frame: AuthLimits::DEFAULT_MAX_FRAME,
        }
    }
}

/// Why a connection was not let in. Carried by [`CloseReason::Auth`](crate::CloseReason::Auth).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFault {
    /// The hook refused it, with its reason.
    #[error("authentication refused: {0}")]
    Refused(String),
    /// Not accepted within [`AuthLimits::deadline`].
    #[error("not authenticated within {0:?}")]
    Timeout(Duration),
    /// [`AuthLimits::max_pending`] connections were already waiting to authenticate. It never became a session:
    /// only the close notice hook sees this reason.
    #[error("too many connections waiting to authenticate")]
    TooMany,
    /// The first packet was not the one that authenticates.
    #[error("expected {expected} first (authentication), got packet id {id}")]
    Expected {
        /// The name of the packet that authenticates.
        expected: &'static str,
        /// The id that came instead.
        id: u16,
    },
}

pub(crate) type AuthFuture = Pin<Box<dyn Future<Output = Verdict> + Send>>;

/// Decodes the authenticating packet and calls the hook with it.
pub(crate) type StartFn = dyn Fn(AuthRequest, &[u8]) -> Result<AuthFuture, DecodeError> + Send + Sync;

/// The hook, type-erased: decodes the packet it takes and starts the decision.
pub(crate) struct AuthHook<P: Protocol> {
    pub(crate) packet_id: u16,
    pub(crate) packet_name: &'static str,
    pub(crate) start: Box<StartFn>,
    _protocol: std::marker::PhantomData<fn() -> P>,
}

impl<P: Protocol> AuthHook<P> {
    pub(crate) fn new<T, F, Fut>(hook: F) -> Self
    where
        T: PacketOf<P::ClientToServer>,
        F: Fn(AuthRequest, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Verdict> + Send + 'static,
    {
        AuthHook {
            packet_id: T::ID,
            packet_name: T::NAME,
            start: Box::new(move |request, payload| {
                let packet = crate::__private::decode::<T>(payload)?;
                Ok(Box::pin(hook(request, packet)) as AuthFuture)
            }),
            _protocol: std::marker::PhantomData,
        }
    }
}
