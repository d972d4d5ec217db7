//! The forwarder's connection to a NATS server: made through the reactor like every
//! other socket, with buffers allocated once. States: backing off → connecting →
//! waiting for `INFO` → (`CONNECT`, `SUB` to the acknowledgement inbox, `PING` sent)
//! waiting for `PONG` → ready (the sink takes events). Any error (refused connect,
//! end of stream, `-ERR`, a line that does not parse or does not fit) shuts the socket
//! down, makes every unsettled event due again, and backs off, doubling from 100 ms to
//! 5 s, before the next attempt. A connection quiet for 20 s is sent a `PING`; no answer
//! within 20 s more drops it too (a server that vanished without closing it).

use super::ForwardConfig;
use crate::nats::{self, ServerOp};
use crate::reactor::{Address, Reactor, Token};
use crate::subscription::SubscriptionState;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Bytes received and not yet parsed: the largest server line or message (an `INFO`
/// is a few KiB, a PubAck under 200 bytes).
pub(super) const RECV_BYTES: usize = 64 * 1024;
/// Bytes of publishes queued for the socket: room for a few of the largest events.
pub(super) const SEND_BYTES: usize = 512 * 1024;
/// Send-buffer room deliveries leave for `PONG`s and the handshake.
pub(super) const CONTROL_RESERVE_BYTES: usize = 1024;
/// The largest header block: fixed names, two 20-digit numbers twice, a severity
/// name, a source and a key written as hex.
pub(super) const HEADER_BYTES: usize = 2048;
const INBOX_BYTES: usize = 64;
const BACKOFF_MIN_NS: u64 = 100_000_000;
const BACKOFF_MAX_NS: u64 = 5_000_000_000;
/// A connected server that sent nothing this long is sent a `PING`; one that then
/// sends nothing for as long again is taken for gone (a peer that vanished without
/// closing the connection) and the connection is made anew.
const KEEPALIVE_NS: u64 = 20_000_000_000;
/// At most one log line per this interval about negative PubAcks.
const NEGATIVE_LOG_INTERVAL_NS: u64 = 1_000_000_000;

/// Where the connection stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    /// Not connected; the next attempt at `retry_at` (monotonic ns).
    BackingOff { retry_at: u64 },
    /// The reactor is making the TCP connection.
    Connecting,
    /// Connected; waiting for the server's `INFO`.
    AwaitInfo,
    /// `CONNECT` and `SUB` sent, then a `PING`; its `PONG` says both were taken.
    AwaitPong,
    /// Publishing.
    Ready,
    /// Shut down after an error; closed once no operation is in flight.
    Closing,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::BackingOff { .. } => "backing_off",
            State::Connecting => "connecting",
            State::AwaitInfo | State::AwaitPong => "handshake",
            State::Ready => "connected",
            State::Closing => "closing",
        }
    }
}

/// The forwarder: its connection, its buffers and what it has seen.
pub struct Forwarder<S> {
    pub(super) config: ForwardConfig,
    address: Address,
    pub(super) node_id: u64,
    /// The reactor slot (after every connection slot).
    slot: u32,
    generation: u32,
    /// Its durable subscription's index in the daemon's table.
    pub(in crate::delivery) subscription: usize,
    state: State,
    socket: Option<S>,
    recv: Box<[u8]>,
    recv_len: usize,
    recv_in_flight: bool,
    pub(super) send: Box<[u8]>,
    send_start: usize,
    pub(super) send_len: usize,
    /// Bytes of the send in flight (0: none).
    send_armed: usize,
    /// Scratch for one event's header block.
    pub(super) headers: Box<[u8]>,
    /// `_INBOX.herald.<node>.<generation>`: PubAcks come to `<inbox>.<seq>`.
    pub(super) inbox: [u8; INBOX_BYTES],
    pub(super) inbox_len: usize,
    backoff_ns: u64,
    failures_in_row: u32,
    /// Events JetStream acknowledged since the daemon started.
    acked: u64,
    /// Of them, duplicates it dropped (already stored under their `Nats-Msg-Id`).
    duplicates: u64,
    /// Negative PubAcks and no-responder answers.
    negative: u64,
    /// Connections made (handshake complete).
    connections: u64,
    last_error: Option<String>,
    last_error_unix_ns: u64,
    negative_logged_at: Option<u64>,
    negative_unlogged: u64,
    /// When the server last sent anything (monotonic ns).
    last_input_ns: u64,
    /// A keepalive `PING` is outstanding.
    ping_outstanding: bool,
}

