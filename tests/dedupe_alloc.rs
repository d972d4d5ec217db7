//! Proves that the dedupe window allocates nothing on the heap once constructed: a
//! counting global allocator watches the test thread while it looks up, inserts,
//! expires and truncates.

use herald::delivery::dedupe::DedupeWindow;
use herald::log::Seq;
use std::time::Duration;

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
fn the_dedupe_window_allocates_nothing_after_construction() {
    const AGE_NS: u64 = 1_000_000;
    let mut window = DedupeWindow::new(1024, Duration::from_nanos(AGE_NS));
    let long_source = [b's'; 255];
    let long_key = [b'k'; 64];
    let (hits, allocations) = allocations_during(|| {
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
