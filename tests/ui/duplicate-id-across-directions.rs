use packet_runtime::{Packet, define_packets};

pub mod ids {
    pub const C_LOGIN: u16 = 1000;
    pub const S_LOGIN: u16 = 1000;
}

#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = ids::C_LOGIN)]
pub struct CLogin {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = ids::S_LOGIN)]
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
