//! The relay's connection to one upstream herald: made through the reactor like every
//! other socket, with buffers allocated once. States: backing off → connecting →
//! (`Hello` sent) waiting for `HelloOk` → the link entry found for the upstream's node
//! id (`relay.rs`, it needs the log) → (`Subscribe` sent) waiting for `Subscribed` →
//! streaming. Any error (refused connect, end of stream, an `Error` frame, a frame
//! that does not decode or that the client state table refuses) shuts the socket down
//! and backs off, doubling from 100 ms to 5 s, before the next attempt; the upstream
//! sends every unconfirmed event again on the next connection. A connection quiet for
//! 20 s is sent a `Ping`; no answer within 20 s more drops it too.

use super::{UpstreamAddress, UpstreamConfig};
use crate::delivery::tls::TlsConn;
use crate::event::limits::FRAME_BYTES_MAX;
use crate::event::Pattern;
use crate::log::SubscriptionId;
use crate::protocol::{
    self, encode, ClientMachine, Frame, Hello, Patterns, Role, Subscribe, PROTOCOL_VERSION_MAX,
};
use crate::reactor::{Address, Reactor, Token};
use serde_json::{json, Value};
use std::collections::VecDeque;

/// Bytes received and not yet taken: two of the largest frames.
const RECV_BYTES: usize = 2 * FRAME_BYTES_MAX;
/// Bytes of frames queued for the socket: the hello, the subscribe, confirmations,
/// pings.
const SEND_BYTES: usize = 64 * 1024;
/// Send-buffer room confirmations leave for a `Ping` or `Reject`.
const CONTROL_RESERVE_BYTES: usize = 256;
const BACKOFF_MIN_NS: u64 = 100_000_000;
const BACKOFF_MAX_NS: u64 = 5_000_000_000;
const KEEPALIVE_NS: u64 = 20_000_000_000;
/// How often a link waiting for the last node's seqs to be marked is tried again
/// (they are marked once a sync ends: milliseconds).
pub(super) const LINK_RETRY_NS: u64 = 1_000_000;
/// The relay's name in its `Hello` (the upstream's default `source` is never used:
/// the relay only subscribes).
const CLIENT_NAME: &str = "herald-relay";

/// Where the connection stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Not connected; the next attempt at `retry_at` (monotonic ns).
    BackingOff { retry_at: u64 },
    /// The reactor is making the connection.
    Connecting,
    /// `Hello` sent.
    AwaitHelloOk,
    /// `HelloOk` came from node `node_id`: its link entry and mark are looked up
    /// before the subscription is asked for.
    NeedLink { node_id: u64 },
    /// `Subscribe` sent.
    AwaitSubscribed,
    /// Taking deliveries.
    Streaming,
    /// Shut down after an error; closed once no operation is in flight.
    Closing,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::BackingOff { .. } => "backing_off",
            State::Connecting => "connecting",
            State::AwaitHelloOk | State::NeedLink { .. } | State::AwaitSubscribed => "handshake",
            State::Streaming => "connected",
            State::Closing => "closing",
        }
    }
}

