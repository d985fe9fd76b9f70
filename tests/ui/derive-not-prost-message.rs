#[derive(Clone, PartialEq, Debug, Default, packet_runtime::Packet)]
#[packet(id = 1000)]
pub struct CLogin {
    pub name: String,
}

fn main() {}
