use packet_runtime::{Packet, Session, define_packets};

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

// A packet of some other protocol.
#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 2000)]
pub struct SAuctionList {
    #[prost(uint32, tag = "1")]
    pub count: u32,
}

define_packets! {
    pub protocol GameProtocol {
        client_to_server ClientPacket { CLogin }
        server_to_client ServerPacket { SLogin }
    }
}

/// Server-side code sends through its session, which takes only packets listed in the protocol.
fn on_login(session: &Session<GameProtocol>) {
    let _ = session.send(&SAuctionList { count: 3 });
}

fn main() {}
