//! The envelope: what one NATS message between a gateway and a shard carries. Byte by byte in docs/CLUSTER.md.
//!
//! A message is a header and a sequence of operations, so that everything one side has for the other at a moment
//! (a logic batch's frames for every session of one gateway, or the client frames an IO thread forwarded while the
//! publisher was busy) travels as one message. Client frames are carried exactly as they came off the socket, and a
//! shard's frame that goes to many sessions of one gateway is carried once, followed by the list of its recipients.
//!
//! ```text
//! message  := version:u8 (= 1) | sender:u64 | seq:u64 | op*
//! op       := code:u8 | fields (all integers little-endian)
//! gateway -> shard
//!   OPEN    1  session:u64 | addr:str16
//!   ARRIVE  2  session:u64 | addr:str16 | state:bytes32
//!   FRAME   3  session:u64 | seq:u64 | frame:bytes32
//!   CLOSED  4  session:u64 | kind:str8 | detail:str16
//! shard -> gateway
//!   SEND    16 frame:bytes32 | count:u32 | session:u64 * count
//!   CLOSE   17 session:u64 | abort:u8 | reason:str16
//!   MOVE    18 session:u64 | last_seq:u64 | leaving:u8 | key:str16 | state:bytes32
//!   BOUNCE  19 session:u64 | seq:u64 | frame:bytes32
//! str8/str16/bytes32 := length (u8/u16/u32) | bytes
//! ```
//!
//! `seq` in the header numbers the messages one sender sends to one receiver (from 1), so a receiver sees a gap
//! that core NATS (at-most-once) would otherwise hide.
//!
//! Decoding never panics and never trusts a length: a truncated or unknown operation is an [`EnvelopeError`] and the
//! rest of the message is dropped (counted by the caller).

use bytes::{Buf, BufMut};

/// The envelope format's version; a message of another version is refused.
pub const VERSION: u8 = 1;

/// Bytes of the message header.
pub const HEADER_LEN: usize = 1 + 8 + 8;

/// One operation of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    /// A client connected to the gateway and was routed to this shard.
    Open {
        /// The gateway's id for the session.
        session: u64,
        /// The client's address as the gateway saw it.
        addr: &'a str,
    },
    /// A session handed over by another shard, with its state.
    Arrive {
        /// The gateway's id for the session.
        session: u64,
        /// The client's address.
        addr: &'a str,
        /// The old shard's state for it.
        state: &'a [u8],
    },
    /// A client frame, as it was on the wire.
    Frame {
        /// The gateway's id for the session.
        session: u64,
        /// The gateway's sequence number for the session's frames (from 1).
        seq: u64,
        /// The whole frame, header included.
        frame: &'a [u8],
    },
    /// The gateway reports the session's connection gone (or a hand-over from this shard complete).
    Closed {
        /// The gateway's id for the session.
        session: u64,
        /// The close kind's name (`CloseKind::as_str`).
        kind: &'a str,
        /// The gateway's description of the close.
        detail: &'a str,
    },
    /// A shard's frame for some of the gateway's sessions, carried once.
    Send {
        /// The whole frame, header included.
        frame: &'a [u8],
        /// The recipients, in no particular order.
        sessions: Vec<u64>,
    },
    /// Close a session after what was sent before.
    Close {
        /// The gateway's id for the session.
        session: u64,
        /// Drop what is still queued (slow consumer) instead of flushing it.
        abort: bool,
        /// Why (for the gateway's logs).
        reason: &'a str,
    },
    /// Move a session to the shard that owns `key`.
    Move {
        /// The gateway's id for the session.
        session: u64,
        /// The last of the session's frames the old shard handled; later ones come back as `Bounce`.
        last_seq: u64,
        /// The old shard is leaving (draining): it must not be picked as the new owner.
        leaving: bool,
        /// The key whose owner takes the session (resolved by the gateway).
        key: &'a str,
        /// The state for the new shard.
        state: &'a [u8],
    },
    /// A frame that reached the old shard after it handed the session over, given back.
    Bounce {
        /// The gateway's id for the session.
        session: u64,
        /// The frame's sequence number.
        seq: u64,
        /// The whole frame, header included.
        frame: &'a [u8],
    },
}

