//! `define_packets!`: one protocol, its packets per direction, and everything generated from them.

pub(crate) mod ast;
pub(crate) mod expand;
pub(crate) mod valid;
