//! [`PacketPtr`]: a pointer-sized, reference-counted handle to one immutable, fully framed packet in a pooled block.
//!
//! The refcount is intrusive (in the block header, see the `pool` module), so a `PacketPtr` is one `NonNull`:
//! cloning is one `Relaxed` increment, dropping one `Release` decrement (plus an `Acquire` load and the return to
//! the pool on the last one). Encoders write the header and the protobuf payload straight into the block, in one
//! pass, after `encoded_len()` picked the size class: no intermediate `Vec` or `BytesMut`.
//!
//! ```
//! use packet_runtime::{Packet, PacketPtr, prost};
//!
//! #[derive(Clone, PartialEq, prost::Message)]
//! struct Chat {
//!     #[prost(string, tag = "1")]
//!     text: String,
//! }
//! impl Packet for Chat {
//!     const ID: u16 = 7;
//!     const NAME: &'static str = "Chat";
//! }
//!
//! let packet = PacketPtr::encode(&Chat { text: "hi".into() }).unwrap();
//! assert_eq!(packet.packet_id(), Some(7));
//! assert_eq!(&packet[..4], &[8, 0, 7, 0]); // compact header: u16 size (whole frame), u16 id
//! let copy = packet.clone(); // one atomic increment, no copy
//! assert!(PacketPtr::ptr_eq(&packet, &copy));
//! assert_eq!(prost::Message::decode(packet.payload()), Ok(Chat { text: "hi".into() }));
//! ```

mod builder;

use core::fmt;
use core::mem::MaybeUninit;
use core::ops::Deref;
use core::ptr::NonNull;
use core::slice;

pub use builder::PacketBuilder;

#[cfg(not(packet_loom))]
use crate::frame::Compact;
use crate::frame::{FrameHeader, FrameTooLarge};
use crate::loom::sync::atomic::Ordering;
use crate::pool::{BlockHeader, MessagePool, PoolShared, data_ptr};
use crate::{Packet, PacketSet};

/// A packet could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The frame is longer than the header's size field can describe. Nothing was sent or truncated.
    #[error(transparent)]
    TooLarge(#[from] FrameTooLarge),
}

/// A shared, immutable, fully framed packet (header + protobuf payload) in a pooled block.
///
/// `size_of::<PacketPtr>() == size_of::<usize>()`, and `Option<PacketPtr>` is the same size. `Send + Sync`; the
/// last handle dropped, on whichever thread, returns the block to its pool.
pub struct PacketPtr {
    block: NonNull<BlockHeader>,
}

// SAFETY: the frame bytes are immutable once frozen, the refcount is atomic, and a block may be returned to its pool
// from any thread.
unsafe impl Send for PacketPtr {}
// SAFETY: `&PacketPtr` only reads immutable bytes and header fields, or clones (an atomic increment).
unsafe impl Sync for PacketPtr {}

impl PacketPtr {
    /// Encodes `msg` behind a compact header into a block of the global pool.
    #[cfg(not(packet_loom))]
    #[inline]
    pub fn encode<P: Packet>(msg: &P) -> Result<PacketPtr, EncodeError> {
        PacketPtr::encode_in::<Compact, P>(MessagePool::global(), msg)
    }

    /// Encodes `msg` behind an `H` header into a block of `pool`.
    #[inline]
    pub fn encode_in<H: FrameHeader, P: Packet>(pool: &MessagePool, msg: &P) -> Result<PacketPtr, EncodeError> {
        // `encode_raw` is prost's public (doc-hidden) entry point that `encode_to_vec` uses: it skips `encode`'s
        // second `encoded_len()` walk, and the buffer is sized exactly from the first.
        encode_frame::<H>(pool, P::ID, msg.encoded_len(), |buf| msg.encode_raw(buf))
    }

    /// Encodes the packet held by a packet-set value behind a compact header into a block of the global pool.
    #[cfg(not(packet_loom))]
    #[inline]
    pub fn encode_set<S: PacketSet>(packet: &S) -> Result<PacketPtr, EncodeError> {
        PacketPtr::encode_set_in::<Compact, S>(MessagePool::global(), packet)
    }

    /// Encodes the packet held by a packet-set value behind an `H` header into a block of `pool`.
    #[inline]
    pub fn encode_set_in<H: FrameHeader, S: PacketSet>(
        pool: &MessagePool,
        packet: &S,
    ) -> Result<PacketPtr, EncodeError> {
        encode_frame::<H>(pool, packet.id(), packet.encoded_len(), |buf| packet.encode_payload(buf))
    }

    #[inline]
    fn header(&self) -> &BlockHeader {
        // SAFETY: a `PacketPtr` holds a reference, so the block is alive.
        unsafe { self.block.as_ref() }
    }

