//! Decoding untrusted frames: every failure is an error value naming the packet, never a panic.

use packet_runtime::{DecodeError, Direction, Packet};
use tests::game::{ClientPacket, ClientPacketHandler, ServerPacket};
use tests::proto::*;

/// Counts handler calls; any call after a decode error would be a bug.
#[derive(Debug, Default)]
struct Counting(u32);

impl ClientPacketHandler for Counting {
    fn on_c_login(&mut self, _: &mut (), _: CLogin) {
        self.0 += 1;
    }
    fn on_c_enter_room(&mut self, _: &mut (), _: CEnterRoom) {
        self.0 += 1;
    }
    fn on_c_move(&mut self, _: &mut (), _: CMove) {
        self.0 += 1;
    }
    fn on_c_chat(&mut self, _: &mut (), _: CChat) {
        self.0 += 1;
    }
    fn on_c_ping(&mut self, _: &mut (), _: CPing) {
        self.0 += 1;
    }
    fn on_c_echo(&mut self, _: &mut (), _: CEcho) {
        self.0 += 1;
    }
}

#[test]
fn unknown_id_names_the_id_and_direction() {
    let err = ClientPacket::decode(4242, &[]).unwrap_err();
    assert_eq!(err, DecodeError::UnknownId { id: 4242, direction: Direction::ClientToServer });
    assert_eq!(err.id(), 4242);
    assert_eq!(err.to_string(), "unknown packet id 4242 for client_to_server");

    let mut handler = Counting::default();
    let err = ClientPacket::decode_and_dispatch(4242, &[], &mut handler, &mut ()).unwrap_err();
    assert!(matches!(err, DecodeError::UnknownId { id: 4242, .. }));
    assert_eq!(handler.0, 0);
}

#[test]
fn malformed_payload_names_the_packet_and_keeps_prosts_error() {
    // Field 1 (string) declares 5 bytes but only 2 follow.
    let truncated = [0x0a, 0x05, b'a', b'b'];
    let err = ClientPacket::decode(CLogin::ID, &truncated).unwrap_err();
    let DecodeError::Malformed { id, name, source } = &err else { panic!("expected Malformed, got {err:?}") };
    assert_eq!((*id, *name), (1000, "C_LOGIN"));
    assert_eq!(source, &<CLogin as prost::Message>::decode(&truncated[..]).unwrap_err());
    assert!(err.to_string().starts_with("malformed payload for C_LOGIN (id 1000): "), "{err}");
    assert!(std::error::Error::source(&err).is_some());

    let mut handler = Counting::default();
    let err = ClientPacket::decode_and_dispatch(CLogin::ID, &truncated, &mut handler, &mut ()).unwrap_err();
    assert!(matches!(err, DecodeError::Malformed { name: "C_LOGIN", .. }));
    assert_eq!(handler.0, 0);
}

#[test]
fn invalid_utf8_in_a_string_is_malformed() {
    let err = ServerPacket::decode(SKick::ID, &[0x0a, 0x02, 0xff, 0xfe]).unwrap_err();
    assert!(matches!(err, DecodeError::Malformed { id: 1014, name: "S_KICK", .. }), "{err:?}");
}

#[test]
fn empty_payload_decodes_to_the_default_message() {
    // prost's rule, kept on purpose: handlers validate content, the decoder only the encoding.
    assert_eq!(ClientPacket::decode(CMove::ID, &[]).unwrap(), ClientPacket::CMove(CMove::default()));
}

/// xorshift64*: deterministic, so a failure reproduces.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn arbitrary_bytes_never_panic() {
    let ids: Vec<u16> = [0, 999, 1015, u16::MAX].into_iter().chain(1000..=1014).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let (mut decoded, mut rejected) = (0u32, 0u32);
    let mut handler = Counting::default();
    for round in 0..20_000 {
        let len = (next(&mut state) % 64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next(&mut state) as u8).collect();
        // Every few rounds, start from a valid encoding and corrupt one byte, to reach deeper into prost.
        if round % 4 == 0 {
            bytes = prost::Message::encode_to_vec(&SEnterRoom {
                success: true,
                players: vec![PlayerInfo { player_id: round, name: "x".repeat(round as usize % 9), pos: None }],
                ..SEnterRoom::default()
            });
            let at = next(&mut state) as usize % bytes.len();
            bytes[at] = next(&mut state) as u8;
        }
        let id = ids[next(&mut state) as usize % ids.len()];
        let client = ClientPacket::decode(id, &bytes);
        let server = ServerPacket::decode(id, &bytes);
        let dispatched = ClientPacket::decode_and_dispatch(id, &bytes, &mut handler, &mut ());
        assert_eq!(client.is_ok(), dispatched.is_ok(), "id {id}, bytes {bytes:02x?}");
        for result in [client.map(|p| p.id()), server.map(|p| p.id())] {
            match result {
                Ok(decoded_id) => {
                    assert_eq!(decoded_id, id);
                    decoded += 1;
                }
                Err(err) => {
                    assert_eq!(err.id(), id);
                    rejected += 1;
                }
            }
        }
    }
    // Both outcomes must actually occur, or the loop tested nothing.
    assert!(decoded > 1_000 && rejected > 1_000, "decoded {decoded}, rejected {rejected}");
}