const OPEN: u8 = 1;
const ARRIVE: u8 = 2;
const FRAME: u8 = 3;
const CLOSED: u8 = 4;
const SEND: u8 = 16;
const CLOSE: u8 = 17;
const MOVE: u8 = 18;
const BOUNCE: u8 = 19;

/// A message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Shorter than its header.
    #[error("message of {0} bytes is shorter than the envelope header")]
    Short(usize),
    /// Another envelope version.
    #[error("envelope version {0}, expected {VERSION}")]
    Version(u8),
    /// An operation code this version does not know.
    #[error("unknown operation {code} at byte {at}")]
    UnknownOp {
        /// The code.
        code: u8,
        /// Its offset in the message.
        at: usize,
    },
    /// An operation runs past the end of the message.
    #[error("operation {code} at byte {at} is truncated")]
    Truncated {
        /// The code.
        code: u8,
        /// Its offset in the message.
        at: usize,
    },
    /// A string field is not UTF-8.
    #[error("operation {code} at byte {at} has a string that is not UTF-8")]
    NotUtf8 {
        /// The code.
        code: u8,
        /// Its offset in the message.
        at: usize,
    },
}

/// Writes the message header.
pub fn put_header(buf: &mut Vec<u8>, sender: u64, seq: u64) {
    buf.put_u8(VERSION);
    buf.put_u64_le(sender);
    buf.put_u64_le(seq);
}

/// Appends one operation.
pub fn put_op(buf: &mut Vec<u8>, op: &Op<'_>) {
    match op {
        Op::Open { session, addr } => {
            buf.put_u8(OPEN);
            buf.put_u64_le(*session);
            put_str16(buf, addr);
        }
        Op::Arrive { session, addr, state } => {
            buf.put_u8(ARRIVE);
            buf.put_u64_le(*session);
            put_str16(buf, addr);
            put_bytes32(buf, state);
        }
        Op::Frame { session, seq, frame } => {
            buf.put_u8(FRAME);
            buf.put_u64_le(*session);
            buf.put_u64_le(*seq);
            put_bytes32(buf, frame);
        }
        Op::Closed { session, kind, detail } => {
            buf.put_u8(CLOSED);
            buf.put_u64_le(*session);
            let kind = truncate(kind, u8::MAX as usize);
            buf.put_u8(kind.len() as u8);
            buf.put_slice(kind.as_bytes());
            put_str16(buf, detail);
        }
        Op::Send { frame, sessions } => put_send(buf, frame, sessions),
        Op::Close { session, abort, reason } => {
            buf.put_u8(CLOSE);
            buf.put_u64_le(*session);
            buf.put_u8(u8::from(*abort));
            put_str16(buf, reason);
        }
        Op::Move { session, last_seq, leaving, key, state } => {
            buf.put_u8(MOVE);
            buf.put_u64_le(*session);
            buf.put_u64_le(*last_seq);
            buf.put_u8(u8::from(*leaving));
            put_str16(buf, key);
            put_bytes32(buf, state);
        }
        Op::Bounce { session, seq, frame } => {
            buf.put_u8(BOUNCE);
            buf.put_u64_le(*session);
            buf.put_u64_le(*seq);
            put_bytes32(buf, frame);
        }
    }
}

/// Appends a `SEND` without building an [`Op`] (the shard's hot path).
pub fn put_send(buf: &mut Vec<u8>, frame: &[u8], sessions: &[u64]) {
    buf.put_u8(SEND);
    put_bytes32(buf, frame);
    buf.put_u32_le(sessions.len() as u32);
    for &session in sessions {
        buf.put_u64_le(session);
    }
}

/// Appends a `FRAME` without building an [`Op`] (the gateway's hot path).
pub fn put_frame(buf: &mut Vec<u8>, session: u64, seq: u64, frame: &[u8]) {
    put_op(buf, &Op::Frame { session, seq, frame });
}

fn put_str16(buf: &mut Vec<u8>, text: &str) {
    let text = truncate(text, u16::MAX as usize);
    buf.put_u16_le(text.len() as u16);
    buf.put_slice(text.as_bytes());
}

