//! The demo's login tokens: what a client presents in `C_LOGIN.token` when the server checks tokens
//! (`server --auth-secret-file FILE`), minted from the same secret by `bots --auth-secret-file FILE` or, for the
//! browser demo, by the web listener's development-only `/dev-token` (`server --dev-tokens`).
//!
//! A token is `<expiry>.<mac>`: the expiry in seconds since the UNIX epoch, and the HMAC-SHA256 (ring) of
//! `"<player name>\n<expiry>"` under the shared secret, in lowercase hex. It binds one name until one time; the
//! check is constant-time. It is a demonstration of the authentication hook, not an account system: there is no
//! revocation, and anyone holding the secret can mint tokens for any name.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;

/// Secrets shorter than this are refused: an HMAC key should not be guessable.
pub const MIN_SECRET: usize = 16;

/// The secret tokens are signed with. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct TokenKey {
    key: hmac::Key,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl PartialEq for TokenKey {
    /// Keys are not compared (ring does not expose them): any two are equal, so settings that hold one still compare.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for TokenKey {}

impl TokenKey {
    /// A key from the secret's bytes (at least [`MIN_SECRET`]).
    pub fn new(secret: &[u8]) -> Result<TokenKey, String> {
        if secret.len() < MIN_SECRET {
            return Err(format!("the secret is {} bytes; at least {MIN_SECRET} are needed", secret.len()));
        }
        Ok(TokenKey { key: hmac::Key::new(hmac::HMAC_SHA256, secret) })
    }

    /// The key in `path`: the whole file, one trailing newline removed. Errors name the file, never its content.
    pub fn from_file(path: &Path) -> Result<TokenKey, String> {
        let mut secret =
            std::fs::read(path).map_err(|error| format!("cannot read the secret file {}: {error}", path.display()))?;
        if secret.last() == Some(&b'\n') {
            secret.pop();
            if secret.last() == Some(&b'\r') {
                secret.pop();
            }
        }
        TokenKey::new(&secret).map_err(|why| format!("the secret file {}: {why}", path.display()))
    }

    /// A token for `name`, valid for `ttl` from now.
    pub fn mint(&self, name: &str, ttl: Duration) -> String {
        let expiry = now().saturating_add(ttl.as_secs());
        let tag = hmac::sign(&self.key, message(name, expiry).as_bytes());
        format!("{expiry}.{}", hex(tag.as_ref()))
    }

    /// Checks `token` for `name` at the current time; says why it is refused.
    pub fn verify(&self, name: &str, token: &str) -> Result<(), String> {
        self.verify_at(name, token, now())
    }

    /// Checks `token` for `name` at `now` (seconds since the UNIX epoch).
    pub fn verify_at(&self, name: &str, token: &str, now: u64) -> Result<(), String> {
        if token.is_empty() {
            return Err("a token is required".to_owned());
        }
        let (expiry, mac) = token.split_once('.').ok_or("malformed token")?;
        let expiry: u64 = expiry.parse().map_err(|_| "malformed token")?;
        let mac = unhex(mac).ok_or("malformed token")?;
        hmac::verify(&self.key, message(name, expiry).as_bytes(), &mac)
            .map_err(|_| "invalid token (not signed with this server's secret, or for another name)")?;
        if now >= expiry {
            return Err(format!("token expired {} s ago", now - expiry));
        }
        Ok(())
    }
}

fn message(name: &str, expiry: u64) -> String {
    format!("{name}\n{expiry}")
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(b"sixteen byte key!").unwrap()
    }

    #[test]
    fn a_minted_token_is_valid_for_its_name_until_it_expires() {
        let token = key().mint("alice", Duration::from_secs(60));
        assert_eq!(key().verify("alice", &token), Ok(()));
        let expiry: u64 = token.split_once('.').unwrap().0.parse().unwrap();
        assert_eq!(key().verify_at("alice", &token, expiry), Err("token expired 0 s ago".to_owned()));
        assert!(key().verify("bob", &token).unwrap_err().contains("invalid token"));
        let other = TokenKey::new(b"another sixteen bytes").unwrap();
        assert!(other.verify("alice", &token).unwrap_err().contains("invalid token"));
    }

    #[test]
    fn forged_and_malformed_tokens_are_refused() {
        let token = key().mint("alice", Duration::from_secs(60));
        // A later expiry with the old MAC: the MAC covers the expiry.
        let (expiry, mac) = token.split_once('.').unwrap();
        let extended = format!("{}.{mac}", expiry.parse::<u64>().unwrap() + 3600);
        assert!(key().verify("alice", &extended).unwrap_err().contains("invalid token"));
        for bad in ["", "no-dot", "x.00", "1.zz", "1.abc"] {
            assert!(key().verify("alice", bad).is_err(), "{bad:?}");
        }
        assert_eq!(key().verify("alice", ""), Err("a token is required".to_owned()));
    }

    #[test]
    fn short_secrets_are_refused_and_the_key_is_never_printed() {
        assert!(TokenKey::new(b"short").unwrap_err().contains("at least 16"));
        assert_eq!(format!("{:?}", key()), "TokenKey(<redacted>)");
    }
}
