use packet_runtime::{Client, Packet, define_packets};

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

/// Client-side code sends through the typed client, which takes only client-to-server packets (`queue` is the
/// synchronous half of `send`; both have the same bound).
fn login(client: &mut Client<GameProtocol>) {
    let _ = client.queue(&CLogin { name: "alice".into() });
    let _ = client.queue(&SLogin { success: true });
}

fn main() {}
