//! A counting global allocator for the zero-allocation tests, with a backtrace of each allocation it counted first.
//!
//! A test binary installs it (`#[global_allocator] static GLOBAL: CountingAllocator = CountingAllocator;`) and
//! opens a window around the code it measures:
//!
//! - [`ProcessWindow`]: every thread of the process counts while it is open (a server's IO and logic threads, its
//!   clients). Keep the test harness idle meanwhile (one test per binary): it allocates when a test starts or ends.
//! - [`ThreadWindow`]: only the thread that opened it counts, into the counter it names, until it is closed (two
//!   tests of one binary can measure in parallel).
//!
//! Allocation, zeroed allocation and reallocation (a `Vec` growing in place included) count one each; freeing does
//! not count. The first [`TRACED`] allocations counted in a window are captured with their backtrace (the capture
//! allocates itself: that is neither counted nor traced), so that a failing assertion can say where they came from
//! ([`Counted::report`]).
//!
//! What it must never do: change what memory the program gets. Every call is passed on to [`System`] unchanged.

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

/// Allocations per window captured with a backtrace.
pub const TRACED: usize = 64;

/// Forwards to [`System`], counting allocations made in an open window.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

/// Whether a [`ProcessWindow`] is open.
static PROCESS_COUNTING: AtomicBool = AtomicBool::new(false);
/// What the open [`ProcessWindow`] counted.
static PROCESS_COUNT: AtomicU64 = AtomicU64::new(0);
/// Backtraces of the first allocations counted in the current window(s).
static TRACES: Mutex<Vec<Backtrace>> = Mutex::new(Vec::new());

thread_local! {
    /// The counter of this thread's open [`ThreadWindow`], if any. `const` and without a destructor, so that reaching
    /// it from the allocator never allocates or registers anything.
    static THREAD_COUNTER: Cell<Option<&'static AtomicU64>> = const { Cell::new(None) };
    /// Inside the tracer, which allocates itself: those allocations are not counted.
    static IN_TRACER: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    // A thread's own window first: a thread counting into its own counter is not counted twice.
    let counter = match THREAD_COUNTER.try_with(Cell::get) {
        Ok(Some(counter)) => counter,
        _ if PROCESS_COUNTING.load(SeqCst) => &PROCESS_COUNT,
        _ => return,
    };
    if IN_TRACER.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    if counter.fetch_add(1, SeqCst) < TRACED as u64 {
        trace();
    }
}

/// Keeps a backtrace of the allocation being made (if fewer than [`TRACED`] are kept).
fn trace() {
    // A thread that is exiting has no thread-locals left: counted, not traced.
    if IN_TRACER.try_with(|flag| flag.set(true)).is_err() {
        return;
    }
    let trace = Backtrace::force_capture();
    if let Ok(mut traces) = TRACES.lock()
        && traces.len() < TRACED
    {
        traces.push(trace);
    }
    let _ = IN_TRACER.try_with(|flag| flag.set(false));
}

// SAFETY: every call is passed on to `System` unchanged; counting has no effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// What a window counted.
#[derive(Debug)]
pub struct Counted {
    /// Allocations counted.
    pub allocations: u64,
    /// Backtraces of the first of them (at most [`TRACED`]).
    pub traces: Vec<Backtrace>,
}

impl Counted {
    /// The count and every captured backtrace, for an assertion's message.
    pub fn report(&self) -> String {
        let mut out =
            format!("{} allocations counted; backtraces of the first {}:", self.allocations, self.traces.len());
        for (n, trace) in self.traces.iter().enumerate() {
            let _ = write!(out, "\n--- allocation {n}:\n{trace}");
        }
        out
    }
}

fn take_traces() -> Vec<Backtrace> {
    TRACES.lock().map(|mut traces| std::mem::take(&mut *traces)).unwrap_or_default()
}

/// Counting on every thread of the process while it is open. One at a time (the count is process-wide).
#[derive(Debug)]
#[must_use = "counting stops when the window is closed"]
pub struct ProcessWindow(());

impl ProcessWindow {
    /// Starts counting from zero. Allocates nothing itself once it returns.
    pub fn open() -> ProcessWindow {
        drop(take_traces());
        PROCESS_COUNT.store(0, SeqCst);
        assert!(!PROCESS_COUNTING.swap(true, SeqCst), "one process window at a time");
        ProcessWindow(())
    }

    /// Stops counting; returns what was counted.
    pub fn close(self) -> Counted {
        PROCESS_COUNTING.store(false, SeqCst);
        std::mem::forget(self);
        Counted { allocations: PROCESS_COUNT.load(SeqCst), traces: take_traces() }
    }
}

impl Drop for ProcessWindow {
    /// Reached only when the measured code panicked: stop counting.
    fn drop(&mut self) {
        PROCESS_COUNTING.store(false, SeqCst);
    }
}

/// Counting on the thread that opened it, into `counter`, until closed on that thread. Several threads may count
/// into one counter; backtraces are kept for the first [`TRACED`] of all windows open at the time.
#[derive(Debug)]
#[must_use = "counting stops when the window is closed"]
pub struct ThreadWindow {
    counter: &'static AtomicU64,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl ThreadWindow {
    /// Starts counting this thread's allocations into `counter` (not reset: threads may share one).
    pub fn open(counter: &'static AtomicU64) -> ThreadWindow {
        THREAD_COUNTER.with(|current| {
            assert!(current.replace(Some(counter)).is_none(), "one thread window per thread at a time");
        });
        ThreadWindow { counter, _not_send: std::marker::PhantomData }
    }

    /// Stops counting on this thread; returns the counter's value and the backtraces captured so far (taken: a
    /// later close returns the ones captured after this).
    pub fn close(self) -> Counted {
        THREAD_COUNTER.with(|current| current.set(None));
        let allocations = self.counter.load(SeqCst);
        std::mem::forget(self);
        Counted { allocations, traces: take_traces() }
    }
}

impl Drop for ThreadWindow {
    /// Reached only when the measured code panicked: stop counting.
    fn drop(&mut self) {
        let _ = THREAD_COUNTER.try_with(|current| current.set(None));
    }
}
