//! The names prost-build gives things, computed the way prost-build 0.14 computes them (`src/ident.rs` and
//! `Config::compile_fds` there), so the types this crate lists in `define_packets!` are the types prost-build writes.
//!
//! prost-build converts with [heck] 0.5; using the same crate (the workspace pins the major version prost-build
//! uses) keeps the word splitting identical, including the cases a hand-written conversion gets wrong: acronyms
//! (`HTTPRequest` -> `HttpRequest`), digits (`C_MOVE2` -> `CMove2`, `Vec3f` -> `Vec3f`) and lowercase names
//! (`c_move2` -> `CMove2`).

use heck::{ToShoutySnakeCase, ToUpperCamelCase};

/// The Rust type name prost-build gives a top-level message: heck's `UpperCamelCase`, then prost-build's
/// `sanitize_identifier`.
///
/// Of the sanitising rules only two can apply to an `UpperCamelCase` result: `Self` becomes `Self_`, and a name
/// starting with a digit gets a leading `_`. (The raw-identifier rule, `r#type`, is for lowercase keywords, which
/// `UpperCamelCase` never produces.)
pub(crate) fn rust_type_name(message: &str) -> String {
    let name = message.to_upper_camel_case();
    match name.as_str() {
        "Self" => "Self_".to_owned(),
        _ if name.starts_with(|c: char| c.is_numeric()) => format!("_{name}"),
        _ => name,
    }
}

/// The prefix of the id enum's values: the enum's name in `SCREAMING_SNAKE_CASE` plus `_` (`PacketId` ->
/// `PACKET_ID_`, `HTTPOpcode` -> `HTTP_OPCODE_`).
///
/// prost-build strips an enum's name from its variants after converting both to `UpperCamelCase`
/// (`PACKET_ID_C_LOGIN` -> `PacketIdCLogin`, minus `PacketId`). heck splits `SCREAMING_SNAKE_CASE` back into the
/// same words, so a value with this prefix loses exactly the prefix, and the Rust variant of a packet's value is the
/// packet's type name: `PacketId::CLogin` for `CLogin`.
pub(crate) fn enum_value_prefix(id_enum: &str) -> String {
    format!("{}_", id_enum.to_shouty_snake_case())
}

/// The file prost-build writes a package's messages to: the package name plus `.rs`, or `_.rs` without a package
/// (prost-build's default `default_package_filename`).
pub(crate) fn messages_file_name(package: &str) -> String {
    if package.is_empty() { "_.rs".to_owned() } else { format!("{package}.rs") }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Message names a hand-written conversion is likely to get wrong, with the Rust name prost-build gives each.
    const TRICKY: &[(&str, &str)] = &[
        ("C_LOGIN", "CLogin"),
        ("S_ENTER_ROOM", "SEnterRoom"),
        ("PosInfo", "PosInfo"),
        ("player_info", "PlayerInfo"),
        ("HTTPRequest", "HttpRequest"),
        ("S_HTTPStatus", "SHttpStatus"),
        ("XMLHttpRequest", "XmlHttpRequest"),
        ("c_move2", "CMove2"),
        ("C_MOVE2", "CMove2"),
        ("Vec3f", "Vec3f"),
        ("Move2D", "Move2D"),
        ("HTTP2Server", "Http2Server"),
        ("S_PLAYER_3D_POS", "SPlayer3dPos"),
        ("c__double", "CDouble"),
        ("Self", "Self_"),
    ];

    /// Enum names, with the value prefix this crate expects, whose stripping by prost-build must leave exactly the
    /// message's type name.
    const ENUMS: &[(&str, &str)] = &[
        ("PacketId", "PACKET_ID_"),
        ("Opcode", "OPCODE_"),
        ("HTTPOpcode", "HTTP_OPCODE_"),
        ("Opcode2D", "OPCODE2_D_"),
    ];

    #[test]
    fn names_follow_prost_build() {
        for (proto, rust) in TRICKY {
            assert_eq!(rust_type_name(proto), *rust, "{proto}");
        }
        for (name, prefix) in ENUMS {
            assert_eq!(enum_value_prefix(name), *prefix, "{name}");
        }

        // The expectations above are this crate's reading of prost-build; run prost-build itself to prove them. One
        // file per message (`C_MOVE2` and `c_move2` are one type name, so they cannot share a file), holding the
        // message and, per enum, a value `<prefix><message>`.
        for (proto, rust) in TRICKY {
            let mut source = format!("syntax = \"proto3\";\npackage names;\nmessage {proto} {{ }}\n");
            for (name, _) in ENUMS {
                let prefix = enum_value_prefix(name);
                source.push_str(&format!("enum {name} {{ {prefix}UNSPECIFIED = 0; {prefix}{proto} = 1; }}\n"));
            }
            let generated = prost_build_output(&source, "names");
            let structs: Vec<_> = generated
                .lines()
                .filter_map(|line| line.trim_start().strip_prefix("pub struct "))
                .map(|rest| rest.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap())
                .collect();
            assert_eq!(structs, [*rust], "prost-build's type for message `{proto}`:\n{generated}");
            for (name, _) in ENUMS {
                let variants = enum_variants(&generated, &name.to_upper_camel_case());
                assert_eq!(
                    variants,
                    ["Unspecified", rust],
                    "prost-build's `{name}` variants for `{proto}`:\n{generated}"
                );
            }
        }
    }

    /// prost-build's output (default configuration) for `source`, read from the file [`messages_file_name`] gives
    /// for `package`: a missing file fails the test.
    fn prost_build_output(source: &str, package: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("packet-build-names-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("names.proto"), source).unwrap();
        let descriptors = protox::compile(["names.proto"], [&dir]).unwrap_or_else(|error| panic!("{error}\n{source}"));
        prost_build::Config::new().out_dir(&dir).compile_fds(descriptors).unwrap();
        let file = dir.join(messages_file_name(package));
        let generated = fs::read_to_string(&file).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        fs::remove_dir_all(&dir).unwrap();
        generated
    }

    /// The variant names of `pub enum <name>` in prost-build's output (one `Variant = number,` per line).
    fn enum_variants<'a>(generated: &'a str, name: &str) -> Vec<&'a str> {
        let start = generated.find(&format!("pub enum {name} {{")).unwrap_or_else(|| panic!("no enum {name}"));
        generated[start..]
            .lines()
            .skip(1)
            .take_while(|line| line.trim() != "}")
            .filter_map(|line| line.trim().split_once(" = "))
            .map(|(variant, _)| variant)
            .collect()
    }

    #[test]
    fn messages_file_follows_prost_build() {
        for package in ["game", "game.v1", ""] {
            let declaration = if package.is_empty() { String::new() } else { format!("package {package};") };
            let generated = prost_build_output(&format!("syntax = \"proto3\"; {declaration} message M {{ }}"), package);
            assert!(generated.contains("pub struct M {"), "{generated}");
        }
        assert_eq!(messages_file_name("game.v1"), "game.v1.rs");
        assert_eq!(messages_file_name(""), "_.rs");
    }
}
