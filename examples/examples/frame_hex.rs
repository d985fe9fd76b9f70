//! Prints, in hex, the frame the Rust encoder makes for `C_CHAT { msg }` (compact header): the reference the C# and
//! C++ packet tables' frame writers are checked against (`clients/run-tests.sh`).
//!
//! ```text
//! cargo run -p examples --example frame_hex -- "hello"
//! ```

use demo_protocol::proto::CChat;
use packet_runtime::PacketPtr;

fn main() {
    let msg = std::env::args().nth(1).unwrap_or_default();
    let frame = PacketPtr::encode(&CChat { msg }).expect("a chat line fits a frame");
    let hex: String = frame.as_slice().iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
}
