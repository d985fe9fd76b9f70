//! Build-script support for packet-runtime: a `.proto` file is the single source of truth for a protocol's
//! messages, their wire ids and their directions.
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
//! This crate is separate from packet-runtime because build scripts are compiled for the host: depending on the
//! runtime there would compile tokio, crossbeam and tracing a second time just to run protox. The code it *writes*
//! still names `::packet_runtime::…`, because that code is compiled in the crate running the build script, which
//! depends on packet-runtime.
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
//! - **Rust names**: the ones prost-build gives, computed with the same [heck](https://docs.rs/heck) conversion
//!   (`C_LOGIN` -> `CLogin`, `HTTPRequest` -> `HttpRequest`, `c_move2` -> `CMove2`). After generating, the build
//!   checks that prost-build really wrote each type ([`Problem::MissingType`] otherwise), so a naming difference is a
//!   build-script error, not "cannot find type" in generated code.
//!
//! Every problem with the table is collected and reported at once, as a build-script error.
//!
//! # Example `build.rs`
//!
//! ```no_run
//! // build.rs
//! let compiled = packet_build::ProtoPackets::new("proto/game.proto")
//!     .include("proto")
//!     .protocol("GameProtocol")
//!     .compile();
//! if let Err(error) = compiled {
//!     // Display lists every problem, one per line.
//!     panic!("{error}");
//! }
//! ```
//!
//! with, in `Cargo.toml`, `packet-build` under `[build-dependencies]` and `packet-runtime` under `[dependencies]`;
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
//!
//! # What it writes to `OUT_DIR`
//!
//! Into `OUT_DIR` (or the directory given to [`ProtoPackets::out_dir`]), and nowhere else:
//!
//! - **`<package>.rs`**: prost-build's messages, one file per protobuf package it generates code for (the file's own,
//!   and those of imported files), named as prost-build names them (`package game;` -> `game.rs`, `package a.b;` ->
//!   `a.b.rs`, no package -> `_.rs`).
//!   These are prost-build's own bytes except that every packet message carries the two attributes
//!   `#[derive(::packet_runtime::Packet)]` and `#[packet(id = N, name = "<proto name>")]`, added through prost-build's
//!   `type_attribute`. prost-build leaves a file untouched when its content did not change.
//! - **`<stem>_packets.rs`** (or the name given to [`ProtoPackets::packets_file`]): one
//!   `::packet_runtime::define_packets!` invocation with the protocol and its two packet sets, one packet per line
//!   in the order of the id enum, each naming its type through [`ProtoPackets::rust_module`]. Rewritten on every
//!   run.
//! - Anything else a [`ProtoPackets::prost_config`] asks prost-build for (an include file, a descriptor set).
//!
//! It also prints `cargo:rerun-if-changed` for the `.proto` and each include directory, unless
//! [`ProtoPackets::rerun_if_changed`] turns that off.
//!
//! # Layout
//!
//! One source file per concept:
//!
//! - `builder.rs`: [`ProtoPackets`], the options and [`ProtoPackets::compile`], which runs protox and prost-build and
//!   writes the files; [`CompiledPackets`], what it produced.
//! - `table.rs`: reading the packet table from the id enum into [`PacketDef`]s; [`Direction`].
//! - `names.rs`: the Rust names prost-build gives protobuf names, with heck, as prost-build 0.14 computes them.
//! - `emit.rs`: the text this crate adds: the `#[derive(Packet)]` attributes and the `define_packets!` invocation.
//! - `error.rs`: [`BuildError`] and [`Problem`], one entry per mistake in the packet table.
//! - `tests.rs`: unit tests of the whole build through the public API, on `.proto` files written to a temp dir.
//!
//! # Tests
//!
//! Besides the unit tests, `tests/golden.rs` compiles `tests/fixtures/arena.proto` and compares both generated files
//! byte for byte with `tests/golden/arena.rs` and `tests/golden/arena_packets.rs`. When the output changes on
//! purpose (a change here, or a prost-build upgrade), regenerate them with
//! `PACKET_BUILD_BLESS=1 cargo test -p packet-build --test golden` and review the diff.

#![warn(missing_docs)]

mod builder;
mod clients;
mod emit;
mod error;
mod names;
mod table;

#[cfg(test)]
mod tests;

pub use builder::{CompiledPackets, ProtoPackets};
pub use clients::ClientTable;
pub use error::{BuildError, Problem};
pub use table::{Direction, PacketDef};
