//! `#[derive(Packet)]`: attaches a wire id and a display name to a prost message.

pub(crate) mod attr;
pub(crate) mod expand;
