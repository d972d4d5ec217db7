//! Sample frames shared by the protocol tests: at least one of every frame type, with
//! edge cases (empty and maximal fields, multi-byte UTF-8, several batch events).
#![allow(dead_code)]

use herald::protocol::*;

/// Leaks `items` so that sample frames can borrow them for `'static`; tests only.
pub fn leak<T>(items: Vec<T>) -> &'static [T] {
    Box::leak(items.into_boxed_slice())
}

pub fn topic(text: &'static str) -> Topic<'static> {
    Topic::new(text.as_bytes()).expect("sample topic is valid")
}

pub fn pattern(text: &'static str) -> Pattern<'static> {
    Pattern::parse(text.as_bytes()).expect("sample pattern is valid")
}

pub fn small_event() -> Event<'static> {
    Event {
        topic: topic("fs.vol1.error"),
        severity: Severity::Error,
        source: "",
        flags: 0,
        key: b"",
        payload: b"disk full",
    }
}

/// An event with every field at its limit.
pub fn maximal_event() -> Event<'static> {
    Event {
        topic: Topic::new(leak(vec![b'x'; TOPIC_BYTES_MAX])).unwrap(),
        severity: Severity::Debug,
        source: std::str::from_utf8(leak(vec![b's'; SOURCE_BYTES_MAX])).unwrap(),
        flags: u16::MAX,
        key: leak(vec![0xAB; KEY_BYTES_MAX]),
        payload: leak((0..EVENT_PAYLOAD_BYTES_MAX).map(|i| i as u8).collect()),
    }
}

/// One sample per frame type, in `FrameType::CLIENT` then `FrameType::SERVER` order.
pub fn one_of_each() -> Vec<Frame<'static>> {
    let batch = leak(vec![
        small_event(),
        Event {
            topic: topic("net.eth0.link"),
            severity: Severity::Notice,
            source: "netd",
            flags: 3,
            key: b"k-1",
            payload: b"",
        },
        Event {
            topic: topic("a"),
            severity: Severity::Emergency,
            source: "π",
            flags: 0x8000,
            key: b"",
            payload: &[0, 1, 2, 255],
        },
    ]);
    let patterns = leak(vec![pattern("fs.*.error"), pattern("net.>")]);
    vec![
        Frame::Hello(Hello {
            version_min: 1,
            version_max: 1,
            role: Role::Producer,
            client_name: "fsd",
        }),
        Frame::Publish {
            correlation: 7,
            event: small_event(),
        },
        Frame::PublishBatch {
            correlation: u64::MAX,
            events: EventBatch::from_events(batch),
        },
        Frame::Subscribe(Subscribe {
            name: "audit.main",
            min_severity: Severity::Warning,
            window_events: 64,
            automatic_recovery: true,
            group: false,
            ack_deadline_ms: 30_000,
            max_deliveries: 5,
            patterns: Patterns::from_patterns(patterns),
        }),
        Frame::Confirm {
            first_seq: Seq(10),
            last_seq: Seq(20),
        },
        Frame::Nak {
            seq: Seq(11),
            delay_ms: 250,
        },
        Frame::Working { seq: Seq(12) },
        Frame::Reject { seq: Seq(13) },
        Frame::Recovered,
        Frame::Status,
        Frame::Ping { token: 0xDEAD_BEEF },
        Frame::Goodbye,
        Frame::Admin {
            json: r#"{"op":"dead.list"}"#,
        },
        Frame::HelloOk(HelloOk {
            version: 1,
            node_id: 0x0102_0304_0506_0708,
            frame_bytes_max: FRAME_BYTES_MAX as u32,
            event_payload_bytes_max: EVENT_PAYLOAD_BYTES_MAX as u32,
        }),
        Frame::Stored {
            correlation: 7,
            first_seq: Seq(100),
            last_seq: Seq(104),
            count: 3,
        },
        Frame::Error {
            correlation: 7,
            code: ErrorCode::Full,
            message: "log full: 0 of 1024 slots free — retry later",
        },
        Frame::Subscribed {
            mode: SubscriptionMode::Recovering,
            pending_events: 42,
        },
        Frame::Deliver(Deliver {
            seq: Seq(100),
            timestamp_ns: 1_700_000_000_000_000_000,
            redelivered: true,
            delivery_count: 2,
            origin: None,
            rule: None,
            event: Event {
                source: "fsd",
                ..small_event()
            },
        }),
        Frame::RecoveryDone,
        Frame::StatusReply {
            json: r#"{"ring":{"slots":1024,"used":3}}"#,
        },
        Frame::Pong { token: 0xDEAD_BEEF },
    ]
}

/// Every sample: one of each type plus edge cases.
pub fn all_samples() -> Vec<Frame<'static>> {
    let mut frames = one_of_each();
    frames.extend([
        Frame::Publish {
            correlation: 0,
            event: maximal_event(),
        },
        Frame::PublishBatch {
            correlation: 1,
            events: EventBatch::from_events(leak(vec![maximal_event()])),
        },
        Frame::Deliver(Deliver {
            seq: Seq(u64::MAX),
            timestamp_ns: 0,
            redelivered: false,
            delivery_count: u16::MAX,
            origin: Some(herald::event::Origin {
                node_id: u64::MAX,
                seq: u64::MAX,
                timestamp_ns: u64::MAX,
            }),
            rule: Some(herald::protocol::DeliverRule {
                id: u32::MAX,
                version: u32::MAX,
            }),
            event: maximal_event(),
        }),
        Frame::Hello(Hello {
            version_min: 1,
            version_max: u16::MAX,
            role: Role::Both,
            client_name: "",
        }),
        Frame::Subscribe(Subscribe {
            name: "",
            min_severity: Severity::Debug,
            window_events: WINDOW_EVENTS_MAX,
            automatic_recovery: false,
            group: false,
            ack_deadline_ms: 3_600_000,
            max_deliveries: u16::MAX,
            patterns: Patterns::from_patterns(leak(vec![pattern(">"); SUBSCRIPTION_PATTERNS_MAX])),
        }),
        Frame::Error {
            correlation: 0,
            code: ErrorCode::Invalid,
            message: "",
        },
        Frame::StatusReply { json: "" },
        Frame::Stored {
            correlation: 9,
            first_seq: Seq(5),
            last_seq: Seq(5),
            count: 1,
        },
    ]);
    frames
}

/// `frame` encoded into a fresh vector.
pub fn encoded(frame: &Frame<'_>) -> Vec<u8> {
    let mut buffer = vec![0u8; FRAME_BYTES_MAX];
    let written = encode(frame, &mut buffer).expect("sample frame encodes");
    buffer.truncate(written);
    buffer
}

/// A frame with the given type byte and body, header written by hand.
pub fn raw_frame(frame_type: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
    bytes.extend_from_slice(&((FRAME_TYPE_BYTES + body.len()) as u32).to_le_bytes());
    bytes.push(frame_type);
    bytes.push(0);
    bytes.extend_from_slice(body);
    bytes
}
