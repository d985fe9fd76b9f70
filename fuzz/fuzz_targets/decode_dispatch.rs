//! `(id, payload)` through `ClientPacket::decode`, `ServerPacket::decode` and `decode_and_dispatch`: never a panic,
//! dispatch agrees with decode, and a decoded packet survives re-encoding unchanged.
//!
//! Input: `id: u16 LE` (ids below 0x8000 are folded onto the demo protocol's range 1000..=1015 so most inputs reach a
//! real message), then the payload.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/dispatch.rs"]
mod dispatch;

fuzz_target!(|data: &[u8]| {
    let Some((head, payload)) = data.split_first_chunk::<2>() else { return };
    let raw = u16::from_le_bytes(*head);
    let id = if raw < 0x8000 { 1000 + raw % 16 } else { raw };
    dispatch::check_decode(id, payload);
});
