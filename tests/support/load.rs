//! What the load and limits tests (`tests/load.rs`, `tests/limits.rs`) share: thin
//! connections, a steady producer and subscriber that must keep being served, and the
//! memory check.

#![allow(dead_code)]

use crate::raw::{frame, STUCK_AFTER};
use crate::soak::memory;
use herald::client::{Client, ClientError};
use herald::protocol::{self, ErrorCode, Event, Frame, Hello, Role, Seq, Severity, Topic};
use memory::{Load, Rss, KIB};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// A connection that has exchanged only a few small frames (and reads its answers)
/// touches only the first pages of its buffers and of its subscription's table, which
/// are mostly resident from the start (the allocator's bookkeeping lives there): at
/// most this much each (beside the README's bound, `support/memory.rs`).
pub const SMALL_FRAMES_CONNECTION_BYTES: u64 = 16 * KIB;

/// Raises this process's open-file limit to its hard limit (children inherit it: the
/// daemon needs as many descriptors as the test). Err says why the test cannot run.
pub fn raise_fd_limit(needed: u64) -> Result<u64, String> {
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
pub struct Thin {
    pub stream: UnixStream,
}

impl Thin {
    pub fn connect(socket: &Path) -> Thin {
        let stream = UnixStream::connect(socket).expect("connect to the daemon's socket");
        stream.set_read_timeout(Some(STUCK_AFTER)).unwrap();
        stream.set_write_timeout(Some(STUCK_AFTER)).unwrap();
        Thin { stream }
    }

    pub fn send(&mut self, f: &Frame<'_>) {
        let mut out = [0u8; 512];
        let n = protocol::encode(f, &mut out).expect("small frames encode");
        self.stream.write_all(&out[..n]).expect("send");
    }

    pub fn send_hello(&mut self, role: Role, name: &str) {
        self.send(&Frame::Hello(Hello {
            version_min: 1,
            version_max: 1,
            role,
            client_name: name,
        }));
    }

    /// The next frame, read exactly; None at end of stream.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
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

pub fn read_exact_or_eof(stream: &mut UnixStream, buf: &mut [u8]) -> bool {
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
pub fn expect_closing_error(c: &mut Thin, code: ErrorCode) -> String {
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
pub fn assert_rss_within(what: &str, before: Rss, after: Rss, load: Load) {
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
pub fn event<'a>(topic: &'a str, severity: Severity, payload: &'a [u8]) -> Event<'a> {
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
pub struct Steady {
    pub name: String,
    pub producer: Client,
    pub subscriber: Client,
    pub steps: u64,
}

impl Steady {
    pub fn start(socket: &Path, name: &str) -> Steady {
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
    pub fn step_with(&mut self, severity: Severity) -> Seq {
        match self.try_step_with(severity) {
            Ok(seq) => seq,
            Err(e) => panic!("{}: step {} not stored: {e}", self.name, self.steps),
        }
    }

    /// A step, or the publish's refusal (then nothing was stored).
    pub fn try_step_with(&mut self, severity: Severity) -> Result<Seq, ClientError> {
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

    pub fn step(&mut self) -> Seq {
        self.step_with(Severity::Info)
    }

    /// A publish of an `info` event is answered `full` (not stored, not left waiting).
    pub fn refused_full(&mut self) {
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
    pub fn steps(&mut self, n: u64) {
        for _ in 0..n {
            self.step();
        }
    }
}
