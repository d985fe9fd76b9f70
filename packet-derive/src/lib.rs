//! Procedural macros for `packet-runtime`. Use them through `packet_runtime::{Packet, define_packets}`.
//!
//! # Layout
//! - [`derive_packet`]: `#[derive(Packet)]`: [`derive_packet::attr`] reads `#[packet(id = .., name = ..)]`,
//!   [`derive_packet::expand`] writes the `Packet` impl (or a stub beside the errors).
//! - [`packet_set`]: `define_packets!`: [`packet_set::ast`] parses the protocol, [`packet_set::valid`] checks it and
//!   repairs what it can so codegen still runs, [`packet_set::expand`] writes the enums, traits and impls.
//! - [`errors`]: collects independent errors so that one expansion reports all of them.
//! - [`case`]: the `CLogin` -> `c_login` conversion behind handler method names.
//!
//! Every expansion emits its items even when it reports errors, so one mistake shows up as one error instead of a
//! cascade of "cannot find type" errors at every use site.
#![warn(missing_docs)]

use proc_macro::TokenStream;

mod case;
mod derive_packet;
mod errors;
mod packet_set;

/// Implements `packet_runtime::Packet` for a prost message: `#[packet(id = 1000)]`, optionally `name = "C_LOGIN"`.
///
/// See the `packet_runtime::Packet` docs for the full syntax.
#[proc_macro_derive(Packet, attributes(packet))]
pub fn derive_packet(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    derive_packet::expand::derive(&input).unwrap_or_else(|err| derive_packet::expand::fallback(&input, err)).into()
}

/// Defines a protocol: its packets per direction, their enums, decoders and handler traits.
///
/// See the `packet_runtime` crate docs for the syntax and the generated items.
#[proc_macro]
pub fn define_packets(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as packet_set::ast::ProtocolDef);
    packet_set::expand::define_packets(input).into()
}