/// One upstream: its connection, its buffers, its mark and what it has seen.
pub struct Upstream<S> {
    pub(super) config: UpstreamConfig,
    address: Address,
    /// The reactor slot (after every connection slot and the forwarder's).
    slot: u32,
    generation: u32,
    pub(super) state: State,
    socket: Option<S>,
    pub(super) machine: ClientMachine,
    pub(super) recv: Box<[u8]>,
    /// `recv[recv_start..recv_len]` is received and not yet taken.
    pub(super) recv_start: usize,
    pub(super) recv_len: usize,
    recv_in_flight: bool,
    send: Box<[u8]>,
    send_start: usize,
    send_len: usize,
    send_armed: usize,
    backoff_ns: u64,
    failures_in_row: u32,
    pub(super) last_error: Option<String>,
    last_error_unix_ns: u64,
    last_input_ns: u64,
    ping_outstanding: bool,
    /// The upstream's node id, once a `HelloOk` said it.
    pub(super) upstream_node: Option<u64>,
    /// Its link entry in this region.
    pub(super) entry: Option<SubscriptionId>,
    /// Every upstream seq below this is stored here (or committed in a group not yet
    /// durable): a delivery below it is a duplicate.
    pub(super) mark: u64,
    /// The mark as last written to the link entry, and the one to write next.
    pub(super) mark_written: u64,
    pub(super) mark_due: u64,
    /// Upstream seqs to confirm, with the group whose durability they wait for.
    pub(super) pending: VecDeque<(u64, u64)>,
    /// How many of `pending`, from the front, an earlier connection took: they move
    /// the mark once durable, but are not confirmed on this connection (the upstream
    /// sends them again, and those copies are confirmed as duplicates).
    pub(super) stale: usize,
    /// Its `HelloOk` named another node than the last connection's, whose taken seqs
    /// are not marked yet: the link waits for them ([`LINK_RETRY_NS`]).
    pub(super) link_deferred: bool,
    /// The ring had no room for the delivery at the head of the buffer.
    pub(super) waiting_for_room: bool,
    /// Events stored, duplicates confirmed without storing, events refused (`Reject`).
    pub(super) relayed: u64,
    pub(super) duplicates: u64,
    pub(super) refused: u64,
    /// The newest upstream seq received, and its origin timestamp.
    pub(super) newest_seq: u64,
    pub(super) newest_origin_ns: u64,
    /// Connections made (subscription attached).
    connections: u64,
    /// When a refused event was last logged.
    pub(super) refused_logged_at: Option<u64>,
    /// A `tls://` upstream's session: the reactor then moves its ciphertext buffers,
    /// and `recv` and `send` hold plaintext (as for an accepted TLS connection).
    tls: Option<Box<TlsConn>>,
}

impl<S> Upstream<S> {
    /// An upstream for `config` on reactor slot `slot`. Its first attempt is at once.
    pub fn new(config: UpstreamConfig, slot: u32) -> Self {
        let window = config.window as usize;
        Upstream {
            address: config.address.reactor_address(),
            config,
            slot,
            generation: 0,
            state: State::BackingOff { retry_at: 0 },
            socket: None,
            machine: ClientMachine::new(),
            recv: vec![0; RECV_BYTES].into_boxed_slice(),
            recv_start: 0,
            recv_len: 0,
            recv_in_flight: false,
            send: vec![0; SEND_BYTES].into_boxed_slice(),
            send_start: 0,
            send_len: 0,
            send_armed: 0,
            backoff_ns: BACKOFF_MIN_NS,
            failures_in_row: 0,
            last_error: None,
            last_error_unix_ns: 0,
            last_input_ns: 0,
            ping_outstanding: false,
            upstream_node: None,
            entry: None,
            mark: 0,
            mark_written: 0,
            mark_due: 0,
            // Redeliveries come on top of the window: room for both.
            pending: VecDeque::with_capacity(2 * window),
            stale: 0,
            link_deferred: false,
            waiting_for_room: false,
            relayed: 0,
            duplicates: 0,
            refused: 0,
            newest_seq: 0,
            newest_origin_ns: 0,
            connections: 0,
            refused_logged_at: None,
            tls: None,
        }
    }

    /// Whether a completion for `token` is this upstream's.
    pub fn owns(&self, token: Token) -> bool {
        token.slot == self.slot
    }

    fn token(&self) -> Token {
        Token {
            slot: self.slot,
            generation: self.generation,
        }
    }

    /// When the loop must wake for this upstream (its next connection attempt, or a
    /// retry of a delivery the ring had no room for).
    pub fn deadline(&self, now: u64) -> Option<u64> {
        match self.state {
            State::BackingOff { retry_at } => Some(retry_at),
            State::NeedLink { .. } if self.link_deferred => Some(now + LINK_RETRY_NS),
            State::NeedLink { .. } => Some(now),
            _ if self.waiting_for_room => Some(now + 10_000_000),
            _ => None,
        }
    }

    /// Bytes of its buffers.
    pub fn footprint_bytes(&self) -> usize {
        self.recv.len() + self.send.len() + self.pending.capacity() * 16
    }

    /// Appends a frame to the send buffer within `reserve` bytes of its end; false if
    /// it does not fit.
    pub(super) fn queue(&mut self, frame: &Frame<'_>, reserve: usize) -> bool {
        if (self.send_armed == 0 || self.tls.is_some()) && self.send_start > 0 {
            self.send.copy_within(self.send_start..self.send_len, 0);
            self.send_len -= self.send_start;
            self.send_start = 0;
        }
        let end = self.send.len().saturating_sub(reserve);
        if self.send_len >= end {
            return false;
        }
        match encode(frame, &mut self.send[self.send_len..end]) {
            Ok(n) => {
                self.send_len += n;
                self.machine.on_send(frame.frame_type());
                true
            }
            Err(_) => false,
        }
    }

