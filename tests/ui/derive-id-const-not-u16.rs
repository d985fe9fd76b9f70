pub const C_LOGIN_ID: u32 = 1000;

#[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
#[packet(id = C_LOGIN_ID)]
pub struct CLogin {
    #[prost(string, tag = "1")]
    pub name: String,
}

fn main() {}
