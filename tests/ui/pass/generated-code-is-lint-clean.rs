//! Uses every item `#[derive(Packet)]` and `define_packets!` generate under strict lints: the expansion must not
//! make a user's `#![deny(..)]` fail.
#![deny(
    warnings,
    unused_qualifications,
    missing_docs,
    missing_debug_implementations,
    unused_results,
    trivial_casts,
    trivial_numeric_casts,
    unused_import_braces,
    unused_lifetimes,
    single_use_lifetimes,
    unsafe_code,
    rust_2018_idioms
)]

use packet_runtime::{DecodeError, Direction, Packet, PacketOf, PacketSet, Protocol, define_packets};
use prost::Message;

/// Ids as consts, the other accepted form.
pub mod ids {
    /// `Ping`'s id.
    pub const PING: u16 = 3;
}

/// Logs in.
#[derive(Clone, PartialEq, Message, Packet)]
#[packet(id = 1, name = "C_LOGIN")]
pub struct CLogin {
    /// Player name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// Login result.
#[derive(Clone, PartialEq, Message, Packet)]
#[packet(id = 2u16)]
pub struct SLogin {
    /// Whether it worked.
    #[prost(bool, tag = "1")]
    pub success: bool,
}

/// Ping.
#[derive(Clone, PartialEq, Message, Packet)]
#[packet(id = ids::PING)]
pub struct Ping {
    /// Client clock.
    #[prost(uint64, tag = "1")]
    pub time: u64,
}

define_packets! {
    /// The protocol.
    pub protocol Game {
        /// Client packets.
        client_to_server ClientPacket { CLogin, Ping, }
        server_to_client ServerPacket { SLogin }
    }
}

/// Counts handled packets.
#[derive(Debug, Default)]
pub struct Counter {
    handled: u32,
}

impl ClientPacketHandler<Vec<String>> for Counter {
    fn on_c_login(&mut self, log: &mut Vec<String>, packet: CLogin) {
        self.handled += 1;
        log.push(packet.name);
    }

    fn on_ping(&mut self, log: &mut Vec<String>, packet: Ping) {
        self.handled += 1;
        log.push(packet.time.to_string());
    }
}

impl ServerPacketHandler for Counter {
    fn on_s_login(&mut self, _ctx: &mut (), packet: SLogin) {
        self.handled += u32::from(packet.success);
    }
}

fn sendable<S: PacketSet, P: PacketOf<S>>(packet: P) -> S {
    packet.into()
}

fn main() -> Result<(), DecodeError> {
    assert_eq!(<Game as Protocol>::NAME, "Game");
    assert_eq!(<Game as Protocol>::PACKETS.len(), 3);
    assert_ne!(<Game as Protocol>::FINGERPRINT, 0);
    assert_eq!(<ClientPacket as PacketSet>::DIRECTION, Direction::ClientToServer);
    assert_eq!(<<Game as Protocol>::ServerToClient as PacketSet>::PACKETS[0].name, "SLogin");
    assert_eq!(CLogin::NAME, "C_LOGIN");

    let login = CLogin { name: "ann".into() };
    let packet: ClientPacket = sendable(login.clone());
    assert_eq!((packet.id(), packet.name()), (1, "C_LOGIN"));
    assert!(<ClientPacket as PacketSet>::contains(ids::PING));
    let mut payload = Vec::with_capacity(PacketSet::encoded_len(&packet));
    packet.encode_payload(&mut payload);
    assert_eq!(ClientPacket::decode(1, &payload)?, ClientPacket::from(login));
    assert_eq!(<ClientPacket as PacketSet>::decode(1, &payload)?.id(), 1);

    let (mut counter, mut log) = (Counter::default(), Vec::new());
    ClientPacket::decode(1, &payload)?.dispatch(&mut counter, &mut log);
    ClientPacket::decode_and_dispatch(ids::PING, &Ping { time: 7 }.encode_to_vec(), &mut counter, &mut log)?;
    ServerPacket::decode_and_dispatch(2, &SLogin { success: true }.encode_to_vec(), &mut counter, &mut ())?;
    ServerPacket::SLogin(SLogin::default()).dispatch(&mut counter, &mut ());
    assert_eq!((counter.handled, log), (3, vec!["ann".to_owned(), "7".to_owned()]));
    Ok(())
}
