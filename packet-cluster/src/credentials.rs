//! How a node proves itself to NATS and how it talks to it: credentials ([`NatsAuth`]) and TLS ([`NatsTls`]).
//!
//! Secrets come from files or the environment, never from a value on a command line, and never reach a log or an
//! error: [`Secret`]'s `Debug` prints `<redacted>`, and an error about a file names the file and what is wrong with
//! it, never what it holds. See docs/SECURITY.md, "Credentials in the cluster".

use std::path::{Path, PathBuf};

use crate::ClusterError;

/// A password or token. Its `Debug` never shows it; [`expose`](Self::expose) is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Secret {
    /// A secret the application already holds (from its own secret store, for example).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret in file `path`: its whole content, without one trailing newline (`\n` or `\r\n`). An error names
    /// the file and what is wrong (missing, unreadable, empty, not UTF-8), never the content. A file that others
    /// than its owner may read is taken, with a warning.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ClusterError> {
        let path = path.as_ref();
        let bytes = read(path, "secret")?;
        let text = String::from_utf8(bytes).map_err(|_| file_error(path, "secret", "is not UTF-8 text".to_owned()))?;
        let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
        if value.is_empty() {
            return Err(file_error(path, "secret", "is empty".to_owned()));
        }
        Ok(Secret(value.to_owned()))
    }

    /// The secret in environment variable `name`, if it is set; an error if it is set but empty or not UTF-8.
    pub fn from_env(name: &str) -> Result<Option<Self>, ClusterError> {
        match std::env::var(name) {
            Ok(value) if value.is_empty() => Err(ClusterError::Credentials {
                source_name: format!("environment variable {name}"),
                reason: "is set but empty".to_owned(),
            }),
            Ok(value) => Ok(Some(Secret(value))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(ClusterError::Credentials {
                source_name: format!("environment variable {name}"),
                reason: "is not UTF-8".to_owned(),
            }),
        }
    }

    /// The secret itself, to hand to the NATS client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// How a node authenticates to NATS. The broker's permissions then decide what it may publish and subscribe to
/// (docs/nats-cluster-permissions.conf is an example for two clusters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatsAuth {
    /// No credentials: a broker without authorization (a development machine).
    #[default]
    None,
    /// A NATS credentials file (a user JWT and its NKEY seed, as `nsc generate creds` writes): decentralized auth,
    /// an operator-mode broker.
    CredsFile(PathBuf),
    /// A user and password, checked by the broker's `authorization` or `accounts` block.
    UserPassword {
        /// The user name (not a secret: it appears in logs and in the broker's).
        user: String,
        /// The password (from [`Secret::from_file`] or [`Secret::from_env`]).
        password: Secret,
    },
    /// A token (`authorization { token: ... }`).
    Token(Secret),
}

/// TLS to NATS. async-nats speaks TLS through rustls with ring (no extra feature, no aws-lc-rs). A `tls://` URL
/// also asks for TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsTls {
    /// Refuse a broker that does not offer TLS. Implied by `ca_file` and `client_cert`.
    pub require: bool,
    /// A PEM file of the CA certificates that signed the broker's certificate (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM files), for a broker that verifies clients (`verify: true`).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl NatsTls {
    /// Whether TLS is asked for at all.
    pub fn enabled(&self) -> bool {
        self.require || self.ca_file.is_some() || self.client_cert.is_some()
    }
}

fn file_error(path: &Path, what: &str, reason: String) -> ClusterError {
    ClusterError::Credentials { source_name: format!("{what} file {}", path.display()), reason }
}

/// Reads `path`, with an error naming it and the reason only.
fn read(path: &Path, what: &str) -> Result<Vec<u8>, ClusterError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, what, format!("cannot be read: {e}")))?;
    warn_if_shared(path, what);
    Ok(bytes)
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(file = %path.display(), what, "a secret file others than its owner may read (chmod 600 it)");
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path, _: &str) {}

/// A PEM file that must exist and hold at least one PEM block; named in the error otherwise.
fn check_pem(path: &Path, what: &str) -> Result<(), ClusterError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, what, format!("cannot be read: {e}")))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(file_error(path, what, "holds no PEM block (-----BEGIN ...)".to_owned()));
    }
    Ok(())
}

