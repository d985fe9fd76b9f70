//! Certificates made at test time: a private CA per test ([`TestCa`]), server certificates it signs, written to PEM
//! files the way an operator would hand them to `--tls-cert` and `--tls-key`, and the clients that trust it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use packet_runtime::client::TlsClient;
use packet_runtime::transport::tls::{self, ClientConfig, RootCertStore, TlsConfig};
use packet_runtime::{ClientError, Protocol};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// The name every test server certificate is made for (and the clients ask for).
pub const SERVER_NAME: &str = "localhost";

/// A private certificate authority and a directory of its own for the files it writes (removed on drop).
#[derive(Debug)]
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

/// A certificate chain and key written as PEM files.
#[derive(Debug, Clone)]
pub struct PemFiles {
    /// The chain: the server's certificate, then the CA's.
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name` (each test makes its own: nothing is shared between tests).
    pub fn new(name: &str) -> TestCa {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("packet test CA {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key")).expect("a CA");
        let dir = std::env::temp_dir().join(format!(
            "packet-tls-{}-{}-{name}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the certificates");
        TestCa { issuer, dir }
    }

    /// The directory the files go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA's certificate as a PEM file (what a client is given as its root: `--tls-ca`).
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir.join("ca.pem");
        std::fs::write(&path, self.issuer.pem()).expect("writes ca.pem");
        path
    }

    /// A server certificate for [`SERVER_NAME`] and 127.0.0.1, signed by this CA, written as `{stem}.pem` and
    /// `{stem}.key`.
    pub fn server_files(&self, stem: &str) -> PemFiles {
        let mut params =
            CertificateParams::new(vec![SERVER_NAME.to_owned(), "127.0.0.1".to_owned()]).expect("leaf parameters");
        params.distinguished_name.push(DnType::CommonName, SERVER_NAME);
        let key = KeyPair::generate().expect("a server key");
        let cert = params.signed_by(&key, &self.issuer).expect("a server certificate");
        let files = PemFiles { cert: self.dir.join(format!("{stem}.pem")), key: self.dir.join(format!("{stem}.key")) };
        std::fs::write(&files.cert, format!("{}{}", cert.pem(), self.issuer.pem())).expect("writes the chain");
        std::fs::write(&files.key, key.serialize_pem()).expect("writes the key");
        files
    }

    /// A server configuration with a fresh certificate of this CA (loaded from its files, as the demo does).
    pub fn server_config(&self) -> TlsConfig {
        let files = self.server_files("server");
        TlsConfig::from_pem_files(&files.cert, &files.key).expect("the test certificate loads")
    }

    /// A root store of this CA only.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).expect("the CA is a valid root");
        roots
    }

    /// A client configuration trusting this CA only.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        tls::client_config(self.roots())
    }
}

/// A typed client connected over TLS to `addr`, asking for [`SERVER_NAME`] and trusting what `config` trusts; the
/// error if the connection or the handshake fails.
pub async fn try_connect<P: Protocol>(
    addr: std::net::SocketAddr,
    config: &Arc<ClientConfig>,
) -> Result<TlsClient<P>, ClientError> {
    crate::within("a TLS connection", TlsClient::<P>::connect_tls(addr, SERVER_NAME, Arc::clone(config))).await
}

/// [`try_connect`] that must succeed.
pub async fn connect<P: Protocol>(addr: std::net::SocketAddr, config: &Arc<ClientConfig>) -> TlsClient<P> {
    try_connect(addr, config).await.expect("connects over TLS")
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
