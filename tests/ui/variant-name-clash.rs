use packet_runtime::define_packets;

pub mod lobby {
    #[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
    #[packet(id = 1000)]
    pub struct CChat {
        #[prost(string, tag = "1")]
        pub msg: String,
    }
}

pub mod room {
    #[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
    #[packet(id = 1001)]
    pub struct CChat {
        #[prost(string, tag = "1")]
        pub msg: String,
    }
}

#[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
#[packet(id = 1002)]
pub struct SKick {
    #[prost(string, tag = "1")]
    pub reason: String,
}

define_packets! {
    pub protocol GameProtocol {
        client_to_server ClientPacket { lobby::CChat, room::CChat }
        server_to_client ServerPacket { SKick }
    }
}

fn main() {}
