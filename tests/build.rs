//! Compiles the demo's `game.proto` (the one copy, in `demo-protocol/proto/`) with protox (a pure-Rust protobuf
//! compiler, no `protoc` needed) and plain prost-build, and turns its messages into packets by adding
//! `#[derive(Packet)]` through `type_attribute`: the path a real game takes when its packets are defined in `.proto`
//! files shared with a C++ or C# client and it does not use `packet-build`. The ids come from the file's own
//! `enum PacketId`, never from a second table written here.

use std::error::Error;

const PROTO_DIR: &str = "../demo-protocol/proto";
const ID_ENUM: &str = "PacketId";
const VALUE_PREFIX: &str = "PACKET_ID_";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    let descriptors = protox::compile(["game.proto"], [PROTO_DIR])?;
    let mut config = prost_build::Config::new();
    let mut packets = 0;
    for file in &descriptors.file {
        let package = file.package();
        for id_enum in file.enum_type.iter().filter(|e| e.name() == ID_ENUM) {
            for value in &id_enum.value {
                let Some(message) = value.name().strip_prefix(VALUE_PREFIX) else { continue };
                if value.number() == 0 {
                    continue; // proto3's required zero value (`PACKET_ID_UNSPECIFIED`) names no packet
                }
                let id = u16::try_from(value.number())?;
                // The proto name becomes `Packet::NAME`, so logs show the name the other side of the wire uses.
                config.type_attribute(
                    format!(".{package}.{message}"),
                    format!("#[derive(::packet_runtime::Packet)] #[packet(id = {id}, name = \"{message}\")]"),
                );
                packets += 1;
            }
        }
    }
    if packets == 0 {
        return Err(format!("no `enum {ID_ENUM}` with `{VALUE_PREFIX}*` values in {PROTO_DIR}/game.proto").into());
    }
    config.compile_fds(descriptors)?;
    Ok(())
}