fn put_bytes32(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.put_u32_le(bytes.len() as u32);
    buf.put_slice(bytes);
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A decoded message: who sent it, its sequence number, and its operations (read lazily).
#[derive(Debug)]
pub struct Message<'a> {
    /// The sender's node id.
    pub sender: u64,
    /// The sender's sequence number for messages to this receiver.
    pub seq: u64,
    ops: &'a [u8],
    at: usize,
}

impl<'a> Message<'a> {
    /// Reads the header of `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() < HEADER_LEN {
            return Err(EnvelopeError::Short(bytes.len()));
        }
        if bytes[0] != VERSION {
            return Err(EnvelopeError::Version(bytes[0]));
        }
        let mut header = &bytes[1..HEADER_LEN];
        let sender = header.get_u64_le();
        let seq = header.get_u64_le();
        Ok(Message { sender, seq, ops: &bytes[HEADER_LEN..], at: 0 })
    }

    /// The next operation; `None` at the end. After an error, the rest of the message is not read.
    #[allow(clippy::should_implement_trait)] // an iterator of `Result` that stops after the first error
    pub fn next(&mut self) -> Option<Result<Op<'a>, EnvelopeError>> {
        if self.at >= self.ops.len() {
            return None;
        }
        let start = self.at;
        let code = self.ops[start];
        let mut reader = Reader { bytes: &self.ops[start + 1..], code, at: HEADER_LEN + start };
        let op = match code {
            OPEN => (|| Ok(Op::Open { session: reader.u64()?, addr: reader.str16()? }))(),
            ARRIVE => (|| Ok(Op::Arrive { session: reader.u64()?, addr: reader.str16()?, state: reader.bytes32()? }))(),
            FRAME => (|| Ok(Op::Frame { session: reader.u64()?, seq: reader.u64()?, frame: reader.bytes32()? }))(),
            CLOSED => (|| {
                let session = reader.u64()?;
                let kind_len = reader.u8()? as usize;
                let kind = reader.utf8(kind_len)?;
                Ok(Op::Closed { session, kind, detail: reader.str16()? })
            })(),
            SEND => (|| {
                let frame = reader.bytes32()?;
                let count = reader.u32()? as usize;
                // Checked before reserving: a forged count cannot make us allocate more than the message holds.
                if reader.bytes.len() < count.saturating_mul(8) {
                    return Err(reader.truncated());
                }
                let sessions = (0..count).map(|_| reader.u64()).collect::<Result<Vec<_>, _>>()?;
                Ok(Op::Send { frame, sessions })
            })(),
            CLOSE => (|| Ok(Op::Close { session: reader.u64()?, abort: reader.u8()? != 0, reason: reader.str16()? }))(),
            MOVE => (|| {
                Ok(Op::Move {
                    session: reader.u64()?,
                    last_seq: reader.u64()?,
                    leaving: reader.u8()? != 0,
                    key: reader.str16()?,
                    state: reader.bytes32()?,
                })
            })(),
            BOUNCE => (|| Ok(Op::Bounce { session: reader.u64()?, seq: reader.u64()?, frame: reader.bytes32()? }))(),
            _ => Err(EnvelopeError::UnknownOp { code, at: HEADER_LEN + start }),
        };
        match op {
            Ok(op) => {
                self.at = self.ops.len() - reader.bytes.len();
                Some(Ok(op))
            }
            Err(error) => {
                self.at = self.ops.len();
                Some(Err(error))
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    code: u8,
    at: usize,
}

impl<'a> Reader<'a> {
    fn truncated(&self) -> EnvelopeError {
        EnvelopeError::Truncated { code: self.code, at: self.at }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.bytes.len() < len {
            return Err(self.truncated());
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, EnvelopeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, EnvelopeError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, EnvelopeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn bytes32(&mut self) -> Result<&'a [u8], EnvelopeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn utf8(&mut self, len: usize) -> Result<&'a str, EnvelopeError> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| EnvelopeError::NotUtf8 { code: self.code, at: self.at })
    }

    fn str16(&mut self) -> Result<&'a str, EnvelopeError> {
        let len = self.u16()? as usize;
        self.utf8(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_op() -> Vec<Op<'static>> {
        vec![
            Op::Open { session: 1, addr: "127.0.0.1:5000" },
            Op::Arrive { session: 2, addr: "[::1]:9", state: b"state" },
            Op::Frame { session: 3, seq: 7, frame: &[8, 0, 0xe8, 3, 1, 2, 3, 4] },
            Op::Closed { session: 4, kind: "peer_closed", detail: "peer closed the connection" },
            Op::Send { frame: &[4, 0, 1, 0], sessions: vec![1, 2, u64::MAX] },
            Op::Close { session: 5, abort: true, reason: "slow consumer" },
            Op::Move { session: 6, last_seq: 41, leaving: true, key: "room.7", state: &[] },
            Op::Bounce { session: 7, seq: 42, frame: &[4, 0, 2, 0] },
        ]
    }

    fn encode(ops: &[Op<'_>]) -> Vec<u8> {
        let mut buf = Vec::new();
        put_header(&mut buf, 0x1234, 99);
        for op in ops {
            put_op(&mut buf, op);
        }
        buf
    }

    #[test]
    fn every_op_round_trips_in_order() {
        let ops = every_op();
        let bytes = encode(&ops);
        let mut message = Message::parse(&bytes).unwrap();
        assert_eq!((message.sender, message.seq), (0x1234, 99));
        let mut decoded = Vec::new();
        while let Some(op) = message.next() {
            decoded.push(op.unwrap());
        }
        assert_eq!(decoded, ops);
    }

    /// Every prefix of a valid message either decodes a prefix of its operations and then reports a truncation, or
    /// ends exactly on an operation boundary: never a panic, never an operation that was not sent.
    #[test]
    fn truncated_messages_are_errors_never_panics() {
        let ops = every_op();
        let bytes = encode(&ops);
        for len in 0..bytes.len() {
            let Ok(mut message) = Message::parse(&bytes[..len]) else {
                assert!(len < HEADER_LEN);
                continue;
            };
            let mut good = 0;
            while let Some(op) = message.next() {
                match op {
                    Ok(op) => {
                        assert_eq!(op, ops[good], "prefix {len}");
                        good += 1;
                    }
                    Err(error) => assert!(matches!(error, EnvelopeError::Truncated { .. }), "{error}"),
                }
            }
        }
    }

    #[test]
    fn forged_lengths_and_codes_are_refused() {
        let mut bytes = Vec::new();
        put_header(&mut bytes, 1, 1);
        bytes.push(SEND);
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&u32::MAX.to_le_bytes()); // four billion recipients in zero bytes
        let mut message = Message::parse(&bytes).unwrap();
        assert!(matches!(message.next(), Some(Err(EnvelopeError::Truncated { code: SEND, .. }))));
        assert!(message.next().is_none(), "nothing is read after an error");

        let mut bytes = Vec::new();
        put_header(&mut bytes, 1, 1);
        bytes.push(200);
        assert!(matches!(
            Message::parse(&bytes).unwrap().next(),
            Some(Err(EnvelopeError::UnknownOp { code: 200, at: HEADER_LEN }))
        ));

        let mut bytes = encode(&[]);
        bytes[0] = 2;
        assert_eq!(Message::parse(&bytes).unwrap_err(), EnvelopeError::Version(2));

        let mut bytes = Vec::new();
        put_header(&mut bytes, 1, 1);
        put_op(&mut bytes, &Op::Open { session: 1, addr: "ab" });
        let last = bytes.len() - 1;
        bytes[last] = 0xff;
        assert!(matches!(Message::parse(&bytes).unwrap().next(), Some(Err(EnvelopeError::NotUtf8 { .. }))));
    }

    #[test]
    fn long_strings_are_cut_on_a_character_boundary() {
        let long = "é".repeat(40_000); // 80,000 bytes
        let mut bytes = Vec::new();
        put_header(&mut bytes, 1, 1);
        put_op(&mut bytes, &Op::Close { session: 1, abort: false, reason: &long });
        let Some(Ok(Op::Close { reason, .. })) = Message::parse(&bytes).unwrap().next() else { panic!() };
        assert_eq!(reason.len(), 65_534);
        assert!(long.starts_with(reason));
    }
}
