//! Load and limits (issue 15), through the real daemon binary: thousands of
//! connections, slow and silent clients, subscribers that never read, events at the
//! payload limit, and every table and area of the region full. In each, the clients
//! that behave keep being served and the daemon's resident memory stays within the
//! bound the README states ("Memory").
//!
//! Every wait is a barrier (a status round trip, a blocking read) bounded by a failure
//! detector (`raw::STUCK_AFTER`, `Daemon::wait_for_status`); no test passes because
//! time went by.

#[path = "support/raw.rs"]
mod raw;
#[path = "support/seed.rs"]
mod seed;
#[path = "support/soak.rs"]
mod soak;

// The soak needs them too, and a file is loaded as one module only.
use soak::{daemon, memory};

use daemon::{sub_row, Daemon};
use herald::client::{Client, ClientError, SubscribeOptions};
use herald::delivery::CONNECTION_SLOT_BYTES;
use herald::protocol::{
    self, ErrorCode, Event, Frame, Hello, Role, Seq, Severity, Topic, EVENT_PAYLOAD_BYTES_MAX,
    FRAME_BYTES_MAX,
};
use memory::{rss_of, Load, Rss, DAEMON_QUEUES_BYTES, KIB};
use raw::{frame, Raw, STUCK_AFTER};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// A connection that has exchanged only a few small frames (and reads its answers)
/// touches only the first pages of its buffers and of its subscription's table, which
/// are mostly resident from the start (the allocator's bookkeeping lives there): at
/// most this much each (beside the README's bound, `support/memory.rs`).
const SMALL_FRAMES_CONNECTION_BYTES: u64 = 16 * KIB;

/// Raises this process's open-file limit to its hard limit (children inherit it: the
/// daemon needs as many descriptors as the test). Err says why the test cannot run.
fn raise_fd_limit(needed: u64) -> Result<u64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write and read the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    if limit.rlim_max < needed {
        return Err(format!(
            "RLIMIT_NOFILE's hard limit is {}, below the {needed} descriptors needed \
             (raise it with `ulimit -Hn` or in limits.conf)",
            limit.rlim_max
        ));
    }
    // An unlimited hard limit still stops at the kernel's fs.nr_open.
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(limit.rlim_max);
    limit.rlim_cur = limit.rlim_max.min(nr_open);
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
    }
    Ok(limit.rlim_cur)
}

/// A connection with nothing but a socket: thousands of them cost the test little.
struct Thin {
    stream: UnixStream,
}

impl Thin {
    fn connect(socket: &Path) -> Thin {
        let stream = UnixStream::connect(socket).expect("connect to the daemon's socket");
        stream.set_read_timeout(Some(STUCK_AFTER)).unwrap();
        stream.set_write_timeout(Some(STUCK_AFTER)).unwrap();
        Thin { stream }
    }

    fn send(&mut self, f: &Frame<'_>) {
        let mut out = [0u8; 512];
        let n = protocol::encode(f, &mut out).expect("small frames encode");
        self.stream.write_all(&out[..n]).expect("send");
    }

    fn send_hello(&mut self, role: Role, name: &str) {
        self.send(&Frame::Hello(Hello {
            version_min: 1,
            version_max: 1,
            role,
            client_name: name,
        }));
    }

    /// The next frame, read exactly; None at end of stream.
    fn recv(&mut self) -> Option<Vec<u8>> {
        let mut header = [0u8; protocol::FRAME_HEADER_BYTES];
        if !read_exact_or_eof(&mut self.stream, &mut header) {
            return None;
        }
        let length = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        let mut f = header.to_vec();
        f.resize(4 + length, 0);
        assert!(
            read_exact_or_eof(&mut self.stream, &mut f[protocol::FRAME_HEADER_BYTES..]),
            "the daemon closed in the middle of a frame"
        );
        Some(f)
    }
}

fn read_exact_or_eof(stream: &mut UnixStream, buf: &mut [u8]) -> bool {
    match stream.read_exact(buf) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            panic!("nothing from the daemon for {STUCK_AFTER:?}: stuck")
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            false
        }
        Err(e) => panic!("read: {e}"),
    }
}

/// Expects a closing `Error` with `code` and returns its message.
fn expect_closing_error(c: &mut Thin, code: ErrorCode) -> String {
    let f = c.recv().expect("an error frame before the close");
    let message = match frame(&f) {
        Frame::Error {
            code: got, message, ..
        } => {
            assert_eq!(got, code, "{message}");
            message.to_owned()
        }
        other => panic!("expected {code:?}, got {other:?}"),
    };
    assert_eq!(c.recv(), None, "the connection closes after {code:?}");
    message
}

