//! The protocol's event path allocates nothing: decoding, iterating batches and
//! patterns, matching, encoding into pre-sized buffers, formatting an error and running
//! the state machine. A counting global allocator proves it.

mod protocol_support;

use herald::protocol::*;
use protocol_support::*;

#[path = "support/alloc_counter.rs"]
mod alloc_counter;

use alloc_counter::{allocations_during, assert_the_counter_counts, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn the_counter_sees_an_allocation() {
    assert_the_counter_counts();
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

    let ((), allocations) = allocations_during(|| {
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
