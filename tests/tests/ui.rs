//! Compile-time checks of `#[derive(Packet)]` and `define_packets!`.
//!
//! Each file in `ui/` makes one mistake, named after it in kebab-case; the `.stderr` beside it is the exact
//! error the user sees. After changing a message on purpose, regenerate the snapshots with
//! `TRYBUILD=overwrite cargo test -p tests --test ui` and review the diff.
//!
//! `ui/pass/` compiles under strict lints (`#![deny(warnings, unused_qualifications, ..)]`) and runs: the
//! generated code must be lint-clean in user crates.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
    t.pass("ui/pass/*.rs");
}
