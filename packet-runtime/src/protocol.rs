//! Protocols: the packets a client and a server exchange, one set per direction.
//!
//! `define_packets!` generates, for every protocol, a marker type implementing [`Protocol`] and one enum per
//! direction implementing [`PacketSet`]. Each listed packet implements [`PacketOf`] for its direction's enum, which is
//! the bound every sending API takes: a server can only send `PacketOf<P::ServerToClient>`, so sending a
//! client-to-server packet from the server side does not compile.

use core::fmt;

use crate::Packet;

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by clients, received by the server.
    ClientToServer,
    /// Sent by the server, received by clients.
    ServerToClient,
}

impl Direction {
    /// `"client_to_server"` or `"server_to_client"`, the keywords used in `define_packets!`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client_to_server",
            Direction::ServerToClient => "server_to_client",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of a protocol's packet table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketInfo {
    /// The wire id.
    pub id: u16,
    /// The packet's [`Packet::NAME`].
    pub name: &'static str,
    /// Which way it travels.
    pub direction: Direction,
}

/// A protocol: two packet sets tied together so that each side can only send its own direction.
pub trait Protocol: Sized + Send + Sync + 'static {
    /// Packets clients send to the server.
    type ClientToServer: PacketSet<Protocol = Self>;
    /// Packets the server sends to clients.
    type ServerToClient: PacketSet<Protocol = Self>;
    /// The protocol's name as written in `define_packets!`.
    const NAME: &'static str;
    /// Every packet of both directions, client-to-server first, in declaration order.
    const PACKETS: &'static [PacketInfo];
    /// A hash of every packet's (id, name, direction), independent of declaration order (FNV-1a per packet,
    /// finalised with SplitMix64, summed). Two programs built from the same protocol have the same fingerprint;
    /// exchange it at connect time to detect a mismatched build.
    const FINGERPRINT: u64;
}

/// The packets of one direction of a protocol, as an enum with one variant per packet.
pub trait PacketSet: Sized + Send + fmt::Debug + 'static {
    /// The protocol this set belongs to.
    type Protocol: Protocol;
    /// The direction of every packet in the set.
    const DIRECTION: Direction;
    /// The packets of this set, in declaration order.
    const PACKETS: &'static [PacketInfo];

    /// Decodes the payload of a frame with packet id `id`. Never panics: an id outside the set is
    /// [`DecodeError::UnknownId`], a payload prost rejects is [`DecodeError::Malformed`].
    fn decode(id: u16, payload: &[u8]) -> Result<Self, DecodeError>;
    /// The wire id of the packet held.
    fn id(&self) -> u16;
    /// The [`Packet::NAME`] of the packet held.
    fn name(&self) -> &'static str;
    /// Whether `id` belongs to this set.
    fn contains(id: u16) -> bool;
    /// The encoded length of the packet's protobuf payload (header excluded).
    fn encoded_len(&self) -> usize;
    /// Encodes the packet's protobuf payload (header excluded) into `buf`.
    ///
    /// The caller provides at least [`encoded_len`](Self::encoded_len) bytes of room; prost's encoding is then
    /// infallible.
    fn encode_payload(&self, buf: &mut impl bytes::BufMut);
}

/// Marks `Self` as a packet of the set `S`. Every API that sends takes this bound, which is how the direction of a
/// packet is checked at compile time.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a packet of `{S}`",
    label = "`{Self}` cannot be sent here: it is not listed in `{S}`",
    note = "a server sends only its protocol's `server_to_client` packets and a client only its `client_to_server` \
            ones; list the packet in the right direction of `define_packets!`"
)]
pub trait PacketOf<S: PacketSet>: Packet + Into<S> {}

/// A frame's payload could not be turned into a packet. Nothing about it panics; the frame is rejected whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No packet of the expected direction has this id.
    #[error("unknown packet id {id} for {direction}")]
    UnknownId {
        /// The id read from the frame header.
        id: u16,
        /// The direction the frame was decoded as.
        direction: Direction,
    },
    /// The id is known but prost rejected the payload.
    #[error("malformed payload for {name} (id {id}): {source}")]
    Malformed {
        /// The packet id.
        id: u16,
        /// The packet's [`Packet::NAME`].
        name: &'static str,
        /// prost's reason.
        #[source]
        source: prost::DecodeError,
    },
}

impl DecodeError {
    /// The packet id of the rejected frame.
    pub fn id(&self) -> u16 {
        match self {
            DecodeError::UnknownId { id, .. } | DecodeError::Malformed { id, .. } => *id,
        }
    }
}

/// Computes [`Protocol::FINGERPRINT`]: every packet's (id, name, direction) hashed with FNV-1a, finalised with a
/// SplitMix64 step, and summed so that declaration order does not matter. Not public: the generated code reaches it
/// through `__private`, and users read the constant.
pub(crate) const fn fingerprint(packets: &[PacketInfo]) -> u64 {
    let mut acc: u64 = 0;
    let mut i = 0;
    while i < packets.len() {
        let p = &packets[i];
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        h = fnv_bytes(h, &p.id.to_le_bytes());
        h = fnv_bytes(h, p.name.as_bytes());
        h = fnv_bytes(h, &[0, p.direction as u8]);
        acc = acc.wrapping_add(splitmix64(h));
        i += 1;
    }
    splitmix64(acc ^ packets.len() as u64)
}

const fn fnv_bytes(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

const fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: PacketInfo = PacketInfo { id: 1, name: "A", direction: Direction::ClientToServer };
    const B: PacketInfo = PacketInfo { id: 2, name: "B", direction: Direction::ServerToClient };

    #[test]
    fn fingerprint_ignores_order_but_not_content() {
        assert_eq!(fingerprint(&[A, B]), fingerprint(&[B, A]));
        let renamed = PacketInfo { name: "A2", ..A };
        let renumbered = PacketInfo { id: 3, ..A };
        let turned = PacketInfo { direction: Direction::ServerToClient, ..A };
        for changed in [renamed, renumbered, turned] {
            assert_ne!(fingerprint(&[A, B]), fingerprint(&[changed, B]), "{changed:?}");
        }
        assert_ne!(fingerprint(&[A]), fingerprint(&[A, B]));
    }
}
