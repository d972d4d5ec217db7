//! A blocking client for the herald daemon, over its Unix stream socket.
//!
//! [`Client::connect`] says hello with a [`Role`]; a producer then publishes, a
//! subscriber subscribes, receives deliveries and settles them, a control client asks
//! for the daemon's status. The client speaks the protocol of [`crate::protocol`]
//! (specified in PROTOCOL.md) and checks every frame both ways against its state
//! tables: it refuses to send what herald would refuse ([`ClientError::NotAllowed`]),
//! and closes the connection on anything herald should not have sent.
//!
//! Buffers are allocated once, at connect: publishing, receiving replies and
//! deliveries, and settling allocate nothing (errors aside). Frames are queued in the
//! send buffer and written when it is full, before the client waits for anything, on
//! [`Client::flush`], on [`Client::goodbye`] and on drop.
//!
//! A producer:
//!
//! ```no_run
//! use herald::client::{socket_path, Client};
//! use herald::protocol::{Event, Role, Severity, Topic};
//! use std::path::Path;
//!
//! let socket = socket_path(Path::new("herald-data"));
//! let mut client = Client::connect(&socket, Role::Producer, "fsd")?;
//! let event = Event {
//!     topic: Topic::new(b"fs.vol1.error")?,
//!     severity: Severity::Error,
//!     source: "",
//!     flags: 0,
//!     key: b"",
//!     payload: b"disk full",
//! };
//! // `Stored` comes back only once the event is durable in the daemon's log.
//! let stored = client.publish(&event)?;
//! println!("stored {}", stored.first_seq.0);
//! client.goodbye()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A subscriber, with a durable subscription named `audit`:
//!
//! ```no_run
//! use herald::client::{socket_path, Client};
//! use herald::protocol::{Role, Severity};
//! use std::path::Path;
//! use std::time::Duration;
//!
//! let socket = socket_path(Path::new("herald-data"));
//! let mut client = Client::connect(&socket, Role::Subscriber, "auditor")?;
//! client.subscribe("audit", &["fs.>"], Severity::Warning, 64, true)?;
//! while let Some(delivery) = client.next_delivery(Some(Duration::from_secs(10)))? {
//!     let seq = delivery.seq;
//!     println!("{seq:?} {}", delivery.event.topic);
//!     // Confirm only once the event is processed: until then herald redelivers it.
//!     client.confirm(seq, seq)?;
//! }
//! client.goodbye()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod inbound;
mod receive;
mod reply;
mod stream;

pub use error::ClientError;
pub use reply::{Delivery, Incoming, Stored, Subscribed};
pub use stream::{Endpoint, TlsEndpoint, TLS_SCHEME};

use crate::protocol::{
    encode_to_vec, ClientMachine, ClientState, EncodeError, ErrorCode, Event, EventBatch, Frame,
    FrameType, Hello, HelloOk, Pattern, Patterns, Role, Seq, ServerMachine, Severity, Subscribe,
    EVENT_PAYLOAD_BYTES_MAX, FRAME_BYTES_MAX, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN,
    SUBSCRIPTION_PATTERNS_MAX,
};
use inbound::{Head, Peeked};
use receive::ReceiveBuffer;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stream::Stream;

/// The daemon's socket file inside its data directory.
pub const SOCKET_FILE_NAME: &str = "herald.sock";

/// The daemon's socket for data directory `data_dir`: `data_dir/herald.sock`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE_NAME)
}

/// How long a blocking request waits for its reply unless told otherwise.
pub const REPLY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// Twice the largest frame: a frame never waits for the buffer to drain before it can
/// be queued behind another.
const SEND_BYTES: usize = 2 * FRAME_BYTES_MAX;

/// One connection to the daemon. See the [module documentation](self).
pub struct Client {
    stream: Stream,
    socket: PathBuf,
    role: Role,
    /// What the daemon may send now (the protocol's client table).
    machine: ClientMachine,
    /// The daemon's view of this connection, advanced by every frame queued, so that a
    /// frame it would refuse is refused here before it is sent.
    server_view: ServerMachine,
    hello_ok: HelloOk,
    send: Vec<u8>,
    receive: ReceiveBuffer,
    peeked: Option<Peeked>,
    /// Correlation of the next publish; 0 is never used, an `Error` about no publish
    /// carries it.
    next_correlation: u64,
    /// Correlation of the oldest publish without a reply; replies come in order, so
    /// `oldest_unanswered..next_correlation` are the ones outstanding.
    oldest_unanswered: u64,
    reply_timeout: Option<Duration>,
    /// The socket's read timeout as last set, to skip setting it again.
    read_timeout: Option<Duration>,
    recovery_done: bool,
    next_ping_token: u64,
}

