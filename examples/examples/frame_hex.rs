//! Prints, in hex, the frame the Rust encoder makes for `C_CHAT { msg }` (compact header), or with `--hello` the
//! client hello of the version handshake with that version string: the references the C# and C++ packet tables'
//! frame writers are checked against (`clients/run-tests.sh`).
//!
//! ```text
//! cargo run -p examples --example frame_hex -- "hello"
//! cargo run -p examples --example frame_hex -- --hello "unity client 1.0"
//! ```

use demo_protocol::GameProtocol;
use demo_protocol::proto::CChat;
use packet_runtime::handshake::{CONTROL_ID, Hello, HelloKind};
use packet_runtime::{Compact, FrameHeader, PacketPtr};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bytes = match args.as_slice() {
        [flag, version] if flag == "--hello" => {
            let payload = Hello::of::<GameProtocol>(version.as_str()).payload(HelloKind::FromClient);
            let mut head = [0u8; 8];
            Compact::write(&mut head, Compact::LEN + payload.len(), CONTROL_ID).expect("a hello fits a frame");
            [&head[..Compact::LEN], &payload].concat()
        }
        _ => {
            let msg = args.first().cloned().unwrap_or_default();
            PacketPtr::encode(&CChat { msg }).expect("a chat line fits a frame").as_slice().to_vec()
        }
    };
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
}
