//! Build-script support: a `.proto` file is the single source of truth for a protocol's messages, their wire ids and
//! their directions. (Feature `build`.)
//!
//! [`ProtoPackets`] compiles the file with [protox](https://docs.rs/protox) (a protobuf compiler in pure Rust: no
//! `protoc` to install) and [prost-build](https://docs.rs/prost-build), then
//!
//! 1. reads the packet table from one enum of the file (`enum PacketId` by default),
//! 2. adds `#[derive(::packet_runtime::Packet)] #[packet(id = N, name = "C_LOGIN")]` to every message the enum names,
//! 3. writes the `define_packets!` invocation for those messages to `OUT_DIR/<stem>_packets.rs`,
//!
//! so adding a packet is one edit in the `.proto`: a message and one enum value.
//!
//! # Conventions of the `.proto`
//!
//! ```proto
//! syntax = "proto3";
//! package game;
//!
//! // The packet table: one value per packet message, the value is the wire id.
//! enum PacketId {
//!   PACKET_ID_UNSPECIFIED = 0;   // proto3 wants a zero value; it names no packet
//!   PACKET_ID_C_LOGIN = 1000;    // the message `C_LOGIN`, sent by clients (`C_` prefix)
//!   PACKET_ID_S_LOGIN = 1001;    // the message `S_LOGIN`, sent by the server (`S_` prefix)
//! }
//!
//! message C_LOGIN { string name = 1; }
//! message S_LOGIN { bool success = 1; uint64 player_id = 2; }
//! message PosInfo { float x = 1; }   // not in the table: a plain message, usable as a field
//! ```
//!
//! - **Which messages are packets**: exactly those named by a value of the id enum. A value's name is the enum's
//!   name in `SCREAMING_SNAKE_CASE` plus `_` (`PACKET_ID_`), then the message's name. The prefix is not a style
//!   choice: protobuf puts enum values in the enclosing scope, so a value `C_LOGIN` beside a message `C_LOGIN` in the
//!   same package is a "defined twice" error in protoc and protox alike. (It is also the style `buf lint` asks for,
//!   and prost-build strips it, so the Rust enum reads `PacketId::CLogin`.)
//! - **Wire ids**: the value's number, which must be in `1..=65535`. The zero value is skipped when it names no
//!   message (proto3 requires one). Repeated ids are rejected by protox (unless `option allow_alias = true`, in which
//!   case the generated `define_packets!` rejects them at compile time, like hand-written packets).
//! - **Direction**: from the message name's prefix: `C_` is client-to-server, `S_` is server-to-client. Configurable
//!   with [`ProtoPackets::client_prefix`] and [`ProtoPackets::server_prefix`]; a packet with neither prefix is an
//!   error.
//! - Packet messages are top-level messages of the same file as the enum. `Packet::NAME` is the proto name
//!   (`"C_LOGIN"`), so logs show the name the other side of the wire uses.
//!
//! Every problem with the table is collected and reported at once, as a build-script error.
//!
//! # Example `build.rs`
//!
//! ```no_run
//! // build.rs
//! let compiled = packet_runtime::build::ProtoPackets::new("proto/game.proto")
//!     .include("proto")
//!     .protocol("GameProtocol")
//!     .compile();
//! if let Err(error) = compiled {
//!     // Display lists every problem, one per line.
//!     panic!("{error}");
//! }
//! ```
//!
//! and in the crate, next to each other (the default [`rust_module`](ProtoPackets::rust_module) is `crate::proto`):
//!
//! ```text
//! pub mod proto {
//!     include!(concat!(env!("OUT_DIR"), "/game.rs")); // prost-build's output, named after the package
//! }
//! include!(concat!(env!("OUT_DIR"), "/game_packets.rs")); // `define_packets!` for GameProtocol
//! ```
//!
//! The generated code refers to prost as `::packet_runtime::prost` (see [`ProtoPackets::prost_path`]), so the crate
//! needs no direct dependency on prost.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::{fs, io};

use crate::Direction;

/// Compiles one `.proto` file into prost messages plus a packet protocol. See the [module docs](self) for the
/// conventions the file follows.
#[derive(Debug)]
pub struct ProtoPackets {
    file: PathBuf,
    includes: Vec<PathBuf>,
    protocol: Option<String>,
    client_set: String,
    server_set: String,
    client_prefix: String,
    server_prefix: String,
    id_enum: String,
    rust_module: String,
    prost_path: String,
    out_dir: Option<PathBuf>,
    packets_file: Option<String>,
    config: Option<prost_build::Config>,
    rerun_if_changed: bool,
}

