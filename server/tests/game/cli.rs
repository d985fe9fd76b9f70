//! The binary's flags: values the runtime would silently change are refused with a reason and status 2 (like
//! clap's usage errors), so the `server started` line always shows what runs (checked in the `logs` suite).

use std::process::Command;

/// Runs the server binary with `args`; returns its exit status and standard error.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("the server binary runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn values_the_runtime_would_change_are_refused_with_status_2_and_a_reason() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["--workers", "0"], &["--workers must be at least 1", "would run 1 IO thread"]),
        (&["--max-frame", "100000"], &["--max-frame 100000 is outside 4..=65535", "would enforce 65535"]),
        (&["--max-frame", "3"], &["--max-frame 3 is outside 4..=65535", "would enforce 4"]),
        (&["--rate-limit", "4294967295"], &["--rate-limit 4294967295 is over 2147483647", "burst"]),
    ];
    for &(args, says) in cases {
        let (status, stderr) = run(args);
        assert_eq!(status, Some(2), "{args:?}: status; stderr:\n{stderr}");
        for words in says {
            assert!(stderr.contains(words), "{args:?}: stderr should say {words:?}:\n{stderr}");
        }
        assert!(!stderr.contains("server started"), "{args:?}: refused before starting:\n{stderr}");
    }
}

#[test]
fn a_flag_clap_refuses_is_status_2_as_well() {
    let (status, stderr) = run(&["--workers", "-1"]);
    assert_eq!(status, Some(2), "{stderr}");
}

#[test]
fn an_auth_secret_that_cannot_be_used_is_refused_with_status_2_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("auth-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let short = dir.join("short-secret");
    std::fs::write(&short, "tooshort\n").unwrap();
    let missing = dir.join("no-such-file");
    for (path, says) in [(&short, "at least 16"), (&missing, "cannot read the secret file")] {
        let (status, stderr) = run(&["--auth-secret-file", path.to_str().unwrap()]);
        assert_eq!(status, Some(2), "{stderr}");
        assert!(stderr.contains(says) && stderr.contains(path.to_str().unwrap()), "{stderr}");
        assert!(!stderr.contains("tooshort"), "the secret is never printed:\n{stderr}");
    }
    // The development endpoint needs the web listener and a secret.
    let (status, stderr) = run(&["--dev-tokens"]);
    assert_eq!(status, Some(2), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