/// How a subscription wants its events delivered (see [`Client::subscribe_with`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Least severe level delivered.
    pub min_severity: Severity,
    /// Most events in flight, 1..=4096.
    pub window_events: u32,
    /// Leave recovery mode once the replay is settled, without `Recovered`.
    pub automatic_recovery: bool,
    /// Milliseconds before an unsettled event is redelivered; 0 = the daemon's default.
    pub ack_deadline_ms: u32,
    /// Deliveries before an event is dead-lettered; 0 = the daemon's default.
    pub max_deliveries: u16,
    /// Join the durable subscription's work-queue group: its events are shared among
    /// the members, each going to one.
    pub group: bool,
}

impl Default for SubscribeOptions {
    fn default() -> SubscribeOptions {
        SubscribeOptions {
            min_severity: Severity::Debug,
            window_events: 64,
            automatic_recovery: false,
            ack_deadline_ms: 0,
            max_deliveries: 0,
            group: false,
        }
    }
}

impl Client {
    /// Connects to the daemon at `socket`, says hello as `client_name` (the default
    /// `source` of published events, up to 255 bytes) with `role`, and waits for the
    /// daemon to accept.
    ///
    /// A socket that does not exist or that nothing listens on gives
    /// [`ClientError::NotRunning`]; a hello the daemon refuses gives
    /// [`ClientError::Refused`].
    pub fn connect(socket: &Path, role: Role, client_name: &str) -> Result<Client, ClientError> {
        Client::connect_to(&Endpoint::Unix(socket.to_path_buf()), role, client_name)
    }

    /// [`Client::connect`] to a socket or a TLS listener. Over TLS the handshake is
    /// done first (within [`REPLY_TIMEOUT_DEFAULT`]): a server certificate the CA did
    /// not issue, or that does not carry the host name, gives [`ClientError::Tls`]; so
    /// does the server refusing this client's certificate (or its absence), which TLS
    /// 1.3 reports with the answer to the hello.
    pub fn connect_to(
        endpoint: &Endpoint,
        role: Role,
        client_name: &str,
    ) -> Result<Client, ClientError> {
        let socket = endpoint.shown();
        let stream = match endpoint {
            Endpoint::Unix(path) => Stream::Unix(
                UnixStream::connect(path).map_err(|error| connect_failed(path, error))?,
            ),
            Endpoint::Tls(t) => stream::connect_tls(t, REPLY_TIMEOUT_DEFAULT)?,
        };
        stream
            .set_write_timeout(Some(REPLY_TIMEOUT_DEFAULT))
            .map_err(|error| ClientError::Io {
                socket: socket.clone(),
                error,
            })?;
        let mut client = Client {
            stream,
            socket,
            role,
            machine: ClientMachine::new(),
            server_view: ServerMachine::new(),
            // Replaced by the daemon's own once it answers.
            hello_ok: HelloOk {
                version: PROTOCOL_VERSION_MIN,
                node_id: 0,
                frame_bytes_max: FRAME_BYTES_MAX as u32,
                event_payload_bytes_max: EVENT_PAYLOAD_BYTES_MAX as u32,
            },
            send: Vec::with_capacity(SEND_BYTES),
            receive: ReceiveBuffer::new(),
            peeked: None,
            next_correlation: 1,
            oldest_unanswered: 1,
            reply_timeout: Some(REPLY_TIMEOUT_DEFAULT),
            read_timeout: None,
            recovery_done: false,
            next_ping_token: 1,
        };
        client.queue(&Frame::Hello(Hello {
            version_min: PROTOCOL_VERSION_MIN,
            version_max: PROTOCOL_VERSION_MAX,
            role,
            client_name,
        }))?;
        let hello_ok = match client.wait_reply("HelloOk")? {
            Head::HelloOk(hello_ok) => hello_ok,
            other => return Err(client.unexpected(other.frame_type(), "HelloOk")),
        };
        if !(PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION_MAX).contains(&hello_ok.version) {
            client.close();
            return Err(ClientError::UnsupportedVersion {
                socket: client.socket.clone(),
                version: hello_ok.version,
            });
        }
        client.consume();
        client.hello_ok = hello_ok;
        Ok(client)
    }

