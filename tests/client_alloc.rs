//! The client's event path allocates nothing once connected: publishing (blocking and
//! pipelined), reading replies and deliveries (large ones too, which wrap the receive
//! buffer), and confirming. A counting global allocator watches the client's thread;
//! the fake daemon's thread is not counted.

mod client_support;

use client_support::*;
use herald::client::Client;
use herald::protocol::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct CountingAllocator;

thread_local! {
    // Const-initialised, so reading it from inside the allocator does not allocate.
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

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during<T>(work: impl FnOnce() -> T) -> (T, u64) {
    ALLOCATIONS.with(|count| count.set(0));
    COUNTING.with(|counting| counting.set(true));
    let result = work();
    COUNTING.with(|counting| counting.set(false));
    (result, ALLOCATIONS.with(Cell::get))
}

#[test]
fn the_counter_sees_allocations_on_this_thread() {
    let (vector, allocations) = allocations_during(|| vec![1u8; 100]);
    assert_eq!(vector.len(), 100);
    assert!(allocations >= 1, "else the next test proves nothing");
}

const ROUNDS: u64 = 12;
/// Large enough that a few deliveries fill the receive buffer and force it to wrap.
const PAYLOAD_BYTES: usize = 60 * 1024;

#[test]
fn publishing_receiving_and_confirming_allocate_nothing_after_connect() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Both);
        peer.accept_subscribe();
        for _ in 0..2 * ROUNDS {
            let (correlation, _) = peer.expect_publish();
            peer.stored(correlation, correlation);
        }
        let payload = vec![b'p'; PAYLOAD_BYTES];
        for seq in 1..=ROUNDS {
            peer.deliver(seq, "fs.vol1.error", &payload);
        }
        peer.recv_until_end().len()
    });
    let mut client = Client::connect(server.socket(), Role::Both, "fsd").unwrap();
    client
        .subscribe("", &[">"], Severity::Debug, 64, false)
        .unwrap();
    let payload = vec![b'e'; PAYLOAD_BYTES];
    let big = event("fs.vol1.error", &payload);

    let (received, allocations) = allocations_during(|| {
        for _ in 0..ROUNDS {
            client.publish(&big).unwrap();
        }
        for _ in 0..ROUNDS {
            client.send_publish(&big).unwrap();
        }
        for _ in 0..ROUNDS {
            client.recv_stored().unwrap();
        }
        let mut received = 0;
        for _ in 0..ROUNDS {
            let delivery = client.next_delivery(None).unwrap().unwrap();
            let seq = delivery.seq;
            received += delivery.event.payload.len();
            client.confirm(seq, seq).unwrap();
        }
        client.flush().unwrap();
        received
    });
    assert_eq!(received, ROUNDS as usize * PAYLOAD_BYTES);
    assert_eq!(allocations, 0, "the client allocated on its event path");
    client.goodbye().unwrap();
    assert_eq!(
        server.finish(),
        ROUNDS as usize + 1,
        "every confirm and the goodbye arrived"
    );
}
