//! The packet table: which messages of a file are packets, with which wire id and in which direction, read from the
//! values of its id enum.

use std::fmt;

use protox::prost_reflect::FileDescriptor;

use crate::error::Problem;
use crate::names;

/// Which way a packet travels.
///
/// The same two values as `packet_runtime::Direction`, declared again because this crate runs in build scripts and
/// does not depend on the runtime; [`Direction::as_str`] is the keyword both sides use in `define_packets!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by clients, received by the server.
    ClientToServer,
    /// Sent by the server, received by clients.
    ServerToClient,
}

impl Direction {
    /// `"client_to_server"` or `"server_to_client"`, the keywords used in `define_packets!`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client_to_server",
            Direction::ServerToClient => "server_to_client",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

/// The packets of one file, read from its id enum.
#[derive(Debug)]
pub(crate) struct PacketTable {
    /// The file's protobuf package (empty if it declares none).
    pub(crate) package: String,
    /// The packets, in the declaration order of the id enum.
    pub(crate) packets: Vec<PacketDef>,
}

impl PacketTable {
    /// Reads the table from the top-level enum `id_enum` of `file`, or lists every problem found in it.
    pub(crate) fn read(
        file: &FileDescriptor,
        id_enum: &str,
        client_prefix: &str,
        server_prefix: &str,
    ) -> Result<Self, Vec<Problem>> {
        let prefix = names::enum_value_prefix(id_enum);
        let Some(descriptor) = file.enums().find(|e| e.name() == id_enum) else {
            return Err(vec![Problem::MissingIdEnum { id_enum: id_enum.to_owned(), prefix }]);
        };
        let messages: Vec<String> = file.messages().map(|m| m.name().to_owned()).collect();
        let mut problems = Vec::new();
        let mut packets = Vec::new();
        // The descriptor's own list keeps declaration order (prost-reflect's `values()` sorts by number), so
        // problems and the generated sets follow the file.
        for value in &descriptor.enum_descriptor_proto().value {
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
            let direction = if message.starts_with(client_prefix) {
                Some(Direction::ClientToServer)
            } else if message.starts_with(server_prefix) {
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
                    client_prefix: client_prefix.to_owned(),
                    server_prefix: server_prefix.to_owned(),
                });
            }
            if let (Some(id), Some(direction)) = (id, direction) {
                packets.push(PacketDef {
                    id,
                    proto_name: message.to_owned(),
                    rust_name: names::rust_type_name(message),
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
}
