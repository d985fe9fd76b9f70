//! [`PacketBuilder`]: the unique, writable stage of a block, before it is frozen into a shared [`PacketPtr`].

use core::fmt;
use core::mem::{ManuallyDrop, MaybeUninit};
use core::ptr::NonNull;
use core::slice;

use bytes::buf::UninitSlice;

use super::PacketPtr;
#[cfg(feature = "test-util")]
use crate::frame::FrameHeader;
use crate::pool::{BlockHeader, MessagePool, PoolShared, data_ptr};

/// A uniquely owned pooled block being filled with one frame, by hand (raw frames, malformed frames in tests) or
/// by the encoders. Fixed capacity: writes past it panic ([`BufMut`](bytes::BufMut), [`extend_from_slice`]) or
/// come up short ([`std::io::Write`]).
///
/// Dropping a builder returns its block to the pool. [`freeze`](Self::freeze) turns it into a [`PacketPtr`] without
/// copying.
///
/// [`extend_from_slice`]: Self::extend_from_slice
pub struct PacketBuilder {
    block: NonNull<BlockHeader>,
}

// SAFETY: the builder owns its block exclusively; the block's pool accepts releases from any thread.
unsafe impl Send for PacketBuilder {}
// SAFETY: `&PacketBuilder` only reads the written bytes and the header's plain fields.
unsafe impl Sync for PacketBuilder {}

impl PacketBuilder {
    /// An empty builder with room for at least `capacity` bytes, from the global pool.
    #[cfg(not(packet_loom))]
    pub fn with_capacity(capacity: usize) -> PacketBuilder {
        PacketBuilder::with_capacity_in(MessagePool::global(), capacity)
    }

    /// An empty builder with room for at least `capacity` bytes, from `pool`. Larger than the largest size class
    /// is fine: such a block is allocated exactly and freed on release.
    #[inline]
    pub fn with_capacity_in(pool: &MessagePool, capacity: usize) -> PacketBuilder {
        PacketBuilder { block: pool.acquire_block(capacity) }
    }

    #[inline]
    fn header(&self) -> &BlockHeader {
        // SAFETY: the builder owns a live block.
        unsafe { self.block.as_ref() }
    }

    #[inline]
    fn header_mut(&mut self) -> &mut BlockHeader {
        // SAFETY: the builder owns the block exclusively.
        unsafe { &mut *self.block.as_ptr() }
    }

    /// Bytes written so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.header().len as usize
    }

    /// Whether nothing was written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the block can hold (at least the capacity asked for).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.header().cap as usize
    }

    /// The bytes written so far.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `..len` was written (initialised) by this builder.
        unsafe { slice::from_raw_parts(data_ptr(self.block), self.len()) }
    }

    /// The unwritten part of the block. It may hold an earlier frame's bytes, hence `MaybeUninit`: it can only be
    /// written, never read.
    #[inline]
    pub(crate) fn spare_capacity_mut(&mut self) -> &mut [MaybeUninit<u8>] {
        let (len, cap) = (self.len(), self.capacity());
        // SAFETY: `len..cap` lies inside the block's data area, which the builder owns exclusively.
        unsafe { slice::from_raw_parts_mut(data_ptr(self.block).add(len).cast::<MaybeUninit<u8>>(), cap - len) }
    }

    /// # Safety
    /// The first `len` bytes of the data area are initialised, and `len <= capacity`.
    #[inline]
    pub(crate) unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.capacity());
        // `len <= cap <= u32::MAX`, so the cast is lossless.
        self.header_mut().len = len as u32;
    }

    /// Appends `bytes`.
    ///
    /// # Panics
    /// If they do not fit in the remaining capacity.
    #[inline]
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let len = self.len();
        let spare = self.spare_capacity_mut();
        assert!(bytes.len() <= spare.len(), "PacketBuilder overflow: {} bytes into {} free", bytes.len(), spare.len());
        // SAFETY: `spare` has room for `bytes` (checked above) and cannot overlap it (the builder owns the block).
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), spare.as_mut_ptr().cast::<u8>(), bytes.len()) };
        // SAFETY: `..len + bytes.len()` is now initialised and within capacity.
        unsafe { self.set_len(len + bytes.len()) };
    }

    /// Shares the written bytes as a raw frame: [`PacketPtr::packet_id`] is `None` and
    /// [`PacketPtr::payload`] is the whole frame. No copy.
    #[inline]
    pub fn freeze(self) -> PacketPtr {
        let this = ManuallyDrop::new(self);
        // The block's refcount is already 1 (set on acquire): the builder's ownership becomes the packet's.
        PacketPtr { block: this.block }
    }

    /// Shares the written bytes as a frame that starts with an `H` header, so [`PacketPtr::packet_id`] and
    /// [`PacketPtr::payload`] read it. The header's size field is not checked: tests use this to send malformed
    /// frames. Fewer than `H::LEN` bytes make a raw frame, as [`freeze`](Self::freeze) does. Feature `test-util`:
    /// real frames are encoded through [`PacketPtr::encode_in`], which writes a header that is right.
    #[cfg(feature = "test-util")]
    #[inline]
    pub fn freeze_framed<H: FrameHeader>(mut self) -> PacketPtr {
        if self.len() >= H::LEN {
            // `H::LEN` is 4 or 6.
            self.header_mut().header_len = H::LEN as u8;
        }
        self.freeze()
    }

    pub(crate) fn set_header_len(&mut self, header_len: usize) {
        self.header_mut().header_len = header_len as u8;
    }
}

impl Drop for PacketBuilder {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the builder owns the block exclusively and is never used again.
        unsafe { PoolShared::release(self.block) };
    }
}

// SAFETY: `remaining_mut`/`chunk_mut` describe exactly the block's unwritten bytes; `advance_mut` only moves `len`
// over bytes the caller initialised (its contract) and checks the bound.
unsafe impl bytes::BufMut for PacketBuilder {
    #[inline]
    fn remaining_mut(&self) -> usize {
        self.capacity() - self.len()
    }

    #[inline]
    unsafe fn advance_mut(&mut self, cnt: usize) {
        let len = self.len();
        assert!(cnt <= self.capacity() - len, "advance_mut past the block's capacity");
        // SAFETY: the caller initialised `len..len + cnt` (BufMut contract); bound checked above.
        unsafe { self.set_len(len + cnt) };
    }

    #[inline]
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        UninitSlice::uninit(self.spare_capacity_mut())
    }

    #[inline]
    fn put_slice(&mut self, src: &[u8]) {
        self.extend_from_slice(src);
    }
}

impl std::io::Write for PacketBuilder {
    /// Writes what fits; 0 once the block is full (so `write_all` fails with `WriteZero`).
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.capacity() - self.len());
        self.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for PacketBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketBuilder").field("len", &self.len()).field("capacity", &self.capacity()).finish()
    }
}
