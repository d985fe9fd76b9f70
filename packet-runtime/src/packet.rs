//! One packet: a prost message with a wire id.
//!
//! This is the Rust form of the C++ `ProtobufPacket<ID, Type>` template: instead of a hand-written class per packet,
//! `#[derive(Packet)]` attaches the id and a display name to the message type as associated constants, so every use
//! of the id is a compile-time constant (a `match` on ids compiles to a jump table).

/// A protobuf message that travels as one frame with a fixed packet id.
///
/// Implemented by `#[derive(Packet)]` with `#[packet(id = N)]`; implementing it by hand is allowed but the derive
/// also checks the id range and the prost bound with clear messages.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a packet",
    label = "`{Self}` does not implement `Packet`",
    note = "add `#[derive(prost::Message, packet_runtime::Packet)]` and `#[packet(id = N)]` to `{Self}`"
)]
pub trait Packet: prost::Message + Default + Send + Sync + 'static {
    /// The id written in the frame header.
    const ID: u16;
    /// A human-readable name for logs and errors: the type's name unless `#[packet(name = "...")]` overrides it.
    const NAME: &'static str;
}
