//! What the soak publishes and how each subscriber treats it, as pure functions of an
//! event's number (its counter): nothing about an event needs remembering to check it.

use super::treatment::Treatment;
use herald::client::SubscribeOptions;
use herald::protocol::{Event, Severity, Topic};

/// splitmix64 of `counter` and `salt`: the event's dice.
pub fn mix(counter: u64, salt: u64) -> u64 {
    let mut z = counter
        .wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The topics: `soak.{a,b,c,s}.{x,y}`; `s` (5%) is what the slow reader takes.
const TOPICS: [[&str; 2]; 4] = [
    ["soak.a.x", "soak.a.y"],
    ["soak.b.x", "soak.b.y"],
    ["soak.c.x", "soak.c.y"],
    ["soak.s.x", "soak.s.y"],
];

pub fn topic_of(counter: u64) -> &'static str {
    let group = match mix(counter, 1) % 100 {
        0..40 => 0,
        40..70 => 1,
        70..95 => 2,
        _ => 3,
    };
    TOPICS[group][(mix(counter, 2) % 2) as usize]
}

pub fn severity_of(counter: u64) -> Severity {
    match mix(counter, 3) % 100 {
        0..2 => Severity::Critical,
        2..10 => Severity::Error,
        10..30 => Severity::Warning,
        30..60 => Severity::Notice,
        60..90 => Severity::Info,
        _ => Severity::Debug,
    }
}

/// Payload sizes: mostly small, some of a few KB, a few near the 64 KiB limit.
pub fn payload_len_of(counter: u64) -> usize {
    let r = mix(counter, 4);
    match r % 1000 {
        0..2 => 60_000 + (r >> 20) as usize % 5_537,
        2..50 => 1_000 + (r >> 20) as usize % 7_000,
        _ => 24 + (r >> 20) as usize % 280,
    }
}

/// The payload: `c=COUNTER;` then bytes derived from the counter, to its length.
pub fn payload_of(counter: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(format!("c={counter};").as_bytes());
    let seed = mix(counter, 5);
    let len = payload_len_of(counter).max(out.len());
    let start = out.len();
    out.extend((start..len).map(|i| (seed as usize).wrapping_add(i * 31) as u8));
}

/// The counter a payload (or its preview) starts with.
pub fn counter_in(payload: &[u8]) -> Option<u64> {
    let rest = payload.strip_prefix(b"c=")?;
    let end = rest.iter().position(|&b| b == b';')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// The idempotency key of a keyed producer's event.
pub fn key_of(counter: u64) -> [u8; 8] {
    counter.to_le_bytes()
}

/// Event `counter` as published, borrowing `payload` (filled by [`payload_of`]) and
/// `key`.
pub fn event<'a>(counter: u64, payload: &'a [u8], key: &'a [u8]) -> Event<'a> {
    Event {
        topic: Topic::new(topic_of(counter).as_bytes()).expect("soak topics are valid"),
        severity: severity_of(counter),
        source: "",
        flags: (counter & 0xFFFF) as u16,
        key,
        payload,
    }
}

/// Whether a delivered event is exactly event `counter` as published.
pub fn intact(counter: u64, event: &Event<'_>, scratch: &mut Vec<u8>) -> bool {
    payload_of(counter, scratch);
    event.topic.as_bytes() == topic_of(counter).as_bytes()
        && event.severity == severity_of(counter)
        && event.flags == (counter & 0xFFFF) as u16
        && event.payload == &scratch[..]
}

/// How a durable subscriber behaves.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Confirms everything; leaves recovery with `Recovered` after `RecoveryDone`.
    ConfirmAll,
    /// Confirms everything, with automatic recovery.
    ConfirmAuto,
    /// Rejects some events, never settles others, naks or ignores some once.
    Picky,
    /// Confirms, and drops its connection (with or without goodbye) now and then.
    Flaky,
    /// Confirms after a pause, sometimes with `Working` first; now and then stops
    /// reading for seconds (the ring fills behind it); leaves recovery with
    /// `Recovered`.
    Slow,
}

