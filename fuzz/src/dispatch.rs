//! The decode/dispatch oracle for the demo protocol, shared by the `decode_dispatch` fuzz target and
//! `tests/tests/properties.rs` (included there with `#[path]`).
//!
//! For any `(id, payload)`, in both directions: `decode` never panics; it fails with `UnknownId` exactly for ids
//! outside the set; `decode_and_dispatch` agrees with `decode` (same error, or exactly one handler call with the same
//! packet); and a packet that decoded re-encodes to bytes that decode to an equal packet.
//!
//! Equality is checked on the encoding (bit-exact, so a NaN coordinate compares equal to itself) and on the `Debug`
//! form (the value as a person reads it); prost's derived `PartialEq` would call a NaN unequal to itself.

use packet_runtime::{DecodeError, PacketSet};
use tests::game::{ClientPacket, ClientPacketHandler, ServerPacket, ServerPacketHandler};
use tests::proto;

/// Records every handler call.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) client: Vec<ClientPacket>,
    pub(crate) server: Vec<ServerPacket>,
}

impl ClientPacketHandler for Recorder {
    fn on_c_login(&mut self, _: &mut (), packet: proto::CLogin) {
        self.client.push(packet.into());
    }
    fn on_c_enter_room(&mut self, _: &mut (), packet: proto::CEnterRoom) {
        self.client.push(packet.into());
    }
    fn on_c_move(&mut self, _: &mut (), packet: proto::CMove) {
        self.client.push(packet.into());
    }
    fn on_c_chat(&mut self, _: &mut (), packet: proto::CChat) {
        self.client.push(packet.into());
    }
    fn on_c_ping(&mut self, _: &mut (), packet: proto::CPing) {
        self.client.push(packet.into());
    }
    fn on_c_echo(&mut self, _: &mut (), packet: proto::CEcho) {
        self.client.push(packet.into());
    }
}

impl ServerPacketHandler for Recorder {
    fn on_s_login(&mut self, _: &mut (), packet: proto::SLogin) {
        self.server.push(packet.into());
    }
    fn on_s_enter_room(&mut self, _: &mut (), packet: proto::SEnterRoom) {
        self.server.push(packet.into());
    }
    fn on_s_spawn(&mut self, _: &mut (), packet: proto::SSpawn) {
        self.server.push(packet.into());
    }
    fn on_s_despawn(&mut self, _: &mut (), packet: proto::SDespawn) {
        self.server.push(packet.into());
    }
    fn on_s_move(&mut self, _: &mut (), packet: proto::SMove) {
        self.server.push(packet.into());
    }
    fn on_s_chat(&mut self, _: &mut (), packet: proto::SChat) {
        self.server.push(packet.into());
    }
    fn on_s_pong(&mut self, _: &mut (), packet: proto::SPong) {
        self.server.push(packet.into());
    }
    fn on_s_echo(&mut self, _: &mut (), packet: proto::SEcho) {
        self.server.push(packet.into());
    }
    fn on_s_kick(&mut self, _: &mut (), packet: proto::SKick) {
        self.server.push(packet.into());
    }
}

/// The packet's protobuf payload, checked against its `encoded_len`.
pub(crate) fn payload<S: PacketSet>(packet: &S) -> Vec<u8> {
    let mut buf = Vec::with_capacity(packet.encoded_len());
    packet.encode_payload(&mut buf);
    assert_eq!(buf.len(), packet.encoded_len(), "encoded_len is exact for {}", packet.name());
    buf
}

/// Whether two packets are the same value: same id, bit-identical encoding, same `Debug` form.
pub(crate) fn same<S: PacketSet>(a: &S, b: &S) -> bool {
    a.id() == b.id() && payload(a) == payload(b) && format!("{a:?}") == format!("{b:?}")
}

/// `decode`, then `encode`, then `decode` again: the second value equals the first.
pub(crate) fn check_reencode<S: PacketSet>(id: u16, packet: &S) {
    assert_eq!(packet.id(), id, "a decoded packet carries the id it was decoded from");
    assert!(S::contains(id));
    let bytes = payload(packet);
    let again = S::decode(id, &bytes).unwrap_or_else(|e| panic!("re-encoded {} does not decode: {e}", packet.name()));
    assert!(same(packet, &again), "round trip changed the value: {packet:?} -> {again:?}");
}

fn check_outcome<S: PacketSet>(
    id: u16,
    decoded: &Result<S, DecodeError>,
    dispatched: Result<(), DecodeError>,
    got: &[S],
) {
    match (decoded, dispatched) {
        (Ok(packet), Ok(())) => {
            assert_eq!(got.len(), 1, "exactly one handler call");
            assert!(same(packet, &got[0]), "dispatch saw {:?}, decode gave {packet:?}", got[0]);
            check_reencode(id, packet);
        }
        (Err(e), Err(d)) => {
            assert_eq!(*e, d, "decode and decode_and_dispatch fail alike");
            assert!(got.is_empty(), "no handler call on error");
            assert_eq!(e.id(), id);
            let unknown = matches!(e, DecodeError::UnknownId { .. });
            assert_eq!(unknown, !S::contains(id), "UnknownId exactly for ids outside the set: {e}");
        }
        (decoded, dispatched) => panic!("decode = {decoded:?} but decode_and_dispatch = {dispatched:?}"),
    }
}

/// Checks one `(id, payload)` in both directions.
pub(crate) fn check_decode(id: u16, bytes: &[u8]) {
    let mut recorder = Recorder::default();

    let decoded = ClientPacket::decode(id, bytes);
    let dispatched = ClientPacket::decode_and_dispatch(id, bytes, &mut recorder, &mut ());
    check_outcome(id, &decoded, dispatched, &recorder.client);

    let decoded = ServerPacket::decode(id, bytes);
    let dispatched = ServerPacket::decode_and_dispatch(id, bytes, &mut recorder, &mut ());
    check_outcome(id, &decoded, dispatched, &recorder.server);

    // No id belongs to both directions.
    assert!(!(ClientPacket::contains(id) && ServerPacket::contains(id)), "id {id} in both directions");
}