/// Asserts the README's bound on resident memory ([`memory::within_bound`]) from
/// `before` to `after` under `load`, and says what it measured.
fn assert_rss_within(what: &str, before: Rss, after: Rss, load: Load) {
    match memory::within_bound(before, after, load) {
        Ok(g) => eprintln!(
            "{what}: VmRSS {} -> {} KiB (+{} KiB: own +{} KiB, region +{} KiB) with {load:?}; \
             bound +{} KiB own",
            before.total / KIB,
            after.total / KIB,
            g.total / KIB,
            g.anon / KIB,
            g.file / KIB,
            g.anon_bound / KIB,
        ),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// An event with an empty source (the client name) and no key.
fn event<'a>(topic: &'a str, severity: Severity, payload: &'a [u8]) -> Event<'a> {
    Event {
        topic: Topic::new(topic.as_bytes()).expect("test topics are valid"),
        severity,
        source: "",
        flags: 0,
        key: b"",
        payload,
    }
}

/// A well-behaved producer and subscriber (durable subscription `name` on `name.>`)
/// whose progress is measured: each step publishes one event and waits, with a
/// failure detector, until it is stored, delivered intact and confirmed.
struct Steady {
    name: String,
    producer: Client,
    subscriber: Client,
    steps: u64,
}

impl Steady {
    fn start(socket: &Path, name: &str) -> Steady {
        let producer = Client::connect(socket, Role::Producer, &format!("{name}-producer"))
            .expect("the steady producer gets in");
        let mut subscriber =
            Client::connect(socket, Role::Subscriber, name).expect("the steady subscriber gets in");
        subscriber
            .subscribe(name, &[&format!("{name}.>")], Severity::Debug, 64, false)
            .expect("the steady subscription");
        Steady {
            name: name.to_owned(),
            producer,
            subscriber,
            steps: 0,
        }
    }

    /// One event of `severity` stored, delivered and confirmed; returns its seq.
    fn step_with(&mut self, severity: Severity) -> Seq {
        match self.try_step_with(severity) {
            Ok(seq) => seq,
            Err(e) => panic!("{}: step {} not stored: {e}", self.name, self.steps),
        }
    }

    /// A step, or the publish's refusal (then nothing was stored).
    fn try_step_with(&mut self, severity: Severity) -> Result<Seq, ClientError> {
        let topic = format!("{}.step", self.name);
        let payload = format!("{} step {}", self.name, self.steps);
        let stored = self
            .producer
            .publish(&event(&topic, severity, payload.as_bytes()))?;
        let delivery = self
            .subscriber
            .next_delivery(Some(STUCK_AFTER))
            .expect("the steady subscriber's connection")
            .unwrap_or_else(|| {
                panic!(
                    "{}: step {} stored as {:?} but not delivered within {STUCK_AFTER:?}: stuck",
                    self.name, self.steps, stored.first_seq
                )
            });
        assert_eq!(delivery.seq, stored.first_seq, "{}: in order", self.name);
        assert_eq!(delivery.event.payload, payload.as_bytes());
        assert!(!delivery.redelivered, "{}: delivered once", self.name);
        let seq = delivery.seq;
        self.subscriber.confirm(seq, seq).unwrap();
        self.subscriber.flush().unwrap();
        self.steps += 1;
        Ok(seq)
    }

    fn step(&mut self) -> Seq {
        self.step_with(Severity::Info)
    }

    /// A publish of an `info` event is answered `full` (not stored, not left waiting).
    fn refused_full(&mut self) {
        let topic = format!("{}.step", self.name);
        match self
            .producer
            .publish(&event(&topic, Severity::Info, b"no room"))
        {
            Err(ClientError::Refused {
                code: ErrorCode::Full,
                ..
            }) => {}
            other => panic!("{}: expected full, got {other:?}", self.name),
        }
    }

    /// `n` steps.
    fn steps(&mut self, n: u64) {
        for _ in 0..n {
            self.step();
        }
    }
}

#[test]
fn five_thousand_connections_are_served_at_the_documented_memory_cost_and_one_more_is_busy() {
    const CONNECTIONS: usize = 5000;
    let limit = match raise_fd_limit(CONNECTIONS as u64 + 200) {
        Ok(limit) => limit,
        Err(why) => {
            eprintln!("SKIPPED five_thousand_connections...: {why}");
            return;
        }
    };
    eprintln!("RLIMIT_NOFILE raised to its hard limit, {limit}");
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--connections-max", "5000"]);
    let pid = d.child.id();
    let status = d.status();
    assert_eq!(status["connections"]["limit"], CONNECTIONS, "{status}");
    assert_eq!(
        status["connections"]["buffer_bytes_per_slot"], CONNECTION_SLOT_BYTES,
        "{status}"
    );
    assert_eq!(
        CONNECTION_SLOT_BYTES as u64,
        484 * KIB,
        "the README says 484 KiB"
    );
    let region_bytes = 64 << 20;
    let started = rss_of(pid);

    let mut conns = open_connections(&d.socket(), CONNECTIONS);
    let status = d.status();
    assert_eq!(status["connections"]["serving"], CONNECTIONS, "{status}");
    assert_eq!(status["subscriptions_total"], CONNECTIONS / 2, "{status}");
    // Each of them is still served: a ping on every one, all pipelined, gets its pong
    // (behind the confirmations).
    ping_every(&mut conns);
    let opened = rss_of(pid);
    let per_connection = opened.anon.saturating_sub(started.anon) / CONNECTIONS as u64;
    eprintln!(
        "{CONNECTIONS} connections: RssAnon {} -> {} KiB, {per_connection} bytes each \
         (at start: {} KiB resident for {} slots)",
        started.anon / KIB,
        opened.anon / KIB,
        started.total / KIB,
        CONNECTIONS + 2
    );
    assert_rss_within(
        "5,000 connections",
        started,
        opened,
        Load {
            connections: CONNECTIONS as u64 + 2,
            subscriptions: CONNECTIONS as u64 / 2,
            region_bytes,
        },
    );
    assert!(
        opened.anon.saturating_sub(started.anon)
            <= CONNECTIONS as u64 * SMALL_FRAMES_CONNECTION_BYTES + DAEMON_QUEUES_BYTES,
        "connections that exchanged small frames cost {per_connection} bytes each, more \
         than the documented {SMALL_FRAMES_CONNECTION_BYTES}"
    );

    // One more producer or subscriber is told busy, with the limit...
    for role in [Role::Producer, Role::Subscriber] {
        let mut one_more = Thin::connect(&d.socket());
        one_more.send_hello(role, "one-more");
        let message = expect_closing_error(&mut one_more, ErrorCode::Busy);
        assert!(
            message.contains("5000") && message.contains("--connections-max"),
            "{message}"
        );
    }
    // ...and an operator still gets in.
    let mut control = Client::connect(&d.socket(), Role::Control, "operator")
        .expect("a control connection gets in at the limit");
    let status: serde_json::Value = serde_json::from_str(&control.status().unwrap()).unwrap();
    assert_eq!(status["connections"]["serving"], CONNECTIONS, "{status}");
    drop(control);

    // Closed, their slots are reused: opening them all again makes nothing more
    // resident.
    drop(conns);
    d.wait_for_status("every connection closed", |s| {
        s["connections"]["serving"] == 0 && s["connections"]["open"] == 1
    });
    let closed = rss_of(pid);
    assert_rss_within("after closing", opened, closed, Load::NONE);
    let mut conns = open_connections(&d.socket(), CONNECTIONS);
    ping_every(&mut conns);
    let reopened = rss_of(pid);
    assert_rss_within("opened again", opened, reopened, Load::NONE);
    drop(conns);
    d.wait_for_status("every connection closed again", |s| {
        s["connections"]["serving"] == 0 && s["connections"]["open"] == 1
    });
}

/// Opens `count` connections in waves of pipelined frames: even ones say hello as
/// producers, odd ones as subscribers with a live-only subscription to `c.N` (N their
/// number). Each producer then publishes one event for the subscriber after it, which
/// gets it and confirms it: every connection is served, not only counted.
fn open_connections(socket: &Path, count: usize) -> Vec<Thin> {
    const WAVE: usize = 250;
    let mut conns: Vec<Thin> = Vec::with_capacity(count);
    while conns.len() < count {
        let wave = conns.len();
        for i in wave..count.min(wave + WAVE) {
            let mut c = Thin::connect(socket);
            if i % 2 == 0 {
                c.send_hello(Role::Producer, &format!("c{i}"));
            } else {
                c.send_hello(Role::Subscriber, &format!("c{i}"));
                let topic = format!("c.{i}");
                let pattern = [protocol::Pattern::parse(topic.as_bytes()).unwrap()];
                c.send(&Frame::Subscribe(protocol::Subscribe {
                    name: "",
                    min_severity: Severity::Debug,
                    window_events: 8,
                    automatic_recovery: false,
                    ack_deadline_ms: 0,
                    max_deliveries: 0,
                    patterns: protocol::Patterns::from_patterns(&pattern),
                }));
            }
            conns.push(c);
        }
        for (i, c) in conns.iter_mut().enumerate().skip(wave) {
            let f = c.recv().expect("an answer to hello");
            assert!(
                matches!(frame(&f), Frame::HelloOk(_)),
                "{i}: {:?}",
                frame(&f)
            );
            if i % 2 == 1 {
                let f = c.recv().expect("an answer to subscribe");
                assert!(
                    matches!(frame(&f), Frame::Subscribed { .. }),
                    "{i}: {:?}",
                    frame(&f)
                );
            }
        }
    }
    for (i, c) in conns.iter_mut().enumerate().step_by(2) {
        let topic = format!("c.{}", i + 1);
        c.send(&Frame::Publish {
            correlation: 1,
            event: event(&topic, Severity::Info, topic.as_bytes()),
        });
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let f = c.recv().expect("an answer or a delivery");
        match frame(&f) {
            Frame::Stored { correlation: 1, .. } if i % 2 == 0 => {}
            Frame::Deliver(d) if i % 2 == 1 => {
                assert_eq!(d.event.payload, format!("c.{i}").as_bytes());
                c.send(&Frame::Confirm {
                    first_seq: d.seq,
                    last_seq: d.seq,
                });
            }
            other => panic!("{i}: {other:?}"),
        }
    }
    conns
}

fn ping_every(conns: &mut [Thin]) {
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(&Frame::Ping { token: i as u64 });
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let f = c.recv().expect("a pong");
        assert_eq!(frame(&f), Frame::Pong { token: i as u64 });
    }
}

#[test]
fn slow_and_silent_connections_time_out_while_a_producer_and_subscriber_keep_being_served() {
    const SLOW: usize = 100;
    const SILENT: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &["--hello-timeout", "1s", "--connections-max", "300"],
    );
    let pid = d.child.id();
    let mut steady = Steady::start(&d.socket(), "steady");
    steady.steps(10);
    let before = rss_of(pid);
    let mut hello = vec![0u8; 64];
    let hello_len = protocol::encode(
        &Frame::Hello(Hello {
            version_min: 1,
            version_max: 1,
            role: Role::Producer,
            client_name: "slowloris",
        }),
        &mut hello,
    )
    .unwrap();
    // The slow ones connect first, so their hello is due no later than the silent
    // ones'; each sends the first byte of its hello.
    let mut slow: Vec<Thin> = (0..SLOW).map(|_| Thin::connect(&d.socket())).collect();
    for c in &mut slow {
        c.stream.write_all(&hello[..1]).unwrap();
    }
    let mut silent: Vec<Thin> = (0..SILENT).map(|_| Thin::connect(&d.socket())).collect();
    d.wait_for_status("every connection accepted", |s| {
        s["connections"]["open"] == SLOW + SILENT + 3
    });
    // The rest of the hello a byte at a time, all but its last byte, with a step of the
    // well-behaved pair between bytes. A write may fail once the daemon has closed the
    // connection for its overdue hello: the reads below say what it was told.
    for k in 1..hello_len - 1 {
        for c in &mut slow {
            let _ = c.stream.write_all(&hello[k..k + 1]);
        }
        steady.step();
    }
    // The pair keeps being served until every one of them has timed out: the partial
    // hellos did not put off the slow ones' deadline.
    let deadline = std::time::Instant::now() + STUCK_AFTER;
    let mut waited = 0u64;
    loop {
        let s = d.status();
        if s["connections"]["timed_out"] == SLOW + SILENT {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} connections timed out after {waited} steps: {s}",
            s["connections"]["timed_out"],
            SLOW + SILENT
        );
        steady.step();
        waited += 1;
    }
    eprintln!("{waited} steps served while the hellos were overdue");
    for c in &mut silent {
        let message = expect_closing_error(c, ErrorCode::TimedOut);
        assert!(message.contains("hello"), "{message}");
    }
    // The last byte of their hello comes too late: they were told `timed_out`.
    for c in &mut slow {
        let _ = c.stream.write_all(&hello[hello_len - 1..hello_len]);
        let message = expect_closing_error(c, ErrorCode::TimedOut);
        assert!(message.contains("--hello-timeout"), "{message}");
    }
    steady.steps(10);
    let status = d.status();
    assert_eq!(status["connections"]["serving"], 2, "{status}");
    assert_eq!(status["connections"]["open"], 3, "{status}");
    assert_eq!(
        status["connections"]["timed_out"],
        SLOW + SILENT,
        "{status}"
    );
    assert_eq!(status["connections"]["refused_at_limit"], 0, "{status}");
    assert_rss_within(
        "slow and silent connections",
        before,
        rss_of(pid),
        Load {
            connections: (SLOW + SILENT + 3) as u64,
            subscriptions: 1,
            region_bytes: 64 << 20,
        },
    );
}

