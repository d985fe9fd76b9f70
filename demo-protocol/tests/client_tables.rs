//! The packet tables committed for the TypeScript, C# and C++ clients (`clients/`) are what the build helper makes
//! from `game.proto` now, and their fingerprint is `GameProtocol::FINGERPRINT`, which the server prints and a
//! cluster checks. Regenerate with `clients/build-tables.sh`.

use demo_protocol::GameProtocol;
use packet_runtime::{Direction, Protocol};

fn table() -> packet_build::ClientTable {
    let dir = env!("CARGO_MANIFEST_DIR");
    packet_build::ProtoPackets::new(format!("{dir}/proto/game.proto"))
        .include(format!("{dir}/proto"))
        .protocol("GameProtocol")
        .rerun_if_changed(false)
        .client_table()
        .expect("the .proto reads")
}

#[test]
fn the_table_from_the_proto_has_the_protocols_fingerprint_and_packets() {
    let table = table();
    assert_eq!(table.fingerprint(), GameProtocol::FINGERPRINT);
    let from_protocol = packet_build::ClientTable::from_entries(
        "GameProtocol",
        "game",
        GameProtocol::PACKETS.iter().map(|p| {
            let direction = match p.direction {
                Direction::ClientToServer => packet_build::Direction::ClientToServer,
                Direction::ServerToClient => packet_build::Direction::ServerToClient,
            };
            (p.id, p.name.to_owned(), direction)
        }),
    );
    assert_eq!(from_protocol.fingerprint(), GameProtocol::FINGERPRINT, "from define_packets!'s PACKETS too");
    assert_eq!(from_protocol.packets.len(), table.packets.len());
}

#[test]
fn the_committed_client_tables_are_current() {
    let table = table();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for (file, now) in [
        ("clients/typescript/src/gen/packets.ts", table.typescript("./game_pb.js")),
        ("clients/csharp/GamePackets.cs", table.csharp(None)),
        ("clients/cpp/game_packets.hpp", table.cpp(None)),
    ] {
        let committed = std::fs::read_to_string(format!("{root}/{file}")).unwrap_or_default();
        assert!(committed == now, "{file} is stale: run clients/build-tables.sh");
    }
}
