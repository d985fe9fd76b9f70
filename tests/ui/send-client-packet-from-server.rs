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

define_packets! {
    pub protocol GameProtocol {
        client_to_server ClientPacket { CLogin }
        server_to_client ServerPacket { SLogin }
    }
}

/// Server-side code sends through its session, which takes only server-to-client packets.
fn on_login(session: &Session<GameProtocol>) {
    let _ = session.send(&SLogin { success: true });
    let _ = session.send(&CLogin { name: "mallory".into() });
}

fn main() {}