impl ProtoPackets {
    /// Starts a build of `file` (a path relative to the crate root when run from a build script).
    ///
    /// Defaults: include directory = the file's directory, protocol name = the file stem in `UpperCamelCase` plus
    /// `Protocol` (`game.proto` -> `GameProtocol`), packet sets `ClientPacket`/`ServerPacket`, prefixes `C_`/`S_`,
    /// id enum `PacketId`, messages included at `crate::proto`, prost at `::packet_runtime::prost`.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        ProtoPackets {
            file: file.into(),
            includes: Vec::new(),
            protocol: None,
            client_set: "ClientPacket".into(),
            server_set: "ServerPacket".into(),
            client_prefix: "C_".into(),
            server_prefix: "S_".into(),
            id_enum: "PacketId".into(),
            rust_module: "crate::proto".into(),
            prost_path: "::packet_runtime::prost".into(),
            out_dir: None,
            packets_file: None,
            config: None,
            rerun_if_changed: true,
        }
    }

    /// Adds an include directory, where `import`s are looked up. The file itself must be under one of them. If none
    /// is given, the file's own directory is used.
    pub fn include(mut self, dir: impl Into<PathBuf>) -> Self {
        self.includes.push(dir.into());
        self
    }

    /// The name of the generated protocol type.
    pub fn protocol(mut self, name: impl Into<String>) -> Self {
        self.protocol = Some(name.into());
        self
    }

    /// The names of the generated packet enums (`define_packets!`'s sets). Their handler traits are named after
    /// them (`ClientPacketHandler`). Default `ClientPacket` and `ServerPacket`.
    pub fn packet_sets(mut self, client_to_server: impl Into<String>, server_to_client: impl Into<String>) -> Self {
        self.client_set = client_to_server.into();
        self.server_set = server_to_client.into();
        self
    }

    /// Message-name prefix of client-to-server packets. Default `C_`.
    pub fn client_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.client_prefix = prefix.into();
        self
    }

    /// Message-name prefix of server-to-client packets. Default `S_`.
    pub fn server_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.server_prefix = prefix.into();
        self
    }

    /// The name of the top-level enum holding the packet table. Default `PacketId`.
    pub fn id_enum(mut self, name: impl Into<String>) -> Self {
        self.id_enum = name.into();
        self
    }

    /// The Rust module where the crate includes prost-build's output, as a path the generated `define_packets!`
    /// can use (`crate::proto`, `super::proto`, …). Default `crate::proto`.
    pub fn rust_module(mut self, path: impl Into<String>) -> Self {
        self.rust_module = path.into();
        self
    }

    /// The path the generated messages use for prost. Default `::packet_runtime::prost` (the runtime's re-export,
    /// so the versions always agree); `::prost` if the crate depends on prost itself.
    pub fn prost_path(mut self, path: impl Into<String>) -> Self {
        self.prost_path = path.into();
        self
    }

    /// Where both generated files go. Default: `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// File name of the generated `define_packets!` invocation. Default `<file stem>_packets.rs`.
    pub fn packets_file(mut self, name: impl Into<String>) -> Self {
        self.packets_file = Some(name.into());
        self
    }

    /// A prost-build configuration to start from (extra derives, `bytes` fields, …). Its `out_dir` and
    /// `prost_path` are overridden by this builder's.
    pub fn prost_config(mut self, config: prost_build::Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for the file and the include directories. Default `true`.
    pub fn rerun_if_changed(mut self, yes: bool) -> Self {
        self.rerun_if_changed = yes;
        self
    }

    /// Compiles the file and writes prost-build's output and the `define_packets!` invocation to the output
    /// directory.
    pub fn compile(mut self) -> Result<CompiledPackets, BuildError> {
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or(BuildError::NoOutDir)?,
        };
        let includes = if self.includes.is_empty() {
            vec![self.file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)]
        } else {
            self.includes.clone()
        };
        if self.rerun_if_changed {
            println!("cargo:rerun-if-changed={}", self.file.display());
            for dir in &includes {
                println!("cargo:rerun-if-changed={}", dir.display());
            }
        }

        let mut compiler = protox::Compiler::new(&includes)?;
        compiler.include_source_info(true).include_imports(true).open_file(&self.file)?;
        let root = compiler.files().find(|file| !file.is_import()).map(|file| file.name().to_owned());
        let root = root.expect("protox returns the file it was asked to open");
        let pool = compiler.descriptor_pool();
        let file = pool.get_file_by_name(&root).expect("the compiled file is in its pool");
        let table =
            PacketTable::read(&file, &self).map_err(|problems| BuildError::Packets { file: root.clone(), problems })?;

        let mut config = self.config.take().unwrap_or_default();
        config.out_dir(&out_dir).prost_path(self.prost_path.as_str());
        for packet in &table.packets {
            let full_name = if table.package.is_empty() {
                packet.proto_name.clone()
            } else {
                format!("{}.{}", table.package, packet.proto_name)
            };
            config.type_attribute(
                format!(".{full_name}"),
                format!(
                    "#[derive(::packet_runtime::Packet)] #[packet(id = {}, name = \"{}\")]",
                    packet.id, packet.proto_name
                ),
            );
        }
        config.compile_fds(compiler.file_descriptor_set()).map_err(BuildError::Generate)?;

        // The Rust names are computed here the way prost-build computes them; check that the types exist, so a
        // mismatch is a clear build error rather than "cannot find type" in generated code.
        let messages_file =
            out_dir.join(if table.package.is_empty() { "_.rs".to_owned() } else { format!("{}.rs", table.package) });
        let generated = fs::read_to_string(&messages_file)
            .map_err(|source| BuildError::Write { path: messages_file.clone(), source })?;
        let missing: Vec<_> = table
            .packets
            .iter()
            .filter(|packet| !generated.contains(&format!("pub struct {} {{", packet.rust_name)))
            .map(|packet| Problem::MissingType {
                message: packet.proto_name.clone(),
                rust_name: packet.rust_name.clone(),
                file: messages_file.clone(),
            })
            .collect();
        if !missing.is_empty() {
            return Err(BuildError::Packets { file: root, problems: missing });
        }

        let stem = Path::new(&root).file_stem().and_then(|s| s.to_str()).unwrap_or("packets").to_owned();
        let protocol = self.protocol.clone().unwrap_or_else(|| format!("{}Protocol", upper_camel(&stem)));
        let code = table.define_packets(&root, &protocol, &self);
        let packets_file = out_dir.join(self.packets_file.clone().unwrap_or_else(|| format!("{stem}_packets.rs")));
        fs::write(&packets_file, code).map_err(|source| BuildError::Write { path: packets_file.clone(), source })?;

        Ok(CompiledPackets { protocol, packets: table.packets, messages_file, packets_file })
    }
}

