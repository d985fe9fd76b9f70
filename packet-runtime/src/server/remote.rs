//! The shard side of remote sessions: feeding a [`Logic`](super::Logic) with sessions whose connections are held by
//! gateways in other processes.
//!
//! The cluster layer receives a gateway's messages and calls [`RemoteSessions`]: `open` when a client connects (or
//! `arrive` when another shard hands one over), `packet` for each of its frames, `closed` when the gateway reports
//! the connection gone. The logic thread sees exactly the events of an embedded server, in the same order
//! guarantees: a connect, packets in order, one disconnect.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::ServerShared;
use super::io_hook::BadFrameAction;
use super::logic::LogicEvent;
use crate::frame::{FrameFault, parse_frame, with_header};
use crate::session::remote::{RemoteId, RemoteLink, RemoteSink};
use crate::session::{BadFrame, CloseReason, Session, SessionShared};
use crate::transport::PeerAddr;
use crate::{PacketBuilder, PacketSet, Protocol};

/// Feeds remote sessions to a server started with [`ServerBuilder::start_remote`](super::ServerBuilder::start_remote).
/// Cheap to clone; every method may be called from any thread.
pub struct RemoteSessions<P: Protocol> {
    pub(super) shared: Arc<ServerShared<P>>,
}

impl<P: Protocol> Clone for RemoteSessions<P> {
    fn clone(&self) -> Self {
        RemoteSessions { shared: Arc::clone(&self.shared) }
    }
}

impl<P: Protocol> fmt::Debug for RemoteSessions<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSessions").finish_non_exhaustive()
    }
}

impl<P: Protocol> RemoteSessions<P> {
    fn session(&self, link: Arc<dyn RemoteLink>, remote: RemoteId, peer: PeerAddr) -> Session<P> {
        let server = &self.shared;
        server.metrics.opened();
        let shared = SessionShared::new_remote(
            server.ids.allocate(),
            peer,
            server.config.header,
            server.pool.clone(),
            Arc::clone(&server.metrics),
            Arc::clone(&server.spare_lists),
            RemoteSink { link, id: remote, last_seq: AtomicU64::new(0) },
        );
        Session::from_shared(shared)
    }

    /// A client connected to a gateway and was routed here: `Logic::on_connect` runs for the returned session. Its
    /// frames go to `link`.
    pub fn open(&self, link: Arc<dyn RemoteLink>, remote: RemoteId, peer: PeerAddr) -> Session<P> {
        let session = self.session(link, remote, peer);
        let _ = self.shared.inbox.send(LogicEvent::Connected(session.clone()));
        session
    }

    /// A session handed over by another shard: `Logic::on_arrive` runs with `state`.
    pub fn arrive(&self, link: Arc<dyn RemoteLink>, remote: RemoteId, peer: PeerAddr, state: Vec<u8>) -> Session<P> {
        let session = self.session(link, remote, peer);
        let _ = self.shared.inbox.send(LogicEvent::Arrived(session.clone(), state));
        session
    }

    /// One of the session's frames, whole (header included, in the server's header layout), with the gateway's
    /// sequence number for it. Decoded here, on the calling thread. A frame that is not a well-formed packet of the
    /// protocol goes to the server's IO hook (`IoHandler::on_bad_frame`, as for a local session) and, unless it
    /// says skip, gets the close notice (`ServerBuilder::close_notice`; the demo's kick names the fault) and closes
    /// with [`CloseReason::BadFrame`] through its gateway; it is returned as the error; once the session was handed over, it is given back to the gateway instead, like any late packet.
    pub fn packet(&self, session: &Session<P>, seq: u64, frame: &[u8]) -> Result<(), BadFrame> {
        let max = self.shared.config.max_frame;
        let parsed = with_header!(self.shared.config.header, H => parse_frame::<H>(frame, max));
        let decoded = match parsed {
            Ok(Some(raw)) if raw.len == frame.len() => {
                P::ClientToServer::decode(raw.id, raw.payload).map_err(BadFrame::Decode)
            }
            Ok(_) => Err(BadFrame::Fault(FrameFault::TooShort { size: frame.len(), header: 0 })),
            Err(fault) => Err(BadFrame::Fault(fault)),
        };
        match decoded {
            Ok(packet) => {
                self.shared.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
                if let Some(export) = &self.shared.metrics.export {
                    export.frame_in(packet.id());
                }
                let _ = self.shared.inbox.send(LogicEvent::RemotePacket(session.id(), seq, packet));
                Ok(())
            }
            Err(bad) => {
                let shared = session.shared();
                if let (Some(remote), Some(CloseReason::HandedOver)) = (&shared.remote, shared.reason.get()) {
                    let mut builder = PacketBuilder::with_capacity_in(&shared.pool, frame.len());
                    builder.extend_from_slice(frame);
                    remote.link.bounce(remote.id, seq, builder.freeze());
                    remote.link.flush();
                } else {
                    // The server's IO hook decides, as for a local session's bad frame (the demo kicks, naming the
                    // fault); its kick goes out through the gateway before the close.
                    let hook = &*self.shared.io_handler;
                    let action =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook.on_bad_frame(session, &bad)))
                            .unwrap_or(BadFrameAction::Close);
                    if action == BadFrameAction::Close || !bad.boundary_known() {
                        // The close notice goes through the gateway ahead of the close, as a local session's does.
                        let reason = CloseReason::BadFrame(bad.clone());
                        if let Some(notice) = self.shared.notice_for(&reason) {
                            let _ = shared.push(notice);
                        }
                        shared.close(reason);
                    }
                }
                Err(bad)
            }
        }
    }

    /// The gateway reports the connection gone (or, with [`CloseReason::HandedOver`], that a hand-over from here
    /// completed): `Logic::on_disconnect` runs once, unless it ran at the hand-over.
    pub fn closed(&self, session: &Session<P>, reason: CloseReason) {
        let shared = session.shared();
        shared.close_quietly();
        let reason = shared.reason.get_or_init(|| reason).clone();
        let metrics = &self.shared.metrics;
        metrics.ended(reason.kind(), 0);
        let _ = self.shared.inbox.send(LogicEvent::Disconnected(session.id(), reason, None));
    }

    /// Starts the server's ordered shutdown, as `ServerHandle::shutdown` does (from any thread: a cluster's signal
    /// handler, once it has told the cluster this shard is leaving).
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }

    /// The number of live remote sessions (opened or arrived, not yet closed).
    pub fn open_count(&self) -> u64 {
        self.shared.metrics.connections_open.load(Ordering::Relaxed)
    }
}
