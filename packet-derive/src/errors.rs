//! Collects independent errors of one expansion so they are reported together, not first-only.

use core::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// Errors found so far; empty means the input is valid.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Adds an error spanned on `tokens` (all of them where the compiler can join spans).
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// `Ok(())` if nothing was reported, else every error combined.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }

    pub(crate) fn into_compile_errors(self) -> TokenStream {
        self.0.map(|err| err.to_compile_error()).unwrap_or_default()
    }
}
