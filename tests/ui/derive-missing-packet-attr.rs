#[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
pub struct CLogin {
    #[prost(string, tag = "1")]
    pub name: String,
}

fn main() {}
