//! The client's event path allocates nothing once connected: publishing (blocking and
//! pipelined), reading replies and deliveries (large ones too, which wrap the receive
//! buffer), and confirming. A counting global allocator watches the client's thread;
//! the fake daemon's thread is not counted.

mod client_support;

use client_support::*;
use herald::client::Client;
use herald::protocol::*;

#[path = "support/alloc_counter.rs"]
mod alloc_counter;

use alloc_counter::{allocations_during, assert_the_counter_counts, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn the_counter_sees_allocations_on_this_thread() {
    assert_the_counter_counts();
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
