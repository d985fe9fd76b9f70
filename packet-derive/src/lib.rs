//! Procedural macros for `packet-runtime`. Use them through `packet_runtime::{Packet, define_packets}`.

use proc_macro::TokenStream;

/// Placeholder until the derive lands.
#[proc_macro_derive(Packet, attributes(packet))]
pub fn derive_packet(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}

/// Placeholder until the macro lands.
#[proc_macro]
pub fn define_packets(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
