//! The version handshake: the control frames of packet id 0, and what goes wrong with them.
//!
//! A client may open with a *hello* stating its protocol fingerprint ([`Protocol::FINGERPRINT`]) and a free-form
//! version string; the server answers with its own hello. When the fingerprints differ, both sides know it at once
//! and name both numbers: the server closes the session with [`CloseReason::Handshake`](crate::CloseReason) (after
//! its answer and the application's close notice), the client gets [`HandshakeFault::Mismatch`] from
//! [`Client::handshake`](crate::Client::handshake). Without it, a mismatched build shows up later as
//! "unknown packet id" or as a payload that decodes into nonsense.
//!
//! Packet id 0 is reserved for these frames (`#[packet(id = 0)]` does not compile) and their payload is not
//! protobuf, so a client without a protobuf library can still speak it:
//!
//! ```text
//! offset  size  field
//! 0       1     kind         1 = hello from the client, 2 = hello from the server
//! 1       8     fingerprint  u64 LE: the sender's Protocol::FINGERPRINT
//! 9       n     version      UTF-8, the rest of the frame (0..=64 bytes): who is speaking, for the logs
//! ```
//!
//! The server answers a hello that is a session's first frame whether or not it requires one
//! (so clients may always send it); with [`ServerBuilder::require_handshake`](crate::ServerBuilder::require_handshake)
//! the first frame *must* be a hello, and the session reaches the game (`Logic::on_connect`) only once its hello
//! matched. A control frame anywhere else, of an unknown kind, or malformed, closes the session. docs/PROTOCOL.md has
//! the bytes of both frames of the demo protocol.

use crate::Protocol;

/// The packet id of the control frames. No packet of a protocol may use it.
pub const CONTROL_ID: u16 = 0;

/// Longest version string a hello carries, in bytes.
pub const MAX_VERSION: usize = 64;

/// What a control frame is, its first payload byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloKind {
    /// The client's hello, its first frame.
    FromClient = 1,
    /// The server's answer.
    FromServer = 2,
}

/// One side's hello: its protocol fingerprint and version string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's [`Protocol::FINGERPRINT`].
    pub fingerprint: u64,
    /// Who is speaking (`"my-game-client 1.4.2"`): at most [`MAX_VERSION`] bytes of UTF-8, for logs and reasons.
    pub version: String,
}

impl Hello {
    /// The hello of a program built with protocol `P`. A version over [`MAX_VERSION`] bytes is cut at a character
    /// boundary.
    pub fn of<P: Protocol>(version: impl Into<String>) -> Hello {
        let mut version = version.into();
        if version.len() > MAX_VERSION {
            let mut end = MAX_VERSION;
            while !version.is_char_boundary(end) {
                end -= 1;
            }
            version.truncate(end);
        }
        Hello { fingerprint: P::FINGERPRINT, version }
    }

    /// The payload of this hello as a frame of `kind` (header excluded).
    pub fn payload(&self, kind: HelloKind) -> Vec<u8> {
        let mut payload = Vec::with_capacity(9 + self.version.len());
        payload.push(kind as u8);
        payload.extend_from_slice(&self.fingerprint.to_le_bytes());
        payload.extend_from_slice(self.version.as_bytes());
        payload
    }

    /// Reads a hello of `kind` from a control frame's payload.
    pub fn parse(payload: &[u8], kind: HelloKind) -> Result<Hello, HandshakeFault> {
        let Some((&first, rest)) = payload.split_first() else {
            return Err(HandshakeFault::Malformed("an empty control frame"));
        };
        if first != kind as u8 {
            return Err(match first {
                1 | 2 => HandshakeFault::Malformed("a hello of the other side"),
                _ => HandshakeFault::Malformed("an unknown control frame kind"),
            });
        }
        if rest.len() < 8 {
            return Err(HandshakeFault::Malformed("a hello shorter than its 8-byte fingerprint"));
        }
        let (fingerprint, version) = rest.split_at(8);
        if version.len() > MAX_VERSION {
            return Err(HandshakeFault::Malformed("a version string over 64 bytes"));
        }
        let version = std::str::from_utf8(version)
            .map_err(|_| HandshakeFault::Malformed("a version string that is not UTF-8"))?
            .to_owned();
        let fingerprint = u64::from_le_bytes(fingerprint.try_into().expect("8 bytes"));
        Ok(Hello { fingerprint, version })
    }
}

