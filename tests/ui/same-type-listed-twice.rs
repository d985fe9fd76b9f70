use packet_runtime::{Packet, define_packets};

#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1000)]
pub struct CChat {
    #[prost(string, tag = "1")]
    pub msg: String,
}

#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1001)]
pub struct SChat {
    #[prost(string, tag = "1")]
    pub msg: String,
}

define_packets! {
    pub protocol GameProtocol {
        client_to_server ClientPacket { CChat }
        server_to_client ServerPacket { SChat, CChat }
    }
}

fn main() {}
