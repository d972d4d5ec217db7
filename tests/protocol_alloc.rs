//! The protocol's event path allocates nothing: decoding, iterating batches and
//! patterns, matching, encoding into pre-sized buffers, formatting an error and running
//! the state machine. A counting global allocator proves it.

mod protocol_support;

use herald::protocol::*;
use protocol_support::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct CountingAllocator;

thread_local! {
    // Const-initialised, so reading it from inside the allocator does not allocate.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition
// is a thread-local counter.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` came from `System.alloc` with this layout.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations made by `work` on this thread.
fn allocations_during(work: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|count| count.set(0));
    COUNTING.with(|counting| counting.set(true));
    work();
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn the_counter_sees_an_allocation() {
    let allocations = allocations_during(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(8));
    });
    assert_eq!(allocations, 1);
}

#[test]
fn the_event_path_allocates_nothing() {
    let samples = all_samples();
    let stream: Vec<u8> = samples.iter().flat_map(encoded).collect();
    let mut garbage = encoded(&samples[1]);
    garbage[FRAME_HEADER_BYTES + 8] = 9; // severity 9
    let mut out = vec![0u8; FRAME_BYTES_MAX];
    let mut appended: Vec<u8> = Vec::with_capacity(stream.len());
    let hello = samples[0];
    let publish = samples[1];
    let confirm = samples[4];

    let allocations = allocations_during(|| {
        let mut offset = 0;
        let mut seen = 0;
        while let Ok(Some((frame, consumed))) = decode(&stream[offset..]) {
            match frame {
                Frame::PublishBatch { events, .. } => {
                    seen += events
                        .iter()
                        .filter(|event| event.payload.len() > 3)
                        .count();
                }
                Frame::Subscribe(subscribe) => {
                    seen += usize::from(subscribe.patterns.any_matches(b"fs.vol1.error"));
                }
                _ => {}
            }
            encode(&frame, &mut out).unwrap();
            encode_to_vec(&frame, &mut appended).unwrap();
            offset += consumed;
        }
        assert_eq!(offset, stream.len());
        assert!(seen > 0);

        let error = decode(&garbage).unwrap_err();
        encode_error(&mut out, 0, error.code(), &error).unwrap();

        let mut machine = ServerMachine::new();
        machine.on_receive(&hello).unwrap();
        machine.on_receive(&publish).unwrap();
        let rejection = machine.on_receive(&confirm).unwrap_err();
        encode_error(&mut out, 0, rejection.code, &rejection).unwrap();
    });
    assert_eq!(allocations, 0);
    assert_eq!(appended, stream);
}
