//! Writes the code for a checked protocol: the marker type, and per direction the enum, its methods and trait
//! impls, and the handler trait; plus the compile-time duplicate-id check.
//!
//! Ids are never copied into the expansion: every use is `<T as Packet>::ID`, so an id may be a literal or a const
//! and the derive stays the single source of truth. An id lookup is a `match` on those constants, which the compiler
//! turns into a jump table or a binary search; nothing is hashed, boxed or allocated besides what prost decodes.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::ProtocolDef;
use super::valid::{self, PacketSet, Protocol};

/// `define_packets!`: the generated items, followed by the errors found, if any.
pub(crate) fn define_packets(def: ProtocolDef) -> TokenStream {
    let (protocol, errors) = valid::check(def);
    let mut tokens = protocol_items(&protocol);
    tokens.extend(errors.into_compile_errors());
    tokens
}

pub(crate) fn protocol_items(protocol: &Protocol) -> TokenStream {
    let mut tokens = marker(protocol);
    for set in protocol.sets() {
        tokens.extend(packet_set_enum(protocol, set));
        tokens.extend(handler_trait(protocol, set));
    }
    tokens.extend(unique_ids(protocol));
    tokens
}

fn has_doc(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| attr.path().is_ident("doc"))
}

/// The protocol marker type and its `Protocol` impl.
fn marker(protocol: &Protocol) -> TokenStream {
    let Protocol { attrs, vis, name, client_to_server, server_to_client } = protocol;
    let c2s = &client_to_server.name;
    let s2c = &server_to_client.name;
    let name_str = name.to_string();
    let doc = (!has_doc(attrs)).then(|| {
        let doc = format!(
            " The `{name_str}` protocol: [`{c2s}`] from clients, [`{s2c}`] from the server. A marker type for \
             `Protocol`-generic code; it has no values."
        );
        quote!(#[doc = #doc])
    });
    let infos = protocol.sets().into_iter().flat_map(|set| {
        let direction = set.direction.variant();
        set.packets.iter().map(move |packet| {
            let ty = &packet.ty;
            packet_info(ty, &direction)
        })
    });
    quote! {
        #(#attrs)*
        #doc
        #[derive(::core::fmt::Debug)]
        #vis enum #name {}

        #[automatically_derived]
        impl ::packet_runtime::Protocol for #name {
            type ClientToServer = #c2s;
            type ServerToClient = #s2c;
            const NAME: &'static ::core::primitive::str = #name_str;
            const PACKETS: &'static [::packet_runtime::PacketInfo] = &[#(#infos),*];
            const FINGERPRINT: ::core::primitive::u64 =
                ::packet_runtime::__private::fingerprint(<Self as ::packet_runtime::Protocol>::PACKETS);
        }
    }
}

/// One `PacketInfo` row. Written out rather than calling a generic helper: when `ty` is not a `Packet`, this use
/// then fails with the same diagnostic as every other `<ty as Packet>::ID`, and the compiler prints it once.
fn packet_info(ty: &syn::Path, direction: &syn::Ident) -> TokenStream {
    quote_spanned! {ty.span()=>
        ::packet_runtime::PacketInfo {
            id: <#ty as ::packet_runtime::Packet>::ID,
            name: <#ty as ::packet_runtime::Packet>::NAME,
            direction: ::packet_runtime::Direction::#direction,
        }
    }
}

