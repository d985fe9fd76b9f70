//! Golden-file tests: the exact bytes packet-build writes for `tests/fixtures/arena.proto`, compared with the
//! committed files in `tests/golden/`.
//!
//! The unit tests check properties of the output (this packet is in that set, that message has the derive); these
//! pin all of it, so every change to the generated code, whether from this crate or from a prost-build upgrade,
//! arrives as a diff of a committed file that someone reviews.
//!
//! - `tests/golden/arena.rs`: prost-build's messages with the packet attributes this crate adds.
//! - `tests/golden/arena_packets.rs`: the `define_packets!` invocation.
//!
//! When a change of the output is intended, regenerate the golden files and review the diff:
//!
//! ```sh
//! PACKET_BUILD_BLESS=1 cargo test -p packet-build --test golden
//! git diff packet-build/tests/golden
//! ```

use std::path::Path;
use std::{env, fs};

/// Set (to anything but `0`) to write the generated files over the golden files instead of comparing.
const BLESS: &str = "PACKET_BUILD_BLESS";

#[test]
fn generated_files_match_the_golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Kept after the run (under target/tmp), so a mismatch can be inspected with `diff`.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("packet-build-golden");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();

    // Defaults everywhere, so the golden files also pin the default names (`ArenaProtocol`, `crate::proto`, …).
    let compiled = packet_build::ProtoPackets::new(root.join("tests/fixtures/arena.proto"))
        .out_dir(&out)
        .rerun_if_changed(false)
        .compile()
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(compiled.messages_file, out.join("arena.rs"));
    assert_eq!(compiled.packets_file, out.join("arena_packets.rs"));

    let golden = root.join("tests/golden");
    let mismatches: Vec<String> = ["arena.rs", "arena_packets.rs"]
        .into_iter()
        .filter_map(|name| compare(&out.join(name), &golden.join(name)).err())
        .collect();
    assert!(
        mismatches.is_empty(),
        "{}\n\nIf the new output is intended, regenerate the golden files and review the diff:\n  \
         {BLESS}=1 cargo test -p packet-build --test golden\n  git diff packet-build/tests/golden",
        mismatches.join("\n\n")
    );
}

/// Compares one generated file with its golden file (or, when blessing, overwrites the golden file). The error
/// names both files, so `diff -u` shows the whole difference, and quotes the first differing line.
fn compare(generated: &Path, golden: &Path) -> Result<(), String> {
    let actual = fs::read_to_string(generated).map_err(|error| format!("{}: {error}", generated.display()))?;
    if env::var_os(BLESS).is_some_and(|value| value != "0") {
        fs::write(golden, &actual).map_err(|error| format!("{}: {error}", golden.display()))?;
        eprintln!("{BLESS}: wrote {}", golden.display());
        return Ok(());
    }
    let expected = match fs::read_to_string(golden) {
        Ok(expected) => expected,
        Err(error) => return Err(format!("golden file {}: {error}", golden.display())),
    };
    if actual == expected {
        return Ok(());
    }
    let (expected_lines, actual_lines): (Vec<_>, Vec<_>) =
        (expected.split_inclusive('\n').collect(), actual.split_inclusive('\n').collect());
    let first = expected_lines.iter().zip(&actual_lines).take_while(|(e, a)| e == a).count();
    // Lines are quoted with `{:?}` so a difference in whitespace or line endings is visible.
    let quote =
        |lines: &[&str]| lines.get(first).map_or_else(|| "(end of file)".to_owned(), |line| format!("{line:?}"));
    Err(format!(
        "generated {} differs from golden {} ({} lines generated, {} golden); first difference at line {}:\n  \
         golden:    {}\n  generated: {}\nfull diff: diff -u {} {}",
        generated.display(),
        golden.display(),
        actual_lines.len(),
        expected_lines.len(),
        first + 1,
        quote(&expected_lines),
        quote(&actual_lines),
        golden.display(),
        generated.display(),
    ))
}