impl<S> Forwarder<S> {
    /// A forwarder for `config`, publishing ids `<node_id>:<seq>`, on reactor slot
    /// `slot`, delivering for subscription `subscription`. Its first attempt is at
    /// once.
    pub fn new(config: ForwardConfig, node_id: u64, slot: u32, subscription: usize) -> Self {
        Forwarder {
            address: Address::Tcp(config.address),
            config,
            node_id,
            slot,
            generation: 0,
            subscription,
            state: State::BackingOff { retry_at: 0 },
            socket: None,
            recv: vec![0; RECV_BYTES].into_boxed_slice(),
            recv_len: 0,
            recv_in_flight: false,
            send: vec![0; SEND_BYTES].into_boxed_slice(),
            send_start: 0,
            send_len: 0,
            send_armed: 0,
            headers: vec![0; HEADER_BYTES].into_boxed_slice(),
            inbox: [0; INBOX_BYTES],
            inbox_len: 0,
            backoff_ns: BACKOFF_MIN_NS,
            failures_in_row: 0,
            acked: 0,
            duplicates: 0,
            negative: 0,
            connections: 0,
            last_error: None,
            last_error_unix_ns: 0,
            negative_logged_at: None,
            negative_unlogged: 0,
            last_input_ns: 0,
            ping_outstanding: false,
        }
    }

    /// Whether a completion for `token` is this forwarder's.
    pub fn owns(&self, token: Token) -> bool {
        token.slot == self.slot
    }

    fn token(&self) -> Token {
        Token {
            slot: self.slot,
            generation: self.generation,
        }
    }

    /// Whether the sink takes events.
    pub fn ready(&self) -> bool {
        self.state == State::Ready
    }

    /// When the loop must wake for this forwarder (its next connection attempt).
    pub fn deadline(&self) -> Option<u64> {
        match self.state {
            State::BackingOff { retry_at } => Some(retry_at),
            _ => None,
        }
    }

    /// Bytes of its buffers.
    pub fn footprint_bytes(&self) -> usize {
        self.recv.len() + self.send.len() + self.headers.len()
    }

    /// Send-buffer room for deliveries (compacting it first when nothing is in flight).
    pub(super) fn delivery_room(&mut self) -> usize {
        if self.send_armed == 0 && self.send_start > 0 {
            self.send.copy_within(self.send_start..self.send_len, 0);
            self.send_len -= self.send_start;
            self.send_start = 0;
        }
        (self.send.len() - self.send_len).saturating_sub(CONTROL_RESERVE_BYTES)
    }

