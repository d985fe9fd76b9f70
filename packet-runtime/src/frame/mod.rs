//! The wire format: a fixed header followed by the protobuf payload.
//!
//! ```text
//! compact (default), little-endian        wide (frames over 64 KiB)
//! +--------+--------+-----------------+    +----------------+--------+-----------------+
//! | u16    | u16    | payload         |    | u32            | u16    | payload         |
//! | size   | id     | size - 4 bytes  |    | size           | id     | size - 6 bytes  |
//! +--------+--------+-----------------+    +----------------+--------+-----------------+
//! ```
//!
//! `size` counts the whole frame, header included, so it is never below the header length. The compact layout is the
//! one C++ and C# game clients commonly use; see `docs/PROTOCOL.md` for the byte-by-byte description.
//!
//! - `header`: the two layouts, chosen at the type level ([`Compact`], [`Wide`]) or at run time ([`HeaderKind`]).
//! - `parse`: finding complete frames in received bytes ([`parse_frame`]).
//! - `codec`: a tokio-util [`Decoder`](tokio_util::codec::Decoder)/[`Encoder`](tokio_util::codec::Encoder) for
//!   people who use `Framed`.

mod codec;
mod header;
mod parse;

pub use codec::{FrameCodec, FrameCodecError, OwnedFrame};
pub(crate) use header::with_header;
pub use header::{Compact, FrameHeader, FrameTooLarge, HeaderKind, Wide};
pub use parse::{FrameFault, RawFrame, parse_frame};