/// A durable subscription of the soak.
pub struct DurableSpec {
    pub name: &'static str,
    pub patterns: &'static [&'static str],
    pub behaviour: Behaviour,
    pub options: SubscribeOptions,
}

const fn options(window: u32, auto: bool, deadline_ms: u32, max: u16) -> SubscribeOptions {
    SubscribeOptions {
        min_severity: Severity::Debug,
        window_events: window,
        automatic_recovery: auto,
        group: false,
        ack_deadline_ms: deadline_ms,
        max_deliveries: max,
    }
}

/// Every durable subscription, created before anything is published: every event is
/// meant for each one whose patterns match its topic.
pub const DURABLE: [DurableSpec; 5] = [
    DurableSpec {
        name: "all",
        patterns: &[">"],
        behaviour: Behaviour::ConfirmAll,
        options: options(64, false, 0, 0),
    },
    DurableSpec {
        name: "group-a",
        patterns: &["soak.a.>"],
        behaviour: Behaviour::ConfirmAuto,
        options: options(32, true, 0, 0),
    },
    DurableSpec {
        name: "picky",
        patterns: &[">"],
        behaviour: Behaviour::Picky,
        options: options(256, true, PICKY_DEADLINE_MS, PICKY_MAX_DELIVERIES),
    },
    DurableSpec {
        name: "flaky",
        patterns: &["soak.*.x", "soak.b.>"],
        behaviour: Behaviour::Flaky,
        options: options(128, true, 0, 0),
    },
    DurableSpec {
        name: "slow",
        patterns: &["soak.s.>"],
        behaviour: Behaviour::Slow,
        options: options(4, false, 0, 0),
    },
];

pub const PICKY_DEADLINE_MS: u32 = 200;
pub const PICKY_MAX_DELIVERIES: u16 = 3;

/// Live-only subscriptions: (client name, patterns). Their deliveries are checked for
/// content and order, not completeness.
pub const LIVE: [(&str, &[&str]); 2] = [("live-all", &[">"]), ("live-c", &["soak.c.*"])];

/// Whether `pattern` (the protocol's grammar) matches `topic`.
pub fn matches(pattern: &str, topic: &str) -> bool {
    let mut t = topic.split('.');
    for p in pattern.split('.') {
        match p {
            ">" => return t.next().is_some(),
            "*" => {
                if t.next().is_none() {
                    return false;
                }
            }
            literal => {
                if t.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    t.next().is_none()
}

/// Whether event `counter` is meant for the subscription with `patterns`.
pub fn meant_for(patterns: &[&str], counter: u64) -> bool {
    let topic = topic_of(counter);
    patterns.iter().any(|p| matches(p, topic))
}

/// What `picky` does with an event, by its number.
pub fn treatment(counter: u64) -> Treatment {
    match mix(counter, 6) % 100 {
        0..3 => Treatment::Reject,
        3..5 => Treatment::NeverSettle,
        5..10 => Treatment::IgnoreOnce,
        10..15 => Treatment::NakOnce,
        _ => Treatment::Confirm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_the_protocol_says() {
        assert!(matches(">", "soak.a.x"));
        assert!(matches("soak.a.>", "soak.a.x"));
        assert!(!matches("soak.a.>", "soak.a"));
        assert!(matches("soak.*.x", "soak.b.x"));
        assert!(!matches("soak.*.x", "soak.b.y"));
        assert!(!matches("soak.c.*", "soak.c.x.y"));
    }

    #[test]
    fn payloads_carry_their_counter() {
        let mut p = Vec::new();
        for c in [0, 1, 77, u64::MAX / 3] {
            payload_of(c, &mut p);
            assert_eq!(counter_in(&p), Some(c));
            assert!(p.len() <= herald::protocol::EVENT_PAYLOAD_BYTES_MAX);
        }
    }
}
