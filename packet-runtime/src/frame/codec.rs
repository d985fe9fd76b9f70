//! tokio-util codec for the frame format, for code built on `Framed`.
//!
//! The session driver does not use it (it reads frames in place and writes pooled frames with vectored writes);
//! it exists so that tools, proxies and tests written in the `Framed` style speak the same wire format.
//!
//! ```
//! use bytes::BytesMut;
//! use packet_runtime::frame::{Compact, FrameCodec, OwnedFrame};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let mut codec = FrameCodec::<Compact>::new(1024);
//! let mut wire = BytesMut::new();
//! codec.encode(OwnedFrame { id: 1010, payload: vec![0x08, 0x2A].into() }, &mut wire).unwrap();
//! assert_eq!(&wire[..], &[6, 0, 0xF2, 0x03, 0x08, 0x2A]);
//! let frame = codec.decode(&mut wire).unwrap().unwrap();
//! assert_eq!((frame.id, &frame.payload[..]), (1010, &[0x08, 0x2A][..]));
//! ```

use core::marker::PhantomData;
use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{FrameFault, FrameHeader, FrameTooLarge, parse_frame};

/// A frame with its payload in an owned, shareable buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    /// The packet id.
    pub id: u16,
    /// The protobuf payload (header excluded).
    pub payload: Bytes,
}

/// Errors from [`FrameCodec`].
#[derive(Debug, thiserror::Error)]
pub enum FrameCodecError {
    /// The peer sent a frame the codec refuses; the stream is out of sync and should be closed.
    #[error(transparent)]
    Fault(#[from] FrameFault),
    /// A frame to send is larger than the header can describe.
    #[error(transparent)]
    TooLarge(#[from] FrameTooLarge),
    /// The underlying IO failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Decodes [`OwnedFrame`]s and encodes [`OwnedFrame`]s with header layout `H`; also encodes
/// [`PacketPtr`](crate::PacketPtr)s (that impl lives beside `PacketPtr`, so this module does not depend on it).
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec<H: FrameHeader> {
    max_frame: usize,
    _header: PhantomData<H>,
}

impl<H: FrameHeader> FrameCodec<H> {
    /// A codec that rejects frames over `max_frame` bytes (header included), capped at what `H` can describe.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame: max_frame.min(H::MAX_FRAME_LEN), _header: PhantomData }
    }
}

impl<H: FrameHeader> Decoder for FrameCodec<H> {
    type Item = OwnedFrame;
    type Error = FrameCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<OwnedFrame>, FrameCodecError> {
        match parse_frame::<H>(src, self.max_frame)? {
            Some(frame) => {
                let (id, len) = (frame.id, frame.len);
                src.advance(H::LEN);
                let payload = src.split_to(len - H::LEN).freeze();
                Ok(Some(OwnedFrame { id, payload }))
            }
            None => {
                // Reserve for the rest of a frame whose header we have (its size was validated above).
                if let Some((size, _)) = H::read(src) {
                    src.reserve(size.saturating_sub(src.len()));
                }
                Ok(None)
            }
        }
    }
}

impl<H: FrameHeader> Encoder<OwnedFrame> for FrameCodec<H> {
    type Error = FrameCodecError;

    fn encode(&mut self, frame: OwnedFrame, dst: &mut BytesMut) -> Result<(), FrameCodecError> {
        let len = H::LEN + frame.payload.len();
        let mut head = [0u8; 8];
        H::write(&mut head, len, frame.id)?;
        dst.reserve(len);
        dst.put_slice(&head[..H::LEN]);
        dst.put_slice(&frame.payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Compact, Wide};

    #[test]
    fn decodes_split_input_and_rejects_oversize() {
        let mut codec = FrameCodec::<Wide>::new(64);
        let mut buf = BytesMut::from(&[8, 0, 0, 0, 3, 0, 1][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[2, 9]);
        let f = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!((f.id, &f.payload[..], &buf[..]), (3, &[1, 2][..], &[9][..]));

        let mut big = BytesMut::from(&[65, 0, 1, 0][..]);
        let err = FrameCodec::<Compact>::new(64).decode(&mut big).unwrap_err();
        assert!(matches!(err, FrameCodecError::Fault(FrameFault::TooLarge { size: 65, max: 64 })), "{err}");
    }
}
