//! The connection table: one slot per connection, each with its protocol state machine
//! and its buffers, allocated once when the daemon starts and reused by every
//! connection that takes the slot; accepting, closing and arming the reactor.
//!
//! Buffer ownership: while a receive (send) is in flight, the reactor owns the free
//! tail of `recv` (the pending bytes of `send`); the daemon touches them again only
//! after the completion arrives (`recv_in_flight` / `send_in_flight` guard this). On a
//! TLS connection the reactor owns the session's ciphertext buffers instead (`tls.rs`),
//! and the plaintext buffers are the daemon's alone.

use super::access::{CertName, Grant, Identity};
use super::tls::{HandshakeLog, TlsConn};
use crate::protocol::{
    ServerMachine, ADMIN_REQUEST_BYTES_MAX, CLIENT_NAME_BYTES_MAX, FRAME_BYTES_MAX,
};
use crate::reactor::{PeerCredentials, Reactor, Token};
use crate::subscription::SinkId;

/// Receive buffer: room for a whole maximum frame plus the start of the next.
pub const RECV_BYTES: usize = 2 * FRAME_BYTES_MAX;
/// Send buffer: replies and deliveries queue here until the socket takes them.
pub const SEND_BYTES: usize = 4 * FRAME_BYTES_MAX;
/// Send-buffer room deliveries leave to answers (PROTOCOL.md section 10.6): every answer
/// fits, a whole `StatusReply` included.
pub const REPLY_RESERVE_BYTES: usize = FRAME_BYTES_MAX;
/// Buffer bytes one connection slot costs, allocated at start-up.
pub const SLOT_BYTES: usize = RECV_BYTES + SEND_BYTES + ADMIN_REQUEST_BYTES_MAX;

const _: () = assert!(REPLY_RESERVE_BYTES < SEND_BYTES);

/// One connection slot.
pub struct Conn<S> {
    /// The socket, while the slot is in use.
    pub socket: Option<S>,
    /// Bumped whenever the slot is reused: completions for an older connection in the
    /// same slot are recognised and ignored.
    pub generation: u32,
    /// The protocol state.
    pub machine: ServerMachine,
    /// The client name from its hello: the source of its events when they name none.
    name: [u8; CLIENT_NAME_BYTES_MAX],
    name_len: usize,
    /// Received bytes, `recv[..recv_len]` not yet decoded.
    pub recv: Box<[u8]>,
    /// Bytes in `recv`.
    pub recv_len: usize,
    /// A receive is in flight.
    pub recv_in_flight: bool,
    /// New bytes arrived (or room for answers came back) since the last decode.
    pub has_input: bool,
    /// Decoding stopped until an earlier frame is handled (a subscribe, a status).
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
    /// Being closed: no new operations; the socket is closed once none is in flight.
    pub closing: bool,
    /// The subscription attached to this connection.
    pub subscription: Option<usize>,
    /// A `Status` or `Admin` request waits for an answer.
    pub control_requested: bool,
    /// The `Admin` request waiting, `admin[..admin_len]` (copied out of the receive
    /// buffer; 0 = a `Status`).
    pub admin: Box<[u8]>,
    /// Bytes of `admin`.
    pub admin_len: usize,
    /// Since when (daemon clock, ns) a publish has been waiting for room in a full
    /// ring; its frame stays in `recv` until it is stored or times out.
    pub full_since: Option<u64>,
    /// Answers queued for this connection and not yet encoded (held until their
    /// commit is durable), and the bytes they will take.
    pub held_replies: u32,
    /// Bytes of `held_replies` once encoded.
    pub held_bytes: usize,
    /// When (daemon clock, ns) the connection was accepted: its hello is due within the
    /// hello timeout.
    pub opened_ns: u64,
    /// When it last sent anything (for the idle timeout).
    pub last_input_ns: u64,
    /// Counted against `--connections-max`: its hello chose a producer or subscriber
    /// role (control connections have slots of their own).
    pub serving: bool,
    /// Who connected (read once, when the connection was accepted).
    pub identity: Identity,
    /// What the access policy lets it do, fixed at its hello (nothing before).
    pub grant: Grant,
    /// The TLS session of a connection from the TLS listener (None: a Unix socket).
    pub tls: Option<Box<TlsConn>>,
}

