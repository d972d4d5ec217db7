//! Proves that appending (and releasing) allocates nothing on the heap once the log
//! is open: a counting global allocator watches the test thread while it works.

use herald::log::{EventRef, Severity, StoreOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

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
fn appending_and_releasing_allocate_nothing_after_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("region.pmem");
    let mut log = herald::log::create_file(&path, 1 << 20, &StoreOptions::default(), 1).unwrap();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let payload = [7u8; 64];
    let big = [9u8; 5000];
    let ((), allocations) = counted(|| {
        for round in 0..2000u32 {
            let mut batch = log.batch();
            for i in 0..8 {
                let e = EventRef {
                    topic: b"fs.disk.error",
                    severity: Severity::Err,
                    source: b"raid0",
                    flags: 0,
                    key: b"",
                    payload: if (round + i) % 50 == 0 {
                        &big
                    } else {
                        &payload
                    },
                    timestamp_ns: round as u64,
                };
                batch.push(&e).unwrap();
            }
            batch.commit().unwrap();
            let tail = log.tail();
            log.release(&[(sub, tail)]).unwrap();
        }
    });
    assert_eq!(allocations, 0, "the append/release path allocated");
    assert!(
        log.tail().0 > log.geometry().ring.slot_count,
        "the ring wrapped during the test"
    );
}