#[test]
fn subscribers_that_never_read_fill_the_ring_not_the_memory_and_everything_drains_once_they_are_replaced(
) {
    const STUCK: usize = 4;
    const BATCH: usize = 256;
    let region_bytes = 2 << 20;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--region-size", "2M"]);
    let pid = d.child.id();
    let mut reader = Client::connect(&d.socket(), Role::Subscriber, "reader").unwrap();
    reader
        .subscribe("reader", &["load.>"], Severity::Debug, 64, false)
        .unwrap();
    let before = rss_of(pid);
    // Durable subscribers with the largest window, that read nothing after their
    // `Subscribed`: their send buffers and sockets fill with small deliveries (the
    // whole window fits), then their windows hold the ring.
    let stuck: Vec<Raw> = (0..STUCK)
        .map(|i| {
            let mut s = Raw::connect(&d.socket());
            s.hello(Role::Subscriber, &format!("stuck{i}"));
            let answer = s.subscribe(&format!("stuck{i}"), &["load.>"], 4096);
            assert!(
                matches!(frame(&answer), Frame::Subscribed { .. }),
                "{:?}",
                frame(&answer)
            );
            s
        })
        .collect();
    let mut producer = Client::connect(&d.socket(), Role::Producer, "flood").unwrap();
    let payload = [b'x'; 16];
    let events: Vec<Event<'_>> = (0..BATCH)
        .map(|_| event("load.flood", Severity::Info, &payload))
        .collect();
    let mut stored: BTreeSet<u64> = BTreeSet::new();
    // Until the ring is full, every publish is stored (batches, then single events
    // once a batch no longer fits), and the subscriber that reads gets each event.
    let mut publishes = 0;
    let mut batch_len = BATCH;
    loop {
        let batch = &events[..batch_len];
        match producer.publish_batch(batch) {
            Ok(s) => {
                assert_eq!(usize::from(s.count), batch.len());
                for _ in batch {
                    let seq = reader
                        .next_delivery(Some(STUCK_AFTER))
                        .unwrap()
                        .unwrap_or_else(|| panic!("publish {publishes} not delivered: stuck"))
                        .seq;
                    assert!(
                        (s.first_seq..=s.last_seq).contains(&seq),
                        "{seq:?} in {s:?}"
                    );
                    stored.insert(seq.0);
                    reader.confirm(seq, seq).unwrap();
                }
            }
            Err(ClientError::Refused {
                code: ErrorCode::Full,
                ..
            }) if batch_len > 1 => batch_len = 1,
            Err(ClientError::Refused {
                code: ErrorCode::Full,
                ..
            }) => break,
            Err(e) => panic!("publish {publishes}: expected Stored or full, got {e}"),
        }
        publishes += 1;
        assert!(publishes < 100_000, "the ring never filled");
    }
    let status = d.status();
    eprintln!(
        "full after {publishes} publishes, {} events: {} of {} slots used",
        stored.len(),
        status["ring"]["used_slots"],
        status["ring"]["slot_count"]
    );
    assert!(
        (0..STUCK).any(|i| sub_row(&status, &format!("stuck{i}"))["holds_ring"] == true),
        "a stuck subscriber holds the ring: {status}"
    );
    for i in 0..STUCK {
        let row = sub_row(&status, &format!("stuck{i}"));
        assert_eq!(row["connected"], true, "{row}");
        assert!(row["in_flight"].as_u64().unwrap() > 0, "{row}");
        eprintln!("stuck{i}: {} events in flight, unread", row["in_flight"]);
    }
    // Full is an answer, again and again, not a hang; the reserve still takes `crit`,
    // and the subscriber that reads gets it.
    for _ in 0..3 {
        match producer.publish(&event("load.flood", Severity::Info, &payload)) {
            Err(ClientError::Refused {
                code: ErrorCode::Full,
                ..
            }) => {}
            other => panic!("expected full, got {other:?}"),
        }
    }
    let crit = producer
        .publish(&event("load.crit", Severity::Critical, b"from the reserve"))
        .expect("crit is stored from the reserve");
    let delivery = reader
        .next_delivery(Some(STUCK_AFTER))
        .unwrap()
        .expect("crit delivered");
    assert_eq!(
        (delivery.seq, delivery.event.payload),
        (crit.first_seq, &b"from the reserve"[..])
    );
    reader.confirm(crit.first_seq, crit.first_seq).unwrap();
    reader.flush().unwrap();
    stored.insert(crit.first_seq.0);
    // Their buffers are full and the ring is, but memory is what it was allocated.
    assert_rss_within(
        "subscribers that never read",
        before,
        rss_of(pid),
        Load {
            connections: (STUCK + 4) as u64,
            subscriptions: (STUCK + 1) as u64,
            region_bytes,
        },
    );

    // The stuck ones go away; the same subscriptions, attached by subscribers that
    // read, get every event (the ones in flight again, flagged) and confirm them.
    drop(stuck);
    d.wait_for_status("the stuck connections closed", |s| {
        (0..STUCK).all(|i| sub_row(s, &format!("stuck{i}"))["connected"] == false)
    });
    let mut replacements = Vec::new();
    for i in 0..STUCK {
        let name = format!("stuck{i}");
        let mut c = Client::connect(&d.socket(), Role::Subscriber, &name).unwrap();
        c.subscribe_with(
            &name,
            &["load.>"],
            &SubscribeOptions {
                window_events: 4096,
                ..SubscribeOptions::default()
            },
        )
        .unwrap();
        let mut confirmed = BTreeSet::new();
        while confirmed.len() < stored.len() {
            let seq = c
                .next_delivery(Some(STUCK_AFTER))
                .unwrap()
                .unwrap_or_else(|| {
                    panic!(
                        "{name}: {} of {} events confirmed, then nothing: stuck",
                        confirmed.len(),
                        stored.len()
                    )
                })
                .seq;
            assert!(stored.contains(&seq.0), "{name}: {seq:?} was never stored");
            confirmed.insert(seq.0);
            c.confirm(seq, seq).unwrap();
        }
        c.flush().unwrap();
        replacements.push(c);
    }
    d.wait_for_status("everything drained", |s| s["ring"]["used_slots"] == 0);
    // Room again.
    let s = producer
        .publish(&event("load.flood", Severity::Info, b"after"))
        .expect("stored once the ring drained");
    let delivery = reader
        .next_delivery(Some(STUCK_AFTER))
        .unwrap()
        .expect("delivered");
    assert_eq!(delivery.seq, s.first_seq);
}

