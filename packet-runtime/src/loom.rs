//! Atomics shim: loom's model-checked types under `--cfg loom`, std's otherwise.
//!
//! Only the atomics that carry synchronisation (block refcounts, pool lifetime counts, the pool's `closed` flag) and
//! the registry lock go through this shim, so loom explores their interleavings. Statistics counters use
//! `core::sync::atomic` directly: they never order anything, and keeping them out of the model keeps it small.
//!
//! Model tests live next to the code in `#[cfg(all(test, loom))]` modules named `loom_*`; run them with
//! `RUSTFLAGS="--cfg loom" cargo test -p packet-runtime --lib --release -- loom_`.

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::Mutex;

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{AtomicUsize, Ordering, fence};
    }
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use loom::sync::Mutex;

    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering, fence};
    }
}

#[cfg(all(test, loom))]
#[allow(unused_imports)]
pub(crate) use loom::{model, sync::Arc, thread};
