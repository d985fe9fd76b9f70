//! Helpers called by the code `#[derive(Packet)]` and `define_packets!` generate. Not a public API: names and
//! signatures change without notice.
//!
//! The macros keep their expansions small by calling these instead of inlining the logic: one place to fix a bug,
//! less code for every user crate to compile.

pub use bytes;
pub use prost;

use crate::{DecodeError, Direction, Packet, PacketInfo};

/// Computes `Protocol::FINGERPRINT` for `define_packets!` (a `const fn`, so the constant is computed at compile
/// time). The algorithm is private to the runtime; this is its only way out.
#[inline]
pub const fn fingerprint(packets: &[PacketInfo]) -> u64 {
    crate::protocol::fingerprint(packets)
}

/// The bound `#[derive(Packet)]` asserts on the deriving type (see [`assert_prost_message`]), so that deriving on a
/// plain struct reports one clear error instead of a list of unsatisfied supertraits of [`Packet`]. Its supertraits
/// are exactly what [`Packet`] needs beyond the two constants.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a prost message, so it cannot be a packet",
    label = "`#[derive(Packet)]` needs a prost message here",
    note = "derive `prost::Message` too: `#[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]`, \
            or generate the type with prost-build and add the derive through `type_attribute`"
)]
pub trait ProstMessage: prost::Message + Default + Send + Sync + 'static {}

/// Fails to compile, with [`ProstMessage`]'s message, unless `T` is a prost message.
pub const fn assert_prost_message<T: ProstMessage>() {}

// `do_not_recommend`: report the missing `ProstMessage` with the message above, not the `prost::Message` bound of
// this impl, which would say nothing about packets.
#[diagnostic::do_not_recommend]
impl<T: prost::Message + Default + 'static> ProstMessage for T {}

/// Decodes one packet's payload, naming the packet in the error.
#[inline]
pub fn decode<P: Packet>(payload: &[u8]) -> Result<P, DecodeError> {
    P::decode(payload).map_err(|source| malformed::<P>(source))
}

#[cold]
#[inline(never)]
fn malformed<P: Packet>(source: prost::DecodeError) -> DecodeError {
    DecodeError::Malformed { id: P::ID, name: P::NAME, source }
}

/// The error for an id that no packet of `direction` has.
#[cold]
#[inline(never)]
pub fn unknown_id(id: u16, direction: Direction) -> DecodeError {
    DecodeError::UnknownId { id, direction }
}

/// Encodes one packet's payload into room the caller reserved.
///
/// Bounded by `prost::Message` rather than `Packet` on purpose: when a listed type is not a `Packet`, every
/// generated use of `Packet` then fails with the same diagnostic, which the compiler prints once.
///
/// # Panics
/// If `buf` has less room than [`prost::Message::encoded_len`], which breaks the contract of
/// [`PacketSet::encode_payload`](crate::PacketSet::encode_payload).
#[inline]
pub fn encode_payload<M: prost::Message>(packet: &M, buf: &mut impl bytes::BufMut) {
    if let Err(err) = packet.encode(buf) {
        panic!("encoding {}: the caller reserved too little room: {err}", core::any::type_name::<M>());
    }
}

/// Fails const evaluation for packet id 0, which the version handshake's control frames use (`crate::handshake`).
/// `#[derive(Packet)]` emits it for an id given as a const path (a literal 0 is refused by the macro itself), and
/// `define_packets!` for every packet it lists (a hand-written `Packet` impl included).
pub const fn assert_not_reserved_id(id: u16) {
    if id == crate::handshake::CONTROL_ID {
        panic!(
            "packet id 0 is reserved for the toolkit's control frames (the version handshake, docs/PROTOCOL.md); \
             give the packet an id from 1 to 65535"
        );
    }
}

/// One packet of a protocol as the duplicate-id check sees it: its id and its type as written in `define_packets!`.
pub type IdEntry = (u16, &'static str);

/// Fails const evaluation when `entries[index]` reuses the id of an earlier entry.
///
/// `define_packets!` emits one `const _: () = assert_unique_id(..)` per packet, spanned on that packet's type, so the
/// compiler points at the later of two packets sharing an id. The check runs at compile time because ids may be
/// paths to consts the macro cannot read.
pub const fn assert_unique_id(protocol: &str, entries: &[IdEntry], index: usize) {
    let (id, ty) = entries[index];
    let mut earlier = 0;
    while earlier < index {
        if entries[earlier].0 == id {
            let mut msg = ConstMessage::new();
            msg.push_str("duplicate packet id ");
            msg.push_u16(id);
            msg.push_str(": `");
            msg.push_str(entries[earlier].1);
            msg.push_str("` and `");
            msg.push_str(ty);
            msg.push_str("` in protocol `");
            msg.push_str(protocol);
            msg.push_str("`; give every packet of a protocol its own id");
            panic!("{}", msg.as_str());
        }
        earlier += 1;
    }
}

/// A fixed-size buffer to format a panic message during const evaluation, where `format!` is unavailable.
/// Text beyond the capacity is dropped.
struct ConstMessage {
    bytes: [u8; 512],
    len: usize,
}

impl ConstMessage {
    const fn new() -> Self {
        ConstMessage { bytes: [0; 512], len: 0 }
    }

    const fn push_str(&mut self, s: &str) {
        let s = s.as_bytes();
        let mut i = 0;
        while i < s.len() && self.len < self.bytes.len() {
            self.bytes[self.len] = s[i];
            self.len += 1;
            i += 1;
        }
    }

    const fn push_u16(&mut self, mut n: u16) {
        let mut digits = [0u8; 5];
        let mut count = 0;
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while count > 0 && self.len < self.bytes.len() {
            count -= 1;
            self.bytes[self.len] = digits[count];
            self.len += 1;
        }
    }

    const fn as_str(&self) -> &str {
        let (text, _) = self.bytes.split_at(self.len);
        match core::str::from_utf8(text) {
            Ok(s) => s,
            // Only a truncated multi-byte character can land here.
            Err(err) => match core::str::from_utf8(text.split_at(err.valid_up_to()).0) {
                Ok(s) => s,
                Err(_) => "duplicate packet id",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_formats_ids_and_names() {
        let mut msg = ConstMessage::new();
        msg.push_u16(0);
        msg.push_str(" ");
        msg.push_u16(65535);
        msg.push_str(" é");
        assert_eq!(msg.as_str(), "0 65535 é");
    }

    #[test]
    fn message_truncates_on_a_char_boundary() {
        let mut msg = ConstMessage::new();
        for _ in 0..511 {
            msg.push_str("a");
        }
        msg.push_str("é");
        assert_eq!(msg.as_str().len(), 511);
    }

    #[test]
    fn unique_ids_pass() {
        assert_unique_id("P", &[(1, "A"), (2, "B"), (3, "C")], 2);
    }

    #[test]
    #[should_panic(expected = "duplicate packet id 2: `B` and `C` in protocol `P`")]
    fn duplicate_id_names_both_packets() {
        assert_unique_id("P", &[(1, "A"), (2, "B"), (2, "C")], 2);
    }
}
