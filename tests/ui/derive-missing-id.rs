#[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
#[packet(name = "C_LOGIN")]
pub struct CLogin {
    #[prost(string, tag = "1")]
    pub name: String,
}

fn main() {}
