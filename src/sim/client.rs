//! A protocol client over a simulated connection: frames are encoded into an output
//! buffer that drains into the connection as it has room, and received bytes are cut
//! into frames. Buffers are allocated once.

use crate::protocol::{self, decode, encode, Frame, FRAME_BYTES_MAX};
use crate::reactor::sim::SimStream;

/// Bytes a client buffers each way.
const CLIENT_BUFFER_BYTES: usize = 8 * FRAME_BYTES_MAX;

/// One simulated client connection.
pub struct SimClient {
    stream: SimStream,
    out: Vec<u8>,
    out_len: usize,
    inbox: Vec<u8>,
    inbox_len: usize,
    closed: bool,
}

impl SimClient {
    pub(super) fn new(stream: SimStream) -> SimClient {
        SimClient {
            stream,
            out: vec![0; CLIENT_BUFFER_BYTES],
            out_len: 0,
            inbox: vec![0; CLIENT_BUFFER_BYTES],
            inbox_len: 0,
            closed: false,
        }
    }

    /// Queues `frame` and writes what the connection takes. False if the output
    /// buffer has no room for it (the daemon is not reading: try after turns).
    pub fn send(&mut self, frame: &Frame<'_>) -> bool {
        let Ok(n) = encode(frame, &mut self.out[self.out_len..]) else {
            return false;
        };
        self.out_len += n;
        self.flush();
        true
    }

    /// Queues raw bytes (a malformed frame, say) and writes what the connection takes.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.out.len() - self.out_len {
            return false;
        }
        self.out[self.out_len..self.out_len + bytes.len()].copy_from_slice(bytes);
        self.out_len += bytes.len();
        self.flush();
        true
    }

    /// Writes queued output into the connection as far as it has room.
    pub fn flush(&mut self) {
        let n = self.stream.write(&self.out[..self.out_len]);
        self.out.copy_within(n..self.out_len, 0);
        self.out_len -= n;
    }

    /// Bytes queued and not yet taken by the connection.
    pub fn unsent(&self) -> usize {
        self.out_len
    }

    /// Reads what arrived and calls `each` with every complete frame, in order.
    /// Returns how many frames there were; a malformed frame from the daemon panics
    /// (it is a daemon bug a test must see).
    pub fn receive(&mut self, mut each: impl FnMut(Frame<'_>)) -> usize {
        self.flush();
        if let Some(n) = self.stream.read(&mut self.inbox[self.inbox_len..]) {
            self.inbox_len += n;
        } else if self.inbox_len == 0 {
            self.closed = true;
        }
        let mut at = 0;
        let mut frames = 0;
        loop {
            match decode(&self.inbox[at..self.inbox_len]) {
                Ok(Some((frame, n))) => {
                    each(frame);
                    at += n;
                    frames += 1;
                }
                Ok(None) => break,
                Err(e) => panic!("the daemon sent a malformed frame: {e}"),
            }
        }
        self.inbox.copy_within(at..self.inbox_len, 0);
        self.inbox_len -= at;
        frames
    }

    /// Bytes received and not yet a whole frame (after a close: a frame cut short).
    pub fn unread(&self) -> usize {
        self.inbox_len
    }

    /// The daemon closed the connection and everything it sent was read.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Closes the client's end.
    pub fn close(&mut self) {
        self.stream.close();
    }
}

/// A hello frame for `role` and `name`, the protocol's only version.
pub fn hello<'a>(role: protocol::Role, name: &'a str) -> Frame<'a> {
    Frame::Hello(protocol::Hello {
        version_min: 1,
        version_max: 1,
        role,
        client_name: name,
    })
}