impl<S> Conn<S> {
    fn new() -> Conn<S> {
        Conn::with_buffers(
            vec![0; RECV_BYTES].into_boxed_slice(),
            vec![0; SEND_BYTES].into_boxed_slice(),
            vec![0; ADMIN_REQUEST_BYTES_MAX].into_boxed_slice(),
        )
    }

    fn with_buffers(recv: Box<[u8]>, send: Box<[u8]>, admin: Box<[u8]>) -> Conn<S> {
        Conn {
            socket: None,
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
            control_requested: false,
            admin,
            admin_len: 0,
            full_since: None,
            held_replies: 0,
            held_bytes: 0,
            opened_ns: 0,
            last_input_ns: 0,
            serving: false,
            identity: Identity::Unknown,
            grant: Grant::NOTHING,
            tls: None,
        }
    }

    /// Takes a new socket from `peer` at time `now`: every field back to its initial
    /// state, the buffers kept.
    fn open(
        &mut self,
        socket: S,
        peer: Option<PeerCredentials>,
        now: u64,
        tls: Option<Box<TlsConn>>,
    ) {
        let generation = self.generation.wrapping_add(1);
        let recv = std::mem::take(&mut self.recv);
        let send = std::mem::take(&mut self.send);
        let admin = std::mem::take(&mut self.admin);
        *self = Conn {
            socket: Some(socket),
            generation,
            opened_ns: now,
            last_input_ns: now,
            // A TLS peer is known by its certificate, once the handshake verified it.
            identity: if tls.is_some() {
                Identity::Unknown
            } else {
                Identity::of_peer(peer)
            },
            tls,
            ..Conn::with_buffers(recv, send, admin)
        };
    }

    /// Whether the slot holds a live connection.
    pub fn in_use(&self) -> bool {
        self.socket.is_some()
    }

    /// Whether the connection still takes frames and output.
    pub fn open_for_io(&self) -> bool {
        self.in_use() && !self.closing
    }

    /// The client name.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }

    /// Keeps the hello's client name (at most a source's length, as the protocol says).
    pub fn set_name(&mut self, name: &[u8]) {
        let n = name.len().min(CLIENT_NAME_BYTES_MAX);
        self.name[..n].copy_from_slice(&name[..n]);
        self.name_len = n;
    }

    /// Free bytes at the end of the send buffer, compacting first when nothing is in
    /// flight.
    pub fn send_free(&mut self) -> usize {
        if !self.reactor_owns_send() && self.send_start > 0 {
            self.send.copy_within(self.send_start..self.send_end, 0);
            self.send_end -= self.send_start;
            self.send_start = 0;
        }
        self.send.len() - self.send_end
    }

    /// Room for answers: the free send buffer less what held answers will take.
    pub fn answer_room(&mut self) -> usize {
        self.send_free().saturating_sub(self.held_bytes)
    }

    /// Room for deliveries: they leave [`REPLY_RESERVE_BYTES`] (and whatever held
    /// answers will take) to answers.
    pub fn delivery_room(&mut self) -> usize {
        self.send_free()
            .saturating_sub(self.held_bytes + REPLY_RESERVE_BYTES)
    }

    /// The writable tail of the send buffer; the caller advances `send_end` by what it
    /// wrote with [`Conn::wrote`].
    pub fn send_tail(&mut self) -> &mut [u8] {
        &mut self.send[self.send_end..]
    }

    /// `n` bytes were written into [`Conn::send_tail`].
    pub fn wrote(&mut self, n: usize) {
        // A check that holds in release builds: `send_end` beyond the buffer would
        // hand the reactor memory past it.
        assert!(
            n <= self.send.len() - self.send_end,
            "send buffer overrun: {n} bytes written into {} free",
            self.send.len() - self.send_end
        );
        self.send_end += n;
    }

    /// Whether output is waiting and no send is in flight.
    pub fn wants_send(&self) -> bool {
        !self.send_in_flight && self.send_start < self.send_end
    }

    /// Whether the reactor owns the receive buffer's free tail now (on a TLS
    /// connection it owns the ciphertext buffer instead, never `recv`).
    pub fn reactor_owns_recv(&self) -> bool {
        self.recv_in_flight && self.tls.is_none()
    }

    /// Whether the reactor owns the send buffer's pending bytes now.
    fn reactor_owns_send(&self) -> bool {
        self.send_in_flight && self.tls.is_none()
    }