/// One event as the protocol encodes it (section 4.1), by hand: no source, no key.
fn event_bytes(topic: &str, payload_len: usize, fill: u8) -> Vec<u8> {
    let mut e = vec![Severity::Info.as_u8(), topic.len() as u8, 0, 0, 0, 0];
    e.extend((payload_len as u32).to_le_bytes());
    e.extend(topic.as_bytes());
    e.extend(std::iter::repeat_n(fill, payload_len));
    e
}

/// A `PublishBatch` frame of `events` (each from [`event_bytes`]), by hand: the encoder
/// refuses to write one beyond the limits.
fn batch_frame(correlation: u64, events: &[Vec<u8>]) -> Vec<u8> {
    let body: usize = 8 + 2 + events.iter().map(Vec::len).sum::<usize>();
    let mut f = ((protocol::FRAME_TYPE_BYTES + body) as u32)
        .to_le_bytes()
        .to_vec();
    f.extend([0x03, 0]);
    f.extend(correlation.to_le_bytes());
    f.extend((events.len() as u16).to_le_bytes());
    for e in events {
        f.extend(e);
    }
    f
}

/// Batch overhead: the frame header, the correlation and the count.
const BATCH_FRAME_OVERHEAD: usize = protocol::FRAME_HEADER_BYTES + 8 + 2;

