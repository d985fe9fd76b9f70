//! TLS 1.2 and 1.3 (rustls on the `ring` provider): a [`TlsListener`] over any [`Listener`] (TCP, usually), the
//! same handshake on the WebSocket listener (wss, through `WebSocketConfig::tls` with the `websocket` feature),
//! and the client's configuration ([`client_config`]).
//!
//! **Certificates** come from PEM files ([`TlsConfig::from_pem_files`]: the chain, leaf first, and its private key in
//! PKCS#8, PKCS#1 or SEC1); an error names the file and what is wrong with it. A [`TlsReloader`] reads them again and
//! swaps the certified key in place: handshakes from then on present the new certificate, sessions already up keep
//! theirs. A new certificate that does not load (a missing file, a key that does not match) leaves the old one in
//! use.
//!
//! **Handshakes** run in tasks of their own, never in the accept loop: at most [`TlsConfig::max_handshakes`] at once
//! (more connections are closed at once and counted as rejected), each within [`TlsConfig::handshake_timeout`]
//! (default 10 s: a socket that opens and sends nothing is closed then). A handshake in progress counts toward the
//! server's `max_connections` like a session ([`Admission`]); one that fails or times out is logged (debug, with the
//! peer address), counted (`packet_tls_handshake_failures_total`, [`MetricsSnapshot::tls_handshake_failures`]) and
//! never becomes a session. A peer's address stays what the inner listener reported ([`PeerAddr::Tcp`], say), so
//! per-address limits work unchanged.
//!
//! [`MetricsSnapshot::tls_handshake_failures`]: crate::MetricsSnapshot::tls_handshake_failures
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use packet_runtime::transport::tls::TlsConfig;
//! let tls = TlsConfig::from_pem_files("cert.pem", "key.pem")?;
//! let reloader = tls.reloader(); // call `reloader.reload()` on SIGHUP
//! // ServerBuilder::tls(tls), then start as usual: TLS replaces clear text on the server's listeners.
//! # let _ = reloader; Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::{Semaphore, mpsc};

use super::{Admission, Listener, PeerAddr, Pending};

pub use rustls::{ClientConfig, RootCertStore};
pub use tokio_rustls::{client, server};

/// Why certificates or keys could not be loaded. Every variant but `NotFromFiles` names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not PEM, or holds no item of the kind expected.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        what: String,
    },
    /// rustls refused the certificate or the key (an unsupported key type, a key that does not belong to the
    /// certificate).
    #[error("{}: {source}", path.display())]
    Rejected {
        /// The file at fault (the key file when the key does not match the certificate).
        path: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// [`TlsReloader::reload`] of a configuration made in memory ([`TlsConfig::from_der`]): there are no files to
    /// read again.
    #[error("this TLS configuration was not loaded from files: nothing to reload")]
    NotFromFiles,
}

/// The crypto provider every TLS object here uses: `ring`.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

fn pem_error(path: &Path, kind: &str, error: rustls::pki_types::pem::Error) -> TlsError {
    let what = match error {
        rustls::pki_types::pem::Error::NoItemsFound => format!("no PEM {kind} in it"),
        other => format!("not valid PEM ({other})"),
    };
    TlsError::Pem { path: path.to_owned(), what }
}

/// Certificates in a PEM file (`-----BEGIN CERTIFICATE-----` sections), in order.
pub fn certificates_from_pem_file(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = path.as_ref();
    let chain = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(path, "certificate", error))?;
    if chain.is_empty() {
        return Err(pem_error(path, "certificate", rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(chain)
}

/// A root store of the certificates in a PEM file: the authorities a client trusts (a private CA, a self-signed
/// server certificate).
pub fn roots_from_pem_file(path: impl AsRef<Path>) -> Result<RootCertStore, TlsError> {
    let path = path.as_ref();
    let mut roots = RootCertStore::empty();
    for certificate in certificates_from_pem_file(path)? {
        roots.add(certificate).map_err(|source| TlsError::Rejected { path: path.to_owned(), source })?;
    }
    Ok(roots)
}

/// A client configuration trusting `roots` only: TLS 1.2 and 1.3 on `ring`, no client certificate.
pub fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Connects `stream` to a TLS server that must present a certificate for `server_name`, trusted by `config`.
pub async fn connect<S>(
    stream: S,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> io::Result<tokio_rustls::client::TlsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    tokio_rustls::TlsConnector::from(config).connect(name, stream).await
}

/// Where a certified key comes from, for [`TlsReloader::reload`].
#[derive(Debug, Clone)]
struct Source {
    cert: PathBuf,
    key: PathBuf,
}

fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = certificates_from_pem_file(cert)?;
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|error| pem_error(key, "private key", error))?;
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(|source| {
        // A chain rustls cannot parse is the certificate file's fault; anything else (an unsupported or
        // mismatched key) the key file's.
        let path = match source {
            rustls::Error::InvalidCertificate(_) => cert,
            _ => key,
        };
        TlsError::Rejected { path: path.to_owned(), source }
    })
}

