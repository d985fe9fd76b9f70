//! The `--nats-*` flags of credentials and TLS: how a clustered node proves itself to NATS. Secrets come from files
//! or the environment (`NATS_PASSWORD`), never from a flag's value, and are never logged (packet-cluster's
//! [`Secret`] redacts itself). See docs/SECURITY.md, "Credentials in the cluster".

use std::path::PathBuf;

use packet_cluster::{ClusterConfig, NatsAuth, NatsTls, Secret};

/// The environment variable holding `--nats-user`'s password when `--nats-password-file` is not given.
pub const PASSWORD_ENV: &str = "NATS_PASSWORD";

/// Credentials and TLS for the NATS connection (flattened into the server's flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsAuthArgs {
    /// NATS credentials file (a user JWT and its NKEY seed, as `nsc generate creds` writes).
    #[arg(long, value_name = "FILE", requires = "nats", conflicts_with_all = ["nats_user", "nats_token_file"])]
    nats_creds: Option<PathBuf>,
    /// NATS user name; its password comes from `--nats-password-file` or the environment variable
    /// `NATS_PASSWORD`, never from a flag.
    #[arg(long, value_name = "NAME", requires = "nats", conflicts_with = "nats_token_file")]
    nats_user: Option<String>,
    /// A file holding `--nats-user`'s password (its whole content, one trailing newline dropped).
    #[arg(long, value_name = "FILE", requires = "nats_user")]
    nats_password_file: Option<PathBuf>,
    /// A file holding a NATS token (`authorization { token: ... }` on the broker).
    #[arg(long, value_name = "FILE", requires = "nats")]
    nats_token_file: Option<PathBuf>,
    /// Require TLS to NATS (implied by `--nats-tls-ca`, `--nats-tls-cert` and `tls://` URLs).
    #[arg(long, requires = "nats")]
    nats_tls: bool,
    /// PEM file of the CA certificates that signed the NATS server's certificate [default: the system's roots].
    #[arg(long, value_name = "FILE", requires = "nats")]
    nats_tls_ca: Option<PathBuf>,
    /// PEM client certificate for a NATS server that verifies clients; with `--nats-tls-key`.
    #[arg(long, value_name = "FILE", requires_all = ["nats", "nats_tls_key"])]
    nats_tls_cert: Option<PathBuf>,
    /// PEM key of `--nats-tls-cert`.
    #[arg(long, value_name = "FILE", requires = "nats_tls_cert")]
    nats_tls_key: Option<PathBuf>,
}

impl NatsAuthArgs {
    /// Puts the credentials and TLS settings into `config`, reading the secret files and `NATS_PASSWORD`. An error
    /// names the flag, file or variable and what is wrong with it, never a secret.
    pub fn apply(&self, config: &mut ClusterConfig) -> Result<(), String> {
        config.auth = if let Some(creds) = &self.nats_creds {
            NatsAuth::CredsFile(creds.clone())
        } else if let Some(user) = &self.nats_user {
            let from_env = Secret::from_env(PASSWORD_ENV).map_err(|e| e.to_string())?;
            let password = match (&self.nats_password_file, from_env) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "--nats-password-file and {PASSWORD_ENV} both give --nats-user's password: keep one"
                    ));
                }
                (Some(file), None) => Secret::from_file(file).map_err(|e| e.to_string())?,
                (None, Some(password)) => password,
                (None, None) => {
                    return Err(format!(
                        "--nats-user {user} needs a password: --nats-password-file FILE or the environment variable \
                         {PASSWORD_ENV}"
                    ));
                }
            };
            NatsAuth::UserPassword { user: user.clone(), password }
        } else if let Some(token) = &self.nats_token_file {
            NatsAuth::Token(Secret::from_file(token).map_err(|e| e.to_string())?)
        } else {
            NatsAuth::None
        };
        let mut tls = NatsTls::default();
        tls.require = self.nats_tls;
        tls.ca_file = self.nats_tls_ca.clone();
        tls.client_cert = self.nats_tls_cert.clone().zip(self.nats_tls_key.clone());
        config.tls = tls;
        Ok(())
    }
}