/// The events of a batch frame of exactly `frame_bytes` bytes: one event with the
/// largest payload and one filling the rest.
fn largest_and_filler(frame_bytes: usize) -> Vec<Vec<u8>> {
    let big = event_bytes("big.max", EVENT_PAYLOAD_BYTES_MAX, b'M');
    let filler_payload = frame_bytes - BATCH_FRAME_OVERHEAD - big.len() - (10 + "big.fill".len());
    vec![big, event_bytes("big.fill", filler_payload, b'f')]
}

/// The events of a batch frame of exactly `frame_bytes` bytes: 256 events, the last
/// taking what is left.
fn many_small(frame_bytes: usize) -> Vec<Vec<u8>> {
    let events = protocol::BATCH_EVENTS_MAX;
    let each = (frame_bytes - BATCH_FRAME_OVERHEAD) / events;
    let mut all: Vec<Vec<u8>> = (0..events - 1)
        .map(|i| event_bytes("big.many", each - 18, i as u8))
        .collect();
    let rest = frame_bytes - BATCH_FRAME_OVERHEAD - (events - 1) * each;
    all.push(event_bytes("big.many", rest - 18, b'z'));
    all
}

/// Sends `f` (ignoring a write the daemon cut short by closing) and expects a closing
/// `too_large`.
fn expect_too_large(socket: &Path, f: &[u8]) {
    let mut c = Thin::connect(socket);
    c.send_hello(Role::Producer, "over");
    assert!(matches!(
        frame(&c.recv().expect("hello answered")),
        Frame::HelloOk(_)
    ));
    // The daemon answers as soon as the header shows the problem and closes: the
    // rest of the write may fail (PROTOCOL.md section 7).
    let _ = c.stream.write_all(f);
    let message = expect_closing_error(&mut c, ErrorCode::TooLarge);
    assert!(message.contains("limit"), "{message}");
}

