//! Quickstart: three packets, a protocol, a handler, and one frame's trip from encode to handler.
//!
//! Run with `cargo run -p tests --example quickstart`.

use packet_runtime::{Packet, PacketOf, PacketSet, Protocol, define_packets};

/// A client asks to log in. In a real game these structs come from `.proto` files via prost-build (see this
/// crate's `build.rs`); hand-written prost messages work the same way.
#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1000, name = "C_LOGIN")]
pub struct CLogin {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// A client sends a chat line.
#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1002, name = "C_CHAT")]
pub struct CChat {
    #[prost(string, tag = "1")]
    pub msg: String,
}

/// The server answers a login.
#[derive(Clone, PartialEq, prost::Message, Packet)]
#[packet(id = 1001, name = "S_LOGIN")]
pub struct SLogin {
    #[prost(bool, tag = "1")]
    pub success: bool,
    #[prost(uint64, tag = "2")]
    pub player_id: u64,
}

define_packets! {
    pub protocol ChatProtocol {
        client_to_server ClientPacket { CLogin, CChat }
        server_to_client ServerPacket { SLogin }
    }
}

/// Per-connection state the handler works on: the `Ctx` of `ClientPacketHandler<Ctx>`.
#[derive(Debug, Default)]
struct Session {
    player: Option<String>,
    /// What the server would send back, encoded as (id, payload) frames.
    outbox: Vec<(u16, Vec<u8>)>,
}

impl Session {
    /// Stands in for a real `send`: the bound admits only server-to-client packets, so sending a `CLogin` from
    /// here does not compile.
    fn send<P: PacketOf<ServerPacket>>(&mut self, packet: P) {
        let packet: ServerPacket = packet.into();
        let mut payload = Vec::with_capacity(packet.encoded_len());
        packet.encode_payload(&mut payload);
        self.outbox.push((packet.id(), payload));
    }
}

/// The server's handler: one method per client packet; leaving one out is a compile error.
struct ChatServer {
    next_player_id: u64,
}

impl ClientPacketHandler<Session> for ChatServer {
    fn on_c_login(&mut self, session: &mut Session, packet: CLogin) {
        println!("  on_c_login: {} logs in as player {}", packet.name, self.next_player_id);
        session.player = Some(packet.name);
        session.send(SLogin { success: true, player_id: self.next_player_id });
        self.next_player_id += 1;
    }

    fn on_c_chat(&mut self, session: &mut Session, packet: CChat) {
        let who = session.player.as_deref().unwrap_or("<anonymous>");
        println!("  on_c_chat: {who} says {:?}", packet.msg);
    }
}

fn main() {
    println!(
        "protocol {} with {} packets, fingerprint {:#018x}",
        ChatProtocol::NAME,
        ChatProtocol::PACKETS.len(),
        ChatProtocol::FINGERPRINT
    );

    // What a client would put on the wire: (packet id, protobuf payload).
    let frames: Vec<(u16, Vec<u8>)> = vec![
        (CLogin::ID, prost::Message::encode_to_vec(&CLogin { name: "alice".into() })),
        (CChat::ID, prost::Message::encode_to_vec(&CChat { msg: "hello!".into() })),
        (4242, vec![]),
        (CChat::ID, vec![0x0a, 0x09, b'x']),
    ];

    let mut server = ChatServer { next_player_id: 1 };
    let mut session = Session::default();
    for (id, payload) in &frames {
        println!("frame id {id}, {} payload bytes", payload.len());
        if let Err(err) = ClientPacket::decode_and_dispatch(*id, payload, &mut server, &mut session) {
            println!("  rejected: {err}");
        }
    }

    // The client side decodes the server's answers into the direction's enum.
    for (id, payload) in &session.outbox {
        let packet = ServerPacket::decode(*id, payload).expect("the server encodes valid frames");
        println!("client received {} (id {}): {packet:?}", packet.name(), packet.id());
    }
}
