//! Proves that the dedupe window allocates nothing on the heap once constructed: a
//! counting global allocator watches the test thread while it looks up, inserts,
//! expires and truncates.

use herald::delivery::dedupe::DedupeWindow;
use herald::log::Seq;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(|a| a.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(|a| a.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    let out = f();
    ARMED.with(|a| a.set(false));
    (out, ALLOCATIONS.load(Ordering::Relaxed) - before)
}

#[test]
fn the_counter_sees_allocations_on_this_thread() {
    let (v, n) = counted(|| vec![1u8; 100]);
    assert_eq!(v.len(), 100);
    assert!(
        n >= 1,
        "the allocator must count, or the next test proves nothing"
    );
}

#[test]
fn the_dedupe_window_allocates_nothing_after_construction() {
    const AGE_NS: u64 = 1_000_000;
    let mut window = DedupeWindow::new(1024, Duration::from_nanos(AGE_NS));
    let long_source = [b's'; 255];
    let long_key = [b'k'; 64];
    let (hits, allocations) = counted(|| {
        let mut hits = 0u64;
        let mut now_ns = 0u64;
        let mut seq = 1u64;
        for round in 0..50_000u64 {
            now_ns += 50;
            let mut key = long_key;
            // First repeats (lookups hit), then fresh keys (the window fills and evicts).
            let key_number = if round < 25_000 { round % 700 } else { round };
            key[..8].copy_from_slice(&key_number.to_le_bytes());
            let source: &[u8] = if round % 2 == 0 {
                &long_source
            } else {
                b"raid0"
            };
            if window.lookup(source, &key, now_ns).is_some() {
                hits += 1;
            } else {
                window.insert(source, &key, Seq(seq), now_ns);
            }
            seq += 1;
            if round % 97 == 96 {
                // A rolled-back batch of the last few events.
                window.truncate_from(Seq(seq - 3));
                seq -= 3;
            }
            window.expire(now_ns, 4);
        }
        hits
    });
    assert_eq!(
        allocations, 0,
        "the dedupe window allocated on the event path"
    );
    assert!(hits > 0, "some lookups found duplicates");
    assert_eq!(window.len(), window.capacity(), "count eviction happened");
}
