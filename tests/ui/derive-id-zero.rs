// Packet id 0 is the version handshake's (control frames without protobuf): no packet may take it.
#[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
#[packet(id = 0)]
pub struct CHello {
    #[prost(string, tag = "1")]
    pub name: String,
}

fn main() {}
