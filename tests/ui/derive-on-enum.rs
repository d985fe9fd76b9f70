#[derive(packet_runtime::Packet)]
#[packet(id = 1000)]
pub enum Login {
    Guest,
    Named(String),
}

fn main() {}