#[test]
fn events_at_the_payload_limit_and_batches_of_the_largest_frame_are_stored_and_delivered_and_one_byte_more_is_too_large(
) {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let pid = d.child.id();
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "big").unwrap();
    sub.subscribe("big", &["big.>"], Severity::Debug, 16, false)
        .unwrap();
    let mut producer = Client::connect(&d.socket(), Role::Producer, "big").unwrap();
    // A region made by `herald serve` takes what the protocol carries.
    assert_eq!(
        producer.hello_ok().event_payload_bytes_max as usize,
        EVENT_PAYLOAD_BYTES_MAX
    );
    assert_eq!(
        producer.hello_ok().frame_bytes_max as usize,
        FRAME_BYTES_MAX
    );
    let before = rss_of(pid);
    let receive = |sub: &mut Client, expected: &[u8], what: &str| {
        let delivery = sub
            .next_delivery(Some(STUCK_AFTER))
            .unwrap()
            .unwrap_or_else(|| panic!("{what} not delivered: stuck"));
        assert!(delivery.event.payload == expected, "{what}: payload intact");
        let seq = delivery.seq;
        sub.confirm(seq, seq).unwrap();
    };
    // 64 KiB events, one at a time, many more than the ring holds at once.
    let slots = d.status()["ring"]["slot_count"].as_u64().unwrap();
    let event_slots = (EVENT_PAYLOAD_BYTES_MAX as u64 + 128) / 128;
    let rounds = 2 * slots / event_slots;
    for i in 0..rounds {
        let payload = vec![i as u8; EVENT_PAYLOAD_BYTES_MAX];
        producer
            .publish(&event("big.max", Severity::Info, &payload))
            .unwrap_or_else(|e| panic!("64 KiB event {i}: {e}"));
        receive(&mut sub, &payload, "a 64 KiB event");
    }
    eprintln!("{rounds} events of 64 KiB through a ring of {slots} slots");
    // Batches of exactly the largest frame: the largest event and a filler, and 256
    // events; the client library sends them (they are within its limits).
    for (name, events) in [
        (
            "the largest event and a filler",
            largest_and_filler(FRAME_BYTES_MAX),
        ),
        ("256 events", many_small(FRAME_BYTES_MAX)),
    ] {
        assert_eq!(batch_frame(1, &events).len(), FRAME_BYTES_MAX, "{name}");
        let decoded: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| {
                let t = e[1] as usize;
                (
                    String::from_utf8(e[10..10 + t].to_vec()).unwrap(),
                    e[10 + t..].to_vec(),
                )
            })
            .collect();
        let batch: Vec<Event<'_>> = decoded
            .iter()
            .map(|(topic, payload)| event(topic, Severity::Info, payload))
            .collect();
        // The library's encoding is the one built by hand.
        let mut wire = Vec::with_capacity(FRAME_BYTES_MAX);
        protocol::encode_to_vec(
            &Frame::PublishBatch {
                correlation: 1,
                events: protocol::EventBatch::from_events(&batch),
            },
            &mut wire,
        )
        .unwrap();
        assert_eq!(wire, batch_frame(1, &events), "{name}");
        for round in 0..8 {
            let s = producer
                .publish_batch(&batch)
                .unwrap_or_else(|e| panic!("{name}, round {round}: {e}"));
            assert_eq!(usize::from(s.count), batch.len());
            for (_, payload) in &decoded {
                receive(&mut sub, payload, name);
            }
        }
    }
    // One byte more is too large: a frame beyond the largest, a payload beyond its
    // limit.
    expect_too_large(
        &d.socket(),
        &batch_frame(2, &largest_and_filler(FRAME_BYTES_MAX + 1)),
    );
    expect_too_large(
        &d.socket(),
        &batch_frame(3, &many_small(FRAME_BYTES_MAX + 1)),
    );
    let mut over = event_bytes("big.over", EVENT_PAYLOAD_BYTES_MAX + 1, b'o');
    let mut publish = ((protocol::FRAME_TYPE_BYTES + 8 + over.len()) as u32)
        .to_le_bytes()
        .to_vec();
    publish.extend([0x02, 0]);
    publish.extend(4u64.to_le_bytes());
    publish.append(&mut over);
    assert!(publish.len() <= FRAME_BYTES_MAX, "only the payload is over");
    expect_too_large(&d.socket(), &publish);
    // The daemon serves on, and nothing of the refused frames was stored.
    let s = producer
        .publish(&event("big.after", Severity::Info, b"after"))
        .unwrap();
    receive(&mut sub, b"after", "the event after");
    sub.flush().unwrap();
    d.wait_for_status("everything released", |st| {
        st["ring"]["used_slots"] == 0 && st["ring"]["tail"].as_u64() > Some(s.first_seq.0)
    });
    assert_rss_within(
        "events at the payload limit",
        before,
        rss_of(pid),
        Load {
            connections: 8,
            subscriptions: 1,
            region_bytes: 64 << 20,
        },
    );
}