/// The enum of one direction, its inherent methods, and its `PacketSet`, `From` and `PacketOf` impls.
fn packet_set_enum(protocol: &Protocol, set: &PacketSet) -> TokenStream {
    let vis = &protocol.vis;
    let protocol_name = &protocol.name;
    let PacketSet { attrs, direction, name, handler, packets, placeholder } = set;
    let keyword = direction.keyword();
    let direction = direction.variant();
    let hidden = placeholder.then(|| quote!(#[doc(hidden)]));
    let doc = (!has_doc(attrs)).then(|| {
        let doc = format!(
            " The `{keyword}` packets of [`{protocol_name}`], one variant per packet. Decode a frame with \
             [`{name}::decode`], handle it with [`{name}::dispatch`] or both at once with \
             [`{name}::decode_and_dispatch`]."
        );
        quote!(#[doc = #doc])
    });

    let tys: Vec<_> = packets.iter().map(|p| &p.ty).collect();
    let variants: Vec<_> = packets.iter().map(|p| &p.variant).collect();
    let methods: Vec<_> = packets.iter().map(|p| &p.method).collect();
    let variant_docs = packets.iter().map(|p| format!(" A `{}` packet.", p.display));
    let ids: Vec<_> = tys.iter().map(|ty| quote_spanned!(ty.span()=> <#ty as ::packet_runtime::Packet>::ID)).collect();
    let names = tys.iter().map(|ty| quote_spanned!(ty.span()=> <#ty as ::packet_runtime::Packet>::NAME));
    let infos = tys.iter().map(|ty| packet_info(ty, &direction));
    let contains = if packets.is_empty() { quote!(false) } else { quote!(::core::matches!(id, #(#ids)|*)) };

    let decode_doc = format!(
        " Decodes the payload of a frame with packet id `id` into the matching packet. Never panics: an id that is \
         not a `{keyword}` packet of `{protocol_name}` is `DecodeError::UnknownId`, a payload prost rejects is \
         `DecodeError::Malformed`."
    );
    let dispatch_doc = format!(" Calls the [`{handler}`] method for the packet held.");
    let decode_and_dispatch_doc = format!(
        " Decodes a frame's payload and calls the [`{handler}`] method for its packet, without building a \
         `{name}` in between. Errors as [`{name}::decode`]."
    );

    let per_packet = packets.iter().map(|packet| {
        let (ty, variant) = (&packet.ty, &packet.variant);
        // `quote!`, not `quote_spanned!`: the unused `'p` must carry the macro's span, or lints such as
        // `unused_lifetimes` would blame the user's code for it.
        quote! {
            #[automatically_derived]
            impl ::core::convert::From<#ty> for #name {
                #[inline]
                fn from(packet: #ty) -> Self {
                    #name::#variant(packet)
                }
            }

            // Higher-ranked so the bound is checked where the impl is used, not here: a listed type that is not a
            // `Packet` is then reported once, by the other uses of `<ty as Packet>`, instead of once more here.
            #[automatically_derived]
            impl ::packet_runtime::PacketOf<#name> for #ty where for<'p> #ty: ::packet_runtime::Packet {}
        }
    });

    quote! {
        #(#attrs)*
        #doc
        #hidden
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
        #vis enum #name {
            #(
                #[doc = #variant_docs]
                #variants(#tys),
            )*
        }

        impl #name {
            #[doc = #decode_doc]
            #[inline]
            // Two packets with one id are rejected by the generated const check with a clear message; the
            // compiler's "unreachable pattern" warning would only repeat it.
            #[allow(unreachable_patterns)]
            #vis fn decode(
                id: ::core::primitive::u16,
                payload: &[::core::primitive::u8],
            ) -> ::core::result::Result<Self, ::packet_runtime::DecodeError> {
                match id {
                    #(
                        #ids => ::core::result::Result::Ok(
                            #name::#variants(::packet_runtime::__private::decode::<#tys>(payload)?)
                        ),
                    )*
                    _ => ::core::result::Result::Err(
                        ::packet_runtime::__private::unknown_id(id, ::packet_runtime::Direction::#direction)
                    ),
                }
            }

            /// The wire id of the packet held.
            #[inline]
            #vis fn id(&self) -> ::core::primitive::u16 {
                match *self {
                    #(#name::#variants(_) => #ids,)*
                }
            }

            /// The `Packet::NAME` of the packet held.
            #[inline]
            #vis fn name(&self) -> &'static ::core::primitive::str {
                match *self {
                    #(#name::#variants(_) => #names,)*
                }
            }

            #[doc = #dispatch_doc]
            #[inline]
            #vis fn dispatch<H, Ctx>(self, handler: &mut H, ctx: &mut Ctx)
            where
                H: #handler<Ctx> + ?::core::marker::Sized,
                Ctx: ?::core::marker::Sized,
            {
                match self {
                    #(#name::#variants(packet) => handler.#methods(ctx, packet),)*
                }
            }

            #[doc = #decode_and_dispatch_doc]
            #[inline]
            #[allow(unreachable_patterns)]
            #vis fn decode_and_dispatch<H, Ctx>(
                id: ::core::primitive::u16,
                payload: &[::core::primitive::u8],
                handler: &mut H,
                ctx: &mut Ctx,
            ) -> ::core::result::Result<(), ::packet_runtime::DecodeError>
            where
                H: #handler<Ctx> + ?::core::marker::Sized,
                Ctx: ?::core::marker::Sized,
            {
                match id {
                    #(
                        #ids => {
                            handler.#methods(ctx, ::packet_runtime::__private::decode::<#tys>(payload)?);
                            ::core::result::Result::Ok(())
                        }
                    )*
                    _ => ::core::result::Result::Err(
                        ::packet_runtime::__private::unknown_id(id, ::packet_runtime::Direction::#direction)
                    ),
                }
            }
        }

        #[automatically_derived]
        impl ::packet_runtime::PacketSet for #name {
            type Protocol = #protocol_name;
            const DIRECTION: ::packet_runtime::Direction = ::packet_runtime::Direction::#direction;
            const PACKETS: &'static [::packet_runtime::PacketInfo] = &[#(#infos),*];

            #[inline]
            fn decode(
                id: ::core::primitive::u16,
                payload: &[::core::primitive::u8],
            ) -> ::core::result::Result<Self, ::packet_runtime::DecodeError> {
                #name::decode(id, payload)
            }

            #[inline]
            fn id(&self) -> ::core::primitive::u16 {
                #name::id(self)
            }

            #[inline]
            fn name(&self) -> &'static ::core::primitive::str {
                #name::name(self)
            }

            #[inline]
            #[allow(unreachable_patterns)]
            fn contains(id: ::core::primitive::u16) -> ::core::primitive::bool {
                #contains
            }

            #[inline]
            fn encoded_len(&self) -> ::core::primitive::usize {
                match *self {
                    #(#name::#variants(ref packet) => ::packet_runtime::__private::prost::Message::encoded_len(packet),)*
                }
            }

            #[inline]
            fn encode_payload(&self, buf: &mut impl ::packet_runtime::__private::bytes::BufMut) {
                match *self {
                    #(#name::#variants(ref packet) => ::packet_runtime::__private::encode_payload(packet, buf),)*
                }
            }
        }

        #(#per_packet)*
    }
}

