//! Atomics shim: loom's model-checked types under `--cfg packet_loom`, std's otherwise.
//!
//! Only the atomics that carry synchronisation (block refcounts, pool lifetime counts, the pool's `closed` flag) and
//! the registry lock go through this shim, so loom explores their interleavings. Statistics counters use
//! `core::sync::atomic` directly: they never order anything, and keeping them out of the model keeps it small.
//!
//! Model tests live next to the code in `#[cfg(all(test, packet_loom))]` modules named `loom_*`; run them with
//! `RUSTFLAGS="--cfg packet_loom" cargo test -p packet-runtime --lib --release -- loom_`.

#[cfg(not(packet_loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::Mutex;

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
    }
}

#[cfg(packet_loom)]
pub(crate) mod sync {
    pub(crate) use loom::sync::Mutex;

    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
    }
}

#[cfg(all(test, packet_loom))]
#[allow(unused_imports)]
pub(crate) use loom::{model, sync::Arc, thread};

/// The bounded free list: crossbeam's lock-free `ArrayQueue` normally. Under loom, a mutex-protected `VecDeque` with
/// the same contract (bounded, linearisable, a push happens-before the pop that takes the item): loom cannot see
/// through crossbeam's std atomics, so the model substitutes a queue whose hand-off it can track. crossbeam checks
/// `ArrayQueue` itself under its own loom configuration.
#[cfg(not(packet_loom))]
pub(crate) type FreeList<T> = crossbeam_queue::ArrayQueue<T>;

#[cfg(packet_loom)]
pub(crate) use model_queue::FreeList;

#[cfg(packet_loom)]
mod model_queue {
    use std::collections::VecDeque;

    #[derive(Debug)]
    pub(crate) struct FreeList<T> {
        items: loom::sync::Mutex<VecDeque<T>>,
        capacity: usize,
    }

    impl<T> FreeList<T> {
        pub(crate) fn new(capacity: usize) -> Self {
            FreeList { items: loom::sync::Mutex::new(VecDeque::with_capacity(capacity)), capacity }
        }

        pub(crate) fn push(&self, item: T) -> Result<(), T> {
            let mut items = self.items.lock().unwrap();
            if items.len() == self.capacity {
                return Err(item);
            }
            items.push_back(item);
            Ok(())
        }

        pub(crate) fn pop(&self) -> Option<T> {
            self.items.lock().unwrap().pop_front()
        }

        pub(crate) fn len(&self) -> usize {
            self.items.lock().unwrap().len()
        }
    }
}
