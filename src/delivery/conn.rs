//! One client connection: its protocol state machine and its two buffers, allocated
//! once when the daemon starts and reused by every connection that takes the slot.
//!
//! Buffer ownership: while a receive (send) is in flight, the ring owns the free tail
//! of `recv` (the pending bytes of `send`); the daemon touches them again only after
//! the completion arrives (`recv_in_flight` / `send_in_flight` guard this).

use crate::protocol::{
    ServerMachine, ADMIN_REQUEST_BYTES_MAX, CLIENT_NAME_BYTES_MAX, FRAME_BYTES_MAX,
};
use std::os::fd::OwnedFd;

/// Receive buffer: room for a whole maximum frame plus the start of the next.
pub const RECV_BYTES: usize = 2 * FRAME_BYTES_MAX;
/// Send buffer: replies and deliveries queue here until the socket takes them.
pub const SEND_BYTES: usize = 4 * FRAME_BYTES_MAX;
/// Space kept free in the send buffer for one reply of any kind before another frame
/// that needs a reply is read (so a reply never has nowhere to go).
pub const REPLY_RESERVE_BYTES: usize = FRAME_BYTES_MAX;

/// One connection slot.
pub struct Conn {
    /// The socket, while the slot is in use.
    pub fd: Option<OwnedFd>,
    /// Bumped whenever the slot is reused: completions for an older connection in the
    /// same slot are recognised and ignored.
    pub generation: u32,
    /// The protocol state.
    pub machine: ServerMachine,
    /// The client name from its hello: the source of its events when they name none.
    pub name: [u8; CLIENT_NAME_BYTES_MAX],
    /// Bytes of `name`.
    pub name_len: usize,
    /// Received bytes, `recv[..recv_len]` not yet decoded.
    pub recv: Box<[u8]>,
    /// Bytes in `recv`.
    pub recv_len: usize,
    /// A receive is in flight.
    pub recv_in_flight: bool,
    /// New bytes arrived since the last decode.
    pub has_input: bool,
    /// Decoding stopped until an earlier frame is handled (a deferred subscribe).
    pub blocked: bool,
    /// Pending output, `send[send_start..send_end]`.
    pub send: Box<[u8]>,
    /// First unsent byte.
    pub send_start: usize,
    /// End of pending output.
    pub send_end: usize,
    /// A send is in flight.
    pub send_in_flight: bool,
    /// Close once pending output is sent (after an error frame or a goodbye).
    pub close_after_flush: bool,
    /// Being closed: no new operations; the fd is dropped once none is in flight.
    pub closing: bool,
    /// The subscription attached to this connection.
    pub subscription: Option<usize>,
    /// A status request waits for an answer.
    pub status_requested: bool,
    /// An `Admin` request waiting for an answer, `admin[..admin_len]` (copied out of
    /// the receive buffer; 0 = none).
    pub admin: Box<[u8]>,
    /// Bytes of `admin`.
    pub admin_len: usize,
    /// Since when (daemon clock, ns) a publish has been waiting for room in a full
    /// ring; its frame stays in `recv` until it is stored or times out.
    pub full_since: Option<u64>,
}

impl Conn {
    /// An empty slot with its buffers.
    pub fn new() -> Conn {
        Conn::with_buffers(
            vec![0; RECV_BYTES].into_boxed_slice(),
            vec![0; SEND_BYTES].into_boxed_slice(),
            vec![0; ADMIN_REQUEST_BYTES_MAX].into_boxed_slice(),
        )
    }

    fn with_buffers(recv: Box<[u8]>, send: Box<[u8]>, admin: Box<[u8]>) -> Conn {
        Conn {
            fd: None,
            generation: 0,
            machine: ServerMachine::new(),
            name: [0; CLIENT_NAME_BYTES_MAX],
            name_len: 0,
            recv,
            recv_len: 0,
            recv_in_flight: false,
            has_input: false,
            blocked: false,
            send,
            send_start: 0,
            send_end: 0,
            send_in_flight: false,
            close_after_flush: false,
            closing: false,
            subscription: None,
            status_requested: false,
            admin,
            admin_len: 0,
            full_since: None,
        }
    }

    /// Takes a freshly accepted socket: every field back to its initial state, the
    /// buffers kept.
    pub fn open(&mut self, fd: OwnedFd) {
        debug_assert!(self.fd.is_none() && !self.recv_in_flight && !self.send_in_flight);
        let generation = self.generation.wrapping_add(1);
        let recv = std::mem::take(&mut self.recv);
        let send = std::mem::take(&mut self.send);
        let admin = std::mem::take(&mut self.admin);
        *self = Conn {
            fd: Some(fd),
            generation,
            ..Conn::with_buffers(recv, send, admin)
        };
    }

    /// Whether the slot holds a live connection.
    pub fn in_use(&self) -> bool {
        self.fd.is_some()
    }

    /// The client name.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }

    /// Free bytes at the end of the send buffer, compacting first when nothing is in
    /// flight.
    pub fn send_free(&mut self) -> usize {
        if !self.send_in_flight && self.send_start > 0 {
            self.send.copy_within(self.send_start..self.send_end, 0);
            self.send_end -= self.send_start;
            self.send_start = 0;
        }
        self.send.len() - self.send_end
    }

    /// The writable tail of the send buffer; the caller advances `send_end`.
    pub fn send_tail(&mut self) -> &mut [u8] {
        &mut self.send[self.send_end..]
    }

    /// Whether output is waiting and no send is in flight.
    pub fn wants_send(&self) -> bool {
        !self.send_in_flight && self.send_start < self.send_end
    }

    /// Drops decoded bytes from the front of the receive buffer.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(!self.recv_in_flight);
        self.recv.copy_within(n..self.recv_len, 0);
        self.recv_len -= n;
    }
}
