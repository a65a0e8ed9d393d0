//! Counting heap allocations while a measurement asks for it: a figure of the work per request
//! that, unlike a rate, does not move with a shared machine's noise.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use labgate::Allocator;

/// labgate's allocator, counting while `during` runs (one relaxed load otherwise).
pub struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);

fn count() {
    if COUNTING.load(Ordering::Relaxed) {
        COUNT.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on unchanged to labgate's allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { Allocator.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { Allocator.alloc_zeroed(layout) }
    }

    /// Counted too: a buffer that grows costs about as much as a new one.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { Allocator.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { Allocator.dealloc(ptr, layout) }
    }
}

/// `work`'s output, and the allocations the whole process made while it ran. The counter is
/// shared by every thread, so a rate measured meanwhile would be slowed: measure apart.
pub async fn during<F: Future>(work: F) -> (F::Output, u64) {
    COUNT.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let output = work.await;
    COUNTING.store(false, Ordering::SeqCst);
    (output, COUNT.load(Ordering::SeqCst))
}