    /// What the daemon said in its `HelloOk`: version, node identity, and the limits it
    /// accepts (the client honours them).
    pub fn hello_ok(&self) -> &HelloOk {
        &self.hello_ok
    }

    /// The socket this client is connected to (for a TLS connection, its
    /// `tls://HOST:PORT` address as a path).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The role chosen at connect.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the connection stands in the protocol's client state table.
    pub fn state(&self) -> ClientState {
        self.machine.state()
    }

    /// How long blocking requests ([`publish`](Self::publish),
    /// [`recv_stored`](Self::recv_stored), [`subscribe`](Self::subscribe),
    /// [`status`](Self::status), [`ping`](Self::ping), and the hello) wait for their
    /// reply before giving up and closing the connection; `None` waits forever.
    /// [`REPLY_TIMEOUT_DEFAULT`] until set.
    ///
    /// The same limit applies to writing: a daemon that reads nothing for that long
    /// gives [`ClientError::Stalled`] (and the connection is closed) instead of a write,
    /// or the flush on drop, that never returns.
    pub fn set_reply_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.reply_timeout = timeout;
        // std refuses a zero timeout; the smallest positive one means "do not wait".
        let write_timeout = timeout.map(|timeout| timeout.max(Duration::from_micros(1)));
        self.stream
            .set_write_timeout(write_timeout)
            .map_err(|error| self.io_failed(error))
    }

    /// Publishes one event and waits until the daemon has stored it durably.
    ///
    /// A full log gives [`ClientError::Refused`] with code `full`: the event was not
    /// stored, the connection stays open, and publishing again later may succeed.
    /// Refused with [`ClientError::RepliesOutstanding`] while pipelined publishes wait
    /// for replies.
    pub fn publish(&mut self, event: &Event<'_>) -> Result<Stored, ClientError> {
        self.require_no_outstanding()?;
        self.send_publish(event)?;
        self.recv_stored()
    }

    /// Publishes 1..=256 events together (stored all or none) and waits until they are
    /// stored durably. They must fit one frame (81 920 bytes).
    pub fn publish_batch(&mut self, events: &[Event<'_>]) -> Result<Stored, ClientError> {
        self.require_no_outstanding()?;
        self.send_publish_batch(events)?;
        let stored = self.recv_stored()?;
        // Events repeating an idempotency key of the same batch count once.
        if stored.count == 0 || usize::from(stored.count) > events.len() {
            return Err(self.unexpected(
                FrameType::Stored,
                "a Stored counting the batch's distinct events",
            ));
        }
        Ok(stored)
    }

    /// Queues a publish without waiting for its reply; returns its correlation. Replies
    /// come, in order, from [`recv_stored`](Self::recv_stored) (or
    /// [`next_incoming`](Self::next_incoming)).
    ///
    /// Keep the number outstanding bounded (a few hundred): the daemon stops reading
    /// while its replies are not read, and a client that only writes would then wait
    /// forever.
    pub fn send_publish(&mut self, event: &Event<'_>) -> Result<u64, ClientError> {
        self.check_payload(event)?;
        let correlation = self.next_correlation;
        self.queue(&Frame::Publish {
            correlation,
            event: *event,
        })?;
        self.next_correlation += 1;
        Ok(correlation)
    }

    /// Queues a batch publish without waiting for its reply; returns its correlation.
    pub fn send_publish_batch(&mut self, events: &[Event<'_>]) -> Result<u64, ClientError> {
        for event in events {
            self.check_payload(event)?;
        }
        let correlation = self.next_correlation;
        self.queue(&Frame::PublishBatch {
            correlation,
            events: EventBatch::from_events(events),
        })?;
        self.next_correlation += 1;
        Ok(correlation)
    }

    /// Writes every queued frame to the socket.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.ensure_open()?;
        self.write_queued()
    }

    /// Waits for the reply to the oldest outstanding publish (flushing first).
    ///
    /// A refusal is [`ClientError::Refused`] and answers that publish. On a connection
    /// that also subscribes, a delivery that arrives first gives
    /// [`ClientError::DeliveryWaiting`] and stays for [`next_incoming`](Self::next_incoming).
    pub fn recv_stored(&mut self) -> Result<Stored, ClientError> {
        if self.outstanding() == 0 {
            self.ensure_open()?;
            return Err(ClientError::NothingOutstanding);
        }
        match self.wait_reply("Stored")? {
            Head::Stored(stored) => self.accept_stored(stored),
            Head::Deliver | Head::RecoveryDone => Err(ClientError::DeliveryWaiting),
            other => Err(self.unexpected(other.frame_type(), "Stored")),
        }
    }

    /// Publishes sent whose reply has not been received yet.
    pub fn outstanding(&self) -> u64 {
        self.next_correlation - self.oldest_unanswered
    }

    /// Starts this connection's subscription and waits until the daemon confirms it.
    ///
    /// `name` makes it durable (herald keeps its place across disconnections and
    /// restarts); `""` makes it live-only. An event is delivered if its topic matches
    /// any of the 1..=16 `patterns` (`fs.*.error`, `fs.>`, `>`) and its severity is at
    /// least as severe as `min_severity`. At most `window_events` (1..=4096) events are
    /// in flight, delivered but not settled. With `automatic_recovery`, a recovering
    /// subscription returns to normal once its replayed events are settled; without it,
    /// only after [`recovered`](Self::recovered).
    ///
    /// The acknowledgement deadline and maximum delivery count are the daemon's
    /// defaults; [`subscribe_with`](Self::subscribe_with) sets them.
    pub fn subscribe(
        &mut self,
        name: &str,
        patterns: &[&str],
        min_severity: Severity,
        window_events: u32,
        automatic_recovery: bool,
    ) -> Result<Subscribed, ClientError> {
        self.subscribe_with(
            name,
            patterns,
            &SubscribeOptions {
                min_severity,
                window_events,
                automatic_recovery,
                ..SubscribeOptions::default()
            },
        )
    }

    /// [`subscribe`](Self::subscribe) with every option, including the redelivery
    /// policy.
    pub fn subscribe_with(
        &mut self,
        name: &str,
        patterns: &[&str],
        options: &SubscribeOptions,
    ) -> Result<Subscribed, ClientError> {
        let SubscribeOptions {
            min_severity,
            window_events,
            automatic_recovery,
            ack_deadline_ms,
            max_deliveries,
            group,
        } = *options;
        self.require_no_outstanding()?;
        if patterns.is_empty() || patterns.len() > SUBSCRIPTION_PATTERNS_MAX {
            return Err(ClientError::PatternCount {
                count: patterns.len(),
            });
        }
        // A fixed array: parsing patterns needs no allocation.
        let match_all = Pattern::parse(b">").expect("\">\" is a valid pattern");
        let mut parsed = [match_all; SUBSCRIPTION_PATTERNS_MAX];
        for (slot, text) in parsed.iter_mut().zip(patterns) {
            *slot =
                Pattern::parse(text.as_bytes()).map_err(|error| ClientError::InvalidPattern {
                    pattern: (*text).to_owned(),
                    error,
                })?;
        }
        let server_before = self.server_view;
        self.queue(&Frame::Subscribe(Subscribe {
            name,
            min_severity,
            window_events,
            automatic_recovery,
            group,
            ack_deadline_ms,
            max_deliveries,
            patterns: Patterns::from_patterns(&parsed[..patterns.len()]),
        }))?;
        match self.wait_reply("Subscribed") {
            Ok(Head::Subscribed(subscribed)) => {
                self.consume();
                Ok(subscribed)
            }
            Ok(other) => Err(self.unexpected(other.frame_type(), "Subscribed")),
            // The access policy refused it: the daemon's side is as before the
            // subscribe, and another may be sent.
            Err(
                refused @ ClientError::Refused {
                    code: ErrorCode::Forbidden,
                    ..
                },
            ) => {
                self.server_view = server_before;
                Err(refused)
            }
            Err(error) => Err(error),
        }
    }

    /// Waits up to `timeout` (`None`: forever) for the next delivery; `Ok(None)` when
    /// none came in time. Queued frames (confirms) are written first.
    ///
    /// `RecoveryDone` frames are noted ([`recovery_done`](Self::recovery_done)) and
    /// skipped; use [`next_incoming`](Self::next_incoming) to see them in order. The
    /// delivery borrows the receive buffer: copy its `seq` before settling it.
    pub fn next_delivery(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<Delivery<'_>>, ClientError> {
        let deadline = deadline_after(timeout);
        loop {
            match self.peek(deadline)? {
                None => return Ok(None),
                Some(Head::Deliver) => break,
                Some(Head::RecoveryDone) => {
                    self.consume();
                    self.recovery_done = true;
                }
                Some(head @ (Head::Stored(_) | Head::Pong(_))) => {
                    return Err(ClientError::ReplyWaiting {
                        frame_type: head.frame_type(),
                    })
                }
                Some(other) => return Err(self.unexpected(other.frame_type(), "Deliver")),
            }
        }
        let range = self.consume();
        match self.consumed_frame(range) {
            Frame::Deliver(delivery) => Ok(Some(delivery)),
            _ => unreachable!("peeked a Deliver"),
        }
    }

    /// Waits up to `timeout` (`None`: forever) for whatever the daemon sends next on its
    /// own: a delivery, `RecoveryDone`, or the reply to a pipelined publish or a ping;
    /// `Ok(None)` when nothing came in time. The one reader for a connection that both
    /// publishes and subscribes.
    pub fn next_incoming(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<Incoming<'_>>, ClientError> {
        let head = match self.peek(deadline_after(timeout))? {
            None => return Ok(None),
            Some(head) => head,
        };
        match head {
            Head::Deliver => {
                let range = self.consume();
                match self.consumed_frame(range) {
                    Frame::Deliver(delivery) => Ok(Some(Incoming::Deliver(delivery))),
                    _ => unreachable!("peeked a Deliver"),
                }
            }
            Head::RecoveryDone => {
                self.consume();
                self.recovery_done = true;
                Ok(Some(Incoming::RecoveryDone))
            }
            Head::Stored(stored) => Ok(Some(Incoming::Stored(self.accept_stored(stored)?))),
            Head::Pong(token) => {
                self.consume();
                Ok(Some(Incoming::Pong(token)))
            }
            other => Err(self.unexpected(other.frame_type(), "a delivery or a reply")),
        }
    }

    /// Whether `RecoveryDone` has arrived: every replayed event has been delivered.
    pub fn recovery_done(&self) -> bool {
        self.recovery_done
    }

    /// Settles delivered events `first_seq..=last_seq`: processed, never to be
    /// delivered again. Queued; written before the next wait, or by
    /// [`flush`](Self::flush).
    pub fn confirm(&mut self, first_seq: Seq, last_seq: Seq) -> Result<(), ClientError> {
        self.queue(&Frame::Confirm {
            first_seq,
            last_seq,
        })
    }

    /// Asks for `seq` to be delivered again, no earlier than `delay_ms` (at most one
    /// hour) from now. Queued like [`confirm`](Self::confirm).
    pub fn nak(&mut self, seq: Seq, delay_ms: u32) -> Result<(), ClientError> {
        self.queue(&Frame::Nak { seq, delay_ms })
    }

    /// Says `seq` is still being processed: restarts its redelivery deadline. Queued
    /// like [`confirm`](Self::confirm).
    pub fn working(&mut self, seq: Seq) -> Result<(), ClientError> {
        self.queue(&Frame::Working { seq })
    }

    /// Settles `seq` as never to be processed: it is not delivered again. Queued like
    /// [`confirm`](Self::confirm).
    pub fn reject(&mut self, seq: Seq) -> Result<(), ClientError> {
        self.queue(&Frame::Reject { seq })
    }

    /// Says the subscriber has finished its own recovery: a recovering subscription
    /// returns to normal delivery. Queued like [`confirm`](Self::confirm).
    pub fn recovered(&mut self) -> Result<(), ClientError> {
        self.queue(&Frame::Recovered)
    }

    /// Asks for the daemon's status (control role only) and returns its JSON document.
    pub fn status(&mut self) -> Result<String, ClientError> {
        self.control_request(&Frame::Status)
    }

    /// Sends an operator's request (a JSON object, PROTOCOL.md section 10.5; control
    /// role only) and returns the daemon's JSON answer.
    pub fn admin(&mut self, request: &str) -> Result<String, ClientError> {
        self.control_request(&Frame::Admin { json: request })
    }

    fn control_request(&mut self, frame: &Frame<'_>) -> Result<String, ClientError> {
        self.require_no_outstanding()?;
        self.queue(frame)?;
        match self.wait_reply("StatusReply")? {
            Head::StatusReply => {
                let range = self.consume();
                match self.consumed_frame(range) {
                    Frame::StatusReply { json } => Ok(json.to_owned()),
                    _ => unreachable!("peeked a StatusReply"),
                }
            }
            other => Err(self.unexpected(other.frame_type(), "StatusReply")),
        }
    }

    /// Sends a ping and waits for its pong; returns the round-trip time.
    pub fn ping(&mut self) -> Result<Duration, ClientError> {
        self.require_no_outstanding()?;
        let token = self.next_ping_token;
        self.queue(&Frame::Ping { token })?;
        self.next_ping_token += 1;
        let started = Instant::now();
        match self.wait_reply("Pong")? {
            Head::Pong(received) if received == token => {
                self.consume();
                Ok(started.elapsed())
            }
            Head::Deliver | Head::RecoveryDone => Err(ClientError::DeliveryWaiting),
            other => Err(self.unexpected(other.frame_type(), "Pong with the ping's token")),
        }
    }

    /// Says goodbye and closes the connection. Everything queued is written first.
    /// Replies to publishes still outstanding are not read: collect them first.
    pub fn goodbye(mut self) -> Result<(), ClientError> {
        self.queue(&Frame::Goodbye)?;
        let written = self.write_queued();
        // The daemon sees end of stream; errors mean it is already gone.
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        written
    }

    /// Encodes `frame` into the send buffer, after checking that the daemon would
    /// accept it in the connection's current state.
    fn queue(&mut self, frame: &Frame<'_>) -> Result<(), ClientError> {
        self.ensure_open()?;
        let mut server_view = self.server_view;
        if let Err(rejection) = server_view.on_receive(frame) {
            return Err(ClientError::NotAllowed {
                frame_type: frame.frame_type(),
                role: role_name(self.role),
                state: self.machine.state(),
                code: rejection.code,
            });
        }
        let written = match encode_to_vec(frame, &mut self.send) {
            Ok(written) => written,
            Err(EncodeError::BufferTooSmall { .. }) => {
                // The buffer holds two frames' worth, so once drained any frame fits.
                self.write_queued()?;
                encode_to_vec(frame, &mut self.send).map_err(|error| invalid(frame, error))?
            }
            Err(error) => return Err(invalid(frame, error)),
        };
        let limit = self.hello_ok.frame_bytes_max as usize;
        if written > limit {
            self.send.truncate(self.send.len() - written);
            return Err(ClientError::TooLargeForServer {
                what: "frame",
                bytes: written,
                limit,
            });
        }
        self.server_view = server_view;
        self.machine.on_send(frame.frame_type());
        Ok(())
    }

    /// Refuses a payload above the limit the daemon announced (which may be below the
    /// protocol's).
    fn check_payload(&self, event: &Event<'_>) -> Result<(), ClientError> {
        let limit = self.hello_ok.event_payload_bytes_max as usize;
        if event.payload.len() > limit {
            return Err(ClientError::TooLargeForServer {
                what: "event payload",
                bytes: event.payload.len(),
                limit,
            });
        }
        Ok(())
    }

    fn require_no_outstanding(&self) -> Result<(), ClientError> {
        self.ensure_open()?;
        match self.outstanding() {
            0 => Ok(()),
            count => Err(ClientError::RepliesOutstanding { count }),
        }
    }

    /// Peeks the next frame within the reply timeout; a timeout closes the connection,
    /// since a reply arriving later could no longer be matched to its request.
    fn wait_reply(&mut self, waiting_for: &'static str) -> Result<Head, ClientError> {
        let started = Instant::now();
        match self.peek(deadline_after(self.reply_timeout))? {
            Some(head) => Ok(head),
            None => {
                self.close();
                Err(ClientError::ReplyTimeout {
                    socket: self.socket.clone(),
                    waiting_for,
                    waited: started.elapsed(),
                })
            }
        }
    }
}

impl Drop for Client {
    /// Writes what is still queued (typically the last confirms), as a buffered
    /// writer would; errors cannot be reported here and are ignored.
    fn drop(&mut self) {
        if self.ensure_open().is_ok() {
            let _ = self.write_queued();
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Client")
            .field("socket", &self.socket)
            .field("role", &self.role)
            .field("state", &self.machine.state())
            .field("outstanding", &self.outstanding())
            .finish_non_exhaustive()
    }
}

fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    // A timeout too large to represent is as good as none.
    timeout.and_then(|timeout| Instant::now().checked_add(timeout))
}

fn connect_failed(socket: &Path, error: std::io::Error) -> ClientError {
    let socket = socket.to_path_buf();
    match error.kind() {
        // No socket file, or one left by a daemon that is gone.
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning { socket, error }
        }
        _ => ClientError::Connect { socket, error },
    }
}

fn invalid(frame: &Frame<'_>, error: EncodeError) -> ClientError {
    ClientError::InvalidFrame {
        frame_type: frame.frame_type(),
        error,
    }
}

/// The role as people call it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Producer => "producer",
        Role::Subscriber => "subscriber",
        Role::Both => "producer-and-subscriber",
        Role::Control => "control",
    }
}