/// The certified key every handshake presents, swapped in place by a reload.
struct SwappableKey {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for SwappableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwappableKey").finish_non_exhaustive()
    }
}

impl SwappableKey {
    fn get(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn set(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(key);
    }
}

impl ResolvesServerCert for SwappableKey {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// A server's TLS settings: its certificate (reloadable) and its handshake limits. Cheap to clone; clones share the
/// certificate, so reloading one reloads them all.
#[derive(Clone)]
pub struct TlsConfig {
    key: Arc<SwappableKey>,
    source: Option<Source>,
    acceptor: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
    max_handshakes: usize,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("source", &self.source)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_handshakes", &self.max_handshakes)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Default [`handshake_timeout`](Self::handshake_timeout): 10 s.
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`max_handshakes`](Self::max_handshakes): 1,024.
    pub const DEFAULT_MAX_HANDSHAKES: usize = 1024;

    /// Loads the certificate chain (leaf first) and its private key from PEM files. A [`TlsReloader`] of this
    /// configuration reads the same files again.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let source = Source { cert: cert.as_ref().to_owned(), key: key.as_ref().to_owned() };
        let certified = load(&source.cert, &source.key)?;
        Ok(TlsConfig::new(certified, Some(source)))
    }

    /// A configuration of a chain and key already in memory (DER); [`TlsReloader::reload`] has no files to read
    /// then, [`TlsReloader::replace`] still works.
    pub fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Self, rustls::Error> {
        Ok(TlsConfig::new(CertifiedKey::from_der(chain, key, &provider())?, None))
    }

    fn new(certified: CertifiedKey, source: Option<Source>) -> Self {
        let key = Arc::new(SwappableKey { current: RwLock::new(Arc::new(certified)) });
        let resolver: Arc<dyn ResolvesServerCert> = Arc::clone(&key) as _;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        TlsConfig {
            key,
            source,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            handshake_timeout: TlsConfig::DEFAULT_HANDSHAKE_TIMEOUT,
            max_handshakes: TlsConfig::DEFAULT_MAX_HANDSHAKES,
        }
    }

    /// A connection whose handshake has not completed within this is closed (and counted as a failed handshake).
    /// Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Handshakes in progress at once (at least 1); connections beyond are closed at once and counted as rejected.
    /// Default 1,024.
    pub fn max_handshakes(mut self, max: usize) -> Self {
        self.max_handshakes = max.max(1);
        self
    }

    /// The handle that reloads this configuration's certificate.
    pub fn reloader(&self) -> TlsReloader {
        TlsReloader { key: Arc::clone(&self.key), source: self.source.clone() }
    }

    /// The rustls acceptor (for a transport of the application's own).
    pub fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}

/// Reloads a [`TlsConfig`]'s certificate without a restart (on SIGHUP, say): handshakes after the reload present
/// the new one, sessions already up are untouched. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TlsReloader {
    key: Arc<SwappableKey>,
    source: Option<Source>,
}

impl TlsReloader {
    /// Reads the configuration's PEM files again and, if they load, presents them from now on. On error the
    /// certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let Some(source) = &self.source else { return Err(TlsError::NotFromFiles) };
        self.key.set(load(&source.cert, &source.key)?);
        Ok(())
    }

    /// Presents `chain` and `key` from now on (DER). On error the certificate in use stays.
    pub fn replace(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), rustls::Error> {
        self.key.set(CertifiedKey::from_der(chain, key, &provider())?);
        Ok(())
    }
}

/// A connection of a [`TlsListener`] once its handshake is done.
pub type TlsStream<S> = tokio_rustls::server::TlsStream<S>;