/// The handler trait of one direction: one required method per packet, so a missing handler does not compile.
fn handler_trait(protocol: &Protocol, set: &PacketSet) -> TokenStream {
    let vis = &protocol.vis;
    let PacketSet { direction, name, handler, packets, placeholder, .. } = set;
    let hidden = placeholder.then(|| quote!(#[doc(hidden)]));
    let doc = format!(
        " Handles every `{}` packet of [`{}`]: one method per packet, all required, so adding a packet to the \
         protocol is a compile error until it is handled. `Ctx` is whatever the caller passes to \
         [`{name}::dispatch`] (a session, a connection), `()` by default.",
        direction.keyword(),
        protocol.name,
    );
    let methods = packets.iter().map(|packet| {
        let (ty, method) = (&packet.ty, &packet.method);
        let doc = format!(" Handles a `{}` packet.", packet.display);
        quote! {
            #[doc = #doc]
            fn #method(&mut self, ctx: &mut Ctx, packet: #ty);
        }
    });
    quote! {
        #[doc = #doc]
        #hidden
        #vis trait #handler<Ctx: ?::core::marker::Sized = ()> {
            #(#methods)*
        }
    }
}

/// One const per packet after the first, spanned on its type, that fails compilation when its id repeats an
/// earlier packet's id anywhere in the protocol; and one per packet that fails on the reserved id 0. Evaluated by the compiler because ids may be paths to consts.
fn unique_ids(protocol: &Protocol) -> TokenStream {
    let packets: Vec<_> = protocol.sets().into_iter().flat_map(|set| &set.packets).collect();
    // Id 0 belongs to the handshake's control frames: refused here too, for packets whose `Packet` impl is
    // hand-written (the derive refuses it itself).
    let reserved = packets.iter().map(|packet| {
        let ty = &packet.ty;
        quote_spanned! {ty.span()=>
            const _: () = ::packet_runtime::__private::assert_not_reserved_id(<#ty as ::packet_runtime::Packet>::ID);
        }
    });
    let reserved = quote!(const _: () = { #(#reserved)* };);
    if packets.len() < 2 {
        return reserved;
    }
    let protocol_name = protocol.name.to_string();
    let entries = packets.iter().map(|packet| {
        let (ty, display) = (&packet.ty, &packet.display);
        quote_spanned!(ty.span()=> (<#ty as ::packet_runtime::Packet>::ID, #display))
    });
    let checks = packets.iter().enumerate().skip(1).map(|(index, packet)| {
        quote_spanned! {packet.ty.span()=>
            const _: () = ::packet_runtime::__private::assert_unique_id(#protocol_name, PACKETS, #index);
        }
    });
    quote! {
        #reserved
        const _: () = {
            const PACKETS: &[::packet_runtime::__private::IdEntry] = &[#(#entries),*];
            #(#checks)*
        };
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn expand(input: TokenStream) -> String {
        define_packets(syn::parse2(input).unwrap()).to_string()
    }

    fn compile_errors(out: &str) -> Vec<&str> {
        out.match_indices(":: core :: compile_error ! {").map(|(at, _)| &out[at..]).collect()
    }

    #[test]
    fn generates_enums_traits_and_impls() {
        let out = expand(quote! {
            pub protocol Game {
                client_to_server ClientPacket { CLogin, proto::CEnterRoom }
                server_to_client ServerPacket { SLogin }
            }
        });
        assert!(compile_errors(&out).is_empty(), "{out}");
        for expected in [
            "pub enum Game { }",
            "impl :: packet_runtime :: Protocol for Game",
            "type ClientToServer = ClientPacket ;",
            "pub enum ClientPacket { # [doc = \" A `CLogin` packet.\"] CLogin (CLogin) , # [doc = \" A `proto::CEnterRoom` packet.\"] CEnterRoom (proto :: CEnterRoom) , }",
            "pub trait ClientPacketHandler < Ctx : ? :: core :: marker :: Sized = () >",
            "fn on_c_login (& mut self , ctx : & mut Ctx , packet : CLogin) ;",
            "fn on_c_enter_room (& mut self , ctx : & mut Ctx , packet : proto :: CEnterRoom) ;",
            "fn on_s_login (& mut self , ctx : & mut Ctx , packet : SLogin) ;",
            "< CLogin as :: packet_runtime :: Packet > :: ID => :: core :: result :: Result :: Ok (ClientPacket :: CLogin (:: packet_runtime :: __private :: decode :: < CLogin > (payload) ?))",
            "impl :: packet_runtime :: PacketOf < ServerPacket > for SLogin",
            "impl :: core :: convert :: From < proto :: CEnterRoom > for ClientPacket",
            "assert_unique_id (\"Game\" , PACKETS , 2usize)",
        ] {
            assert!(out.contains(expected), "missing `{expected}` in\n{out}");
        }
        // Two checks for three packets: each packet after the first is compared with those before it.
        assert_eq!(out.matches("assert_unique_id").count(), 2, "{out}");
    }

    #[test]
    fn repeated_packets_are_reported_and_dropped() {
        let out = expand(quote! {
            protocol Game {
                client_to_server C { A, B, A }
                server_to_client S { B, x::A }
            }
        });
        let errors = compile_errors(&out);
        assert_eq!(errors.len(), 2, "{out}");
        assert!(errors[0].contains("`A` is listed twice in protocol `Game` (already in this direction)"), "{out}");
        assert!(errors[1].contains("`B` is listed twice in protocol `Game` (first in `client_to_server`)"), "{out}");
        // The code is still generated, without the repeats; `x::A` is another type, so it stays.
        assert!(
            out.contains("enum C { # [doc = \" A `A` packet.\"] A (A) , # [doc = \" A `B` packet.\"] B (B) , }"),
            "{out}"
        );
        assert!(out.contains("enum S { # [doc = \" A `x::A` packet.\"] A (x :: A) , }"), "{out}");
    }

    #[test]
    fn two_types_with_one_name_in_a_direction_are_reported() {
        let out = expand(quote!(protocol Game { client_to_server C { a::A, b::A } server_to_client S { B } }));
        let errors = compile_errors(&out);
        assert_eq!(errors.len(), 1, "{out}");
        assert!(errors[0].contains("`b::A` and `a::A` would both become variant `A` / handler method `on_a`"), "{out}");
    }

    #[test]
    fn missing_and_empty_directions_still_generate_code() {
        let out = expand(quote!(protocol Game { client_to_server C {} }));
        let errors = compile_errors(&out);
        assert_eq!(errors.len(), 2, "{out}");
        assert!(errors[0].contains("`client_to_server C` lists no packets"), "{out}");
        assert!(errors[1].contains("protocol `Game` has no `server_to_client` packets"), "{out}");
        assert!(out.contains("enum __GameServerToClient { }"), "{out}");
        assert!(out.contains("type ServerToClient = __GameServerToClient ;"), "{out}");
        assert!(
            out.contains("fn contains (id : :: core :: primitive :: u16) -> :: core :: primitive :: bool { false }")
        );
    }

    #[test]
    fn a_misspelled_direction_stands_in_for_the_missing_one() {
        let out = expand(quote!(protocol Game { client_to_server C { A } server_to_clients S { B } }));
        let errors = compile_errors(&out);
        assert_eq!(errors.len(), 1, "{out}");
        assert!(errors[0].contains("unknown direction `server_to_clients`"), "{out}");
        assert!(out.contains("type ServerToClient = S ;"), "{out}");
    }

    #[test]
    fn malformed_syntax_is_a_parse_error() {
        assert!(syn::parse2::<ProtocolDef>(quote!(pub proto Game {})).is_err());
        assert!(syn::parse2::<ProtocolDef>(quote!(protocol Game { client_to_server C { A B } })).is_err());
        assert!(syn::parse2::<ProtocolDef>(quote!(protocol A {} protocol B {})).is_err());
    }
}
