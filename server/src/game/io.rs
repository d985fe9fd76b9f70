//! The IO-thread hook: ping and echo need no game state, so they are answered where they are decoded, without the
//! hop to the logic thread; bad frames get a kick naming the fault.
//!
//! Runs concurrently on every IO thread: it must not block and holds no state.

use std::time::{SystemTime, UNIX_EPOCH};

use packet_runtime::{
    BadFrame, BadFrameAction, CloseKind, CloseReason, FrameFault, IoAction, IoHandler, Packet, Session,
};

use demo_protocol::proto::{CEcho, CPing, SEcho, SKick, SPong};
use demo_protocol::{ClientPacket, GameProtocol};

/// The game's [`IoHandler`]: answers `C_PING` and `C_ECHO` on the IO threads, kicks on bad frames.
#[derive(Debug, Clone, Copy, Default)]
pub struct GameIo;

impl IoHandler<GameProtocol> for GameIo {
    /// Ping and echo: a cluster's gateway answers these itself and forwards everything else to a shard undecoded.
    fn local_ids(&self) -> &[u16] {
        const LOCAL: [u16; 2] = [CPing::ID, CEcho::ID];
        &LOCAL
    }

    fn on_packet(&self, session: &Session<GameProtocol>, packet: ClientPacket) -> IoAction<ClientPacket> {
        match packet {
            ClientPacket::CPing(ping) => {
                // A send fails only when the session is closing; nothing to answer then.
                let _ = session.send(&pong(&ping));
                IoAction::Handled
            }
            ClientPacket::CEcho(echo) => {
                let _ = session.send(&echo_reply(echo));
                IoAction::Handled
            }
            other => IoAction::Forward(other),
        }
    }

    fn on_bad_frame(&self, session: &Session<GameProtocol>, bad: &BadFrame) -> BadFrameAction {
        // The kick naming the fault is the close notice ([`close_notice`]): one per close.
        tracing::debug!(session = %session.id(), peer = %session.peer(), fault = %bad, "bad frame: kicking");
        BadFrameAction::Close
    }
}

/// The limits the kick reasons quote, as the server enforces them.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoticeLimits {
    /// Packets per second of the rate limit.
    pub packets_per_second: Option<u32>,
    /// Bytes per second of the byte rate limit.
    pub bytes_per_second: Option<u32>,
    /// The idle timeout.
    pub idle_timeout: Option<std::time::Duration>,
}

/// The demo's close notice (`ServerBuilder::close_notice`): an `S_KICK` whose reason a player can read, for every
/// close the runtime initiates. Even after a header fault our own output stream is intact, so the kick can always be
/// delivered.
pub fn close_notice(limits: NoticeLimits) -> impl Fn(&CloseReason) -> Option<SKick> + Send + Sync + 'static {
    move |reason| {
        let reason = match reason {
            CloseReason::RateLimited => match limits.packets_per_second {
                Some(rate) => format!("more than {rate} packets/s"),
                None => "too many packets".to_owned(),
            },
            CloseReason::ByteRateLimited => match limits.bytes_per_second {
                Some(rate) => format!("more than {rate} bytes/s"),
                None => "too many bytes".to_owned(),
            },
            CloseReason::BadFrame(BadFrame::Fault(FrameFault::TooLarge { size, max })) => {
                format!("frame of {size} bytes over the {max} limit")
            }
            CloseReason::BadFrame(bad) => format!("bad frame: {bad}"),
            // Names both fingerprints on a mismatch: the client may not check the server's hello itself.
            CloseReason::Handshake(fault) => fault.to_string(),
            // "authentication refused: token expired 12 s ago", "not authenticated within 5s", ...
            CloseReason::Auth(fault) => fault.to_string(),
            CloseReason::IdleTimeout => match limits.idle_timeout {
                Some(idle) if idle.subsec_millis() == 0 => format!("idle for {} s", idle.as_secs()),
                Some(idle) => format!("idle for {} ms", idle.as_millis()),
                None => "idle".to_owned(),
            },
            CloseReason::ServerFull => "server full".to_owned(),
            CloseReason::AddressFull => "too many connections from your address".to_owned(),
            CloseReason::HandlerPanic => "server error".to_owned(),
            other if other.kind() == CloseKind::ServerShutdown => "server shutting down".to_owned(),
            _ => return None,
        };
        Some(SKick { reason })
    }
}

/// The answer to a ping: the client's time back, and ours in milliseconds since the UNIX epoch.
fn pong(ping: &CPing) -> SPong {
    SPong { client_time: ping.client_time, server_time: unix_millis() }
}

/// The answer to an echo: the same bytes.
pub(crate) fn echo_reply(echo: CEcho) -> SEcho {
    SEcho { data: echo.data }
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