/// What [`ProtoPackets::compile`] produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CompiledPackets {
    /// The protocol type's name.
    pub protocol: String,
    /// The packets, in the order of the id enum.
    pub packets: Vec<PacketDef>,
    /// prost-build's output for the file's package (`OUT_DIR/game.rs`).
    pub messages_file: PathBuf,
    /// The `define_packets!` invocation (`OUT_DIR/game_packets.rs`).
    pub packets_file: PathBuf,
}

/// One packet read from the id enum.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PacketDef {
    /// The wire id.
    pub id: u16,
    /// The message name in the `.proto` (`C_LOGIN`), also `Packet::NAME`.
    pub proto_name: String,
    /// The Rust type name prost-build gives the message (`CLogin`).
    pub rust_name: String,
    /// Which way it travels, from the name's prefix.
    pub direction: Direction,
}

/// A `.proto` could not be turned into a protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The file does not parse or does not type-check (protox's message names the file and the problem).
    #[error("cannot compile the .proto: {0}")]
    Proto(#[from] protox::Error),
    /// The file compiled but its packet table is wrong. Every problem found is listed.
    #[error("{file}: {}", ProblemList(.problems))]
    Packets {
        /// The `.proto` file, as protox names it (relative to its include directory).
        file: String,
        /// What is wrong, one entry per problem.
        problems: Vec<Problem>,
    },
    /// prost-build failed to generate or write the messages.
    #[error("prost-build failed: {0}")]
    Generate(#[source] io::Error),
    /// A generated file could not be written or read back.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Neither [`ProtoPackets::out_dir`] nor `OUT_DIR` is set.
    #[error("OUT_DIR is not set: run from a build script or call `ProtoPackets::out_dir`")]
    NoOutDir,
}

/// One problem with a `.proto`'s packet table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The file has no top-level enum of that name.
    #[error(
        "no top-level `enum {id_enum}`: declare one with a value per packet message, e.g. \
         `enum {id_enum} {{ {prefix}UNSPECIFIED = 0; {prefix}C_LOGIN = 1000; }}`"
    )]
    MissingIdEnum {
        /// The enum's expected name.
        id_enum: String,
        /// The value prefix derived from it (`PACKET_ID_`).
        prefix: String,
    },
    /// A value names no top-level message of the file.
    #[error(
        "`{value} = {number}` names no message: a value is `{prefix}` followed by the name of a top-level message of \
         this file, and there is no message `{message}`"
    )]
    UnknownMessage {
        /// The enum value.
        value: String,
        /// Its number.
        number: i32,
        /// The message name looked for (the value without the prefix).
        message: String,
        /// The enum's value prefix.
        prefix: String,
    },
    /// A value's number is not a valid wire id.
    #[error("`{value} = {number}`: a packet id must be in 1..=65535")]
    IdOutOfRange {
        /// The enum value.
        value: String,
        /// Its number.
        number: i32,
    },
    /// A packet message's name has neither direction prefix.
    #[error(
        "packet `{message}` has no direction: its name must start with `{client_prefix}` (client to server) or \
         `{server_prefix}` (server to client)"
    )]
    NoDirection {
        /// The message.
        message: String,
        /// The client-to-server prefix.
        client_prefix: String,
        /// The server-to-client prefix.
        server_prefix: String,
    },
    /// No packet travels in a direction; a protocol needs both.
    #[error("no {direction} packet: a protocol needs at least one packet in each direction")]
    EmptyDirection {
        /// The empty direction.
        direction: Direction,
    },
    /// prost-build did not generate the type the packet table expects (a naming rule this helper does not know).
    #[error("prost-build generated no `{rust_name}` for message `{message}` in {}", .file.display())]
    MissingType {
        /// The message.
        message: String,
        /// The Rust name expected.
        rust_name: String,
        /// prost-build's output.
        file: PathBuf,
    },
}

