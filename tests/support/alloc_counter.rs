//! A counting global allocator for the no-allocation tests. Each test binary installs
//! it with `#[global_allocator] static GLOBAL: CountingAllocator = CountingAllocator;`
//! and counts what the current thread allocates inside [`allocations_during`]; other
//! threads (a fake daemon, the test harness) are not counted.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Forwards to the system allocator and counts this thread's allocations while armed.
pub struct CountingAllocator;

thread_local! {
    // Const-initialised, so reading them from inside the allocator does not allocate.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition
// is a thread-local counter.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` came from `System.alloc` with this layout.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

/// Runs `work` and returns its result with the allocations it made on this thread.
pub fn allocations_during<T>(work: impl FnOnce() -> T) -> (T, u64) {
    ALLOCATIONS.with(|count| count.set(0));
    COUNTING.with(|counting| counting.set(true));
    let result = work();
    COUNTING.with(|counting| counting.set(false));
    (result, ALLOCATIONS.with(Cell::get))
}

/// Fails unless the counter sees an allocation: without this, a test that finds zero
/// allocations would prove nothing (the allocator might not be installed).
pub fn assert_the_counter_counts() {
    let (vector, allocations) = allocations_during(|| vec![1u8; 100]);
    assert_eq!(vector.len(), 100);
    assert!(allocations >= 1, "the counting allocator is not installed");
}
