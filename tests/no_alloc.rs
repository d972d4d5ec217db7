//! Proves that appending (and releasing) allocates nothing on the heap once the log
//! is open: a counting global allocator watches the test thread while it works.

use herald::log::{EventRef, Severity, StoreOptions};

#[path = "support/alloc_counter.rs"]
mod alloc_counter;

use alloc_counter::{allocations_during, assert_the_counter_counts, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn the_counter_sees_allocations_on_this_thread() {
    assert_the_counter_counts();
}

#[test]
fn appending_and_releasing_allocate_nothing_after_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("region.pmem");
    let mut log = herald::log::create_file(&path, 1 << 20, &StoreOptions::default(), 1).unwrap();
    let sub = log.create_subscription(b"s", b"").unwrap();
    let payload = [7u8; 64];
    let big = [9u8; 5000];
    let ((), allocations) = allocations_during(|| {
        for round in 0..2000u32 {
            let mut batch = log.batch();
            for i in 0..8 {
                let e = EventRef {
                    topic: b"fs.disk.error",
                    severity: Severity::Error,
                    source: b"raid0",
                    flags: 0,
                    key: b"",
                    payload: if (round + i) % 50 == 0 {
                        &big
                    } else {
                        &payload
                    },
                    timestamp_ns: round as u64,
                    route: 0,
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
