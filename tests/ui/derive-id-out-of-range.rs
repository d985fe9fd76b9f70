#[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
#[packet(id = 70000)]
pub struct CLogin {
    #[prost(string, tag = "1")]
    pub name: String,
}

fn main() {}