/// Displays problems one per line.
struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems in the packet table:", many.len())?;
                many.iter().try_for_each(|problem| write!(f, "\n  - {problem}"))
            }
        }
    }
}

/// The packets of one file, read from its id enum.
struct PacketTable {
    package: String,
    packets: Vec<PacketDef>,
}

impl PacketTable {
    fn read(file: &protox::prost_reflect::FileDescriptor, options: &ProtoPackets) -> Result<Self, Vec<Problem>> {
        let prefix = format!("{}_", shouty_snake(&options.id_enum));
        let Some(id_enum) = file.enums().find(|e| e.name() == options.id_enum) else {
            return Err(vec![Problem::MissingIdEnum { id_enum: options.id_enum.clone(), prefix }]);
        };
        let messages: Vec<String> = file.messages().map(|m| m.name().to_owned()).collect();
        let mut problems = Vec::new();
        let mut packets = Vec::new();
        // The descriptor's own list keeps declaration order (prost-reflect's `values()` sorts by number), so
        // problems and the generated sets follow the file.
        for value in &id_enum.enum_descriptor_proto().value {
            let (name, number) = (value.name(), value.number());
            let message = name.strip_prefix(&prefix).filter(|stripped| messages.iter().any(|m| m == stripped));
            let Some(message) = message else {
                // The proto3 zero value is a placeholder unless it names a message.
                if number != 0 {
                    problems.push(Problem::UnknownMessage {
                        value: name.to_owned(),
                        number,
                        message: name.strip_prefix(&prefix).unwrap_or(name).to_owned(),
                        prefix: prefix.clone(),
                    });
                }
                continue;
            };
            let id = u16::try_from(number).ok().filter(|&id| id != 0);
            let direction = if message.starts_with(&options.client_prefix) {
                Some(Direction::ClientToServer)
            } else if message.starts_with(&options.server_prefix) {
                Some(Direction::ServerToClient)
            } else {
                None
            };
            if id.is_none() {
                problems.push(Problem::IdOutOfRange { value: name.to_owned(), number });
            }
            if direction.is_none() {
                problems.push(Problem::NoDirection {
                    message: message.to_owned(),
                    client_prefix: options.client_prefix.clone(),
                    server_prefix: options.server_prefix.clone(),
                });
            }
            if let (Some(id), Some(direction)) = (id, direction) {
                packets.push(PacketDef {
                    id,
                    proto_name: message.to_owned(),
                    rust_name: rust_type_name(message),
                    direction,
                });
            }
        }
        if problems.is_empty() {
            for direction in [Direction::ClientToServer, Direction::ServerToClient] {
                if !packets.iter().any(|p| p.direction == direction) {
                    problems.push(Problem::EmptyDirection { direction });
                }
            }
        }
        if problems.is_empty() {
            Ok(PacketTable { package: file.package_name().to_owned(), packets })
        } else {
            Err(problems)
        }
    }