    /// Appends a control line; false if it does not fit.
    fn queue(&mut self, bytes: &[u8]) -> bool {
        self.delivery_room();
        match self
            .send
            .get_mut(self.send_len..self.send_len + bytes.len())
        {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.send_len += bytes.len();
                true
            }
            None => false,
        }
    }

    /// Starts the next connection attempt when its time has come; keeps a quiet
    /// connection checked.
    pub fn tick<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        sub: Option<&mut SubscriptionState>,
        now: u64,
        unix_now: u64,
    ) {
        if self.state == State::Ready && now.saturating_sub(self.last_input_ns) >= KEEPALIVE_NS {
            if self.ping_outstanding {
                let why = "the server answered no PING for 20 s";
                return self.fail(reactor, sub, why, now, unix_now);
            }
            if self.queue(nats::PING) {
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
            Err(e) => self.failed(None, &format!("cannot connect: {e}"), now, unix_now),
        }
    }

    /// The outbound connection was made, or not.
    pub fn connected<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        token: Token,
        result: Result<S, i32>,
        sub: Option<&mut SubscriptionState>,
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
                self.state = State::AwaitInfo;
                self.last_input_ns = now;
                self.ping_outstanding = false;
                self.recv_len = 0;
                self.send_start = 0;
                self.send_len = 0;
            }
            Err(errno) => {
                let why = std::io::Error::from_raw_os_error(errno);
                self.fail(
                    reactor,
                    sub,
                    &format!("cannot connect: {why}"),
                    now,
                    unix_now,
                );
            }
        }
    }

    /// A receive finished: parses what arrived.
    pub fn received<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        token: Token,
        result: Result<usize, i32>,
        mut sub: Option<&mut SubscriptionState>,
        now: u64,
        unix_now: u64,
    ) {
        if token.generation != self.generation || !self.recv_in_flight {
            return;
        }
        self.recv_in_flight = false;
        let outcome = match result {
            Ok(0) => Err("the server closed the connection".to_owned()),
            Ok(n) => {
                self.last_input_ns = now;
                self.ping_outstanding = false;
                self.recv_len = (self.recv_len + n).min(self.recv.len());
                self.process_input(sub.as_deref_mut(), now, unix_now)
            }
            Err(errno) => Err(format!(
                "receive failed: {}",
                std::io::Error::from_raw_os_error(errno)
            )),
        };
        if self.state == State::Closing {
            self.close_when_idle(reactor, now);
        } else if let Err(why) = outcome {
            self.fail(reactor, sub, &why, now, unix_now);
        }
    }

    /// A send finished.
    pub fn sent<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        token: Token,
        result: Result<usize, i32>,
        sub: Option<&mut SubscriptionState>,
        now: u64,
        unix_now: u64,
    ) {
        if token.generation != self.generation || self.send_armed == 0 {
            return;
        }
        self.send_armed = 0;
        if self.state == State::Closing {
            self.close_when_idle(reactor, now);
            return;
        }
        match result {
            Ok(n) => {
                self.send_start = (self.send_start + n).min(self.send_len);
                if self.send_start == self.send_len {
                    self.send_start = 0;
                    self.send_len = 0;
                }
            }
            Err(errno) => {
                let why = std::io::Error::from_raw_os_error(errno);
                self.fail(reactor, sub, &format!("send failed: {why}"), now, unix_now);
            }
        }
    }

    /// Arms a receive and a send when there is something to do and none is in flight.
    pub fn arm<R: Reactor<Socket = S>>(&mut self, reactor: &mut R) {
        if matches!(
            self.state,
            State::Closing | State::BackingOff { .. } | State::Connecting
        ) {
            return;
        }
        let Some(socket) = self.socket.as_ref() else {
            return;
        };
        let token = Token {
            slot: self.slot,
            generation: self.generation,
        };
        if !self.recv_in_flight && self.recv_len < self.recv.len() {
            let free = &mut self.recv[self.recv_len..];
            // SAFETY: the buffer is a boxed slice owned by this forwarder, which the
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
    }

    fn process_input(
        &mut self,
        mut sub: Option<&mut SubscriptionState>,
        now: u64,
        unix_now: u64,
    ) -> Result<(), String> {
        // Taken out while its operations borrow it; an empty box allocates nothing.
        let recv = std::mem::take(&mut self.recv);
        let mut at = 0;
        let result = loop {
            match nats::parse(&recv[at..self.recv_len], recv.len()) {
                Ok(None) => break Ok(()),
                Ok(Some((op, n))) => {
                    at += n;
                    if let Err(why) = self.on_op(op, sub.as_deref_mut(), now, unix_now) {
                        break Err(why);
                    }
                }
                Err(e) => break Err(format!("{e}; reconnecting")),
            }
        };
        self.recv = recv;
        self.recv.copy_within(at..self.recv_len, 0);
        self.recv_len -= at;
        result
    }

    fn on_op(
        &mut self,
        op: ServerOp<'_>,
        sub: Option<&mut SubscriptionState>,
        now: u64,
        unix_now: u64,
    ) -> Result<(), String> {
        match op {
            ServerOp::Info(_) if self.state == State::AwaitInfo => {
                self.set_inbox();
                let mut line = [0u8; INBOX_BYTES + 16];
                let n = nats::sub(&mut line, &self.inbox[..self.inbox_len], 1)
                    .ok_or("the inbox subject does not fit")?;
                if !(self.queue(nats::CONNECT) && self.queue(&line[..n]) && self.queue(nats::PING))
                {
                    return Err("no room for the handshake".to_owned());
                }
                self.state = State::AwaitPong;
            }
            ServerOp::Info(_) | ServerOp::Ok => {}
            ServerOp::Ping => {
                // Within the reserve deliveries leave; a PONG that finds none is
                // skipped (the server asks again).
                let _ = self.queue(nats::PONG);
            }
            ServerOp::Pong if self.state == State::AwaitPong => {
                self.state = State::Ready;
                self.connections += 1;
                self.backoff_ns = BACKOFF_MIN_NS;
                if self.failures_in_row > 0 || self.connections == 1 {
                    tracing::info!(url = %self.config.url, subscription = %self.config.name, after_failures = self.failures_in_row, "forwarding to JetStream: connected");
                }
                self.failures_in_row = 0;
            }
            ServerOp::Pong => {}
            ServerOp::Err(text) => {
                return Err(format!(
                    "the server said -ERR '{}'",
                    String::from_utf8_lossy(text)
                ));
            }
            ServerOp::Msg {
                subject,
                headers,
                payload,
            } => self.on_reply(subject, headers, payload, sub, now, unix_now),
        }
        Ok(())
    }

    /// A message on the inbox: the PubAck of the event its subject names.
    fn on_reply(
        &mut self,
        subject: &[u8],
        headers: &[u8],
        payload: &[u8],
        sub: Option<&mut SubscriptionState>,
        now: u64,
        unix_now: u64,
    ) {
        let inbox = &self.inbox[..self.inbox_len];
        let seq = subject
            .strip_prefix(inbox)
            .and_then(|rest| rest.strip_prefix(b"."))
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| digits.parse::<u64>().ok());
        let (Some(seq), Some(sub)) = (seq, sub) else {
            return;
        };
        match nats::header_status(headers) {
            Some(503) => {
                return self.negative(
                    sub,
                    seq,
                    "no stream listens on the subject (no responders): create the stream for the forward subject prefix",
                    now,
                    unix_now,
                )
            }
            Some(code) if code >= 300 => {
                let why = format!("the server answered the publish with status {code}");
                return self.negative(sub, seq, &why, now, unix_now);
            }
            _ => {}
        }
        match nats::parse_puback(payload) {
            Ok(nats::PubAck::Stored { duplicate, .. }) => {
                if sub.tracker.settle(seq) {
                    self.acked += 1;
                    self.duplicates += u64::from(duplicate);
                }
            }
            Ok(nats::PubAck::Error {
                code,
                err_code,
                description,
            }) => {
                let mut why = String::new();
                let _ = write!(
                    why,
                    "JetStream refused the publish: {description} (code {code}, err_code {err_code})"
                );
                self.negative(sub, seq, &why, now, unix_now);
            }
            Err(what) => self.negative(sub, seq, what, now, unix_now),
        }
    }

    /// Not stored: due again after the subscription's backoff, never given up on.
    fn negative(
        &mut self,
        sub: &mut SubscriptionState,
        seq: u64,
        why: &str,
        now: u64,
        unix_now: u64,
    ) {
        let Some(deliveries) = sub.tracker.deliveries(seq) else {
            return;
        };
        let delay = sub.tracker.policy().backoff(deliveries);
        if !sub.tracker.nak(seq, delay, now) {
            return;
        }
        self.negative += 1;
        self.negative_unlogged += 1;
        if self.last_error.as_deref() != Some(why) {
            self.last_error = Some(why.to_owned());
        }
        self.last_error_unix_ns = unix_now;
        let due = self
            .negative_logged_at
            .is_none_or(|at| now.saturating_sub(at) >= NEGATIVE_LOG_INTERVAL_NS);
        if due {
            tracing::warn!(url = %self.config.url, seq, events = self.negative_unlogged, retry_in_ms = delay / 1_000_000, "forwarding to JetStream: {why}; the event stays in herald and is published again");
            self.negative_logged_at = Some(now);
            self.negative_unlogged = 0;
        }
    }

    fn set_inbox(&mut self) {
        let mut w = nats::Writer::new(&mut self.inbox);
        w.put(b"_INBOX.herald.")
            .number(self.node_id)
            .put(b".")
            .number(u64::from(self.generation));
        self.inbox_len = w.finish().unwrap_or(0);
    }

    /// The connection failed: shut it down (closed once nothing is in flight), make
    /// every unsettled event due again, back off.
    fn fail<R: Reactor<Socket = S>>(
        &mut self,
        reactor: &mut R,
        sub: Option<&mut SubscriptionState>,
        why: &str,
        now: u64,
        unix_now: u64,
    ) {
        if let Some(socket) = self.socket.as_ref() {
            reactor.shutdown(socket);
        }
        self.failed(sub, why, now, unix_now);
        if self.socket.is_some() {
            self.state = State::Closing;
            self.close_when_idle(reactor, now);
        }
    }

    fn failed(&mut self, sub: Option<&mut SubscriptionState>, why: &str, now: u64, unix_now: u64) {
        if let Some(sub) = sub {
            sub.tracker.disconnect();
        }
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        // The first failure, then every one whose count is a power of two: a server
        // down for long writes a line per doubling, not per attempt.
        if self.failures_in_row.is_power_of_two() {
            tracing::warn!(url = %self.config.url, attempts = self.failures_in_row, retry_in_ms = self.backoff_ns / 1_000_000, "forwarding to JetStream: {why}; events wait in herald's ring");
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
        self.recv_len = 0;
        self.send_start = 0;
        self.send_len = 0;
        if self.state == State::Closing {
            self.state = State::BackingOff {
                retry_at: now.saturating_add(self.backoff_ns / 2),
            };
        }
    }

    /// What `status` shows under `forwarder`.
    pub fn status(&self, sub: Option<&SubscriptionState>, now: u64) -> Value {
        json!({
            "kind": "jetstream",
            "url": self.config.url,
            "address": self.config.address.to_string(),
            "subject_prefix": self.config.subject_prefix,
            "subscription": self.config.name,
            "state": self.state.name(),
            "retry_in_ms": self.deadline().map(|at| at.saturating_sub(now) / 1_000_000),
            "failures_in_row": self.failures_in_row,
            "last_error": self.last_error,
            "last_error_unix_ns": self.last_error.as_ref().map(|_| self.last_error_unix_ns),
            "in_flight": sub.map_or(0, |s| s.tracker.in_flight()),
            "awaiting_republish": sub.map_or(0, |s| s.tracker.waiting()),
            "cursor": sub.map(|s| s.tracker.cursor()),
            "acked": self.acked,
            "duplicates": self.duplicates,
            "negative_acks": self.negative,
            "connections": self.connections,
            "window": self.config.window,
            "ack_timeout_ms": self.config.ack_timeout.as_millis() as u64,
        })
    }
}
