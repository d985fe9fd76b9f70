//! What can go wrong: [`BuildError`] for the build as a whole, [`Problem`] for each mistake in the packet table, so
//! a build script can report them all at once.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::table::Direction;

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
    /// Neither [`ProtoPackets::out_dir`](crate::ProtoPackets::out_dir) nor `OUT_DIR` is set.
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