    /// Whether everything written has gone to the socket (through TLS too).
    pub fn output_drained(&self) -> bool {
        self.send_start == self.send_end && self.tls.as_ref().is_none_or(|t| t.drained())
    }

    /// Moves received ciphertext through the TLS session into the receive buffer; a
    /// refused handshake is logged and the connection closes once its alert is sent.
    fn tls_read(&mut self, slot: usize, now: u64, log: &mut HandshakeLog) {
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        match tls.read_plaintext(&mut self.recv[self.recv_len..]) {
            Ok(pumped) => {
                if pumped.established {
                    self.identity = match tls.peer_name().as_deref().and_then(CertName::new) {
                        Some(name) => Identity::Certificate(name),
                        None => Identity::Unknown,
                    };
                }
                if pumped.plaintext > 0 {
                    self.recv_len += pumped.plaintext;
                    self.has_input = true;
                }
                if pumped.closed && pumped.plaintext == 0 && self.recv_len == 0 {
                    self.close_after_flush = true;
                }
            }
            // The alert goes out (`arm_tls`); the connection lingers, reading and
            // dropping, until the peer closes or the hello timeout.
            Err(e) => log.refused(now, slot, &super::tls::describe_refusal(&e)),
        }
    }

    /// Drops decoded bytes from the front of the receive buffer.
    pub fn consume(&mut self, n: usize) {
        // Checks that hold in release builds: the ring owns the buffer while a
        // receive is in flight, and `n` beyond what was received is a decoding bug.
        assert!(
            !self.reactor_owns_recv(),
            "receive buffer consumed while the reactor owns it"
        );
        assert!(
            n <= self.recv_len,
            "consumed {n} of {} received bytes",
            self.recv_len
        );
        self.recv.copy_within(n..self.recv_len, 0);
        self.recv_len -= n;
    }

    /// The token of this connection's operations.
    pub fn token(&self, slot: usize) -> Token {
        Token {
            slot: slot as u32,
            generation: self.generation,
        }
    }
}

/// Every connection slot.
pub struct Connections<S> {
    slots: Vec<Conn<S>>,
    /// Connections refused because every slot was in use.
    pub refused: u64,
    /// Open connections whose hello chose a producer or subscriber role.
    pub serving: usize,
    /// Refused TLS handshakes, counted and logged within a budget.
    pub handshakes: HandshakeLog,
}

impl<S> Connections<S> {
    /// `count` slots with their buffers.
    pub fn new(count: usize) -> Connections<S> {
        Connections {
            slots: (0..count).map(|_| Conn::new()).collect(),
            refused: 0,
            serving: 0,
            handshakes: HandshakeLog::default(),
        }
    }

    /// Slot count.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Connection `slot`.
    pub fn get(&self, slot: usize) -> &Conn<S> {
        &self.slots[slot]
    }

    /// Connection `slot`, to change it.
    pub fn get_mut(&mut self, slot: usize) -> &mut Conn<S> {
        &mut self.slots[slot]
    }

    /// Every slot, and the count of serving connections (ingest admits hellos).
    pub fn slots_and_serving(&mut self) -> (&mut [Conn<S>], &mut usize) {
        (&mut self.slots, &mut self.serving)
    }

    /// Connection `slot` if `token` is its current generation's.
    pub fn current(&mut self, token: Token) -> Option<(usize, &mut Conn<S>)> {
        let slot = token.slot as usize;
        let conn = self.slots.get_mut(slot)?;
        (conn.in_use() && conn.generation == token.generation).then_some((slot, conn))
    }

    /// Open connections.
    pub fn open_count(&self) -> usize {
        self.slots.iter().filter(|c| c.in_use()).count()
    }

