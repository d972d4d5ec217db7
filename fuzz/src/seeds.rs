//! Seed inputs for every target, written by `examples/make_seeds.rs` into
//! `corpus/<target>/` (then minimised with the rest of the corpus by `tools/fuzz.sh
//! --merge`). Each seed is a small input that reaches a part of the target a random
//! start would take long to find.

use herald::event::limits::SUBSCRIPTION_SPEC_BYTES_MAX;
use herald::log::{DeadReason, EventRef, Log, LogConfig, Severity as LogSeverity};
use herald::pmem::sim::SimMedium;
use herald::protocol::{
    encode_to_vec, Deliver, ErrorCode, Event, EventBatch, Frame, Hello, HelloOk, Pattern, Patterns,
    Role, Seq, Severity, Subscribe, SubscriptionMode, Topic, FRAME_BYTES_MAX,
};
use herald::subscription::SubscriptionSpec;
use rand::SeedableRng;

/// A named seed.
pub type Seed = (String, Vec<u8>);

/// Seeds of `target`.
pub fn seeds(target: &str) -> Vec<Seed> {
    match target {
        "frame" => frames(),
        "spec" => specs(),
        "daemon" => scripts(),
        "region" => crash_images(),
        "dead_letters" => vec![("base".into(), super::dead_letters::seed())],
        other => panic!("no target {other}"),
    }
}

fn encoded(frames: &[Frame<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frames.len() * FRAME_BYTES_MAX);
    for f in frames {
        encode_to_vec(f, &mut out).expect("seed frames encode");
    }
    out
}

fn event<'a>(topic: &'a str, key: &'a [u8], payload: &'a [u8]) -> Event<'a> {
    Event {
        topic: Topic::new(topic.as_bytes()).expect("valid"),
        severity: Severity::Error,
        source: "fsd",
        flags: 3,
        key,
        payload,
    }
}

fn frames() -> Vec<Seed> {
    let patterns = [
        Pattern::parse(b"fs.>").expect("valid"),
        Pattern::parse(b"*.error").expect("valid"),
    ];
    let e = event("fs.disk.error", b"k", b"sda: 8 reallocated sectors");
    let batch = [e, event("fs.quota", b"", b"over")];
    let hello = Frame::Hello(Hello {
        version_min: 1,
        version_max: 1,
        role: Role::Both,
        client_name: "fsd",
    });
    let subscribe = Frame::Subscribe(Subscribe {
        name: "ops",
        min_severity: Severity::Warning,
        window_events: 64,
        automatic_recovery: true,
        group: false,
        ack_deadline_ms: 1000,
        max_deliveries: 3,
        patterns: Patterns::from_patterns(&patterns),
    });
    let all = [
        hello,
        Frame::Publish {
            correlation: 7,
            event: e,
        },
        Frame::PublishBatch {
            correlation: 8,
            events: EventBatch::from_events(&batch),
        },
        subscribe,
        Frame::Confirm {
            first_seq: Seq(3),
            last_seq: Seq(9),
        },
        Frame::Nak {
            seq: Seq(4),
            delay_ms: 100,
        },
        Frame::Working { seq: Seq(5) },
        Frame::Reject { seq: Seq(6) },
        Frame::Recovered,
        Frame::Status,
        Frame::Ping { token: 42 },
        Frame::Goodbye,
        Frame::Admin {
            json: r#"{"op":"dead.list","subscription":"ops"}"#,
        },
        Frame::HelloOk(HelloOk {
            version: 1,
            node_id: 0x4845,
            frame_bytes_max: FRAME_BYTES_MAX as u32,
            event_payload_bytes_max: 65536,
        }),
        Frame::Stored {
            correlation: 7,
            first_seq: Seq(10),
            last_seq: Seq(12),
            count: 2,
        },
        Frame::Error {
            correlation: 0,
            code: ErrorCode::Full,
            message: "ring full",
        },
        Frame::Subscribed {
            mode: SubscriptionMode::Recovering,
            pending_events: 3,
        },
        Frame::Deliver(Deliver {
            seq: Seq(10),
            timestamp_ns: 1,
            redelivered: true,
            delivery_count: 2,
            origin: None,
            rule: None,
            event: e,
        }),
        Frame::RecoveryDone,
        Frame::StatusReply { json: "{}" },
        Frame::Pong { token: 42 },
    ];
    let mut seeds: Vec<Seed> = all
        .iter()
        .map(|f| (format!("one-{}", f.frame_type()), encoded(&[*f])))
        .collect();
    // Conversations, as a client receives them (its own frames noted as sent).
    seeds.push((
        "subscriber-conversation".into(),
        encoded(&[
            all[0], all[13], all[3], all[16], all[17], all[17], all[18], all[19], all[4],
        ]),
    ));
    seeds.push((
        "producer-conversation".into(),
        encoded(&[all[0], all[13], all[1], all[14], all[15], all[20], all[11]]),
    ));
    // A relayed, rule-routed delivery (protocol version 3): the origin block and the
    // rule block follow the header.
    seeds.push((
        "one-deliver-relayed".into(),
        encoded(&[Frame::Deliver(Deliver {
            seq: Seq(11),
            timestamp_ns: 2,
            redelivered: false,
            delivery_count: 1,
            origin: Some(herald::event::Origin {
                node_id: 0x1234_5678_9abc_def0,
                seq: 77,
                timestamp_ns: 3,
            }),
            rule: Some(herald::protocol::DeliverRule { id: 1, version: 2 }),
            event: e,
        })]),
    ));
    seeds
}

