//! A client made of hand-encoded frames over a plain blocking `UnixStream`: what a
//! client written in another language from PROTOCOL.md alone would do.

#![allow(dead_code)]

use herald::protocol::{self, decode, encode, Frame, Hello, Pattern, Patterns, Role, Subscribe};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long a read waits before the test calls the daemon stuck. A failure detector
/// only: no test passes because this much time went by.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);

/// One raw connection and its receive buffer.
pub struct Raw {
    pub stream: UnixStream,
    buf: Vec<u8>,
    len: usize,
    out: Vec<u8>,
}

impl Raw {
    /// Connects to `socket`.
    pub fn connect(socket: &Path) -> Raw {
        let stream = UnixStream::connect(socket).expect("connect to the daemon's socket");
        stream
            .set_read_timeout(Some(STUCK_AFTER))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(STUCK_AFTER))
            .expect("write timeout");
        Raw {
            stream,
            buf: vec![0; 256 * 1024],
            len: 0,
            out: vec![0; protocol::FRAME_BYTES_MAX],
        }
    }

    /// Sends one frame (blocking until the kernel took it).
    pub fn send(&mut self, frame: &Frame<'_>) {
        let n = encode(frame, &mut self.out).expect("test frames encode");
        if let Err(e) = self.stream.write_all(&self.out[..n]) {
            match e.kind() {
                std::io::ErrorKind::WouldBlock => {
                    panic!("the daemon took nothing for {STUCK_AFTER:?}: stuck")
                }
                _ => panic!("send: {e}"),
            }
        }
    }

    /// Sends bytes as they are.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next frame's bytes, or None at end of stream. Panics (naming `STUCK_AFTER`)
    /// when nothing arrives for that long.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Ok(Some((_, n))) = decode(&self.buf[..self.len]) {
                let frame = self.buf[..n].to_vec();
                self.buf.copy_within(n..self.len, 0);
                self.len -= n;
                return Some(frame);
            }
            let read = match self.stream.read(&mut self.buf[self.len..]) {
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    panic!("nothing from the daemon for {STUCK_AFTER:?}: stuck")
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => panic!("read: {e}"),
            };
            if read == 0 {
                return None;
            }
            self.len += read;
        }
    }

    /// The next frame, read exactly (its header, then its body) with nothing read
    /// ahead: the simplest client. None at end of stream.
    pub fn recv_exact(&mut self) -> Option<Vec<u8>> {
        assert_eq!(self.len, 0, "recv_exact after recv read ahead");
        let mut header = [0u8; protocol::FRAME_HEADER_BYTES];
        if !self.read_exact(&mut header) {
            return None;
        }
        let length = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        let mut frame = header.to_vec();
        frame.resize(4 + length, 0);
        if !self.read_exact(&mut frame[protocol::FRAME_HEADER_BYTES..]) {
            return None;
        }
        Some(frame)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> bool {
        match self.stream.read_exact(buf) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("nothing from the daemon for {STUCK_AFTER:?}: stuck")
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Hello with `role`, expecting `HelloOk`.
    pub fn hello(&mut self, role: Role, name: &str) {
        self.send(&Frame::Hello(Hello {
            version_min: 1,
            version_max: 1,
            role,
            client_name: name,
        }));
        let f = self.recv().expect("an answer to hello");
        assert!(
            matches!(decode(&f).unwrap().unwrap().0, Frame::HelloOk(_)),
            "{:?}",
            decode(&f)
        );
    }

    /// Subscribes `name` (empty: live-only) to `patterns` with `window` events in
    /// flight, and returns the raw answer.
    pub fn subscribe(&mut self, name: &str, patterns: &[&str], window: u32) -> Vec<u8> {
        let parsed: Vec<Pattern<'_>> = patterns
            .iter()
            .map(|p| Pattern::parse(p.as_bytes()).expect("test patterns are valid"))
            .collect();
        self.send(&Frame::Subscribe(Subscribe {
            name,
            min_severity: protocol::Severity::Debug,
            window_events: window,
            automatic_recovery: false,
            group: false,
            ack_deadline_ms: 0,
            max_deliveries: 0,
            patterns: Patterns::from_patterns(&parsed),
        }));
        self.recv().expect("an answer to subscribe")
    }
}

/// Decodes one frame received by [`Raw::recv`].
pub fn frame(bytes: &[u8]) -> Frame<'_> {
    decode(bytes)
        .expect("the daemon sends valid frames")
        .expect("a whole frame")
        .0
}
