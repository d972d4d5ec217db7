//! What the delivery-under-failure tests share: a subscriber with a redelivery policy,
//! the next delivery read with a failure detector, fast backoffs.

#![allow(dead_code)]

use crate::daemon;
use herald::client::{Client, SubscribeOptions};
use herald::protocol::{Role, Seq};
use std::time::Duration;

/// How long a delivery that must come may take: a failure detector only. "Nothing
/// else arrives" is never a wait: a marker published after is the next delivery, or
/// status shows nothing in flight.
pub const WAIT: Option<Duration> = Some(Duration::from_secs(20));

pub fn subscriber(d: &daemon::Daemon, name: &str, options: SubscribeOptions) -> Client {
    let mut c = Client::connect(&d.socket(), Role::Subscriber, name).unwrap();
    c.subscribe_with(name, &[">"], &options).unwrap();
    c
}

pub fn policy(ack_deadline_ms: u32, max_deliveries: u16) -> SubscribeOptions {
    SubscribeOptions {
        ack_deadline_ms,
        max_deliveries,
        window_events: 8,
        ..SubscribeOptions::default()
    }
}

/// (seq, redelivered, delivery_count, payload) of the next delivery.
pub fn next(c: &mut Client) -> (Seq, bool, u16, Vec<u8>) {
    let d = c
        .next_delivery(WAIT)
        .unwrap()
        .expect("a delivery within the wait");
    (
        d.seq,
        d.redelivered,
        d.delivery_count,
        d.event.payload.to_vec(),
    )
}

pub const FAST_BACKOFF: [&str; 4] = [
    "--redelivery-backoff",
    "20ms",
    "--redelivery-backoff-max",
    "80ms",
];