    /// Free bytes of the send buffer (after compaction, when nothing is in flight).
    pub(super) fn send_room(&self) -> usize {
        let used = if self.send_armed == 0 || self.tls.is_some() {
            self.send_len - self.send_start
        } else {
            self.send_len
        };
        self.send.len() - used
    }

    /// Queues a confirmation (within the room kept for control frames).
    pub(super) fn queue_confirm(&mut self, first: u64, last: u64) -> bool {
        let frame = Frame::Confirm {
            first_seq: protocol::Seq(first),
            last_seq: protocol::Seq(last),
        };
        self.queue(&frame, CONTROL_RESERVE_BYTES)
    }

    /// Queues a `Reject` (it may use the reserve).
    pub(super) fn queue_reject(&mut self, seq: u64) -> bool {
        self.queue(
            &Frame::Reject {
                seq: protocol::Seq(seq),
            },
            0,
        )
    }

    /// The upstream's node id while its link entry waits to be looked up.
    pub fn node_to_link(&self) -> Option<u64> {
        match self.state {
            State::NeedLink { node_id } => Some(node_id),
            _ => None,
        }
    }

    /// The node this upstream is linked to (connected or not), once known.
    pub fn linked_node(&self) -> Option<u64> {
        self.entry.and(self.upstream_node)
    }

    /// Whether the subscription is attached and deliveries may be taken.
    pub fn streaming(&self) -> bool {
        self.state == State::Streaming
    }

    /// Starts the next connection attempt when its time has come; keeps a quiet
    /// connection checked.
    pub fn tick<R: Reactor<Socket = S>>(&mut self, reactor: &mut R, now: u64, unix_now: u64) {
        let live = matches!(self.state, State::Streaming | State::AwaitSubscribed);
        if live && now.saturating_sub(self.last_input_ns) >= KEEPALIVE_NS {
            if self.ping_outstanding {
                return self.fail(
                    reactor,
                    "the upstream answered no Ping for 20 s",
                    now,
                    unix_now,
                );
            }
            if self.queue(&Frame::Ping { token: now }, 0) {
                self.ping_outstanding = true;
                self.last_input_ns = now;
            }
            return;
        }
        let State::BackingOff { retry_at } = self.state else {
            return;
        };
        if now < retry_at {
            return;
        }
        self.generation = self.generation.wrapping_add(1);
        match reactor.connect(&self.address, self.token()) {
            Ok(()) => self.state = State::Connecting,
            Err(e) => self.failed(&format!("cannot connect: {e}"), now, unix_now),
        }
    }

