use packet_runtime::{Packet, PacketOf, define_packets};

#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1000)]
pub struct CLogin {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1001)]
pub struct SLogin {
    #[prost(bool, tag = "1")]
    pub success: bool,
}

define_packets! {
    pub protocol GameProtocol {
        client_to_server ClientPacket { CLogin }
        server_to_client ServerPacket { SLogin }
    }
}

/// Stands in for the server session's `send`: it takes only server-to-client packets.
fn send_to_client<P: PacketOf<ServerPacket>>(_packet: P) {}

fn main() {
    send_to_client(SLogin { success: true });
    send_to_client(CLogin { name: "mallory".into() });
}