/// Subscribes `name` on a raw connection and leaves with `Goodbye`: a durable
/// subscription that exists with nobody attached.
fn create_detached(socket: &Path, name: &str, pattern: &str) -> Frame<'static> {
    let mut s = Raw::connect(socket);
    s.hello(Role::Subscriber, name);
    let answer = s.subscribe(name, &[pattern], 64);
    let answered = match frame(&answer) {
        Frame::Subscribed {
            mode,
            pending_events,
        } => Frame::Subscribed {
            mode,
            pending_events,
        },
        Frame::Error { code, message, .. } => panic!("{name}: {code:?}: {message}"),
        other => panic!("{name}: {other:?}"),
    };
    s.send(&Frame::Goodbye);
    assert_eq!(s.recv(), None, "closed after goodbye");
    answered
}

#[test]
fn a_full_subscription_table_refuses_one_more_with_table_full_while_other_subscriptions_keep_being_served(
) {
    // A default region's table holds 64 durable subscriptions.
    const ENTRIES: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let pid = d.child.id();
    let mut steady = Steady::start(&d.socket(), "steady");
    let before = rss_of(pid);
    for i in 1..ENTRIES {
        create_detached(&d.socket(), &format!("filler{i}"), &format!("filler.n{i}"));
        steady.step();
    }
    let mut one_more = Raw::connect(&d.socket());
    one_more.hello(Role::Subscriber, "one-more");
    let answer = one_more.subscribe("filler64", &["filler.>"], 64);
    match frame(&answer) {
        Frame::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::TableFull, "{message}");
            assert!(message.contains("64"), "names the table's size: {message}");
        }
        other => panic!("expected table_full, got {other:?}"),
    }
    assert_eq!(one_more.recv(), None, "table_full closes");
    steady.steps(20);
    // An existing subscription still attaches, and a live-only one (which takes no
    // entry) gets the events stored while it is attached.
    let mut again = Client::connect(&d.socket(), Role::Subscriber, "again").unwrap();
    again
        .subscribe("filler3", &["filler.n3"], Severity::Debug, 64, false)
        .expect("an existing subscription attaches");
    let mut live = Client::connect(&d.socket(), Role::Subscriber, "live").unwrap();
    live.subscribe("", &["steady.>"], Severity::Debug, 64, false)
        .expect("a live-only subscription needs no entry");
    for _ in 0..20 {
        let seq = steady.step();
        let delivery = live
            .next_delivery(Some(STUCK_AFTER))
            .unwrap()
            .expect("the live subscriber gets it");
        assert_eq!(delivery.seq, seq);
        live.confirm(seq, seq).unwrap();
    }
    let status = d.status();
    assert_eq!(status["subscriptions_total"], ENTRIES + 1, "{status}");
    assert_eq!(
        status["ring"]["used_slots"], 0,
        "the fillers hold nothing: {status}"
    );
    assert_rss_within(
        "a full subscription table",
        before,
        rss_of(pid),
        Load {
            connections: 6,
            subscriptions: ENTRIES as u64 + 1,
            region_bytes: 64 << 20,
        },
    );
}

/// Publishes `hog.flood` events until the ring is full, with a step of `steady` after
/// each publish: batches of 32 events of 1 KB, then single ones once a batch no longer
/// fits, then events of one slot, until the smallest event (the flood's or the step's)
/// does not fit; returns the events stored.
fn fill_ring(producer: &mut Client, steady: &mut Steady) -> u64 {
    let large = [b'h'; 1000];
    let batch: Vec<Event<'_>> = (0..32)
        .map(|_| event("hog.flood", Severity::Info, &large))
        .collect();
    let one_slot = [event("hog.flood", Severity::Info, b"one slot")];
    let mut stages = [&batch[..], &batch[..1], &one_slot[..]]
        .into_iter()
        .peekable();
    let mut stored = 0;
    for _ in 0..100_000 {
        let Some(events) = stages.peek() else {
            return stored;
        };
        match producer.publish_batch(events) {
            Ok(s) => stored += u64::from(s.count),
            Err(ClientError::Refused {
                code: ErrorCode::Full,
                ..
            }) => {
                stages.next();
                continue;
            }
            Err(e) => panic!("expected Stored or full, got {e}"),
        }
        match steady.try_step_with(Severity::Info) {
            Ok(_) => {}
            Err(ClientError::Refused {
                code: ErrorCode::Full,
                ..
            }) => return stored,
            Err(e) => panic!("steady: {e}"),
        }
    }
    panic!("the ring never filled");
}

#[test]
fn a_full_ring_answers_full_stores_crit_from_the_reserve_and_other_subscriptions_keep_getting_their_events(
) {
    let region_bytes = 4 << 20;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--region-size", "4M"]);
    let pid = d.child.id();
    // A durable subscription nobody attaches holds every event meant for it.
    create_detached(&d.socket(), "hog", "hog.>");
    let mut steady = Steady::start(&d.socket(), "steady");
    let before = rss_of(pid);
    let mut flood = Client::connect(&d.socket(), Role::Producer, "flood").unwrap();
    let hogged = fill_ring(&mut flood, &mut steady);
    let status = d.status();
    let hog = sub_row(&status, "hog");
    assert_eq!(hog["holds_ring"], true, "{status}");
    assert_eq!(hog["connected"], false, "{status}");
    eprintln!(
        "ring full with {hogged} events: {} of {} slots used, {} in reserve",
        status["ring"]["used_slots"], status["ring"]["slot_count"], status["ring"]["reserve_slots"]
    );
    // The well-behaved producer is answered `full` for `info`, and its `crit` events
    // are stored from the reserve and delivered to its subscriber, again and again.
    for _ in 0..10 {
        steady.refused_full();
        steady.step_with(Severity::Critical);
    }
    assert_rss_within(
        "a full ring",
        before,
        rss_of(pid),
        Load {
            connections: 6,
            subscriptions: 2,
            region_bytes,
        },
    );
    // The hog attaches and confirms everything: the ring drains and `info` is stored
    // again.
    let mut hog = Client::connect(&d.socket(), Role::Subscriber, "hog").unwrap();
    hog.subscribe("hog", &["hog.>"], Severity::Debug, 4096, false)
        .unwrap();
    let mut confirmed = BTreeSet::new();
    while (confirmed.len() as u64) < hogged {
        let seq = hog
            .next_delivery(Some(STUCK_AFTER))
            .unwrap()
            .unwrap_or_else(|| panic!("hog: {} of {hogged} delivered: stuck", confirmed.len()))
            .seq;
        confirmed.insert(seq);
        hog.confirm(seq, seq).unwrap();
    }
    hog.flush().unwrap();
    d.wait_for_status("the ring drained", |s| s["ring"]["used_slots"] == 0);
    steady.steps(10);
}