/// `options` with the credentials and TLS settings applied; files are read and checked here, so that a missing or
/// malformed one fails the join with its name instead of a connection that never comes up.
pub(crate) fn apply(
    mut options: async_nats::ConnectOptions,
    auth: &NatsAuth,
    tls: &NatsTls,
) -> Result<async_nats::ConnectOptions, ClusterError> {
    options = match auth {
        NatsAuth::None => options,
        NatsAuth::CredsFile(path) => {
            let bytes = read(path, "NATS credentials")?;
            let text = String::from_utf8(bytes)
                .map_err(|_| file_error(path, "NATS credentials", "is not UTF-8 text".to_owned()))?;
            // async-nats's parse errors are fixed texts, but its key parsing is not ours to vouch for: say only
            // what kind of file was expected.
            options.credentials(&text).map_err(|_| {
                file_error(
                    path,
                    "NATS credentials",
                    "is not a NATS credentials file (a user JWT and an NKEY seed, as `nsc generate creds` writes)"
                        .to_owned(),
                )
            })?
        }
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.expose().to_owned())
        }
        NatsAuth::Token(token) => options.token(token.expose().to_owned()),
    };
    if tls.enabled() {
        options = options.require_tls(true);
    }
    if let Some(ca) = &tls.ca_file {
        check_pem(ca, "NATS TLS CA")?;
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &tls.client_cert {
        check_pem(cert, "NATS TLS client certificate")?;
        check_pem(key, "NATS TLS client key")?;
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, content: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("packet-cluster-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let auth = NatsAuth::UserPassword { user: "a".into(), password: Secret::new("hunter2-pw") };
        let mut config = crate::ClusterConfig::new(["127.0.0.1:4222"], "a");
        config.auth = auth;
        let shown = format!("{config:?} {:?}", NatsAuth::Token(Secret::new("tok-en-xyz")));
        assert!(!shown.contains("hunter2-pw") && !shown.contains("tok-en-xyz"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("user: \"a\""), "{shown}");
    }

    #[test]
    fn a_secret_file_loses_one_trailing_newline_and_errors_name_the_file_not_the_content() {
        let path = temp_file("pw", b"s3cr3t\r\n");
        assert_eq!(Secret::from_file(&path).unwrap().expose(), "s3cr3t");
        std::fs::write(&path, b"\n").unwrap();
        let error = Secret::from_file(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()) && error.contains("empty"), "{error}");
        std::fs::remove_file(&path).unwrap();
        let error = Secret::from_file(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()) && error.contains("cannot be read"), "{error}");
    }

    #[test]
    fn a_malformed_creds_file_is_named_and_its_content_never_shown() {
        let path = temp_file("creds", b"not-a-creds-file SUAEXAMPLESEEDTHATMUSTNOTLEAK");
        let Err(error) =
            apply(async_nats::ConnectOptions::new(), &NatsAuth::CredsFile(path.clone()), &NatsTls::default())
        else {
            panic!("a malformed creds file is refused");
        };
        let error = error.to_string();
        assert!(
            error.contains(&path.display().to_string()) && error.contains("not a NATS credentials file"),
            "{error}"
        );
        assert!(!error.contains("SUAEXAMPLE"), "{error}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_tls_file_that_is_missing_or_not_pem_is_named() {
        let missing = std::env::temp_dir().join("packet-cluster-no-such-ca.pem");
        let tls = NatsTls { ca_file: Some(missing.clone()), ..NatsTls::default() };
        let error = apply(async_nats::ConnectOptions::new(), &NatsAuth::None, &tls).err().unwrap().to_string();
        assert!(error.contains("NATS TLS CA file") && error.contains(&missing.display().to_string()), "{error}");
        let garbage = temp_file("ca.pem", b"hello");
        let tls = NatsTls { ca_file: Some(garbage.clone()), ..NatsTls::default() };
        let error = apply(async_nats::ConnectOptions::new(), &NatsAuth::None, &tls).err().unwrap().to_string();
        assert!(error.contains("no PEM block"), "{error}");
        std::fs::remove_file(&garbage).unwrap();
    }
}
