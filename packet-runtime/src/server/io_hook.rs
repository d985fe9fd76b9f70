//! The IO-thread hook: packets answered without the hop to the logic thread, and the decision on bad frames.

use crate::Protocol;
use crate::session::{BadFrame, CloseReason, Session};

/// What to do with a packet after the IO hook saw it.
#[derive(Debug)]
pub enum IoAction<T> {
    /// Hand the packet to the logic thread (`Logic::on_packet`).
    Forward(T),
    /// The hook handled it (for example answered a ping); the logic thread never sees it.
    Handled,
}

/// What to do with a frame before it is decoded ([`IoHandler::on_frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameAction {
    /// Decode it and go on as usual ([`IoHandler::on_packet`], then the logic thread).
    Decode,
    /// The hook took the frame as it is (a gateway forwarding it); it is not decoded.
    Taken,
}

/// What to do after a bad frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadFrameAction {
    /// Close the session after flushing what is queued (a kick sent from the hook is delivered first).
    Close,
    /// Ignore the frame and keep reading. Only honoured when the frame boundary is known
    /// ([`BadFrame::boundary_known`]); a header fault always closes.
    Skip,
}

/// Runs on the IO threads, concurrently for different sessions: it must be `Sync` and must not block.
///
/// Use it for packets that need no game state (ping, echo): answering there saves the queue hop to the logic
/// thread and keeps the logic thread free for the game. Both methods have defaults: forward every packet, close on
/// every bad frame.
pub trait IoHandler<P: Protocol>: Send + Sync + 'static {
    /// The client-to-server packet ids this hook answers by itself in [`on_packet`](Self::on_packet) (the demo:
    /// ping and echo). A cluster's gateway decodes only these and forwards every other frame to a shard as bytes.
    /// Default: none.
    fn local_ids(&self) -> &[u16] {
        &[]
    }

    /// The session's driver started, on the IO thread that will run it, before any of its frames is read. A
    /// gateway announces the session to a shard here. Default: nothing.
    fn on_open(&self, session: &Session<P>) {
        let _ = session;
    }

    /// Sees every frame of a packet id of the protocol's client-to-server set before it is decoded (`frame` is the
    /// whole frame, header included; unknown ids and oversized frames were refused already). A gateway forwards the
    /// frames it does not answer itself here, as bytes. Default: [`FrameAction::Decode`].
    fn on_frame(&self, session: &Session<P>, id: u16, frame: &[u8]) -> FrameAction {
        let _ = (session, id, frame);
        FrameAction::Decode
    }

    /// The session's driver ended (`reason` is why), on its IO thread, before the logic thread hears of it. Runs
    /// once for every session `on_open` saw. Default: nothing.
    fn on_close(&self, session: &Session<P>, reason: &CloseReason) {
        let _ = (session, reason);
    }

    /// Sees every decoded packet first.
    fn on_packet(&self, session: &Session<P>, packet: P::ClientToServer) -> IoAction<P::ClientToServer> {
        let _ = session;
        IoAction::Forward(packet)
    }

    /// Decides about a frame that could not be accepted. The session's close reason will be
    /// `CloseReason::BadFrame`. Send a last packet (a kick naming the fault) from here: it is flushed before the close.
    fn on_bad_frame(&self, session: &Session<P>, bad: &BadFrame) -> BadFrameAction {
        let _ = (session, bad);
        BadFrameAction::Close
    }
}

/// The default hook: forwards everything, closes on bad frames.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardAll;

impl<P: Protocol> IoHandler<P> for ForwardAll {}