#[test]
fn a_full_dead_letter_area_holds_the_given_up_events_while_other_subscriptions_keep_being_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // A dead-letter area of 16 one-slot letters, as in tests/hardening.rs.
    let region_bytes = 1 << 20;
    let options = herald::log::StoreOptions {
        config: herald::log::LogConfig {
            slot_bytes: 128,
            reserve_slots: None,
            subscription_entries: 8,
            payload_bytes_max: 1024,
            dead_letter_slots: Some(16),
        },
        ..Default::default()
    };
    drop(
        herald::log::create_file(&dir.path().join("region.pmem"), region_bytes, &options, 7)
            .unwrap(),
    );
    // A backoff of an hour: the events waiting for room are not redelivered meanwhile.
    let d = Daemon::start(
        dir.path(),
        &[
            "--redelivery-backoff",
            "1h",
            "--redelivery-backoff-max",
            "1h",
        ],
    );
    let pid = d.child.id();
    let mut steady = Steady::start(&d.socket(), "steady");
    let mut audit = Client::connect(&d.socket(), Role::Subscriber, "audit").unwrap();
    audit
        .subscribe("audit", &["audit.>"], Severity::Debug, 64, false)
        .unwrap();
    let mut producer = Client::connect(&d.socket(), Role::Producer, "bad").unwrap();
    let before = rss_of(pid);
    // Forty events rejected: sixteen fill the area, the rest wait for room.
    for i in 0..40 {
        let payload = format!("bad {i}");
        let stored = producer
            .publish(&event("audit.x", Severity::Warning, payload.as_bytes()))
            .unwrap();
        let seq = audit
            .next_delivery(Some(STUCK_AFTER))
            .unwrap()
            .expect("a delivery to reject")
            .seq;
        assert_eq!(seq, stored.first_seq);
        audit.reject(seq).unwrap();
        audit.flush().unwrap();
        steady.step();
    }
    d.wait_for_status("the area full, 24 waiting", |s| {
        s["dead_letters"]["full"] == true && s["dead_letters"]["events_waiting_for_room"] == 24
    });
    // The others keep being served while the area is full.
    steady.steps(100);
    let status = d.status();
    assert_eq!(sub_row(&status, "audit")["dead_lettered"], 16, "{status}");
    assert_eq!(
        status["dead_letters"]["events_waiting_for_room"], 24,
        "{status}"
    );
    assert_rss_within(
        "a full dead-letter area",
        before,
        rss_of(pid),
        Load {
            connections: 6,
            subscriptions: 2,
            region_bytes,
        },
    );
    // Room made, the waiting ones become dead letters and the ring drains.
    for _ in 0..2 {
        let out = daemon::herald(&[
            "dead",
            "purge",
            "--data-dir",
            data,
            "--subscription",
            "audit",
            "--all",
        ]);
        assert!(out.status.success(), "{out:?}");
        steady.step();
    }
    d.wait_for_status("everything dead-lettered and released", |s| {
        s["dead_letters"]["full"] == false
            && s["dead_letters"]["events_waiting_for_room"] == 0
            && s["ring"]["used_slots"] == 0
    });
    assert_eq!(sub_row(&d.status(), "audit")["dead_lettered"], 40);
    steady.steps(10);
}

#[test]
fn a_short_soak_with_kills_loses_nothing_acknowledged_stores_nothing_twice_and_stays_within_its_memory_bound(
) {
    // The soak tool (tools/soak.rs) for 25 s: mixed producers and subscribers, lifetimes
    // of up to 6 s ended by SIGKILL (or SIGTERM) at moments drawn from the seed, every
    // restart checked, then a drain and the final checks.
    let seed = seed::Seed::from_env(
        "HERALD_SOAK_SEED",
        soak::DEFAULT_SEED,
        "cargo test --release --test load a_short_soak",
    );
    let config = soak::Config {
        duration: std::time::Duration::from_secs(25),
        seed: seed.value,
        rate: 1500.0,
        // A stall fills its ring (1.8 MB) in about two seconds.
        region_mib: 2,
        lifetime_max: std::time::Duration::from_secs(6),
        sync_disk: false,
        progress: None,
    };
    let outcome = soak::run(&config);
    let summary = soak::summary(&config, &outcome);
    eprintln!("{summary}");
    let s = &outcome.stats;
    assert_eq!(s.violations, 0, "{summary}");
    // The seed's lifetimes: the kills happened, and every restart was checked.
    assert!(s.kills > 0 && s.restarts >= s.kills, "{summary}");
    assert_eq!(s.recovery_checks, s.restarts, "{summary}");
    assert!(
        s.events_acked > 0 && s.deliveries > 0 && s.dead_letters > 0,
        "{summary}"
    );
}