/// Why a handshake failed. Carried by [`CloseReason::Handshake`](crate::CloseReason::Handshake) on the server and
/// [`ClientError::Handshake`](crate::ClientError::Handshake) on the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeFault {
    /// The two sides were built from different protocols.
    #[error(
        "protocol mismatch: the client's fingerprint is {client:016x} ({client_version:?}), the server's is \
         {server:016x} ({server_version:?})"
    )]
    Mismatch {
        /// The client's fingerprint.
        client: u64,
        /// The client's version string.
        client_version: String,
        /// The server's fingerprint.
        server: u64,
        /// The server's version string.
        server_version: String,
    },
    /// The server requires a hello first and the first frame was something else (packet id `id`).
    #[error("the server requires the version handshake first (a hello, packet id 0); the first frame had id {id}")]
    Missing {
        /// The id of the frame that came instead.
        id: u16,
    },
    /// A control frame after the first frame: the handshake happens once, at connect.
    #[error("a control frame (packet id 0) after the handshake")]
    Repeated,
    /// The server sent a frame of packet id `id` instead of its hello (a server that predates the handshake refuses
    /// packet id 0 like any unknown id).
    #[error("the server did not answer the hello: its first frame had packet id {id}")]
    NoAnswer {
        /// The id of the frame that came instead.
        id: u16,
    },
    /// A control frame that is not a well-formed hello.
    #[error("malformed handshake: {0}")]
    Malformed(&'static str),
}

/// The server's handshake settings ([`ServerBuilder::require_handshake`](crate::ServerBuilder::require_handshake),
/// [`ServerBuilder::server_version`](crate::ServerBuilder::server_version)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// Whether every session's first frame must be a hello. Off by default: clients that never send one keep
    /// working, and a hello that comes first is answered anyway.
    pub required: bool,
    /// The version string of the server's answer. Default `"packet-runtime <version>"`.
    pub version: String,
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        HandshakeConfig { required: false, version: concat!("packet-runtime ", env!("CARGO_PKG_VERSION")).to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_refuses_what_is_not_a_hello() {
        let hello = Hello { fingerprint: 0x0123_4567_89ab_cdef, version: "client 1.0".to_owned() };
        let payload = hello.payload(HelloKind::FromClient);
        assert_eq!(&payload[..9], &[1, 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01]);
        assert_eq!(&payload[9..], b"client 1.0");
        assert_eq!(Hello::parse(&payload, HelloKind::FromClient), Ok(hello.clone()));
        assert_eq!(
            Hello::parse(&payload, HelloKind::FromServer),
            Err(HandshakeFault::Malformed("a hello of the other side"))
        );
        let refused: [&[u8]; 4] = [&[], &[9, 0, 0, 0, 0, 0, 0, 0, 0], &[1, 0, 0], &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]];
        for payload in refused {
            assert!(
                matches!(Hello::parse(payload, HelloKind::FromClient), Err(HandshakeFault::Malformed(_))),
                "{payload:?}"
            );
        }
        let long = [&[1u8; 9][..], &[b'v'; MAX_VERSION + 1]].concat();
        assert!(Hello::parse(&long, HelloKind::FromClient).is_err());
    }

    #[test]
    fn mismatch_names_both_fingerprints() {
        let fault = HandshakeFault::Mismatch {
            client: 1,
            client_version: "c".into(),
            server: 0xabc,
            server_version: "s".into(),
        };
        let text = fault.to_string();
        assert!(text.contains("0000000000000001") && text.contains("0000000000000abc"), "{text}");
    }
}
