//! The benchmark harness in `--quick` mode against the debug binaries: keeps it from rotting. Checks the report is
//! complete and consistent; never asserts on timing.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn quick_loadtest_reports_every_contender() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_game_server")).parent().expect("a directory");
    // Every contender must be the binary cargo built for this test run, not a stale one.
    for bin in [env!("CARGO_BIN_EXE_baseline"), env!("CARGO_BIN_EXE_raw_echo")] {
        assert_eq!(Path::new(bin).parent(), Some(bin_dir));
    }
    let output = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["--quick", "--json", "--idle-connections", "20", "--bin-dir"])
        .arg(bin_dir)
        .output()
        .expect("loadtest runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "loadtest failed: {stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");

    let results = report["results"].as_array().expect("results");
    let has = |scenario: &str, contender: &str| {
        results.iter().any(|r| r["scenario"] == scenario && r["contender"] == contender)
    };
    for contender in ["server", "server-metrics", "baseline-send", "baseline-batched", "raw-echo"] {
        assert!(has("echo", contender), "echo/{contender} missing: {results:#?}");
    }
    for contender in ["server", "server-metrics", "baseline-send", "baseline-batched"] {
        assert!(has("chat", contender), "chat/{contender} missing: {results:#?}");
    }
    assert!(!has("chat", "raw-echo"), "the raw echo cannot serve chat");
    for row in results {
        let what = format!("{}/{}", row["scenario"], row["contender"]);
        assert_eq!(row["errors"], 0.0, "{what}: {row:#}");
        assert!(row["msgs_per_sec"].as_f64().unwrap() > 0.0, "{what}: {row:#}");
        assert!(row["delivered"].as_f64().unwrap() > 0.0, "{what}: {row:#}");
        let (p50, p99) = (row["p50_us"].as_f64().unwrap(), row["p99_us"].as_f64().unwrap());
        assert!(p50 > 0.0 && p99 >= p50, "{what}: {row:#}");
        assert!(row["peak_rss_mib"].as_f64().unwrap() > 0.0, "{what}: {row:#}");
        // Counted, not asserted here: the figure depends on the load and on prost (its decode of `bytes` and `string`
        // fields allocates); tests/tests/zero_alloc_server.rs asserts the runtime's own count.
        assert!(row["allocs_per_msg"].as_f64().is_some_and(f64::is_finite), "{what}: {row:#}");
        assert_eq!(row["runs"], 1, "{what}");
        if row["contender"] == "server" {
            assert_eq!(row["throughput_vs_server"], 1.0, "{what}");
        } else {
            assert!(row["throughput_vs_server"].as_f64().unwrap() > 0.0, "{what}: {row:#}");
        }
    }
    let idle = report["idle"].as_array().expect("idle");
    assert!(idle.iter().any(|i| i["contender"] == "server"), "{idle:#?}");
    for figure in idle {
        assert_eq!(figure["connected"], 20, "{figure:#}");
        assert!(figure["rss_after_kib"].as_u64().unwrap() > 0, "{figure:#}");
    }
    assert!(report["machine"]["nproc"].as_u64().unwrap() > 0);
}
