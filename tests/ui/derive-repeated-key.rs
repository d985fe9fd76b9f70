#[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
#[packet(id = 1000)]
#[packet(id = 1001)]
pub struct CLogin {
    #[prost(string, tag = "1")]
    pub name: String,
}

fn main() {}