fn specs() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let cases: [(&[&[u8]], Severity); 3] = [
        (&[b">"], Severity::Debug),
        (&[b"fs.*.error", b"net.>"], Severity::Warning),
        (&[b"a", b"a.b", b"a.*", b"*.b.>"], Severity::Emergency),
    ];
    for (i, (patterns, severity)) in cases.into_iter().enumerate() {
        let spec = SubscriptionSpec::new(severity, 64, i == 1, patterns.iter().copied())
            .expect("valid")
            .with_policy(1000, 3);
        let mut out = [0u8; SUBSCRIPTION_SPEC_BYTES_MAX];
        let n = spec.encode(&mut out);
        let mut input = vec![n as u8];
        input.extend_from_slice(&out[..n]);
        input.extend_from_slice(b"\x03fs.disk.error\0\x07net.link.down\0\x00a\0\x05x.b.c");
        seeds.push((format!("spec-v2-{i}"), input));
    }
    // Version 1, as stored before redelivery existed: window 8, pattern ">".
    seeds.push((
        "spec-v1".into(),
        vec![10, 1, 6, 0, 1, 8, 0, 0, 0, 1, b'>', 3, b'f', b's'],
    ));
    seeds
}

/// Builds a `daemon` script (see `daemon.rs` for how each step is read).
struct Script(Vec<u8>);

impl Script {
    fn new(setup: u8) -> Script {
        Script(vec![setup])
    }
    fn connect(mut self) -> Self {
        self.0.push(0);
        self
    }
    fn turns(mut self, n: u8) -> Self {
        self.0.extend_from_slice(&[20, n.saturating_sub(1)]);
        self
    }
    fn advance(mut self, which: u8) -> Self {
        self.0.extend_from_slice(&[26, which]);
        self
    }
    fn restart(mut self, clean: bool) -> Self {
        self.0.extend_from_slice(&[30, clean as u8]);
        self
    }
    /// A client step: op, client index, then its fields.
    fn on(mut self, op: u8, client: u8, fields: &[u8]) -> Self {
        self.0.extend_from_slice(&[op, client]);
        self.0.extend_from_slice(fields);
        self
    }
    /// Hello with role (0 producer, 1 subscriber, 2 both, 3 control), version 1, a
    /// listed name.
    fn hello(self, client: u8, role: u8) -> Self {
        self.on(3, client, &[role, 200, 200, 0])
    }
    /// Publish (correlation, shape, topic, severity, payload size class, key).
    fn publish(self, client: u8, correlation: u8, key: u8) -> Self {
        self.on(4, client, &[correlation, 9, 0, 3, 40, 30, key])
    }
    fn batch(self, client: u8, correlation: u8, events: u8) -> Self {
        self.on(
            5,
            client,
            &[correlation, 0, events, 9, 1, 3, 40, 30, 1, 9, 2, 6, 3, 3, 2],
        )
    }
    /// Subscribe (name index, one pattern ">", severity debug, window 64, manual
    /// recovery, deadline 1 ms, max deliveries 2).
    fn subscribe(self, client: u8, name: u8) -> Self {
        self.on(6, client, &[name, 0, 0, 7, 3, 0, 1, 2])
    }
    /// Settles the last number seen (op 7 confirm, 8 nak, 9 working, 10 reject).
    fn settle(self, op: u8, client: u8) -> Self {
        let fields: &[u8] = match op {
            7 => &[255, 255],
            8 => &[255, 1],
            _ => &[255],
        };
        self.on(op, client, fields)
    }
    fn admin(self, client: u8, json: &str) -> Self {
        let len = json.len() as u16;
        let mut fields = vec![0];
        fields.extend_from_slice(&len.to_le_bytes());
        fields.extend_from_slice(json.as_bytes());
        self.on(14, client, &fields)
    }
    fn build(self) -> Vec<u8> {
        self.0
    }
}

