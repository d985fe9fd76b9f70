//! Writes the `Packet` impl.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput};

use super::attr::{self, PacketAttr, PacketId};

/// The impl for a valid input, or every problem found.
pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    check_shape(input)?;
    let PacketAttr { id, name } = attr::parse(&input.attrs, &input.ident)?;
    // A const path's value is known to the compiler only: a const assertion refuses 0 (the reserved id) there.
    let mut reserved_check = None;
    let id = match id {
        Some(PacketId::Literal(id, lit)) => quote_spanned!(lit.span()=> #id),
        Some(PacketId::Const(path)) => {
            if input.generics.params.is_empty() {
                let ident = &input.ident;
                reserved_check = Some(quote_spanned! {path.span()=>
                    const _: () = ::packet_runtime::__private::assert_not_reserved_id(
                        <#ident as ::packet_runtime::Packet>::ID,
                    );
                });
            }
            quote!(#path)
        }
        None => unreachable!("attr::parse reports a missing id"),
    };
    let name = match name {
        Some(name) => quote!(#name),
        None => {
            let ident = input.ident.to_string();
            let ident = ident.strip_prefix("r#").unwrap_or(&ident);
            quote!(#ident)
        }
    };
    let packet_impl = packet_impl(input, &id, &name);
    Ok(quote!(#packet_impl #reserved_check))
}

/// What to emit beside the errors: a stub impl for a struct so that uses of the type as a packet do not add errors
/// of their own, nothing for an enum or union (they cannot be prost messages anyway).
pub(crate) fn fallback(input: &DeriveInput, err: syn::Error) -> TokenStream {
    let errors = err.to_compile_error();
    if !matches!(input.data, Data::Struct(_)) {
        return errors;
    }
    let ident = input.ident.to_string();
    let stub = packet_impl(input, &quote!(0), &quote!(#ident));
    quote!(#errors #stub)
}

fn check_shape(input: &DeriveInput) -> syn::Result<()> {
    let (keyword, what) = match &input.data {
        Data::Struct(_) => return Ok(()),
        Data::Enum(data) => (data.enum_token.span, "an enum; a protobuf `oneof` is a field of a message struct"),
        Data::Union(data) => (data.union_token.span, "a union"),
    };
    Err(syn::Error::new(
        keyword,
        format_args!("`#[derive(Packet)]` works on prost message structs only, not on {what}"),
    ))
}

/// The impl itself, and the assertion that the type is a prost message.
///
/// The impl's `where for<'p> Self: ProstMessage` lets the compiler accept `Packet`'s supertraits from that bound
/// instead of reporting each missing one; being higher-ranked, the bound is not checked where the impl is written,
/// so the assertion beside it is the only error a non-prost type gets (with `ProstMessage`'s message).
fn packet_impl(input: &DeriveInput, id: &TokenStream, name: &TokenStream) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let predicates = where_clause.map(|clause| &clause.predicates);
    let prost_bound = quote!(for<'p> Self: ::packet_runtime::__private::ProstMessage);
    // A generic type has no single type to assert on; its uses get the compiler's own errors.
    let assertion = input.generics.params.is_empty().then(|| {
        quote_spanned! {ident.span()=>
            const _: () = ::packet_runtime::__private::assert_prost_message::<#ident>();
        }
    });
    quote! {
        #assertion

        #[automatically_derived]
        impl #impl_generics ::packet_runtime::Packet for #ident #ty_generics
        where
            #prost_bound,
            #predicates
        {
            const ID: ::core::primitive::u16 = #id;
            const NAME: &'static ::core::primitive::str = #name;
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn expand(input: TokenStream) -> syn::Result<String> {
        derive(&syn::parse2(input).unwrap()).map(|tokens| tokens.to_string())
    }

    fn errors(input: TokenStream) -> Vec<String> {
        expand(input).unwrap_err().into_iter().map(|err| err.to_string()).collect()
    }

    #[test]
    fn literal_id_and_default_name() {
        let out = expand(quote!(
            #[packet(id = 1000)]
            struct CLogin {
                name: String,
            }
        ))
        .unwrap();
        assert!(out.contains("impl :: packet_runtime :: Packet for CLogin"), "{out}");
        assert!(out.contains("const ID : :: core :: primitive :: u16 = 1000u16 ;"), "{out}");
        assert!(out.contains("const NAME : & 'static :: core :: primitive :: str = \"CLogin\" ;"), "{out}");
        assert!(out.contains("assert_prost_message :: < CLogin >"), "{out}");
        assert!(out.contains("# [automatically_derived]"), "{out}");
    }

    #[test]
    fn const_path_id_and_explicit_name() {
        let out = expand(quote!(
            #[packet(id = ids::C_LOGIN, name = "C_LOGIN")]
            struct CLogin;
        ))
        .unwrap();
        assert!(out.contains("const ID : :: core :: primitive :: u16 = ids :: C_LOGIN ;"), "{out}");
        assert!(out.contains("= \"C_LOGIN\" ;"), "{out}");
    }

    #[test]
    fn id_range_is_checked() {
        assert!(
            expand(quote!(
                #[packet(id = 65535)]
                struct A;
            ))
            .is_ok()
        );
        assert!(
            expand(quote!(
                #[packet(id = 1u16)]
                struct A;
            ))
            .is_ok()
        );
        // 0 belongs to the handshake's control frames.
        assert_eq!(
            errors(quote!(
                #[packet(id = 0u16)]
                struct A;
            )),
            [crate::derive_packet::attr::RESERVED_ID]
        );
        assert_eq!(
            errors(quote!(
                #[packet(id = 65536)]
                struct A;
            )),
            ["packet id 65536 is out of range: ids are `u16`, 1..=65535 (0 is reserved)"]
        );
        assert_eq!(
            errors(quote!(
                #[packet(id = -1)]
                struct A;
            )),
            ["packet id is out of range: ids are `u16`, 1..=65535 (0 is reserved)"]
        );
        assert!(
            errors(quote!(
                #[packet(id = 7u32)]
                struct A;
            ))[0]
                .contains("a packet id is a `u16`")
        );
    }

    #[test]
    fn every_attribute_error_is_reported_at_once() {
        let errors = errors(quote!(
            #[packet(opcode = 1, name = 5)]
            #[packet(name = "B", name = "C")]
            struct A;
        ));
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].starts_with("unknown key in `#[packet(..)]`; valid keys are `id"), "{errors:?}");
        assert!(errors[1].starts_with("expected a non-empty string literal for `name`"), "{errors:?}");
        assert!(errors[2].starts_with("`name` is given twice"), "{errors:?}");
        assert!(errors[3].starts_with("`name` is given twice"), "{errors:?}");
        assert!(errors[4].starts_with("missing `id` in `#[packet(..)]`"), "{errors:?}");
    }

    #[test]
    fn missing_attribute_and_wrong_item_kinds() {
        assert!(
            errors(quote!(
                struct A;
            ))[0]
                .starts_with("missing `#[packet(id = ..)]`")
        );
        assert!(
            errors(quote!(
                #[packet(id = 1)]
                enum A {
                    B,
                }
            ))[0]
                .contains("not on an enum")
        );
        assert!(errors(quote!(#[packet(id = 1)] union A { b: u8 }))[0].contains("not on a union"));
    }

    #[test]
    fn fallback_emits_a_stub_for_structs_only() {
        let input: DeriveInput = syn::parse2(quote!(
            struct A;
        ))
        .unwrap();
        let out = fallback(&input, derive(&input).unwrap_err()).to_string();
        assert!(out.contains("compile_error") && out.contains("const ID : :: core :: primitive :: u16 = 0"), "{out}");
        let input: DeriveInput = syn::parse2(quote!(
            enum A {}
        ))
        .unwrap();
        let out = fallback(&input, derive(&input).unwrap_err()).to_string();
        assert!(out.contains("compile_error") && !out.contains("impl"), "{out}");
    }
}
