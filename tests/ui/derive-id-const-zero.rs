// A const path the macro cannot read is checked by the compiler: 0 is still refused.
pub mod ids {
    pub const C_HELLO: u16 = 0;
}

#[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
#[packet(id = ids::C_HELLO)]
pub struct CHello {
    #[prost(string, tag = "1")]
    pub name: String,
}

fn main() {}
