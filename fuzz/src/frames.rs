//! The frame-layer oracle, shared by the `frame_decoder` fuzz target and `tests/tests/properties.rs` (included there
//! with `#[path]`, so it depends only on what both crates have: `packet-runtime`, `bytes`, `tokio-util`).
//!
//! Three readers see the same bytes and must agree on every frame, on the fault that ends the stream (if any) and on
//! where it happens:
//! - the reference: `parse_frame` over the whole input at once;
//! - the session driver's way: `parse_frame` over read-sized chunks, keeping the incomplete tail;
//! - `FrameCodec` (tokio-util `Decoder`) fed the same chunks into one `BytesMut`.
//!
//! None of them may panic, and none may consume more bytes than it was given.

use bytes::BytesMut;
use packet_runtime::frame::{FrameCodec, FrameCodecError, parse_frame};
use packet_runtime::{Compact, FrameFault, FrameHeader, Wide};
use tokio_util::codec::Decoder;

/// What a reader made of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Every complete frame, as `(id, payload)`.
    pub(crate) frames: Vec<(u16, Vec<u8>)>,
    /// The fault that stopped the reader.
    pub(crate) fault: Option<FrameFault>,
    /// Bytes consumed by the frames (the fault, if any, sits right after them).
    pub(crate) consumed: usize,
}

/// Cuts `data` into read-sized chunks: `splits` gives the sizes in turn (0 counts as 1), cycling; no splits means one
/// read of everything.
pub(crate) fn chunks<'a>(data: &'a [u8], splits: &[usize]) -> Vec<&'a [u8]> {
    if splits.is_empty() {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    let mut sizes = splits.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().expect("cycle of a non-empty list")).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(size);
        out.push(chunk);
        rest = tail;
    }
    out
}

/// The reference: `parse_frame` over the whole input.
pub(crate) fn whole<H: FrameHeader>(data: &[u8], max_frame: usize) -> Decoded {
    let mut decoded = Decoded { frames: Vec::new(), fault: None, consumed: 0 };
    loop {
        let rest = &data[decoded.consumed..];
        match parse_frame::<H>(rest, max_frame) {
            Ok(Some(frame)) => {
                assert!(frame.len >= H::LEN && frame.len <= max_frame, "frame length {} out of bounds", frame.len);
                assert!(frame.len <= rest.len(), "frame of {} bytes claimed from {} bytes", frame.len, rest.len());
                assert_eq!(frame.payload, &rest[H::LEN..frame.len], "payload is the bytes after the header");
                let (size, id) = H::read(rest).expect("a frame has a header");
                assert_eq!((size, id), (frame.len, frame.id), "frame agrees with its header");
                decoded.frames.push((frame.id, frame.payload.to_vec()));
                decoded.consumed += frame.len;
            }
            Ok(None) => {
                // Incomplete: either no whole header, or a valid header whose body is not all there.
                if let Some((size, _)) = H::read(rest) {
                    assert!((H::LEN..=max_frame).contains(&size) && size > rest.len(), "Ok(None) for {size}");
                } else {
                    assert!(rest.len() < H::LEN);
                }
                return decoded;
            }
            Err(fault) => {
                let (size, _) = H::read(rest).expect("a fault needs a readable header");
                match fault {
                    FrameFault::TooShort { size: s, header } => assert!(s == size && size < header && header == H::LEN),
                    FrameFault::TooLarge { size: s, max } => assert!(s == size && size > max && max == max_frame),
                }
                decoded.fault = Some(fault);
                return decoded;
            }
        }
    }
}

/// The session driver's way: parse each read in place, keep only the incomplete tail.
pub(crate) fn chunked_parse<H: FrameHeader>(data: &[u8], splits: &[usize], max_frame: usize) -> Decoded {
    let mut decoded = Decoded { frames: Vec::new(), fault: None, consumed: 0 };
    let mut partial: Vec<u8> = Vec::new();
    for chunk in chunks(data, splits) {
        partial.extend_from_slice(chunk);
        let mut at = 0;
        loop {
            match parse_frame::<H>(&partial[at..], max_frame) {
                Ok(Some(frame)) => {
                    decoded.frames.push((frame.id, frame.payload.to_vec()));
                    at += frame.len;
                }
                Ok(None) => break,
                Err(fault) => {
                    decoded.fault = Some(fault);
                    decoded.consumed += at;
                    return decoded;
                }
            }
        }
        assert!(at <= partial.len());
        decoded.consumed += at;
        partial.drain(..at);
        // An incomplete tail never holds a whole acceptable frame, so it is bounded by the maximum frame.
        assert!(partial.len() < max_frame.max(H::LEN), "tail of {} bytes kept", partial.len());
    }
    decoded
}

/// `FrameCodec` fed the same chunks.
pub(crate) fn chunked_codec<H: FrameHeader>(data: &[u8], splits: &[usize], max_frame: usize) -> Decoded {
    let mut decoded = Decoded { frames: Vec::new(), fault: None, consumed: 0 };
    let mut codec = FrameCodec::<H>::new(max_frame);
    let mut buf = BytesMut::new();
    let mut fed = 0;
    for chunk in chunks(data, splits) {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    decoded.consumed += H::LEN + frame.payload.len();
                    decoded.frames.push((frame.id, frame.payload.to_vec()));
                }
                Ok(None) => break,
                Err(FrameCodecError::Fault(fault)) => {
                    decoded.fault = Some(fault);
                    assert_eq!(buf.len(), fed - decoded.consumed, "a fault consumes nothing");
                    return decoded;
                }
                Err(other) => panic!("decoding fails only with a frame fault, got {other}"),
            }
        }
        assert_eq!(buf.len(), fed - decoded.consumed, "the codec keeps exactly the unconsumed bytes");
    }
    // At end of stream, leftover bytes are an error and no leftover is not.
    let at_eof = codec.decode_eof(&mut buf);
    match (buf.is_empty(), at_eof) {
        (true, Ok(None)) => {}
        (false, Err(FrameCodecError::Io(_))) => {}
        (empty, other) => panic!("decode_eof with empty buffer = {empty}: {other:?}"),
    }
    decoded
}

/// Runs the three readers for one header layout and asserts that they agree.
pub(crate) fn check_header<H: FrameHeader>(data: &[u8], splits: &[usize], max_frame: usize) -> Decoded {
    // The codec caps its maximum at what the header can describe; give the parsers the same limit.
    let max_frame = max_frame.min(H::MAX_FRAME_LEN);
    let reference = whole::<H>(data, max_frame);
    assert!(reference.consumed <= data.len());
    let parsed = chunked_parse::<H>(data, splits, max_frame);
    assert_eq!(parsed, reference, "chunked parse_frame vs whole input ({:?})", core::any::type_name::<H>());
    let codec = chunked_codec::<H>(data, splits, max_frame);
    assert_eq!(codec, reference, "FrameCodec vs whole input ({:?})", core::any::type_name::<H>());
    reference
}

/// Both header layouts over the same bytes.
pub(crate) fn check_frames(data: &[u8], splits: &[usize], max_frame: usize) {
    check_header::<Compact>(data, splits, max_frame);
    check_header::<Wide>(data, splits, max_frame);
}
