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

/// The impl itself. The `where Self: ProstMessage` bound makes a non-prost type fail with that trait's message
/// alone: the compiler accepts `Packet`'s supertraits from the bound instead of reporting each one.
fn packet_impl(input: &DeriveInput, id: &TokenStream, name: &TokenStream) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let predicates = where_clause.map(|clause| &clause.predicates);
    let prost_bound = quote_spanned!(ident.span()=> Self: ::packet_runtime::__private::ProstMessage);
    quote! {
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
