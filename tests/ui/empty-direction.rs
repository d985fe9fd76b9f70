use packet_runtime::{Packet, define_packets};

#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1000)]
pub struct CLogin {
    #[prost(string, tag = "1")]
    pub name: String,
}

define_packets! {
    pub protocol GameProtocol {
        client_to_server ClientPacket { CLogin }
        server_to_client ServerPacket {}
    }
}

fn main() {}