fn scripts() -> Vec<Seed> {
    let produce = Script::new(0)
        .connect()
        .hello(0, 0)
        .turns(3)
        .publish(0, 1, 0)
        .publish(0, 2, 1)
        .publish(0, 3, 1)
        .batch(0, 4, 2)
        .turns(4);
    let deliver = Script::new(1)
        .connect()
        .hello(0, 1)
        .subscribe(0, 0)
        .turns(3)
        .connect()
        .hello(1, 0)
        .publish(1, 1, 0)
        .publish(1, 2, 0)
        .turns(4)
        .settle(7, 0)
        .settle(8, 0)
        .turns(2)
        .advance(3)
        .turns(3)
        .settle(9, 0)
        .settle(10, 0)
        .turns(4);
    let dead = Script::new(0)
        .connect()
        .hello(0, 1)
        .subscribe(0, 0)
        .connect()
        .hello(1, 0)
        .publish(1, 1, 0)
        .turns(4)
        .settle(10, 0)
        .turns(4)
        .connect()
        .hello(2, 3)
        .admin(2, r#"{"op":"dead.list"}"#)
        .turns(2)
        .admin(2, r#"{"op":"dead.replay","subscription":"ops","all":true}"#)
        .turns(4)
        .admin(2, r#"{"op":"dead.purge","subscription":"ops","all":true}"#)
        .turns(2)
        .on(13, 2, &[])
        .turns(2);
    let crash = Script::new(2)
        .connect()
        .hello(0, 2)
        .subscribe(0, 2)
        .publish(0, 1, 0)
        .turns(4)
        .restart(false)
        .connect()
        .hello(0, 1)
        .subscribe(0, 2)
        .turns(4)
        .on(12, 0, &[])
        .turns(3)
        .restart(true)
        .turns(2);
    let garbage = Script::new(3)
        .connect()
        .on(2, 0, &[12, 0, 8, 0, 0, 0, 1, 0, 72, 82, 76, 68, 1, 0])
        .turns(3)
        .connect()
        .hello(1, 0)
        .on(2, 1, &[6, 0, 2, 0, 0, 0, 0x83, 0])
        .turns(3);
    vec![
        ("produce".into(), produce.build()),
        ("deliver-settle".into(), deliver.build()),
        ("dead-letters-admin".into(), dead.build()),
        ("crash-and-clean-restart".into(), crash.build()),
        ("garbage".into(), garbage.build()),
    ]
}

/// Images a power cut could leave on a small region in the middle of appends, dead
/// letters and releases (every uncertain word kept or lost at random, seeded).
fn crash_images() -> Vec<Seed> {
    let config = LogConfig {
        slot_bytes: 64,
        reserve_slots: Some(16),
        subscription_entries: 4,
        payload_bytes_max: 256,
        dead_letter_slots: Some(32),
        rule_entries: 0,
    };
    let mut rng = rand::rngs::SmallRng::seed_from_u64(15);
    let mut seeds = Vec::new();
    let mut log =
        Log::format(SimMedium::new(48 * 1024), &config, 0x4845_5241_4c44_0002).expect("format");
    let sub = log.create_subscription(b"ops", b"").expect("room");
    let payload = [b'e'; 200];
    for round in 0..3u8 {
        let before = log.medium().state().clone();
        log.medium_mut().start_recording();
        let mut batch = log.batch();
        for i in 0..6u8 {
            let event = EventRef {
                topic: b"fs.disk.error",
                severity: LogSeverity::Error,
                source: b"seed",
                flags: 0,
                key: if i == 2 { b"k" } else { b"" },
                payload: &payload[..usize::from(i) * 30 + usize::from(round)],
                timestamp_ns: u64::from(i),
                route: 0,
            };
            batch.push(&event).expect("room");
        }
        batch.commit().expect("commit");
        // Cut before the group's fence: each of its words reached the medium or not.
        let ops = log.medium_mut().take_recording();
        let fence = ops
            .iter()
            .rposition(|op| matches!(op, herald::pmem::sim::SimOp::Fence))
            .expect("a commit fences");
        let mut cut = before;
        for op in &ops[..fence] {
            cut.apply(op);
        }
        seeds.push((
            format!("torn-group-{round}"),
            cut.crash_image(&mut rng, 0.5),
        ));
        let seq = log.events_from(log.head()).next().expect("live").seq;
        let _ = log.dead_letter(sub, seq, 2, DeadReason::Rejected);
        log.release(&[(sub, log.tail())]).expect("release");
    }
    seeds
}
