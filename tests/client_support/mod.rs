//! A scripted fake daemon for client tests: a `UnixListener` in a thread that decodes
//! what the client sends and answers as the test's script says, with the protocol
//! module on both sides.
#![allow(dead_code)]

use herald::protocol::*;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// A fake daemon serving one connection on `DIR/herald.sock` of a fresh temporary
/// directory. The script's result (and any assertion it failed) comes back from
/// [`FakeServer::finish`].
pub struct FakeServer<R> {
    dir: tempfile::TempDir,
    socket: PathBuf,
    thread: JoinHandle<R>,
}

impl<R: Send + 'static> FakeServer<R> {
    /// Binds the socket (before returning, so a client may connect at once) and runs
    /// `script` on the first connection accepted.
    pub fn start(script: impl FnOnce(&mut Peer) -> R + Send + 'static) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let socket = dir.path().join("herald.sock");
        let listener = UnixListener::bind(&socket).expect("bind the fake daemon's socket");
        let thread = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut peer = Peer { stream };
            script(&mut peer)
        });
        FakeServer {
            dir,
            socket,
            thread,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The data directory holding `herald.sock`, for the CLI's `--data-dir`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits for the script to end; re-raises its panic (a failed assertion) here.
    pub fn finish(self) -> R {
        match self.thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// The daemon's end of the connection.
pub struct Peer {
    pub stream: UnixStream,
}

impl Peer {
    /// The next whole frame's bytes; `None` at end of stream.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        let mut length = [0u8; 4];
        match self.stream.read_exact(&mut length) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(error) => panic!("fake daemon read failed: {error}"),
        }
        let mut frame = length.to_vec();
        frame.resize(4 + u32::from_le_bytes(length) as usize, 0);
        self.stream
            .read_exact(&mut frame[4..])
            .expect("a whole frame");
        Some(frame)
    }

    /// The next frame, which must come.
    pub fn recv_some(&mut self) -> Vec<u8> {
        self.recv().expect("the client sent another frame")
    }

    pub fn send(&mut self, frame: &Frame<'_>) {
        let mut bytes = Vec::with_capacity(FRAME_BYTES_MAX);
        encode_to_vec(frame, &mut bytes).expect("the script's frame encodes");
        self.send_bytes(&bytes);
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("fake daemon write");
    }

    /// Expects a hello with `role` and accepts it; returns the client name.
    pub fn accept_hello(&mut self, role: Role) -> String {
        let bytes = self.recv_some();
        let name = match frame(&bytes) {
            Frame::Hello(hello) => {
                assert_eq!(
                    (hello.version_min, hello.version_max),
                    (1, PROTOCOL_VERSION_MAX)
                );
                assert_eq!(hello.role, role);
                hello.client_name.to_owned()
            }
            other => panic!("expected Hello, got {other:?}"),
        };
        self.send(&Frame::HelloOk(HelloOk {
            version: 1,
            node_id: 7,
            frame_bytes_max: FRAME_BYTES_MAX as u32,
            event_payload_bytes_max: EVENT_PAYLOAD_BYTES_MAX as u32,
        }));
        name
    }

    /// Expects a publish; returns its correlation and event.
    pub fn expect_publish(&mut self) -> (u64, OwnedEvent) {
        let bytes = self.recv_some();
        match frame(&bytes) {
            Frame::Publish { correlation, event } => (correlation, OwnedEvent::from(&event)),
            other => panic!("expected Publish, got {other:?}"),
        }
    }

    /// Answers a publish as stored at `seq`.
    pub fn stored(&mut self, correlation: u64, seq: u64) {
        self.send(&Frame::Stored {
            correlation,
            first_seq: Seq(seq),
            last_seq: Seq(seq),
            count: 1,
        });
    }

    /// Expects a subscribe and accepts it (normal mode, nothing pending); returns it.
    pub fn accept_subscribe(&mut self) -> OwnedSubscribe {
        let bytes = self.recv_some();
        let subscribe = match frame(&bytes) {
            Frame::Subscribe(subscribe) => OwnedSubscribe {
                name: subscribe.name.to_owned(),
                patterns: subscribe
                    .patterns
                    .iter()
                    .map(|pattern| pattern.as_str().to_owned())
                    .collect(),
                min_severity: subscribe.min_severity,
                window_events: subscribe.window_events,
                automatic_recovery: subscribe.automatic_recovery,
            },
            other => panic!("expected Subscribe, got {other:?}"),
        };
        self.send(&Frame::Subscribed {
            mode: SubscriptionMode::Normal,
            pending_events: 0,
        });
        subscribe
    }

    /// Sends a delivery of `payload` on `topic` at `seq`.
    pub fn deliver(&mut self, seq: u64, topic: &str, payload: &[u8]) {
        self.send(&deliver_frame(seq, topic, payload));
    }

    /// Every frame until end of stream, decoded into a printable form.
    pub fn recv_until_end(&mut self) -> Vec<String> {
        let mut frames = Vec::new();
        while let Some(bytes) = self.recv() {
            frames.push(format!("{:?}", frame(&bytes)));
        }
        frames
    }
}

/// A delivery frame for `payload` on `topic` at `seq`, first delivery.
pub fn deliver_frame<'a>(seq: u64, topic: &'a str, payload: &'a [u8]) -> Frame<'a> {
    Frame::Deliver(delivery(seq, topic, payload))
}

/// A first delivery of `payload` on `topic` at `seq`, from source `fsd`.
pub fn delivery<'a>(seq: u64, topic: &'a str, payload: &'a [u8]) -> Deliver<'a> {
    Deliver {
        seq: Seq(seq),
        timestamp_ns: 1_700_000_000_000_000_000 + seq,
        redelivered: false,
        delivery_count: 1,
        origin: None,
        rule: None,
        event: Event {
            topic: Topic::new(topic.as_bytes()).expect("valid topic"),
            severity: Severity::Warning,
            source: "fsd",
            flags: 0,
            key: b"",
            payload,
        },
    }
}

/// Decodes one whole frame the client sent; it must be valid.
pub fn frame(bytes: &[u8]) -> Frame<'_> {
    let (frame, used) = decode(bytes)
        .expect("the client sends valid frames")
        .expect("a whole frame");
    assert_eq!(used, bytes.len());
    frame
}

/// An event copied out of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEvent {
    pub topic: String,
    pub severity: Severity,
    pub source: String,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

impl From<&Event<'_>> for OwnedEvent {
    fn from(event: &Event<'_>) -> Self {
        OwnedEvent {
            topic: event.topic.as_str().to_owned(),
            severity: event.severity,
            source: event.source.to_owned(),
            key: event.key.to_vec(),
            payload: event.payload.to_vec(),
        }
    }
}

/// A subscribe copied out of its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSubscribe {
    pub name: String,
    pub patterns: Vec<String>,
    pub min_severity: Severity,
    pub window_events: u32,
    pub automatic_recovery: bool,
}

/// An event on `topic` with `payload`, for publishing.
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