    /// Puts a new socket from `peer` in a free slot (attached to the reactor), or gives
    /// it back when every slot is in use. `tls`: the session of a connection from the
    /// TLS listener.
    pub fn open<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        socket: S,
        peer: Option<PeerCredentials>,
        now: u64,
        tls: Option<Box<TlsConn>>,
    ) -> Result<usize, S> {
        let Some(slot) = self
            .slots
            .iter()
            .position(|c| !c.in_use() && !c.recv_in_flight && !c.send_in_flight)
        else {
            self.refused += 1;
            return Err(socket);
        };
        let conn = &mut self.slots[slot];
        conn.open(socket, peer, now, tls);
        let token = conn.token(slot);
        if let Some(socket) = &conn.socket {
            if let Err(e) = reactor.attach(socket, token) {
                tracing::warn!(error = %e, "cannot watch an accepted connection; closing it");
                conn.closing = true;
            }
        }
        Ok(slot)
    }

    /// A receive completed at time `now`.
    pub fn received(
        &mut self,
        token: Token,
        result: Result<usize, i32>,
        now: u64,
    ) -> Option<usize> {
        let slot = token.slot as usize;
        let handshakes = &mut self.handshakes;
        let conn = self
            .slots
            .get_mut(slot)
            .filter(|c| c.in_use() && c.generation == token.generation)?;
        conn.recv_in_flight = false;
        match result {
            Ok(n) if n > 0 => {
                conn.last_input_ns = now;
                match conn.tls.as_mut() {
                    Some(tls) => {
                        tls.received(n);
                        conn.tls_read(slot, now, handshakes);
                    }
                    None => {
                        conn.recv_len += n;
                        conn.has_input = true;
                    }
                }
                None
            }
            // End of stream or an error: the connection is over.
            _ => Some(slot),
        }
    }

    /// A send completed; returns the slot if the connection is now to be closed.
    pub fn sent(&mut self, token: Token, result: Result<usize, i32>) -> Option<usize> {
        let (slot, conn) = self.current(token)?;
        conn.send_in_flight = false;
        let Ok(n) = result else {
            return Some(slot);
        };
        if let Some(tls) = conn.tls.as_mut() {
            // The plaintext went into the session when the send was armed; room for
            // answers came back then (see `arm`).
            tls.sent(n);
            if conn.close_after_flush && conn.held_replies == 0 && conn.output_drained() {
                return Some(slot);
            }
            return None;
        }
        conn.send_start = (conn.send_start + n).min(conn.send_end);
        if conn.send_start == conn.send_end {
            conn.send_start = 0;
            conn.send_end = 0;
            if conn.close_after_flush {
                return Some(slot);
            }
        }
        // Decoding may have paused for lack of answer room.
        if conn.recv_len > 0 {
            conn.has_input = true;
        }
        None
    }

    /// Starts closing `slot`; returns its subscription (to detach). The socket is
    /// closed once no operation is in flight.
    pub fn close<R: Reactor<Socket = S>>(&mut self, reactor: &mut R, slot: usize) -> Option<usize> {
        let conn = &mut self.slots[slot];
        if conn.closing || !conn.in_use() {
            return None;
        }
        conn.closing = true;
        if std::mem::take(&mut conn.serving) {
            self.serving -= 1;
        }
        if let Some(socket) = &conn.socket {
            reactor.shutdown(socket);
        }
        conn.subscription.take()
    }

    /// Arms a send for every connection with output waiting and a receive for every
    /// connection that may read, and closes the sockets of connections whose
    /// operations have all completed. `reading`: false while shutting down.
    pub fn arm<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        reading: bool,
        now: u64,
    ) -> ArmOutcome {
        let mut outcome = ArmOutcome::default();
        let handshakes = &mut self.handshakes;
        for (slot, conn) in self.slots.iter_mut().enumerate() {
            if !conn.in_use() {
                continue;
            }
            let token = conn.token(slot);
            if conn.closing {
                if !conn.recv_in_flight && !conn.send_in_flight {
                    if let Some(socket) = conn.socket.take() {
                        reactor.close(socket, Some(token));
                    }
                    // Nothing is in flight: the session's buffers are free to go.
                    conn.tls = None;
                }
                continue;
            }
            if conn.tls.is_some() {
                arm_tls(conn, slot, reactor, reading, now, handshakes, &mut outcome);
                continue;
            }
            if conn.close_after_flush
                && conn.held_replies == 0
                && !conn.send_in_flight
                && conn.send_start == conn.send_end
            {
                // Nothing (left) to say: the goodbye or error is complete.
                outcome.to_close.push_within_capacity(slot);
                continue;
            }
            let Some(socket) = conn.socket.as_ref() else {
                continue;
            };
            if conn.wants_send() {
                let pending = &conn.send[conn.send_start..conn.send_end];
                // SAFETY: the send buffer lives in this table, allocated at start-up
                // and never moved; `send_in_flight` keeps its pending bytes unchanged
                // until the completion (`sent`).
                unsafe { reactor.send(socket, pending.as_ptr(), pending.len(), token) };
                conn.send_in_flight = true;
            }
            let may_read = reading
                && !conn.recv_in_flight
                && !conn.has_input
                && !conn.blocked
                && !conn.close_after_flush
                && conn.recv_len < conn.recv.len();
            if may_read {
                let tail = &mut conn.recv[conn.recv_len..];
                // SAFETY: as above for the receive buffer's free tail, which
                // `recv_in_flight` keeps untouched until the completion (`received`).
                unsafe { reactor.recv(socket, tail.as_mut_ptr(), tail.len(), token) };
                conn.recv_in_flight = true;
            }
        }
        outcome
    }

    /// Whether every open connection's output has gone out.
    pub fn flushed(&self) -> bool {
        self.slots
            .iter()
            .all(|c| !c.in_use() || c.closing || c.output_drained())
    }

    /// Producers whose publish waits for room in a full ring.
    pub fn waiting_for_room(&self) -> usize {
        self.slots
            .iter()
            .filter(|c| c.in_use() && c.full_since.is_some())
            .count()
    }
}