    /// The whole frame, header included.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `..len` was initialised before the freeze and is immutable while shared.
        unsafe { slice::from_raw_parts(data_ptr(self.block), self.header().len as usize) }
    }

    /// Frame length in bytes, header included.
    #[inline]
    pub fn len(&self) -> usize {
        self.header().len as usize
    }

    /// Whether the frame is empty (only possible for raw frames built by hand).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length of the frame header (4 compact, 6 wide), or 0 for a raw frame from [`PacketBuilder::freeze`].
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header().header_len as usize
    }

    /// The packet id from the frame header; `None` for a raw frame.
    #[inline]
    pub fn packet_id(&self) -> Option<u16> {
        let at = self.header_len().checked_sub(2)?;
        let bytes = self.as_slice();
        Some(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
    }

    /// The protobuf payload: the frame after its header (the whole frame for a raw frame).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.as_slice()[self.header_len()..]
    }

    /// Whether both handles point to the same block.
    #[inline]
    pub fn ptr_eq(a: &PacketPtr, b: &PacketPtr) -> bool {
        a.block == b.block
    }

    /// The number of handles to this block. Racy: other threads may clone or drop meanwhile. For tests only
    /// (feature `test-util`): nothing correct can be decided on a count another thread may change meanwhile.
    #[cfg(feature = "test-util")]
    pub fn ref_count(&self) -> usize {
        self.refs()
    }

    /// The racy handle count [`ref_count`](Self::ref_count) and `Debug` show.
    fn refs(&self) -> usize {
        self.header().refs.load(Ordering::Relaxed)
    }

    /// A zero-copy [`bytes::Bytes`] over the frame, for interop with byte-oriented APIs. `Bytes::from_owner` boxes
    /// the handle (one allocation per call): not for the hot path.
    pub fn into_bytes(self) -> bytes::Bytes {
        bytes::Bytes::from_owner(self)
    }
}

/// Writes an `H` header and then `payload_len` bytes produced by `encode` into a fresh block of `pool`.
#[inline]
fn encode_frame<H: FrameHeader>(
    pool: &MessagePool,
    id: u16,
    payload_len: usize,
    encode: impl FnOnce(&mut &mut [MaybeUninit<u8>]),
) -> Result<PacketPtr, EncodeError> {
    let frame_len = H::LEN.saturating_add(payload_len);
    let mut head = [0u8; 8];
    H::write(&mut head, frame_len, id)?;
    // The builder is the drop guard: if `encode` panics, the block goes back to the pool.
    let mut builder = PacketBuilder::with_capacity_in(pool, frame_len);
    let spare = &mut builder.spare_capacity_mut()[..frame_len];
    let (header, mut payload) = spare.split_at_mut(H::LEN);
    for (dst, &src) in header.iter_mut().zip(&head) {
        dst.write(src);
    }
    encode(&mut payload);
    // A message whose `encode` wrote less than its `encoded_len()` would leave uninitialised bytes in the frame
    // (writing more already panicked in `BufMut`). Cheap, and it must hold in release builds too.
    assert!(payload.is_empty(), "protobuf encoded_len() is larger than what encode() wrote");
    // SAFETY: the header and the whole payload (`..frame_len`) were just written, within the block's capacity.
    unsafe { builder.set_len(frame_len) };
    builder.set_header_len(H::LEN);
    Ok(builder.freeze())
}

impl Clone for PacketPtr {
    #[inline]
    fn clone(&self) -> PacketPtr {
        // Relaxed: this handle keeps the count above 0, so nothing needs to be ordered (as in `Arc::clone`).
        let old = self.header().refs.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            // Some handles were leaked (`mem::forget`) en masse; wrapping would free a block still in use.
            std::process::abort();
        }
        PacketPtr { block: self.block }
    }
}

impl Drop for PacketPtr {
    /// One decrement inline; the return to the pool is out of line (as `Arc::drop_slow`), so a drop that is not the
    /// last stays a few instructions with no register spills, and callers can inline it.
    #[inline]
    fn drop(&mut self) {
        // Release: this handle's reads of the frame happen before whoever takes the block next can write to it.
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // SAFETY: the count reached 0: we own the block exclusively, and `self` is not used again.
        unsafe { drop_last(self.block) };
    }
}

/// Returns a block whose last handle was just dropped.
///
/// # Safety
/// The caller's `Release` decrement took `block`'s refcount to 0; `block` is not used afterwards.
#[inline(never)]
unsafe fn drop_last(block: NonNull<BlockHeader>) {
    // Acquire: pairs with the other handles' Release decrements (ours is in the release sequence of each, and this
    // load reads it), so all their reads happen before the reuse. A load rather than an `Acquire` fence, as `Arc`
    // does under ThreadSanitizer: the same guarantee at the same cost (a plain load on x86-64, `ldar` instead of a
    // `dmb` on AArch64), and ThreadSanitizer, which does not model fences, sees it (docs/SAFETY.md).
    // SAFETY: the count reached 0, so we own the block exclusively (per the contract); it is still allocated.
    unsafe { block.as_ref() }.refs.load(Ordering::Acquire);
    // SAFETY: the count reached 0, so we own the block exclusively (per the contract).
    unsafe { PoolShared::release(block) };
}

impl Deref for PacketPtr {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for PacketPtr {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl core::borrow::Borrow<[u8]> for PacketPtr {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for PacketPtr {
    /// Compares the frames' bytes.
    fn eq(&self, other: &PacketPtr) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for PacketPtr {}

impl fmt::Debug for PacketPtr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketPtr")
            .field("packet_id", &self.packet_id())
            .field("len", &self.len())
            .field("ref_count", &self.refs())
            .finish()
    }
}

impl From<PacketBuilder> for PacketPtr {
    fn from(builder: PacketBuilder) -> PacketPtr {
        builder.freeze()
    }
}

/// Lets `Framed<_, FrameCodec<H>>` send pooled frames. Here rather than in `frame::codec` so that the wire format
/// does not depend on the pointer (the dependency runs `packet_ptr` -> `frame` only).
impl<H: FrameHeader> tokio_util::codec::Encoder<PacketPtr> for crate::frame::FrameCodec<H> {
    type Error = crate::frame::FrameCodecError;

    /// Copies the already-framed packet (`Framed` buffers every frame into one `BytesMut`; the session driver is the
    /// zero-copy path).
    fn encode(&mut self, frame: PacketPtr, dst: &mut bytes::BytesMut) -> Result<(), Self::Error> {
        dst.extend_from_slice(&frame);
        Ok(())
    }
}
