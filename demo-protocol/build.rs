//! Compiles `proto/game.proto` into the prost messages (`OUT_DIR/game.rs`) and the `define_packets!` invocation of
//! `GameProtocol` (`OUT_DIR/game_packets.rs`). The .proto is the only place packets and their ids are written down.

fn main() {
    let compiled =
        packet_build::ProtoPackets::new("proto/game.proto").include("proto").protocol("GameProtocol").compile();
    if let Err(error) = compiled {
        // Display, not Debug: the message lists every problem of the packet table, one per line.
        panic!("{error}");
    }
}
