//! Reads `#[packet(id = .., name = "..")]`.
//!
//! Every problem is collected (unknown key, repeated key, bad value, missing id) so a user fixes them in one pass.

use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, ExprPath, Lit, LitInt, LitStr, UnOp};

use crate::errors::Errors;

/// The keys `#[packet(..)]` accepts, for error messages.
const VALID_KEYS: &str = "`id = <u16 literal or const path>`, `name = \"<display name>\"`";

/// Why id 0 is refused, for both forms of id (the const-path check repeats it in `__private`).
pub(crate) const RESERVED_ID: &str = "packet id 0 is reserved for the toolkit's control frames (the version \
    handshake, docs/PROTOCOL.md); give the packet an id from 1 to 65535";

/// The wire id as written.
pub(crate) enum PacketId {
    /// An integer literal, range-checked at expansion.
    Literal(u16, LitInt),
    /// A path to a `u16` const, type-checked by the compiler.
    Const(ExprPath),
}

/// The parsed attribute. `id` is `None` only when an error was reported.
pub(crate) struct PacketAttr {
    pub(crate) id: Option<PacketId>,
    pub(crate) name: Option<LitStr>,
}

/// Parses every `#[packet]` attribute of the item; keys may be spread over several attributes but each appears once.
pub(crate) fn parse(attrs: &[Attribute], ident: &syn::Ident) -> syn::Result<PacketAttr> {
    let mut errors = Errors::default();
    let mut id: Option<PacketId> = None;
    let mut name: Option<LitStr> = None;
    let mut seen_id = false;
    let mut seen_name = false;
    let mut last_attr = None;

    for attr in attrs.iter().filter(|attr| attr.path().is_ident("packet")) {
        last_attr = Some(attr);
        let parsed = attr.parse_nested_meta(|meta| {
            let key = if meta.path.is_ident("id") {
                "id"
            } else if meta.path.is_ident("name") {
                "name"
            } else {
                errors.spanned(&meta.path, format_args!("unknown key in `#[packet(..)]`; valid keys are {VALID_KEYS}"));
                // Skip the value so the keys after it are still checked.
                if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<Expr>()?;
                }
                return Ok(());
            };
            let value = meta.value()?.parse::<Expr>()?;
            let seen = if key == "id" { &mut seen_id } else { &mut seen_name };
            if std::mem::replace(seen, true) {
                errors.spanned(&meta.path, format_args!("`{key}` is given twice; `#[packet(..)]` takes each key once"));
                return Ok(());
            }
            match key {
                "id" => id = packet_id(value, &mut errors),
                _ => name = display_name(value, &mut errors),
            }
            Ok(())
        });
        if let Err(err) = parsed {
            errors.push(err);
        }
    }

    match last_attr {
        None => errors.spanned(
            ident,
            "missing `#[packet(id = ..)]`: every packet needs a wire id, e.g. `#[packet(id = 1000)]` or \
             `#[packet(id = ids::C_LOGIN)]`",
        ),
        Some(attr) if !seen_id => errors.spanned(attr, "missing `id` in `#[packet(..)]`, e.g. `#[packet(id = 1000)]`"),
        Some(_) => {}
    }
    errors.finish()?;
    Ok(PacketAttr { id, name })
}

fn packet_id(value: Expr, errors: &mut Errors) -> Option<PacketId> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) => {
            if !matches!(lit.suffix(), "" | "u16") {
                errors.spanned(&lit, "a packet id is a `u16`: write it without a suffix or with `u16`");
                return None;
            }
            match lit.base10_parse::<u16>() {
                Ok(0) => {
                    errors.spanned(&lit, RESERVED_ID);
                    None
                }
                Ok(id) => Some(PacketId::Literal(id, lit)),
                Err(_) => {
                    errors.spanned(
                        &lit,
                        format_args!("packet id {} is out of range: ids are `u16`, 1..=65535 (0 is reserved)", lit),
                    );
                    None
                }
            }
        }
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) && is_int_literal(&unary.expr) => {
            errors.spanned(&unary, "packet id is out of range: ids are `u16`, 1..=65535 (0 is reserved)");
            None
        }
        Expr::Path(path) if path.qself.is_none() => Some(PacketId::Const(path)),
        // A `$id:expr` forwarded by a `macro_rules!` macro arrives wrapped in an invisible group.
        Expr::Group(group) => packet_id(*group.expr, errors),
        other => {
            errors.spanned(
                &other,
                "expected an integer literal or a path to a `u16` const, e.g. `id = 1000` or `id = ids::C_LOGIN`",
            );
            None
        }
    }
}

fn is_int_literal(expr: &Expr) -> bool {
    matches!(expr, Expr::Lit(ExprLit { lit: Lit::Int(_), .. }))
}

fn display_name(value: Expr, errors: &mut Errors) -> Option<LitStr> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) if !lit.value().is_empty() => Some(lit),
        Expr::Group(group) => display_name(*group.expr, errors),
        other => {
            errors.push(syn::Error::new(
                other.span(),
                "expected a non-empty string literal for `name`, e.g. `name = \"C_LOGIN\"`",
            ));
            None
        }
    }
}
