//! The whole build through the public API: a `.proto` in a temporary directory, compiled, and the generated files
//! or the reported problems checked. (The naming rules are tested against prost-build in `names.rs`; the exact
//! output against golden files in `tests/golden.rs`.)

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{BuildError, CompiledPackets, Direction, Problem, ProtoPackets};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("packet-build-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("out")).unwrap();
        TempDir(dir)
    }

    /// Writes `game.proto` and returns a builder for it with output into `out/`.
    fn proto(&self, source: &str) -> ProtoPackets {
        fs::write(self.0.join("game.proto"), source).unwrap();
        ProtoPackets::new(self.0.join("game.proto")).out_dir(self.0.join("out")).rerun_if_changed(false)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const HEADER: &str = "syntax = \"proto3\";\npackage game;\n";

fn problems(result: Result<CompiledPackets, BuildError>) -> Vec<Problem> {
    match result {
        Err(BuildError::Packets { problems, .. }) => problems,
        other => panic!("expected packet-table problems, got {other:?}"),
    }
}

#[test]
fn generates_the_protocol_and_the_packet_derives() {
    let dir = TempDir::new();
    let source = format!(
        "{HEADER}
        enum PacketId {{
          PACKET_ID_UNSPECIFIED = 0;
          PACKET_ID_C_LOGIN = 1000;
          PACKET_ID_S_LOGIN = 1001;
          PACKET_ID_S_KICK = 65535;
        }}
        message PosInfo {{ float x = 1; }}
        message C_LOGIN {{ string name = 1; PosInfo pos = 2; }}
        message S_LOGIN {{ bool success = 1; }}
        message S_KICK {{ }}"
    );
    let compiled = dir.proto(&source).protocol("GameProtocol").compile().expect("compiles");
    assert_eq!(compiled.protocol, "GameProtocol");
    let table: Vec<_> =
        compiled.packets.iter().map(|p| (p.id, p.proto_name.as_str(), p.rust_name.as_str(), p.direction)).collect();
    assert_eq!(
        table,
        [
            (1000, "C_LOGIN", "CLogin", Direction::ClientToServer),
            (1001, "S_LOGIN", "SLogin", Direction::ServerToClient),
            (65535, "S_KICK", "SKick", Direction::ServerToClient),
        ]
    );

    let packets = fs::read_to_string(&compiled.packets_file).unwrap();
    assert!(compiled.packets_file.ends_with("game_packets.rs"));
    assert!(packets.contains("::packet_runtime::define_packets! {"), "{packets}");
    assert!(packets.contains("pub protocol GameProtocol {"), "{packets}");
    let client = packets.find("client_to_server ClientPacket {").expect("client set");
    let server = packets.find("server_to_client ServerPacket {").expect("server set");
    let login = packets.find("crate::proto::CLogin,").expect("C_LOGIN listed");
    assert!(client < login && login < server, "C_LOGIN in the client set:\n{packets}");
    assert!(packets[server..].contains("crate::proto::SLogin,"));
    assert!(packets[server..].contains("crate::proto::SKick,"));
    assert!(!packets.contains("PosInfo"), "plain messages are not packets");

    let messages = fs::read_to_string(&compiled.messages_file).unwrap();
    assert!(compiled.messages_file.ends_with("game.rs"));
    assert!(
        messages.contains("#[derive(::packet_runtime::Packet)]")
            && messages.contains("#[packet(id = 1000, name = \"C_LOGIN\")]"),
        "{messages}"
    );
    assert!(messages.contains("::packet_runtime::prost::Message"), "prost through the runtime:\n{messages}");
    let pos_info = messages.find("pub struct PosInfo").unwrap();
    let before_pos_info = &messages[messages[..pos_info].rfind("#[derive(Clone").unwrap()..pos_info];
    assert!(!before_pos_info.contains("packet_runtime::Packet"), "PosInfo is a plain message");
}

#[test]
fn custom_enum_prefixes_sets_and_paths() {
    let dir = TempDir::new();
    let source = format!(
        "{HEADER}
        enum Opcode {{ OPCODE_NONE = 0; OPCODE_CsHello = 7; OPCODE_SC_WELCOME = 8; }}
        message CsHello {{ }}
        message SC_WELCOME {{ }}"
    );
    let compiled = dir
        .proto(&source)
        .id_enum("Opcode")
        .client_prefix("Cs")
        .server_prefix("SC_")
        .packet_sets("Up", "Down")
        .rust_module("super::wire")
        .packets_file("wire.rs")
        .compile()
        .expect("compiles");
    assert_eq!(compiled.protocol, "GameProtocol", "default: file stem + Protocol");
    let packets = fs::read_to_string(&compiled.packets_file).unwrap();
    assert!(compiled.packets_file.ends_with("wire.rs"));
    assert!(packets.contains("client_to_server Up {\n            super::wire::CsHello, // id 7"), "{packets}");
    assert!(packets.contains("server_to_client Down {\n            super::wire::ScWelcome, // id 8"), "{packets}");
}

#[test]
fn every_table_problem_is_reported_at_once() {
    let dir = TempDir::new();
    let source = format!(
        "{HEADER}
        enum PacketId {{
          PACKET_ID_UNSPECIFIED = 0;
          PACKET_ID_C_MISSING = 1000;
          PACKET_ID_C_BIG = 70000;
          PACKET_ID_C_NEG = -1;
          PACKET_ID_HELLO = 1001;
          UNPREFIXED = 1002;
          PACKET_ID_S_OK = 1003;
        }}
        message C_BIG {{ }}
        message C_NEG {{ }}
        message HELLO {{ }}
        message S_OK {{ }}"
    );
    let error = dir.proto(&source).compile().unwrap_err();
    let text = error.to_string();
    let BuildError::Packets { file, problems } = error else { panic!("{text}") };
    assert_eq!(file, "game.proto");
    assert_eq!(problems.len(), 5, "{text}");
    assert!(matches!(&problems[0], Problem::UnknownMessage { message, number: 1000, .. } if message == "C_MISSING"));
    assert_eq!(problems[1], Problem::IdOutOfRange { value: "PACKET_ID_C_BIG".into(), number: 70000 });
    assert_eq!(problems[2], Problem::IdOutOfRange { value: "PACKET_ID_C_NEG".into(), number: -1 });
    assert!(matches!(&problems[3], Problem::NoDirection { message, .. } if message == "HELLO"));
    assert!(matches!(&problems[4], Problem::UnknownMessage { value, .. } if value == "UNPREFIXED"));
    assert!(text.starts_with("game.proto: 5 problems in the packet table:\n  - "), "{text}");
    assert!(text.contains("a packet id must be in 1..=65535"), "{text}");
    assert!(text.contains("there is no message `C_MISSING`"), "{text}");
}

#[test]
fn repeated_ids_are_left_to_define_packets() {
    let dir = TempDir::new();
    let source = format!(
        "{HEADER}
        enum PacketId {{ PACKET_ID_UNSPECIFIED = 0; PACKET_ID_C_A = 5; PACKET_ID_S_B = 6; PACKET_ID_S_C = 5; }}
        message C_A {{ }} message S_B {{ }} message S_C {{ }}"
    );
    assert!(matches!(dir.proto(&source).compile(), Err(BuildError::Proto(_))), "protox refuses a repeated number");
    let aliased = source.replace("PACKET_ID_UNSPECIFIED = 0;", "option allow_alias = true; PACKET_ID_UNSPECIFIED = 0;");
    let compiled = dir.proto(&aliased).compile().expect("an alias passes the build step");
    let packets = fs::read_to_string(&compiled.packets_file).unwrap();
    // Both listed: `define_packets!` reports the repeated id at compile time, as for hand-written packets.
    assert!(packets.contains("crate::proto::CA, // id 5") && packets.contains("crate::proto::SC, // id 5"));
}

#[test]
fn a_zero_id_naming_a_packet_is_out_of_range() {
    let dir = TempDir::new();
    let source = format!("{HEADER} enum PacketId {{ C_A = 0; S_B = 1; }} message C_A {{ }} message S_B {{ }}");
    // protobuf scoping: values `C_A` and messages `C_A` clash in one package.
    assert!(matches!(dir.proto(&source).compile(), Err(BuildError::Proto(_))));
    let source = format!(
        "{HEADER} enum PacketId {{ PACKET_ID_C_A = 0; PACKET_ID_S_B = 1; }} message C_A {{ }} message S_B {{ }}"
    );
    assert_eq!(
        problems(dir.proto(&source).compile()),
        [Problem::IdOutOfRange { value: "PACKET_ID_C_A".into(), number: 0 }]
    );
}

#[test]
fn missing_enum_and_empty_direction_are_errors() {
    let dir = TempDir::new();
    let source = format!("{HEADER} message C_A {{ }}");
    let error = dir.proto(&source).compile().unwrap_err();
    assert!(
        error.to_string().contains("no top-level `enum PacketId`") && error.to_string().contains("PACKET_ID_C_LOGIN"),
        "{error}"
    );
    let source =
        format!("{HEADER} enum PacketId {{ PACKET_ID_UNSPECIFIED = 0; PACKET_ID_C_A = 1; }} message C_A {{ }}");
    assert_eq!(
        problems(dir.proto(&source).compile()),
        [Problem::EmptyDirection { direction: Direction::ServerToClient }]
    );
}

#[test]
fn syntax_errors_come_from_protox() {
    let dir = TempDir::new();
    let error = dir.proto("syntax = \"proto3\"; message {").compile().unwrap_err();
    assert!(matches!(error, BuildError::Proto(_)), "{error:?}");
    assert!(error.to_string().starts_with("cannot compile the .proto: "), "{error}");
}
