//! Arbitrary bytes, cut into arbitrary reads, through `parse_frame` (whole and chunked) and `FrameCodec`, both
//! header layouts: they must agree on every frame and fault, never panic, never consume past the input.
//!
//! Input: `max_frame: u16 LE` (doubled, so the wide header can go past 64 KiB), `n: u8`, then `n % 8` read sizes
//! (one byte each, 1..=256), then the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/frames.rs"]
mod frames;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<3>() else { return };
    let max_frame = u16::from_le_bytes([head[0], head[1]]) as usize * 2;
    let count = (head[2] % 8) as usize;
    let Some((sizes, stream)) = rest.split_at_checked(count) else { return };
    let splits: Vec<usize> = sizes.iter().map(|&b| b as usize + 1).collect();
    frames::check_frames(stream, &splits, max_frame);
});
