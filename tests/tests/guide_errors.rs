//! Keeps the compile-error catalogue of `packet-runtime`'s crate docs (`packet-runtime/src/guide.md`) in step with
//! the trybuild snapshots in `tests/ui/`: every compile-fail case is named in the guide with the first line of its
//! `.stderr` verbatim, and every case the guide names exists.

use std::fs;
use std::path::Path;

const GUIDE: &str = include_str!("../../packet-runtime/src/guide.md");

#[test]
fn guide_names_every_trybuild_case_with_its_message() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let entries = fs::read_dir(&ui).unwrap_or_else(|e| panic!("cannot read {}: {e}", ui.display()));
    let mut cases = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "stderr") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap();
        let stderr = fs::read_to_string(&path).unwrap();
        let first_line = stderr.lines().next().unwrap_or_default();
        assert!(
            GUIDE.contains(&format!("`tests/ui/{name}.rs`")),
            "packet-runtime/src/guide.md does not name tests/ui/{name}.rs"
        );
        assert!(
            GUIDE.lines().any(|line| line == first_line),
            "packet-runtime/src/guide.md does not quote the message of tests/ui/{name}.rs:\n{first_line}"
        );
        cases += 1;
    }
    assert!(cases > 0, "no .stderr snapshots in {}", ui.display());

    for named in GUIDE.split("`tests/ui/").skip(1) {
        let file = named.split('`').next().unwrap();
        if file.is_empty() {
            continue; // the directory itself
        }
        assert!(ui.join(file).is_file(), "packet-runtime/src/guide.md names tests/ui/{file}, which does not exist");
    }
}
