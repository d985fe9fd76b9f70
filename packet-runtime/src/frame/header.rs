//! Header layouts, chosen at the type level so a frame's layout is never a run-time surprise.

use core::fmt::Debug;

/// A frame header layout: `size` (whole frame, header included) then the `u16` packet id, little-endian.
///
/// Sealed: the runtime's framing, pooling and codecs rely on exactly these layouts.
pub trait FrameHeader: sealed::Sealed + Copy + Default + Debug + Send + Sync + 'static {
    /// Header length in bytes.
    const LEN: usize;
    /// The largest whole frame (header included) whose size the header can carry.
    const MAX_FRAME_LEN: usize;

    /// Writes the header for a frame of `frame_len` bytes (header included) carrying packet `id` into `out`.
    ///
    /// Fails, writing nothing, when `frame_len` does not fit the size field; a length is never truncated.
    fn write(out: &mut [u8; 8], frame_len: usize, id: u16) -> Result<(), FrameTooLarge>;

    /// Reads `(frame_len, id)` from the start of `buf`, or `None` if fewer than [`LEN`](Self::LEN) bytes are there.
    /// The length is returned as read: validating it (>= `LEN`, <= the configured maximum) is the caller's job.
    fn read(buf: &[u8]) -> Option<(usize, u16)>;
}

/// The default header: `u16 size | u16 id`. Frames up to 65,535 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Compact;

/// The wide header: `u32 size | u16 id`, for protocols with frames over 64 KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Wide;

/// A frame is longer than its header's size field can describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame of {len} bytes exceeds the header's limit of {max} bytes")]
pub struct FrameTooLarge {
    /// The whole frame length that was asked for.
    pub len: usize,
    /// The header's [`FrameHeader::MAX_FRAME_LEN`].
    pub max: usize,
}

impl FrameHeader for Compact {
    const LEN: usize = 4;
    const MAX_FRAME_LEN: usize = u16::MAX as usize;

    #[inline]
    fn write(out: &mut [u8; 8], frame_len: usize, id: u16) -> Result<(), FrameTooLarge> {
        let size = u16::try_from(frame_len).map_err(|_| FrameTooLarge { len: frame_len, max: Self::MAX_FRAME_LEN })?;
        out[..2].copy_from_slice(&size.to_le_bytes());
        out[2..4].copy_from_slice(&id.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn read(buf: &[u8]) -> Option<(usize, u16)> {
        let head: &[u8; 4] = buf.first_chunk()?;
        Some((u16::from_le_bytes([head[0], head[1]]) as usize, u16::from_le_bytes([head[2], head[3]])))
    }
}

impl FrameHeader for Wide {
    const LEN: usize = 6;
    const MAX_FRAME_LEN: usize = u32::MAX as usize;

    #[inline]
    fn write(out: &mut [u8; 8], frame_len: usize, id: u16) -> Result<(), FrameTooLarge> {
        let size = u32::try_from(frame_len).map_err(|_| FrameTooLarge { len: frame_len, max: Self::MAX_FRAME_LEN })?;
        out[..4].copy_from_slice(&size.to_le_bytes());
        out[4..6].copy_from_slice(&id.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn read(buf: &[u8]) -> Option<(usize, u16)> {
        let head: &[u8; 6] = buf.first_chunk()?;
        let size = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        Some((size as usize, u16::from_le_bytes([head[4], head[5]])))
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Compact {}
    impl Sealed for super::Wide {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_header_test_vector() {
        let mut out = [0u8; 8];
        Compact::write(&mut out, 0x0106, 1000).unwrap();
        assert_eq!(&out[..4], &[0x06, 0x01, 0xE8, 0x03]);
        assert_eq!(Compact::read(&out[..4]), Some((0x0106, 1000)));
        assert_eq!(Compact::read(&out[..3]), None);
    }

    #[test]
    fn wide_header_test_vector() {
        let mut out = [0u8; 8];
        Wide::write(&mut out, 70_000, 7).unwrap();
        assert_eq!(&out[..6], &[0x70, 0x11, 0x01, 0x00, 0x07, 0x00]);
        assert_eq!(Wide::read(&out[..6]), Some((70_000, 7)));
        assert_eq!(Wide::read(&out[..5]), None);
    }

    #[test]
    fn oversized_frames_are_errors_not_truncations() {
        let mut out = [0xAAu8; 8];
        assert_eq!(Compact::write(&mut out, 65_536, 1), Err(FrameTooLarge { len: 65_536, max: 65_535 }));
        assert_eq!(out, [0xAA; 8], "nothing written on error");
        assert!(Compact::write(&mut out, 65_535, 1).is_ok());
    }
}

/// A header layout chosen at run time (in a server or client builder).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HeaderKind {
    /// [`Compact`]: `u16 size | u16 id`.
    #[default]
    Compact,
    /// [`Wide`]: `u32 size | u16 id`.
    Wide,
}

/// Evaluates `$body` with `$H` naming the [`FrameHeader`] type a [`HeaderKind`] stands for: the one place a layout
/// chosen at run time becomes a type.
///
/// The `match` runs once, where the macro is used; `$body` is compiled once per layout, so a loop inside it is
/// monomorphised (call it outside hot loops, as the session driver does around its parse loop).
///
/// ```text
/// let frame = with_header!(config.header, H => PacketPtr::encode_in::<H, T>(pool, packet))?;
/// ```
macro_rules! with_header {
    ($kind:expr, $H:ident => $body:expr) => {
        match $kind {
            $crate::frame::HeaderKind::Compact => {
                type $H = $crate::frame::Compact;
                $body
            }
            $crate::frame::HeaderKind::Wide => {
                type $H = $crate::frame::Wide;
                $body
            }
        }
    };
}
pub(crate) use with_header;

impl HeaderKind {
    /// The header length in bytes.
    pub const fn header_len(self) -> usize {
        with_header!(self, H => H::LEN)
    }

    /// The largest whole frame the layout can carry.
    pub const fn max_frame_len(self) -> usize {
        with_header!(self, H => H::MAX_FRAME_LEN)
    }
}
