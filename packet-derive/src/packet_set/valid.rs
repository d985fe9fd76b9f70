//! Checks a parsed protocol and turns it into the model codegen reads.
//!
//! Every problem is reported, and the model is repaired so codegen can still run (a repeated packet is dropped, a
//! missing direction becomes a hidden empty set): the user sees the mistake once, not again at every use of the
//! enums and traits that would otherwise be missing.
//!
//! Duplicate ids are not checked here: an id may be a path to a const, which only the compiler can evaluate. The
//! generated code checks them in a const (see `expand`).

use proc_macro2::Span;
use quote::{ToTokens, format_ident};
use syn::{Attribute, Ident, Path, Visibility};

use super::ast::{DirectionDef, ProtocolDef};
use crate::case::snake_case;
use crate::errors::Errors;

/// A checked protocol.
pub(crate) struct Protocol {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    pub(crate) client_to_server: PacketSet,
    pub(crate) server_to_client: PacketSet,
}

impl Protocol {
    pub(crate) fn sets(&self) -> [&PacketSet; 2] {
        [&self.client_to_server, &self.server_to_client]
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client_to_server",
            Direction::ServerToClient => "server_to_client",
        }
    }

    /// The `packet_runtime::Direction` variant.
    pub(crate) fn variant(self) -> Ident {
        match self {
            Direction::ClientToServer => format_ident!("ClientToServer"),
            Direction::ServerToClient => format_ident!("ServerToClient"),
        }
    }
}

/// One direction: the enum, its handler trait, and its packets without repeats.
pub(crate) struct PacketSet {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) direction: Direction,
    pub(crate) name: Ident,
    pub(crate) handler: Ident,
    pub(crate) packets: Vec<PacketRef>,
    /// A stand-in for a missing direction, generated only so that the rest of the expansion type-checks.
    pub(crate) placeholder: bool,
}

/// One listed packet.
pub(crate) struct PacketRef {
    /// The type as written, also the span of every error about this packet.
    pub(crate) ty: Path,
    /// The enum variant: the last path segment.
    pub(crate) variant: Ident,
    /// The handler method: `on_` + the variant in snake case.
    pub(crate) method: Ident,
    /// The type as written, without spaces, for messages.
    pub(crate) display: String,
}

/// The checked model, and the errors to report beside the code generated from it.
pub(crate) fn check(def: ProtocolDef) -> (Protocol, Errors) {
    let mut errors = Errors::default();
    let ProtocolDef { attrs, vis, name, brace, directions } = def;

    let mut slots: [Option<DirectionDef>; 2] = [None, None];
    let mut misspelled = Vec::new();
    for direction in directions {
        let slot = match direction.keyword.to_string().as_str() {
            "client_to_server" => 0,
            "server_to_client" => 1,
            _ => {
                errors.spanned(
                    &direction.keyword,
                    format_args!(
                        "unknown direction `{}`; expected `client_to_server` or `server_to_client`",
                        direction.keyword
                    ),
                );
                misspelled.push(direction);
                continue;
            }
        };
        if slots[slot].is_some() {
            errors.spanned(
                &direction.keyword,
                format_args!("`{}` is given twice; list all its packets in one block", direction.keyword),
            );
        } else {
            slots[slot] = Some(direction);
        }
    }
    // A misspelled direction still stands for the missing one, so its packets are not reported a second time.
    let mut misspelled = misspelled.into_iter();
    for slot in &mut slots {
        if slot.is_none() {
            *slot = misspelled.next();
        }
    }

    let mut seen = Vec::<(String, Direction)>::new();
    let [c2s, s2c] = slots;
    let client_to_server = packet_set(c2s, Direction::ClientToServer, &name, brace, &mut seen, &mut errors, None);
    let server_to_client =
        packet_set(s2c, Direction::ServerToClient, &name, brace, &mut seen, &mut errors, Some(&client_to_server.name));

    (Protocol { attrs, vis, name, client_to_server, server_to_client }, errors)
}

fn packet_set(
    def: Option<DirectionDef>,
    direction: Direction,
    protocol: &Ident,
    protocol_brace: Span,
    seen: &mut Vec<(String, Direction)>,
    errors: &mut Errors,
    other_set: Option<&Ident>,
) -> PacketSet {
    let keyword = direction.keyword();
    let Some(def) = def else {
        errors.push(syn::Error::new(
            protocol_brace,
            format_args!(
                "protocol `{protocol}` has no `{keyword}` packets; add `{keyword} <EnumName> {{ <packets> }}` \
                 (every protocol has both directions)"
            ),
        ));
        let name = format_ident!("__{}{}", protocol, direction.variant());
        let handler = format_ident!("{}Handler", name);
        return PacketSet { attrs: Vec::new(), direction, name, handler, packets: Vec::new(), placeholder: true };
    };

    let mut name = def.set;
    if other_set == Some(&name) {
        errors.spanned(&name, format_args!("`{name}` names both directions; give each direction its own enum name"));
        name = format_ident!("{}{}", name, direction.variant());
    }
    if def.packets.is_empty() {
        errors.push(syn::Error::new(
            def.brace,
            format_args!("`{keyword} {name}` lists no packets; a direction needs at least one"),
        ));
    }

    let mut packets: Vec<PacketRef> = Vec::with_capacity(def.packets.len());
    for ty in def.packets {
        let display = ty.to_token_stream().to_string().replace(' ', "");
        let variant = ty.segments.last().expect("a parsed path has a segment").ident.clone();
        let method = format_ident!("on_{}", snake_case(&variant.to_string()), span = variant.span());

        if let Some((_, first)) = seen.iter().find(|(other, _)| *other == display) {
            let first = if *first == direction {
                "already in this direction".to_owned()
            } else {
                format!("first in `{}`", first.keyword())
            };
            errors.spanned(
                &ty,
                format_args!("`{display}` is listed twice in protocol `{protocol}` ({first}); list each packet once"),
            );
            continue;
        }
        if let Some(other) = packets.iter().find(|p| p.variant == variant || p.method == method) {
            errors.spanned(
                &ty,
                format_args!(
                    "`{display}` and `{}` would both become variant `{variant}` / handler method `{method}`; \
                     import one under another name (`use path::{variant} as Other{variant};`)",
                    other.display
                ),
            );
            continue;
        }
        seen.push((display.clone(), direction));
        packets.push(PacketRef { ty, variant, method, display });
    }

    let handler = format_ident!("{}Handler", name);
    PacketSet { attrs: def.attrs, direction, name, handler, packets, placeholder: false }
}
