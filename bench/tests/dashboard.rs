//! The dashboard picture in `--quick` mode against the debug binaries: it scrapes a real run, draws every panel of
//! the Grafana dashboard, and writes a PNG. Checks the picture and the figures it reports; never asserts on timing.

use std::path::Path;
use std::process::Command;

#[test]
fn quick_dashboard_draws_every_panel_from_a_scraped_run() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_game_server")).parent().expect("a directory");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-quick.png");
    let _ = std::fs::remove_file(&out);
    let output = Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .args(["--quick", "--bin-dir"])
        .arg(bin_dir)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("dashboard runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "dashboard failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));

    let png = std::fs::read(&out).expect("the picture is written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    // IHDR: width and height, big-endian, at bytes 16..24: the dashboard's 24 grid columns of 70 px.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, 24 * 70);

    let line = |title: &str| {
        stdout.lines().find(|l| l.starts_with(&format!("{title}: "))).unwrap_or_else(|| panic!("{title}:\n{stdout}"))
    };
    for title in ["Sessions", "Messages/s by packet", "Handler p99 by packet", "Closes by reason", "Pool"] {
        line(title);
    }
    // The fleets were seen: at least the 12 chat bots at once, at most they and the 4 echo bots; chat both ways.
    let sessions: f64 = line("Sessions")
        .strip_prefix("Sessions: sessions (max ")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!((12.0..=16.0).contains(&sessions), "{sessions}");
    let messages = line("Messages/s by packet");
    assert!(messages.contains("in C_CHAT") && messages.contains("out S_CHAT"), "{messages}");
    assert!(line("Handler p99 by packet").contains("C_CHAT"), "{stdout}");
    assert!(line("Closes by reason").contains("peer_closed"), "{stdout}");
}