/// [`Connections::arm`] for a TLS connection: plaintext the session still holds is
/// moved into the receive buffer (ingest freed room), the send buffer's plaintext goes
/// into the session, and the receive and send are armed on the ciphertext buffers.
fn arm_tls<S, R: Reactor<Socket = S>>(
    conn: &mut Conn<S>,
    slot: usize,
    reactor: &mut R,
    reading: bool,
    now: u64,
    handshakes: &mut HandshakeLog,
    outcome: &mut ArmOutcome,
) {
    let token = conn.token(slot);
    if !conn.close_after_flush && conn.recv_len < conn.recv.len() {
        let had = conn.recv_len;
        conn.tls_read(slot, now, handshakes);
        if conn.recv_len > had {
            outcome.more_input = true;
        }
    }
    let Some(tls) = conn.tls.as_mut() else {
        return;
    };
    if conn.send_start < conn.send_end {
        let taken = tls.write_plaintext(&conn.send[conn.send_start..conn.send_end]);
        conn.send_start += taken;
        if conn.send_start == conn.send_end {
            conn.send_start = 0;
            conn.send_end = 0;
        }
        // Decoding may have paused for lack of answer room.
        if taken > 0 && conn.recv_len > 0 && !conn.has_input {
            conn.has_input = true;
            outcome.more_input = true;
        }
    }
    tls.fill_output(conn.send_in_flight);
    if conn.close_after_flush
        && conn.held_replies == 0
        && !conn.send_in_flight
        && conn.send_start == conn.send_end
        && tls.drained()
    {
        outcome.to_close.push_within_capacity(slot);
        return;
    }
    let Some(socket) = conn.socket.as_ref() else {
        return;
    };
    // The session is dropped only once the socket is closed, with nothing in flight.
    if tls.arm_send(reactor, socket, token, conn.send_in_flight) > 0 {
        conn.send_in_flight = true;
    }
    let may_read = reading
        && !conn.recv_in_flight
        && !conn.has_input
        && !conn.blocked
        && !conn.close_after_flush;
    if may_read && tls.arm_recv(reactor, socket, token) {
        conn.recv_in_flight = true;
    }
}

/// Connections [`Connections::arm`] found finished.
#[derive(Default)]
pub struct ArmOutcome {
    /// Slots whose last words went out: close them.
    pub to_close: SlotList,
    /// A TLS connection got plaintext to decode (or room for answers) while arming:
    /// the next turn must not sleep.
    pub more_input: bool,
}

/// A short list of slots, stored inline (no allocation per turn). Slots beyond its
/// room are found again by the next turn's scan.
pub struct SlotList {
    slots: [u32; 64],
    len: usize,
}

impl Default for SlotList {
    fn default() -> Self {
        SlotList {
            slots: [0; 64],
            len: 0,
        }
    }
}

impl SlotList {
    fn push_within_capacity(&mut self, slot: usize) {
        if self.len < self.slots.len() {
            self.slots[self.len] = slot as u32;
            self.len += 1;
        }
    }

    /// The slots.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots[..self.len].iter().map(|&s| s as usize)
    }
}

/// The sink a connection slot is, for the subscription set.
pub fn sink_of(slot: usize) -> SinkId {
    SinkId(slot as u32)
}
