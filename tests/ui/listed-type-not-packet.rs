use packet_runtime::{Packet, define_packets};

#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1000)]
pub struct CLogin {
    #[prost(string, tag = "1")]
    pub name: String,
}

// A prost message that was never given `#[derive(Packet)]`.
#[derive(Clone, PartialEq, prost::Message)]
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

fn main() {}
