//! The accept loop: enforces `max_connections`, backs off on resource exhaustion, spawns one driver per session.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::Instrument;

use super::ServerConfig;
use super::ServerShared;
use super::driver::{Driver, LINGER_POLL, StreamHooks};
use super::logic::LogicEvent;
use crate::Protocol;
use crate::session::{CloseReason, Session, SessionShared};
use crate::transport::{Admission, Listener};

pub(crate) async fn run<P: Protocol, L: Listener>(mut listener: L, server: Arc<ServerShared<P>>) {
    let (first_backoff, max_backoff) = server.config.accept_backoff;
    let mut backoff = first_backoff;
    listener.admit(Admission::new(Arc::clone(&server.metrics), server.config.max_connections));
    loop {
        // Room in the logic thread's inbox for the `Connected` of the next connection first: while it is full, no
        // connection is accepted (they wait in the listen backlog).
        let permit = tokio::select! {
            biased;
            _ = server.stop_accepting.cancelled() => break,
            permit = server.io_inbox.reserve() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = server.stop_accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = first_backoff;
                let metrics = &server.metrics;
                let open = metrics.connections_open.load(Ordering::Relaxed);
                if server.config.max_connections.is_some_and(|max| open >= max as u64) {
                    metrics.rejected();
                    tracing::debug!(%peer, open, "max_connections reached; connection closed");
                    refuse::<P, L>(&server, stream, CloseReason::ServerFull);
                    continue;
                }
                // With an authentication step: a place among the connections waiting to authenticate, or refused.
                let authenticates = server.auth.is_some();
                if authenticates && server.auth_pending.fetch_add(1, Ordering::AcqRel) >= server.config.auth.max_pending
                {
                    server.auth_pending.fetch_sub(1, Ordering::AcqRel);
                    metrics.rejected();
                    tracing::debug!(%peer, "auth max_pending reached; connection closed");
                    refuse::<P, L>(&server, stream, CloseReason::Auth(crate::server::AuthFault::TooMany));
                    continue;
                }
                let address = match server.admit_address(&peer) {
                    Ok(address) => address,
                    Err(()) => {
                        if authenticates {
                            server.auth_pending.fetch_sub(1, Ordering::AcqRel);
                        }
                        metrics.rejected();
                        tracing::debug!(%peer, "max_connections_per_address reached; connection closed");
                        refuse::<P, L>(&server, stream, CloseReason::AddressFull);
                        continue;
                    }
                };
                if let Some(bytes) = server.config.send_buffer
                    && let Err(error) = L::limit_send_buffer(&stream, bytes)
                {
                    tracing::debug!(%peer, %error, "SO_SNDBUF failed; the kernel's default applies");
                }
                metrics.opened();
                let id = server.ids.allocate();
                let (shared, rx) = SessionShared::new(
                    id,
                    peer,
                    // The hard bound; the limit itself is enforced by the driver, over time (`send_queue_grace`).
                    server.config.send_queue_limit.saturating_mul(ServerConfig::SEND_QUEUE_BURST_FACTOR),
                    server.config.header,
                    server.pool.clone(),
                    Arc::clone(&server.metrics),
                    Arc::clone(&server.spare_lists),
                );
                let session = Session::<P>::from_shared(shared);
                // Info, the default level: every line logged on behalf of the session on its IO thread (its driver
                // runs in the span) names it; the logic thread enters a span of its own around its handlers.
                let span = tracing::info_span!("session", id = %id, peer = %session.peer());
                span.in_scope(|| tracing::info!("connected"));
                // Connected is queued before the driver can queue anything, so the logic sees it first. A session
                // that must open with the version handshake or authenticate is admitted by its driver once its
                // hello matched and the authentication hook accepted it.
                let admitted = !server.config.handshake.required && !authenticates;
                if admitted {
                    permit.send(LogicEvent::Connected(session.clone()));
                } else {
                    drop(permit);
                }
                let driver =
                    Driver::new(stream, StreamHooks::of::<L>(), session, rx, Arc::clone(&server), address, admitted);
                tokio::spawn(driver.run().instrument(span));
            }
            Err(e) if is_resource_exhaustion(&e) => {
                server.metrics.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, ?backoff, "accept failed: out of resources; backing off");
                tokio::select! {
                    _ = server.stop_accepting.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(max_backoff);
            }
            Err(e) => {
                // Per-connection failures (ECONNABORTED, …) say nothing about the listener: go on at once.
                server.metrics.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "accept failed");
            }
        }
    }
    drop(listener);
    tracing::debug!("listener closed");
    // Behind every `Connected` (the logic thread counts on it); waits for room like they did.
    let _ = server.io_inbox.send(LogicEvent::AcceptorStopped).await;
}

/// Closes a connection that never becomes a session, after writing the application's close notice for `reason` (if
/// any) under `close_flush_timeout`, on a task of its own so that the accept loop goes on at once. Like a session's
/// graceful close: write, half-close, then read and discard until the peer closes or has acknowledged everything
/// (so that unread input does not turn the close into a reset that destroys the notice), or the deadline passes
/// (then abortively).
fn refuse<P: Protocol, L: Listener>(server: &Arc<ServerShared<P>>, mut stream: L::Stream, reason: CloseReason) {
    let Some(notice) = server.notice_for(&reason) else { return };
    let deadline = server.config.close_flush_timeout;
    tokio::spawn(async move {
        let delivered = tokio::time::timeout(deadline, async {
            stream.write_all(&notice).await?;
            stream.shutdown().await?;
            let mut discard = [0u8; 1024];
            loop {
                if L::unacknowledged(&stream) == Some(0) {
                    return Ok::<(), io::Error>(());
                }
                tokio::select! {
                    read = stream.read(&mut discard) => if read? == 0 { return Ok(()) },
                    _ = tokio::time::sleep(LINGER_POLL) => {}
                }
            }
        })
        .await;
        if !matches!(delivered, Ok(Ok(()))) {
            L::abortive_close(&stream);
        }
    });
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying at once would spin.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12)) || e.kind() == io::ErrorKind::OutOfMemory
}