    /// The outbound connection was made, or not: on success the `Hello` goes out.
    pub fn connected<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        token: Token,
        result: Result<S, i32>,
        now: u64,
        unix_now: u64,
    ) {
        if token.generation != self.generation || self.state != State::Connecting {
            if let Ok(socket) = result {
                reactor.close(socket, None);
            }
            return;
        }
        match result {
            Ok(socket) => {
                self.socket = Some(socket);
                if let Err(why) = self.start_tls() {
                    return self.fail(reactor, &why, now, unix_now);
                }
                self.last_input_ns = now;
                self.ping_outstanding = false;
                self.recv_start = 0;
                self.recv_len = 0;
                self.send_start = 0;
                self.send_len = 0;
                self.machine = ClientMachine::new();
                self.upstream_node = None;
                let hello = Frame::Hello(Hello {
                    version_min: 2,
                    version_max: PROTOCOL_VERSION_MAX,
                    role: Role::Subscriber,
                    client_name: CLIENT_NAME,
                });
                if self.queue(&hello, 0) {
                    self.state = State::AwaitHelloOk;
                } else {
                    self.fail(reactor, "no room for the hello", now, unix_now);
                }
            }
            Err(errno) => {
                let why = std::io::Error::from_raw_os_error(errno);
                self.fail(reactor, &format!("cannot connect: {why}"), now, unix_now);
            }
        }
    }

    /// For a `tls://` upstream, a client session for the connection just made.
    fn start_tls(&mut self) -> Result<(), String> {
        self.tls = None;
        let (Some(tls), UpstreamAddress::Tls { host, .. }) =
            (&self.config.tls, &self.config.address)
        else {
            return Ok(());
        };
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| format!("{host:?} is not a host name or IP address"))?;
        let session = TlsConn::client(&tls.config, name)
            .map_err(|e| format!("cannot start a TLS session: {e}"))?;
        self.tls = Some(Box::new(session));
        Ok(())
    }

    /// Moves what rustls decrypted into the receive buffer. `Err`: the session failed
    /// (the upstream refused this relay's certificate, or this relay the upstream's).
    fn pump_tls(&mut self) -> Result<(), String> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        match tls.read_plaintext(&mut self.recv[self.recv_len..]) {
            Ok(p) => {
                self.recv_len += p.plaintext;
                if p.closed {
                    return Err("the upstream closed the TLS session".into());
                }
                Ok(())
            }
            Err(e) => Err(format!(
                "TLS with the upstream failed: {}",
                crate::tls::describe(&e)
            )),
        }
    }

    /// A receive finished: what arrived waits in the buffer for the turn's ingest.
    pub fn received<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        token: Token,
        result: Result<usize, i32>,
        now: u64,
        unix_now: u64,
    ) {
        if token.generation != self.generation || !self.recv_in_flight {
            return;
        }
        self.recv_in_flight = false;
        if self.state == State::Closing {
            return self.close_when_idle(reactor, now);
        }
        match result {
            Ok(0) => self.fail(reactor, "the upstream closed the connection", now, unix_now),
            Ok(n) => {
                self.last_input_ns = now;
                self.ping_outstanding = false;
                match self.tls.as_mut() {
                    Some(tls) => {
                        tls.received(n);
                        if let Err(why) = self.pump_tls() {
                            self.fail(reactor, &why, now, unix_now);
                        }
                    }
                    None => self.recv_len = (self.recv_len + n).min(self.recv.len()),
                }
            }
            Err(errno) => {
                let why = std::io::Error::from_raw_os_error(errno);
                self.fail(reactor, &format!("receive failed: {why}"), now, unix_now);
            }
        }
    }

    /// A send finished.
    pub fn sent<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        token: Token,
        result: Result<usize, i32>,
        now: u64,
        unix_now: u64,
    ) {
        if token.generation != self.generation || self.send_armed == 0 {
            return;
        }
        self.send_armed = 0;
        if self.state == State::Closing {
            return self.close_when_idle(reactor, now);
        }
        match result {
            Ok(n) => match self.tls.as_mut() {
                Some(tls) => tls.sent(n),
                None => {
                    self.send_start = (self.send_start + n).min(self.send_len);
                    if self.send_start == self.send_len {
                        self.send_start = 0;
                        self.send_len = 0;
                    }
                }
            },
            Err(errno) => {
                let why = std::io::Error::from_raw_os_error(errno);
                self.fail(reactor, &format!("send failed: {why}"), now, unix_now);
            }
        }
    }

    /// Arms a receive (while the buffer has room) and a send (when something waits).
    /// Returns whether plaintext was decrypted meanwhile (the loop must not sleep).
    pub fn arm<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        now: u64,
        unix_now: u64,
    ) -> bool {
        if matches!(
            self.state,
            State::Closing | State::BackingOff { .. } | State::Connecting
        ) {
            return false;
        }
        if self.tls.is_some() {
            return self.arm_tls(reactor, now, unix_now);
        }
        self.compact_recv();
        let Some(socket) = self.socket.as_ref() else {
            return false;
        };
        let token = Token {
            slot: self.slot,
            generation: self.generation,
        };
        if !self.recv_in_flight && self.recv_len < self.recv.len() {
            let free = &mut self.recv[self.recv_len..];
            // SAFETY: the buffer is a boxed slice owned by this upstream, which the
            // daemon keeps in place (boxed) for its whole life; nothing touches
            // `recv[recv_len..]` until the completion clears `recv_in_flight`.
            unsafe { reactor.recv(socket, free.as_mut_ptr(), free.len(), token) };
            self.recv_in_flight = true;
        }
        if self.send_armed == 0 && self.send_len > self.send_start {
            let pending = &self.send[self.send_start..self.send_len];
            // SAFETY: as above; appends go after `send_len` and compaction waits for
            // `send_armed` to be 0, so the armed bytes stay put and unchanged.
            unsafe { reactor.send(socket, pending.as_ptr(), pending.len(), token) };
            self.send_armed = pending.len();
        }
        false
    }

    /// [`Upstream::arm`] for a TLS session: plaintext to send goes through rustls, the
    /// ciphertext it gives is what the send is armed on; received ciphertext goes into
    /// the session's input buffer.
    fn arm_tls<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        now: u64,
        unix_now: u64,
    ) -> bool {
        let before = self.recv_len;
        if let Err(why) = self.pump_tls() {
            self.fail(reactor, &why, now, unix_now);
            return false;
        }
        let decrypted = self.recv_len > before;
        let (Some(tls), Some(socket)) = (self.tls.as_mut(), self.socket.as_ref()) else {
            return false;
        };
        if self.send_len > self.send_start {
            let taken = tls.write_plaintext(&self.send[self.send_start..self.send_len]);
            self.send_start += taken;
            if self.send_start == self.send_len {
                self.send_start = 0;
                self.send_len = 0;
            }
        }
        tls.fill_output(self.send_armed != 0);
        let token = Token {
            slot: self.slot,
            generation: self.generation,
        };
        // The session is dropped only once nothing is in flight.
        let armed = tls.arm_send(reactor, socket, token, self.send_armed != 0);
        if armed > 0 {
            self.send_armed = armed;
        }
        if !self.recv_in_flight && tls.arm_recv(reactor, socket, token) {
            self.recv_in_flight = true;
        }
        decrypted
    }

    /// Drops `n` bytes from the head of the receive buffer.
    pub(super) fn consume(&mut self, n: usize) {
        self.recv_start = (self.recv_start + n).min(self.recv_len);
        self.compact_recv();
    }

    /// Moves what is not yet taken to the front of the receive buffer, but never while
    /// the reactor owns its tail (a receive armed on a plain socket writes at the
    /// offset it was given: moving bytes under it would splice stale frames into the
    /// stream). Over TLS the reactor fills the session's buffer, never this one.
    fn compact_recv(&mut self) {
        if self.recv_start == 0 || (self.recv_in_flight && self.tls.is_none()) {
            return;
        }
        self.recv.copy_within(self.recv_start..self.recv_len, 0);
        self.recv_len -= self.recv_start;
        self.recv_start = 0;
    }

    /// A frame that is not a delivery. `Err`: drop the connection, for this reason.
    pub(super) fn on_control(&mut self, frame: &Frame<'_>) -> Result<(), String> {
        if let Err(r) = self.machine.on_receive(frame) {
            return Err(format!(
                "the upstream sent {} in state {:?}",
                r.frame_type.name(),
                r.state
            ));
        }
        match *frame {
            Frame::HelloOk(ok) if self.state == State::AwaitHelloOk => {
                if ok.version < 2 {
                    return Err(format!(
                        "the upstream speaks protocol version {}: relaying needs version 2 \
                         (a herald with relay support)",
                        ok.version
                    ));
                }
                self.upstream_node = Some(ok.node_id);
                self.state = State::NeedLink {
                    node_id: ok.node_id,
                };
            }
            Frame::Subscribed { .. } if self.state == State::AwaitSubscribed => {
                self.state = State::Streaming;
                self.connections += 1;
                self.backoff_ns = BACKOFF_MIN_NS;
                tracing::info!(upstream = %self.config.text, subscription = %self.config.name, after_failures = self.failures_in_row, "relaying from the upstream: subscribed");
                self.failures_in_row = 0;
            }
            Frame::Error { code, message, .. } => {
                let hint = match code {
                    protocol::ErrorCode::NameInUse => {
                        " (another connection holds this subscription at the upstream: another relay with the same --upstream-name?)"
                    }
                    protocol::ErrorCode::Forbidden => {
                        " (the upstream's access policy does not let this relay subscribe)"
                    }
                    _ => "",
                };
                return Err(format!(
                    "the upstream answered {}: {message}{hint}",
                    code.name()
                ));
            }
            Frame::Pong { .. } | Frame::RecoveryDone => {}
            _ => {
                return Err(format!(
                    "the upstream sent an unexpected {}",
                    frame.frame_type().name()
                ))
            }
        }
        Ok(())
    }

    /// Sends the `Subscribe` once the link entry is known.
    pub(super) fn subscribe(&mut self) -> Result<(), String> {
        // Cloned once per connection: the frame borrows it while `queue` borrows self.
        let config = self.config.clone();
        let patterns: Vec<Pattern<'_>> = if config.filters.is_empty() {
            vec![Pattern::parse(b">").map_err(|e| e.to_string())?]
        } else {
            config
                .filters
                .iter()
                .map(|p| Pattern::parse(p.as_bytes()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--upstream-filter: {e}"))?
        };
        let frame = Frame::Subscribe(Subscribe {
            name: &config.name,
            min_severity: config.min_severity,
            window_events: config.window,
            automatic_recovery: true,
            group: false,
            ack_deadline_ms: config
                .ack_timeout
                .as_millis()
                .clamp(1, u128::from(crate::event::limits::ACK_DEADLINE_MS_MAX))
                as u32,
            // Never dead-lettered upstream for the relay's sake: it retries forever.
            max_deliveries: u16::MAX,
            patterns: Patterns::from_patterns(&patterns),
        });
        if !self.queue(&frame, 0) {
            return Err("no room for the subscribe".into());
        }
        self.state = State::AwaitSubscribed;
        Ok(())
    }

    /// The connection failed (`why`): shut it down (closed once nothing is in flight),
    /// back off.
    pub fn fail<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        why: &str,
        now: u64,
        unix_now: u64,
    ) {
        if let Some(socket) = self.socket.as_ref() {
            reactor.shutdown(socket);
        }
        self.failed(why, now, unix_now);
        if self.socket.is_some() {
            self.state = State::Closing;
            self.close_when_idle(reactor, now);
        }
    }

    fn failed(&mut self, why: &str, now: u64, unix_now: u64) {
        self.waiting_for_room = false;
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        // The first failure, then every one whose count is a power of two.
        if self.failures_in_row.is_power_of_two() {
            tracing::warn!(upstream = %self.config.text, attempts = self.failures_in_row, retry_in_ms = self.backoff_ns / 1_000_000, "relaying from the upstream: {why}; local producers and subscribers are served meanwhile");
        }
        self.last_error = Some(why.to_owned());
        self.last_error_unix_ns = unix_now;
        self.state = State::BackingOff {
            retry_at: now.saturating_add(self.backoff_ns),
        };
        self.backoff_ns = (self.backoff_ns * 2).min(BACKOFF_MAX_NS);
    }

    fn close_when_idle<R: Reactor<Socket = S>>(&mut self, reactor: &mut R, now: u64) {
        if self.recv_in_flight || self.send_armed != 0 {
            return;
        }
        if let Some(socket) = self.socket.take() {
            reactor.close(socket, Some(self.token()));
        }
        self.tls = None;
        self.recv_start = 0;
        self.recv_len = 0;
        self.send_start = 0;
        self.send_len = 0;
        if self.state == State::Closing {
            self.state = State::BackingOff {
                retry_at: now.saturating_add(self.backoff_ns / 2),
            };
        }
    }

    /// What `status` shows for it under `upstreams`.
    pub fn status(&self, now: u64, unix_now: u64) -> Value {
        let lag_ms = (self.newest_origin_ns > 0)
            .then(|| unix_now.saturating_sub(self.newest_origin_ns) / 1_000_000);
        json!({
            "address": self.config.text,
            "subscription": self.config.name,
            "state": self.state.name(),
            "node_id": self.upstream_node.map(|n| format!("{n:016x}")),
            "retry_in_ms": self.deadline(now).filter(|_| !self.streaming()).map(|at| at.saturating_sub(now) / 1_000_000),
            "failures_in_row": self.failures_in_row,
            "last_error": self.last_error,
            "last_error_unix_ns": self.last_error.as_ref().map(|_| self.last_error_unix_ns),
            "mark": self.mark,
            "newest_upstream_seq": self.newest_seq,
            "lag_ms": lag_ms,
            "unconfirmed": self.pending.len(),
            "waiting_for_room": self.waiting_for_room,
            "relayed": self.relayed,
            "duplicates": self.duplicates,
            "refused": self.refused,
            "connections": self.connections,
            "window": self.config.window,
            "ack_timeout_ms": self.config.ack_timeout.as_millis() as u64,
        })
    }
}
