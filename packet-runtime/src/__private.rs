//! Helpers called by the code `#[derive(Packet)]` and `define_packets!` generate. Not a public API: names and
//! signatures change without notice.

pub use crate::protocol::fingerprint;
pub use prost;
