//! The IO-thread hook: ping and echo need no game state, so they are answered where they are decoded, without the
//! hop to the logic thread; bad frames get a kick naming the fault.
//!
//! Runs concurrently on every IO thread: it must not block and holds no state.

use std::time::{SystemTime, UNIX_EPOCH};

use packet_runtime::{BadFrame, BadFrameAction, IoAction, IoHandler, Packet, Session};

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
        tracing::debug!(session = %session.id(), peer = %session.peer(), fault = %bad, "bad frame: kicking");
        // Even after a header fault our own output stream is intact, so the kick can always be delivered.
        let _ = session.send(&SKick { reason: format!("bad frame: {bad}") });
        BadFrameAction::Close
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
