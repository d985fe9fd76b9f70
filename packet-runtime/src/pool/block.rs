//! One pooled block: a [`BlockHeader`] followed by the frame bytes, in a single allocation.
//!
//! ```text
//! +---------------------------------------------+-------------------------------+
//! | BlockHeader (32 bytes on 64-bit targets)      | data: `cap` bytes             |
//! | refs | pool | len | cap | class | header_len  | frame (..len), then unwritten |
//! +---------------------------------------------+-------------------------------+
//! ```
//!
//! The data area is never zeroed: bytes past `len` may be uninitialised or hold an earlier frame, which is why every
//! read goes through `..len` and every write through `MaybeUninit`.

use core::ptr::{self, NonNull};
use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};

use crate::loom::sync::atomic::AtomicUsize;

use super::PoolShared;

/// `class` of a block that is larger than every size class: allocated exactly, freed on release.
pub(crate) const OVERSIZE: u8 = u8::MAX;

/// The intrusive header of every block.
#[repr(C)]
pub(crate) struct BlockHeader {
    /// Strong count of the `PacketPtr`s (or the one `PacketBuilder`) pointing here. 0 while the block is free.
    pub(crate) refs: AtomicUsize,
    /// The pool the block returns to. Valid while the block exists: every existing block holds one reference on its
    /// pool's shared state (see the `pool` module docs).
    pub(crate) pool: NonNull<PoolShared>,
    /// Bytes of `data` written (the frame length). Written only while the block is unique (builder stage).
    pub(crate) len: u32,
    /// Bytes of `data` allocated.
    pub(crate) cap: u32,
    /// Size class index, or [`OVERSIZE`].
    pub(crate) class: u8,
    /// Length of the frame header at the start of `data` (0 for raw frames built by hand).
    pub(crate) header_len: u8,
}

/// Offset of the data area from the start of the block. `repr(C)` makes the size a multiple of the alignment, so
/// the data starts right after the header.
pub(crate) const HEADER_SIZE: usize = size_of::<BlockHeader>();

/// A block pointer that may travel between threads: blocks in free lists are owned by nobody but the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockPtr(pub(crate) NonNull<BlockHeader>);

// SAFETY: a `BlockPtr` in a free list or local cache is exclusively owned by that container (its refcount is 0 and
// no handle points to it); moving that ownership to another thread is what the pool does on purpose.
unsafe impl Send for BlockPtr {}

fn layout_for(cap: usize) -> Layout {
    match Layout::from_size_align(HEADER_SIZE + cap, align_of::<BlockHeader>()) {
        Ok(layout) => layout,
        Err(_) => panic!("packet block of {cap} bytes exceeds the address space"),
    }
}

/// Allocates a block of `cap` data bytes for `pool`, with `refs == 1` and `len == 0`.
///
/// The caller must already have counted the block in `pool`'s reference count.
pub(crate) fn allocate(pool: NonNull<PoolShared>, class: u8, cap: u32) -> NonNull<BlockHeader> {
    let layout = layout_for(cap as usize);
    // SAFETY: `layout` has a non-zero size (it includes the header).
    let raw = unsafe { alloc(layout) };
    let Some(block) = NonNull::new(raw.cast::<BlockHeader>()) else { handle_alloc_error(layout) };
    let header = BlockHeader { refs: AtomicUsize::new(1), pool, len: 0, cap, class, header_len: 0 };
    // SAFETY: `block` is freshly allocated with room and alignment for a `BlockHeader`.
    unsafe { block.as_ptr().write(header) };
    block
}

/// Frees the memory of `block` (not its pool reference: see `PoolShared::free_block`).
///
/// # Safety
/// `block` came from [`allocate`], is exclusively owned by the caller and is not used afterwards.
pub(crate) unsafe fn deallocate(block: NonNull<BlockHeader>) {
    // SAFETY: the caller owns the block, so its header is initialised and nobody else reads it.
    let cap = unsafe { block.as_ref().cap } as usize;
    // SAFETY: as above; dropping the header matters only for loom's atomics, whose state must be released.
    unsafe { ptr::drop_in_place(block.as_ptr()) };
    // SAFETY: the block was allocated by `allocate` with exactly this layout.
    unsafe { dealloc(block.as_ptr().cast::<u8>(), layout_for(cap)) };
}

/// Pointer to the first data byte of `block`.
#[inline]
pub(crate) fn data_ptr(block: NonNull<BlockHeader>) -> *mut u8 {
    // SAFETY: the data area starts `HEADER_SIZE` bytes into the same allocation (possibly one past its end when the
    // capacity is 0, which is still in bounds for `add`).
    unsafe { block.as_ptr().cast::<u8>().add(HEADER_SIZE) }
}
