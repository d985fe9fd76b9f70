//! [`ProtoPackets`]: the options of one build and [`ProtoPackets::compile`], which runs protox and prost-build and
//! writes the generated files.

use std::fs;
use std::path::{Path, PathBuf};

use heck::ToUpperCamelCase;

use crate::error::{BuildError, Problem};
use crate::table::{PacketDef, PacketTable};
use crate::{emit, names};

/// Compiles one `.proto` file into prost messages plus a packet protocol. See the [crate docs](crate) for the
/// conventions the file follows and for what is written where.
#[derive(Debug)]
pub struct ProtoPackets {
    file: PathBuf,
    includes: Vec<PathBuf>,
    protocol: Option<String>,
    pub(crate) client_set: String,
    pub(crate) server_set: String,
    pub(crate) client_prefix: String,
    pub(crate) server_prefix: String,
    pub(crate) id_enum: String,
    pub(crate) rust_module: String,
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

    /// Parses the file and reads its packet table, nothing more.
    fn read(&self, includes: &[PathBuf]) -> Result<(protox::Compiler, String, PacketTable), BuildError> {
        let mut compiler = protox::Compiler::new(includes)?;
        compiler.include_source_info(true).include_imports(true).open_file(&self.file)?;
        let root = compiler.files().find(|file| !file.is_import()).map(|file| file.name().to_owned());
        let root = root.expect("protox returns the file it was asked to open");
        let pool = compiler.descriptor_pool();
        let file = pool.get_file_by_name(&root).expect("the compiled file is in its pool");
        let table = PacketTable::read(&file, &self.id_enum, &self.client_prefix, &self.server_prefix)
            .map_err(|problems| BuildError::Packets { file: root.clone(), problems })?;
        Ok((compiler, root, table))
    }

    /// The packet table for clients in other languages ([`ClientTable`](crate::ClientTable): TypeScript, C#,
    /// C++), read from the file without compiling anything. Outside build scripts too (no `OUT_DIR` needed).
    pub fn client_table(&self) -> Result<crate::ClientTable, BuildError> {
        let includes = if self.includes.is_empty() {
            vec![self.file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)]
        } else {
            self.includes.clone()
        };
        let (_, root, table) = self.read(&includes)?;
        let stem = Path::new(&root).file_stem().and_then(|s| s.to_str()).unwrap_or("packets").to_owned();
        let protocol = self.protocol.clone().unwrap_or_else(|| format!("{}Protocol", stem.to_upper_camel_case()));
        Ok(crate::ClientTable::new(protocol, table.package, table.packets))
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

        let (compiler, root, table) = self.read(&includes)?;

        let mut config = self.config.take().unwrap_or_default();
        config.out_dir(&out_dir).prost_path(self.prost_path.as_str());
        for packet in &table.packets {
            let full_name = if table.package.is_empty() {
                packet.proto_name.clone()
            } else {
                format!("{}.{}", table.package, packet.proto_name)
            };
            config.type_attribute(format!(".{full_name}"), emit::packet_attributes(packet));
        }
        config.compile_fds(compiler.file_descriptor_set()).map_err(BuildError::Generate)?;

        // The Rust names were computed the way prost-build computes them; check that the types exist, so a
        // mismatch is a clear build error rather than "cannot find type" in generated code.
        let messages_file = out_dir.join(names::messages_file_name(&table.package));
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
        let protocol = self.protocol.clone().unwrap_or_else(|| format!("{}Protocol", stem.to_upper_camel_case()));
        let code = emit::define_packets(&table.packets, &root, &protocol, &self);
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