type Ready<S> = (TlsStream<S>, PeerAddr, Pending);

/// TLS over the connections of `L`. Handshakes run on tasks of their own (started by the first
/// [`accept`](Listener::accept), so it may be created outside a runtime).
pub struct TlsListener<L: Listener> {
    state: State<L>,
    config: TlsConfig,
    admission: Admission,
}

enum State<L: Listener> {
    Idle(L),
    Running { incoming: mpsc::Receiver<Ready<L::Stream>>, accept_loop: tokio::task::JoinHandle<()> },
    Gone,
}

impl<L: Listener> fmt::Debug for TlsListener<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<L: Listener> Drop for TlsListener<L> {
    fn drop(&mut self) {
        if let State::Running { accept_loop, .. } = &self.state {
            accept_loop.abort();
        }
    }
}

impl<L: Listener> TlsListener<L> {
    /// TLS with `config` over `inner`'s connections.
    pub fn new(inner: L, config: TlsConfig) -> Self {
        TlsListener { state: State::Idle(inner), config, admission: Admission::unlimited() }
    }
}

impl<L: Listener> Listener for TlsListener<L> {
    type Stream = TlsStream<L::Stream>;

    async fn accept(&mut self) -> io::Result<(Self::Stream, PeerAddr)> {
        if matches!(self.state, State::Idle(_)) {
            let State::Idle(inner) = std::mem::replace(&mut self.state, State::Gone) else { unreachable!() };
            // Completed handshakes wait here for the server's accept loop, which takes them at once.
            let (tx, incoming) = mpsc::channel(64);
            let accept_loop = tokio::spawn(handshakes(inner, self.config.clone(), self.admission.clone(), tx));
            self.state = State::Running { incoming, accept_loop };
        }
        let State::Running { incoming, .. } = &mut self.state else {
            return Err(io::Error::other("the TLS accept loop ended"));
        };
        match incoming.recv().await {
            // The connection is the accept loop's now: `max_connections` sees it as a session from here.
            Some((stream, peer, _pending)) => Ok((stream, peer)),
            None => Err(io::Error::other("the TLS accept loop ended")),
        }
    }

    fn limit_send_buffer(stream: &Self::Stream, bytes: usize) -> io::Result<()> {
        L::limit_send_buffer(stream.get_ref().0, bytes)
    }

    fn abortive_close(stream: &Self::Stream) {
        L::abortive_close(stream.get_ref().0);
    }

    fn unacknowledged(stream: &Self::Stream) -> Option<usize> {
        L::unacknowledged(stream.get_ref().0)
    }

    fn admit(&mut self, admission: Admission) {
        self.admission = admission;
    }
}

/// Runs a TLS handshake on `stream` under the configuration's deadline. `None` (logged, counted): it failed.
pub(crate) async fn handshake<S>(
    stream: S,
    peer: &PeerAddr,
    config: &TlsConfig,
    timeout: Duration,
    admission: &Admission,
) -> Option<TlsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, config.acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            admission.handshake_failed();
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            admission.handshake_failed();
            tracing::debug!(%peer, ?timeout, "TLS handshake timed out");
            None
        }
    }
}

async fn handshakes<L: Listener>(
    mut inner: L,
    config: TlsConfig,
    admission: Admission,
    ready: mpsc::Sender<Ready<L::Stream>>,
) {
    let slots = Arc::new(Semaphore::new(config.max_handshakes));
    loop {
        let (stream, peer) = match inner.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and the like: back off a little instead of spinning.
                tracing::warn!(%error, "accept failed (TLS listener)");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(pending) = admission.begin() else {
            tracing::debug!(%peer, "max_connections reached (sessions and TLS handshakes); connection closed");
            L::abortive_close(&stream);
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            admission.rejected();
            tracing::debug!(%peer, max = config.max_handshakes, "too many TLS handshakes; connection closed");
            L::abortive_close(&stream);
            continue;
        };
        let (config, admission, ready) = (config.clone(), admission.clone(), ready.clone());
        tokio::spawn(async move {
            let timeout = config.handshake_timeout;
            if let Some(tls) = handshake(stream, &peer, &config, timeout, &admission).await {
                drop(slot);
                let _ = ready.send((tls, peer, pending)).await;
            }
        });
    }
}