    /// The `define_packets!` invocation, one packet per line.
    fn define_packets(&self, file: &str, protocol: &str, options: &ProtoPackets) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "// @generated by `packet_runtime::build::ProtoPackets` from `{file}`. Do not edit: change the .proto."
        );
        let _ = writeln!(out, "::packet_runtime::define_packets! {{");
        let _ = writeln!(out, "    /// The packets of `{file}`, numbered by its `enum {}`.", options.id_enum);
        let _ = writeln!(out, "    pub protocol {protocol} {{");
        let sets = [
            (Direction::ClientToServer, &options.client_set, &options.client_prefix, "Client-to-server"),
            (Direction::ServerToClient, &options.server_set, &options.server_prefix, "Server-to-client"),
        ];
        for (direction, set, prefix, what) in sets {
            let _ = writeln!(out, "        /// {what} packets (the messages named `{prefix}*`).");
            let _ = writeln!(out, "        {direction} {set} {{");
            for packet in self.packets.iter().filter(|p| p.direction == direction) {
                let _ = writeln!(out, "            {}::{}, // id {}", options.rust_module, packet.rust_name, packet.id);
            }
            let _ = writeln!(out, "        }}");
        }
        let _ = writeln!(out, "    }}");
        let _ = writeln!(out, "}}");
        out
    }
}

/// The Rust type name prost-build gives a message: heck's `UpperCamelCase`, then keyword sanitising.
fn rust_type_name(message: &str) -> String {
    let name = upper_camel(message);
    match name.as_str() {
        "Self" => "Self_".to_owned(),
        _ if name.starts_with(|c: char| c.is_ascii_digit()) => format!("_{name}"),
        _ => name,
    }
}

/// Splits an identifier into words the way `heck` 0.5 does (prost-build's naming): at non-alphanumerics, between a
/// lowercase letter and an uppercase one, and before the last capital of an acronym followed by a lowercase letter
/// (`HTTPServer` -> `HTTP`, `Server`).
fn words(s: &str) -> Vec<&str> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Boundary,
        Lower,
        Upper,
    }
    let mut words = Vec::new();
    for word in s.split(|c: char| !c.is_alphanumeric()) {
        let mut chars = word.char_indices().peekable();
        let mut init = 0;
        let mut mode = Mode::Boundary;
        while let Some((i, c)) = chars.next() {
            let Some(&(next_i, next)) = chars.peek() else {
                words.push(&word[init..]);
                break;
            };
            let next_mode = if c.is_lowercase() {
                Mode::Lower
            } else if c.is_uppercase() {
                Mode::Upper
            } else {
                mode
            };
            if next_mode == Mode::Lower && next.is_uppercase() {
                words.push(&word[init..next_i]);
                init = next_i;
                mode = Mode::Boundary;
            } else if mode == Mode::Upper && c.is_uppercase() && next.is_lowercase() {
                words.push(&word[init..i]);
                init = i;
                mode = Mode::Boundary;
            } else {
                mode = next_mode;
            }
        }
    }
    words.retain(|w| !w.is_empty());
    words
}

/// `C_LOGIN` -> `CLogin`, `player_info` -> `PlayerInfo`.
fn upper_camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in words(s) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.extend(chars.flat_map(char::to_lowercase));
        }
    }
    out
}

/// `PacketId` -> `PACKET_ID`.
fn shouty_snake(s: &str) -> String {
    words(s).iter().map(|w| w.to_uppercase()).collect::<Vec<_>>().join("_")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("packet-runtime-build-{}-{n}", std::process::id()));
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
        assert!(
            matches!(&problems[0], Problem::UnknownMessage { message, number: 1000, .. } if message == "C_MISSING")
        );
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
        let aliased =
            source.replace("PACKET_ID_UNSPECIFIED = 0;", "option allow_alias = true; PACKET_ID_UNSPECIFIED = 0;");
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
            error.to_string().contains("no top-level `enum PacketId`")
                && error.to_string().contains("PACKET_ID_C_LOGIN"),
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

    #[test]
    fn names_follow_prost_build() {
        for (proto, rust) in [
            ("C_LOGIN", "CLogin"),
            ("S_ENTER_ROOM", "SEnterRoom"),
            ("PosInfo", "PosInfo"),
            ("player_info", "PlayerInfo"),
            ("HTTPServer", "HttpServer"),
            ("C_MOVE2", "CMove2"),
            ("Self", "Self_"),
        ] {
            assert_eq!(rust_type_name(proto), rust, "{proto}");
        }
        assert_eq!(shouty_snake("PacketId"), "PACKET_ID");
        assert_eq!(shouty_snake("Opcode"), "OPCODE");
    }
}
