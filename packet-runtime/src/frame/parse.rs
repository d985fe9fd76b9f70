//! Finding frames in received bytes: a cheap completeness check, then the split. No allocation.

use super::FrameHeader;

/// Why a frame was rejected before its payload was looked at. The stream can no longer be trusted to be in sync,
/// except where noted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameFault {
    /// The size field is smaller than the header itself.
    #[error("frame size {size} is smaller than the {header}-byte header")]
    TooShort {
        /// The size read.
        size: usize,
        /// The header length.
        header: usize,
    },
    /// The size field exceeds the configured maximum frame.
    #[error("frame size {size} exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The size read.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
}

/// One complete frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame<'a> {
    /// The packet id from the header.
    pub id: u16,
    /// The protobuf payload (header excluded).
    pub payload: &'a [u8],
    /// The whole frame length, header included: how many bytes to consume.
    pub len: usize,
}

/// Looks for one frame at the start of `buf`.
///
/// `Ok(None)` means more bytes are needed (not an error); a size field below the header length or above
/// `max_frame` is rejected as soon as the header is readable, before any memory is reserved for the body.
#[inline]
pub fn parse_frame<H: FrameHeader>(buf: &[u8], max_frame: usize) -> Result<Option<RawFrame<'_>>, FrameFault> {
    let Some((size, id)) = H::read(buf) else { return Ok(None) };
    if size < H::LEN {
        return Err(FrameFault::TooShort { size, header: H::LEN });
    }
    if size > max_frame {
        return Err(FrameFault::TooLarge { size, max: max_frame });
    }
    match buf.get(H::LEN..size) {
        Some(payload) => Ok(Some(RawFrame { id, payload, len: size })),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Compact, Wide};

    #[test]
    fn incomplete_frames_need_more_bytes() {
        let frame = [6, 0, 0xE8, 0x03, 0x0A, 0x00];
        for cut in 0..frame.len() {
            assert_eq!(parse_frame::<Compact>(&frame[..cut], 1024), Ok(None), "cut at {cut}");
        }
        let whole = parse_frame::<Compact>(&frame, 1024).unwrap().unwrap();
        assert_eq!(whole, RawFrame { id: 1000, payload: &[0x0A, 0x00], len: 6 });
    }

    #[test]
    fn size_faults_are_reported_from_the_header_alone() {
        assert_eq!(parse_frame::<Compact>(&[3, 0, 1, 0], 1024), Err(FrameFault::TooShort { size: 3, header: 4 }));
        assert_eq!(
            parse_frame::<Compact>(&[0xFF, 0xFF, 1, 0], 1024),
            Err(FrameFault::TooLarge { size: 65535, max: 1024 })
        );
        assert_eq!(parse_frame::<Wide>(&[5, 0, 0, 0, 1, 0], 1024), Err(FrameFault::TooShort { size: 5, header: 6 }));
    }

    #[test]
    fn empty_payload_is_a_frame() {
        let f = parse_frame::<Compact>(&[4, 0, 7, 0, 99], 1024).unwrap().unwrap();
        assert_eq!((f.id, f.payload, f.len), (7, &[][..], 4));
    }
}
