//! `--tls-cert` and `--tls-key`: TLS in place of clear text on every listener, and SIGHUP to reload the certificate.
//!
//! On SIGHUP the server reads both files again. If they load, handshakes from then on present the new certificate
//! and the server prints `tls certificate reloaded`; sessions already up keep theirs. If they do not (a missing
//! file, a key that does not belong to the certificate), the certificate in use stays and the server prints
//! `tls reload failed: WHY` (WHY names the file). Both are logged too.

use std::io;

use packet_runtime::transport::tls::TlsReloader;
use tokio::signal::unix::{SignalKind, signal};

use crate::ServerOptions;

/// With TLS on, reloads its certificate on every SIGHUP, on a thread of its own, for the life of the process.
/// The handler is installed before this returns: a SIGHUP sent after it never kills the process.
pub fn reload_on_sighup(options: &ServerOptions) -> io::Result<()> {
    let Some(tls) = &options.tls else { return Ok(()) };
    let reloader = tls.reloader();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    let mut hangups = {
        let _enter = runtime.enter();
        signal(SignalKind::hangup())?
    };
    std::thread::Builder::new().name("tls-reload".into()).spawn(move || {
        runtime.block_on(async move {
            while hangups.recv().await.is_some() {
                reload(&reloader);
            }
        })
    })?;
    Ok(())
}

fn reload(reloader: &TlsReloader) {
    match reloader.reload() {
        Ok(()) => {
            tracing::info!("TLS certificate reloaded");
            println!("tls certificate reloaded");
        }
        Err(error) => {
            tracing::warn!(%error, "TLS certificate reload failed; the old certificate stays");
            println!("tls reload failed: {error}");
        }
    }
}
