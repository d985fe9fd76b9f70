//! `Protocol::FINGERPRINT` detects two builds that disagree on a packet id, and ignores declaration order.

use packet_runtime::{Packet, Protocol, define_packets};

/// Packets as a first build defines them.
mod v1 {
    #[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
    #[packet(id = 1, name = "LOGIN")]
    pub struct Login {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
    #[packet(id = 2, name = "PING")]
    pub struct Ping {
        #[prost(uint64, tag = "1")]
        pub time: u64,
    }
}

/// A second build where `PING` moved to another id.
mod v2 {
    #[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
    #[packet(id = 3, name = "PING")]
    pub struct Ping {
        #[prost(uint64, tag = "1")]
        pub time: u64,
    }
}

#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 10, name = "PONG")]
pub struct Pong {
    #[prost(uint64, tag = "1")]
    pub time: u64,
}

mod original {
    use super::*;
    define_packets! {
        pub protocol Original {
            client_to_server ClientPacket { v1::Login, v1::Ping }
            server_to_client ServerPacket { Pong }
        }
    }
}

mod reordered {
    use super::*;
    define_packets! {
        pub protocol Reordered {
            client_to_server ClientPacket { v1::Ping, v1::Login }
            server_to_client ServerPacket { Pong }
        }
    }
}

mod renumbered {
    use super::*;
    define_packets! {
        pub protocol Renumbered {
            client_to_server ClientPacket { v1::Login, v2::Ping }
            server_to_client ServerPacket { Pong }
        }
    }
}

mod turned {
    use super::*;
    define_packets! {
        pub protocol Turned {
            client_to_server ClientPacket { v1::Login }
            server_to_client ServerPacket { Pong, v1::Ping }
        }
    }
}

#[test]
fn fingerprint_ignores_declaration_order() {
    assert_eq!(original::Original::FINGERPRINT, reordered::Reordered::FINGERPRINT);
}

#[test]
fn fingerprint_changes_when_an_id_changes() {
    assert_ne!(original::Original::FINGERPRINT, renumbered::Renumbered::FINGERPRINT);
}

#[test]
fn fingerprint_changes_when_a_packet_changes_direction() {
    assert_ne!(original::Original::FINGERPRINT, turned::Turned::FINGERPRINT);
}

#[test]
fn fingerprint_is_a_compile_time_constant() {
    const FINGERPRINT: u64 = original::Original::FINGERPRINT;
    assert_eq!(FINGERPRINT, packet_runtime::__private::fingerprint(original::Original::PACKETS));
}
