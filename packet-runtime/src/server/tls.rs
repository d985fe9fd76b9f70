//! [`ServerBuilder::tls`]: TLS in place of clear text on the listeners `start` and `start_with_websocket` open.

use std::io;

use super::{Logic, ServerBuilder, ServerHandle};
use crate::Protocol;
use crate::transport::tls::{TlsConfig, TlsListener};

impl<P: Protocol> ServerBuilder<P> {
    /// Serves TLS (1.2 and 1.3) instead of clear text: [`start`](Self::start) accepts TLS on its TCP address,
    /// `start_with_websocket` (feature `websocket`) also serves https and wss on its web address (the
    /// configuration's certificate on both). Handshakes count toward `max_connections`, run under the
    /// configuration's deadline and never become sessions when they fail (see [`crate::transport::tls`]). Keep
    /// [`TlsConfig::reloader`] to swap the certificate while the server runs. Default: clear text.
    pub fn tls(mut self, config: TlsConfig) -> Self {
        self.tls = Some(config);
        self
    }

    fn take_tls(&mut self) -> TlsConfig {
        self.tls.take().expect("called with TLS configured")
    }

    fn bind_tcp(addr: std::net::SocketAddr) -> io::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let local = std_listener.local_addr()?;
        Ok((tokio::net::TcpListener::from_std(std_listener)?, local))
    }

    pub(super) fn start_tls<L: Logic<Protocol = P>>(mut self, logic: L) -> io::Result<ServerHandle<P>> {
        let tls = self.take_tls();
        let addr = self.bind;
        let mut local = None;
        let mut handle = self.start_on(
            || {
                let (tcp, bound) = Self::bind_tcp(addr)?;
                local = Some(bound);
                Ok(TlsListener::new(tcp, tls))
            },
            logic,
        )?;
        handle.local_addr = local;
        Ok(handle)
    }

    #[cfg(feature = "websocket")]
    pub(super) fn start_tls_with_websocket<L: Logic<Protocol = P>>(
        mut self,
        logic: L,
        web: std::net::TcpListener,
        mut config: crate::transport::websocket::WebSocketConfig,
    ) -> io::Result<ServerHandle<P>> {
        use crate::transport::{Either, websocket::WebSocketListener};
        let tls = self.take_tls();
        let addr = self.bind;
        config.header = self.config.header;
        config.tls.get_or_insert_with(|| tls.clone());
        let mut local = None;
        let mut handle = self.start_on(
            || {
                let (tcp, bound) = Self::bind_tcp(addr)?;
                local = Some(bound);
                Ok(Either(TlsListener::new(tcp, tls), WebSocketListener::new(web, config)?))
            },
            logic,
        )?;
        handle.local_addr = local;
        Ok(handle)
    }
}
