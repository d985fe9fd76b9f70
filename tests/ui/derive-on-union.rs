#[derive(packet_runtime::Packet)]
#[packet(id = 1000)]
pub union Raw {
    pub int: u32,
    pub float: f32,
}

fn main() {}
