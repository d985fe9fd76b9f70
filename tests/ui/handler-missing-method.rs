use packet_runtime::{Packet, define_packets};

#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1000)]
pub struct CLogin {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1001)]
pub struct CChat {
    #[prost(string, tag = "1")]
    pub msg: String,
}

#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1002)]
pub struct SKick {
    #[prost(string, tag = "1")]
    pub reason: String,
}

define_packets! {
    pub protocol GameProtocol {
        client_to_server ClientPacket { CLogin, CChat }
        server_to_client ServerPacket { SKick }
    }
}

struct Server;

// `CChat` was added to the protocol but not handled here.
impl ClientPacketHandler for Server {
    fn on_c_login(&mut self, _ctx: &mut (), _packet: CLogin) {}
}

fn main() {}
