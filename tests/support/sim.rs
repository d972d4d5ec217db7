//! Helpers for driving a [`SimNode`] and its clients turn by turn.

#![allow(dead_code)]

use herald::delivery::DaemonConfig;
use herald::log::{Log, LogConfig};
use herald::pmem::sim::SimMedium;
use herald::pmem::Medium;
use herald::protocol::{Event, Frame, Pattern, Patterns, Role, Seq, Severity, Subscribe, Topic};
use herald::reactor::sim::SimNet;
use herald::reactor::PeerCredentials;
use herald::sim::{hello, SimClient, SimNode};

/// Where simulated daemons listen.
pub const SOCKET: &str = "/sim/herald.sock";

/// A daemon configuration small enough for simulation.
pub fn config() -> DaemonConfig {
    DaemonConfig {
        connections_max: 8,
        dedupe_records: 1024,
        ..DaemonConfig::default()
    }
}

/// A fresh simulated region of `bytes`, formatted.
pub fn fresh_log(bytes: usize) -> Log<SimMedium> {
    Log::format(SimMedium::new(bytes), &LogConfig::default(), 7).expect("format")
}

/// A network with socket buffers of a realistic size, moving at most 64 KiB a step.
pub fn net() -> SimNet {
    SimNet::new(208 * 1024, 64 * 1024)
}

/// Frames a client received, kept as owned copies of what tests look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Got {
    HelloOk,
    Stored {
        correlation: u64,
        first: u64,
        last: u64,
        count: u16,
    },
    Error {
        code: u16,
        message: String,
    },
    Subscribed {
        recovering: bool,
        pending: u64,
    },
    Deliver {
        seq: u64,
        redelivered: bool,
        count: u16,
        payload: Vec<u8>,
    },
    RecoveryDone,
    Status(String),
    Pong(u64),
}

/// What `client` has received so far (reading what arrived).
pub fn received(client: &mut SimClient, into: &mut Vec<Got>) {
    client.receive(|f| {
        into.push(match f {
            Frame::HelloOk(_) => Got::HelloOk,
            Frame::Stored {
                correlation,
                first_seq,
                last_seq,
                count,
            } => Got::Stored {
                correlation,
                first: first_seq.0,
                last: last_seq.0,
                count,
            },
            Frame::Error { code, message, .. } => Got::Error {
                code: code as u16,
                message: message.to_string(),
            },
            Frame::Subscribed {
                mode,
                pending_events,
            } => Got::Subscribed {
                recovering: mode == herald::protocol::SubscriptionMode::Recovering,
                pending: pending_events,
            },
            Frame::Deliver(d) => Got::Deliver {
                seq: d.seq.0,
                redelivered: d.redelivered,
                count: d.delivery_count,
                payload: d.event.payload.to_vec(),
            },
            Frame::RecoveryDone => Got::RecoveryDone,
            Frame::StatusReply { json } => Got::Status(json.to_string()),
            Frame::Pong { token } => Got::Pong(token),
            other => panic!("the daemon sent a client frame: {other:?}"),
        })
    });
}

/// Runs turns (at most `turns_max`: a failure detector) until `done` holds for what
/// `client` received; returns it all.
pub fn turns_until<M: Medium>(
    node: &mut SimNode<M>,
    client: &mut SimClient,
    turns_max: usize,
    done: impl Fn(&[Got]) -> bool,
) -> Vec<Got> {
    let mut got = Vec::new();
    for _ in 0..turns_max {
        node.turn().expect("turn");
        received(client, &mut got);
        if done(&got) {
            return got;
        }
    }
    panic!("not done after {turns_max} turns; received {got:?}");
}

/// An event on `topic` with `payload`.
pub fn event<'a>(topic: &'a str, payload: &'a [u8]) -> Event<'a> {
    Event {
        topic: Topic::new(topic.as_bytes()).expect("valid topic"),
        severity: Severity::Error,
        source: "",
        flags: 0,
        key: b"",
        payload,
    }
}

/// Connects a producer and completes its hello.
pub fn producer<M: Medium>(node: &mut SimNode<M>, name: &str) -> SimClient {
    producer_as(node, name, SimNet::DEFAULT_PEER)
}

/// Connects a producer as `peer` and completes its hello.
pub fn producer_as<M: Medium>(
    node: &mut SimNode<M>,
    name: &str,
    peer: PeerCredentials,
) -> SimClient {
    let mut p = node.connect_as(peer);
    p.send(&hello(Role::Producer, name));
    turns_until(node, &mut p, 10, |g| g == [Got::HelloOk]);
    p
}

/// Connects a subscriber to durable `name` (all topics) with `window`; returns it, its
/// `Subscribed` answer, and whatever came right behind it (deliveries).
pub fn subscriber<M: Medium>(
    node: &mut SimNode<M>,
    name: &str,
    window: u32,
) -> (SimClient, Got, Vec<Got>) {
    subscriber_as(node, name, window, ">", SimNet::DEFAULT_PEER)
}

/// [`subscriber`] as `peer`, to topics matching `pattern`.
pub fn subscriber_as<M: Medium>(
    node: &mut SimNode<M>,
    name: &str,
    window: u32,
    pattern: &str,
    peer: PeerCredentials,
) -> (SimClient, Got, Vec<Got>) {
    let mut s = node.connect_as(peer);
    s.send(&hello(Role::Subscriber, name));
    let all = [Pattern::parse(pattern.as_bytes()).expect("valid")];
    s.send(&Frame::Subscribe(Subscribe {
        name,
        min_severity: Severity::Debug,
        window_events: window,
        automatic_recovery: false,
        group: false,
        ack_deadline_ms: 0,
        max_deliveries: 0,
        patterns: Patterns::from_patterns(&all),
    }));
    let mut got = turns_until(node, &mut s, 10, |g| g.len() >= 2);
    assert_eq!(got[0], Got::HelloOk);
    let rest = got.split_off(2);
    (s, got[1].clone(), rest)
}

/// Publishes one event and runs turns until it is stored; returns its seq.
pub fn publish<M: Medium>(
    node: &mut SimNode<M>,
    p: &mut SimClient,
    correlation: u64,
    payload: &[u8],
) -> u64 {
    p.send(&Frame::Publish {
        correlation,
        event: event("fs.sim", payload),
    });
    let got = turns_until(node, p, 10, |g| !g.is_empty());
    match &got[0] {
        Got::Stored {
            correlation: c,
            first,
            ..
        } if *c == correlation => *first,
        other => panic!("expected Stored({correlation}), got {other:?}"),
    }
}

/// Confirms `seq` on a subscriber.
pub fn confirm(s: &mut SimClient, seq: u64) {
    assert!(s.send(&Frame::Confirm {
        first_seq: Seq(seq),
        last_seq: Seq(seq),
    }));
}
