//! Writes the `Packet` impl.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Data, DeriveInput};

use super::attr::{self, PacketAttr, PacketId};

/// The impl for a valid input, or every problem found.
pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    check_shape(input)?;
    let PacketAttr { id, name } = attr::parse(&input.attrs, &input.ident)?;
    let id = match id {
        Some(PacketId::Literal(id, lit)) => quote_spanned!(lit.span()=> #id),
        Some(PacketId::Const(path)) => quote!(#path),
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
    Ok(packet_impl(input, &id, &name))
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
