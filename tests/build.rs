//! Compiles `proto/game.proto` with protox (a pure-Rust protobuf compiler, no `protoc` needed) and prost-build, and
//! turns its messages into packets by adding `#[derive(Packet)]` through `type_attribute`: the path a real game takes
//! when its packets are defined in `.proto` files shared with a C++ or C# client.

use std::error::Error;

/// Every packet message of `game.proto` with its wire id. `PosInfo` and `PlayerInfo` are plain messages.
const PACKETS: &[(&str, u16)] = &[
    ("C_LOGIN", 1000),
    ("S_LOGIN", 1001),
    ("C_ENTER_ROOM", 1002),
    ("S_ENTER_ROOM", 1003),
    ("S_SPAWN", 1004),
    ("S_DESPAWN", 1005),
    ("C_MOVE", 1006),
    ("S_MOVE", 1007),
    ("C_CHAT", 1008),
    ("S_CHAT", 1009),
    ("C_PING", 1010),
    ("S_PONG", 1011),
    ("C_ECHO", 1012),
    ("S_ECHO", 1013),
    ("S_KICK", 1014),
];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["game.proto"], ["proto"])?;
    let mut config = prost_build::Config::new();
    for (message, id) in PACKETS {
        // The proto name becomes `Packet::NAME`, so logs show the name the other side of the wire uses.
        config.type_attribute(
            format!(".game.{message}"),
            format!("#[derive(::packet_runtime::Packet)] #[packet(id = {id}, name = \"{message}\")]"),
        );
    }
    config.compile_fds(descriptors)?;
    Ok(())
}
