//! The syntax of `define_packets!`, parsed as written and keeping the original tokens for spans.
//!
//! ```text
//! define_packets! {
//!     #[attrs] pub protocol GameProtocol {
//!         #[attrs] client_to_server ClientPacket { CLogin, proto::CMove, .. }
//!         #[attrs] server_to_client ServerPacket { SLogin, .. }
//!     }
//! }
//! ```
//!
//! Only the shape is checked here (a malformed shape stops the expansion); what the shape means (both directions
//! present, no packet twice) is `valid`'s job, which can recover.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Path, Token, Visibility, braced};

/// `pub protocol Name { directions }`.
pub(crate) struct ProtocolDef {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    /// The braces around the directions, where a missing direction is reported.
    pub(crate) brace: proc_macro2::Span,
    pub(crate) directions: Vec<DirectionDef>,
}

/// `client_to_server EnumName { packets }`.
pub(crate) struct DirectionDef {
    pub(crate) attrs: Vec<Attribute>,
    /// `client_to_server`, `server_to_client`, or a misspelling that `valid` reports.
    pub(crate) keyword: Ident,
    pub(crate) set: Ident,
    /// The braces around the packets, where an empty list is reported.
    pub(crate) brace: proc_macro2::Span,
    pub(crate) packets: Vec<Path>,
}

impl Parse for ProtocolDef {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let keyword: Ident = input.parse()?;
        if keyword != "protocol" {
            return Err(syn::Error::new(
                keyword.span(),
                "expected `protocol`: `define_packets! { pub protocol Name { client_to_server .. server_to_client .. } }`",
            ));
        }
        let name = input.parse()?;
        let content;
        let brace = braced!(content in input).span.join();
        let mut directions = Vec::new();
        while !content.is_empty() {
            directions.push(content.parse()?);
        }
        if !input.is_empty() {
            return Err(input.error("`define_packets!` takes one protocol; call it again for another"));
        }
        Ok(ProtocolDef { attrs, vis, name, brace, directions })
    }
}

impl Parse for DirectionDef {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let keyword = input.parse()?;
        let set = input.parse()?;
        let content;
        let brace = braced!(content in input).span.join();
        let packets = Punctuated::<Path, Token![,]>::parse_terminated(&content)?.into_iter().collect();
        Ok(DirectionDef { attrs, keyword, set, brace, packets })
    }
}
