//! Frame types and the decoded form of every frame.

use super::decode::{read_pattern, Reader};
use super::error::FieldError;
use super::event::{check_len, Event, EventBatch};
use super::ErrorCode;
use crate::event::limits::{
    ACK_DEADLINE_MS_MAX, ADMIN_REQUEST_BYTES_MAX, BATCH_EVENTS_MAX, CLIENT_NAME_BYTES_MAX,
    ERROR_MESSAGE_BYTES_MAX, NAK_DELAY_MS_MAX, PATTERN_BYTES_MAX, STATUS_JSON_BYTES_MAX,
    SUBSCRIPTION_NAME_BYTES_MAX, SUBSCRIPTION_PATTERNS_MAX, SUBSCRIPTION_PATTERN_LIST_BYTES_MAX,
    WINDOW_EVENTS_MAX,
};
use crate::event::{is_segment_byte, Pattern, Seq, Severity, SubscriptionMode};

/// Which way a frame type travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by clients, received by the server.
    ClientToServer,
    /// Sent by the server, received by clients.
    ServerToClient,
}

/// The type byte of a frame. Client-to-server types are `0x01..=0x0C`; server-to-client
/// types have the high bit set, `0x81..=0x88`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FrameType {
    /// Opens a connection: magic, version range, role, name.
    Hello = 0x01,
    /// One event to store.
    Publish = 0x02,
    /// Several events to store together.
    PublishBatch = 0x03,
    /// Starts the connection's one subscription.
    Subscribe = 0x04,
    /// A range of delivered events is processed.
    Confirm = 0x05,
    /// Redeliver an event later.
    Nak = 0x06,
    /// Still processing an event; extend its deadline.
    Working = 0x07,
    /// The subscriber will never process an event.
    Reject = 0x08,
    /// The subscriber finished its own recovery.
    Recovered = 0x09,
    /// Asks for the daemon's status.
    Status = 0x0A,
    /// Liveness probe.
    Ping = 0x0B,
    /// The client is leaving.
    Goodbye = 0x0C,
    /// An operator's request (JSON), answered by `StatusReply`.
    Admin = 0x0D,
    /// Hello accepted.
    HelloOk = 0x81,
    /// Events are durable in the log.
    Stored = 0x82,
    /// Something went wrong.
    Error = 0x83,
    /// The subscription is active.
    Subscribed = 0x84,
    /// One event for a subscriber.
    Deliver = 0x85,
    /// Every replayed event has been sent.
    RecoveryDone = 0x86,
    /// The daemon's status as JSON.
    StatusReply = 0x87,
    /// Answer to a ping.
    Pong = 0x88,
}

/// How many client-to-server frame types there are.
pub const CLIENT_FRAME_TYPES: usize = 13;
/// How many server-to-client frame types there are.
pub const SERVER_FRAME_TYPES: usize = 8;

impl FrameType {
    /// Client-to-server types in numeric order; `CLIENT[i] as u8 == 0x01 + i`.
    pub const CLIENT: [FrameType; CLIENT_FRAME_TYPES] = [
        FrameType::Hello,
        FrameType::Publish,
        FrameType::PublishBatch,
        FrameType::Subscribe,
        FrameType::Confirm,
        FrameType::Nak,
        FrameType::Working,
        FrameType::Reject,
        FrameType::Recovered,
        FrameType::Status,
        FrameType::Ping,
        FrameType::Goodbye,
        FrameType::Admin,
    ];

    /// Server-to-client types in numeric order; `SERVER[i] as u8 == 0x81 + i`.
    pub const SERVER: [FrameType; SERVER_FRAME_TYPES] = [
        FrameType::HelloOk,
        FrameType::Stored,
        FrameType::Error,
        FrameType::Subscribed,
        FrameType::Deliver,
        FrameType::RecoveryDone,
        FrameType::StatusReply,
        FrameType::Pong,
    ];

    /// The type carried by `byte`, if this version defines one.
    pub const fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            0x01..=0x0D => Some(Self::CLIENT[(byte - 0x01) as usize]),
            0x81..=0x88 => Some(Self::SERVER[(byte - 0x81) as usize]),
            _ => None,
        }
    }

    /// The byte on the wire.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Which way this type travels.
    pub const fn direction(self) -> Direction {
        if self.as_u8() & 0x80 == 0 {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        }
    }

    /// Position within [`FrameType::CLIENT`] or [`FrameType::SERVER`]: a table column.
    pub const fn column(self) -> usize {
        (self.as_u8() & 0x7F) as usize - 1
    }

    /// The type's name as PROTOCOL.md spells it.
    pub const fn name(self) -> &'static str {
        match self {
            FrameType::Hello => "Hello",
            FrameType::Publish => "Publish",
            FrameType::PublishBatch => "PublishBatch",
            FrameType::Subscribe => "Subscribe",
            FrameType::Confirm => "Confirm",
            FrameType::Nak => "Nak",
            FrameType::Working => "Working",
            FrameType::Reject => "Reject",
            FrameType::Recovered => "Recovered",
            FrameType::Status => "Status",
            FrameType::Ping => "Ping",
            FrameType::Goodbye => "Goodbye",
            FrameType::Admin => "Admin",
            FrameType::HelloOk => "HelloOk",
            FrameType::Stored => "Stored",
            FrameType::Error => "Error",
            FrameType::Subscribed => "Subscribed",
            FrameType::Deliver => "Deliver",
            FrameType::RecoveryDone => "RecoveryDone",
            FrameType::StatusReply => "StatusReply",
            FrameType::Pong => "Pong",
        }
    }
}

const _: () = {
    let mut index = 0;
    while index < CLIENT_FRAME_TYPES {
        assert!(FrameType::CLIENT[index] as usize == 0x01 + index);
        index += 1;
    }
    let mut index = 0;
    while index < SERVER_FRAME_TYPES {
        assert!(FrameType::SERVER[index] as usize == 0x81 + index);
        index += 1;
    }
};

impl core::fmt::Display for FrameType {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// What a client will do on its connection, chosen once in its hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    /// Publishes events.
    Producer = 1,
    /// Subscribes and confirms.
    Subscriber = 2,
    /// Both publishes and subscribes.
    Both = 3,
    /// Asks for status; neither publishes nor subscribes.
    Control = 4,
}

impl Role {
    /// Every role, in numeric order.
    pub const ALL: [Role; 4] = [Role::Producer, Role::Subscriber, Role::Both, Role::Control];

    /// The role carried by `value`, if any.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Role::Producer),
            2 => Some(Role::Subscriber),
            3 => Some(Role::Both),
            4 => Some(Role::Control),
            _ => None,
        }
    }

    /// The role's name as PROTOCOL.md section 4.2 spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Subscriber => "subscriber",
            Role::Both => "both",
            Role::Control => "control",
        }
    }
}

/// `Hello`: the first frame of every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    /// Oldest protocol version the client speaks (at least 1).
    pub version_min: u16,
    /// Newest protocol version the client speaks (at least `version_min`).
    pub version_max: u16,
    /// What the client will do.
    pub role: Role,
    /// Who the client is, 0..=255 bytes; the default source of its events.
    pub client_name: &'a str,
}

impl Hello<'_> {
    pub(crate) fn validate(&self) -> Result<(), FieldError> {
        validate_version_range(self.version_min, self.version_max)?;
        check_len(
            "hello.client_name",
            self.client_name.len(),
            CLIENT_NAME_BYTES_MAX,
        )
    }
}

pub(crate) fn validate_version_range(version_min: u16, version_max: u16) -> Result<(), FieldError> {
    if version_min == 0 {
        return Err(FieldError::InvalidValue {
            field: "hello.version_min",
            value: 0,
        });
    }
    if version_max < version_min {
        return Err(FieldError::InvalidValue {
            field: "hello.version_max",
            value: u64::from(version_max),
        });
    }
    Ok(())
}

/// `HelloOk`: the server accepted the hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloOk {
    /// The version both sides now speak: the highest they share.
    pub version: u16,
    /// The daemon's node identity.
    pub node_id: u64,
    /// Largest frame the server accepts, length field included.
    pub frame_bytes_max: u32,
    /// Largest event payload the server accepts.
    pub event_payload_bytes_max: u32,
}

/// `Subscribe`: starts the connection's subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribe<'a> {
    /// Durable subscription name, 0..=64 bytes of `A-Z a-z 0-9 _ - .`; empty means a
    /// live-only subscription that herald forgets when the connection ends.
    pub name: &'a str,
    /// Least severe level delivered: events with `severity <= min_severity` pass.
    pub min_severity: Severity,
    /// Most events in flight (delivered, not yet settled), 1..=[`WINDOW_EVENTS_MAX`].
    pub window_events: u32,
    /// Leave recovery mode by itself once the replay is confirmed, instead of waiting
    /// for `Recovered` (flags bit 0).
    pub automatic_recovery: bool,
    /// Join the durable subscription's work-queue group (flags bit 1): it is shared
    /// with the other members, each event going to one of them.
    pub group: bool,
    /// Milliseconds a delivered event may stay unsettled before it is redelivered
    /// (`Working` restarts it); 0 = the daemon's default, else 1..=[`ACK_DEADLINE_MS_MAX`].
    pub ack_deadline_ms: u32,
    /// Deliveries of one event before it goes to the subscription's dead letters;
    /// 0 = the daemon's default.
    pub max_deliveries: u16,
    /// Topic filters; an event passes if any matches. 1..=16 of them, taking at most
    /// [`SUBSCRIPTION_PATTERN_LIST_BYTES_MAX`] bytes with their length bytes.
    pub patterns: Patterns<'a>,
}

/// `Subscribe` flags bit 0: automatic recovery mode.
pub const SUBSCRIBE_FLAG_AUTOMATIC_RECOVERY: u32 = 1 << 0;

/// `Subscribe` flags bit 1: a member of the subscription's work-queue group.
pub const SUBSCRIBE_FLAG_GROUP: u32 = 1 << 1;
/// `Deliver` delivery flags bit 0: the event was delivered before.
pub const DELIVER_FLAG_REDELIVERED: u16 = 1 << 0;
/// `Deliver` delivery flags bit 1 (version 2): an origin block follows the delivery
/// count.
pub const DELIVER_FLAG_ORIGIN: u16 = 1 << 1;
/// `Deliver` delivery flags bit 2 (version 3): a rule block follows the origin block.
pub const DELIVER_FLAG_RULE: u16 = 1 << 2;

/// The routing rule version that routed a delivered event (version 3).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct DeliverRule {
    /// The rule's id.
    pub id: u32,
    /// Its version.
    pub version: u32,
}

impl Subscribe<'_> {
    pub(crate) fn validate(&self) -> Result<(), FieldError> {
        validate_subscription_name(self.name.as_bytes())?;
        validate_window(self.window_events)?;
        if self.ack_deadline_ms > ACK_DEADLINE_MS_MAX {
            return Err(FieldError::InvalidValue {
                field: "subscribe.ack_deadline_ms",
                value: u64::from(self.ack_deadline_ms),
            });
        }
        self.patterns.validate_for_encode().map(|_| ())
    }
}

/// Checks a durable subscription name: 0..=64 bytes of `A-Z a-z 0-9 _ - .`.
pub fn validate_subscription_name(name: &[u8]) -> Result<(), FieldError> {
    check_len("subscribe.name", name.len(), SUBSCRIPTION_NAME_BYTES_MAX)?;
    for (offset, &byte) in name.iter().enumerate() {
        if !(is_segment_byte(byte) || byte == b'.') {
            return Err(FieldError::InvalidByte {
                field: "subscribe.name",
                offset,
                byte,
            });
        }
    }
    Ok(())
}

pub(crate) fn validate_window(window_events: u32) -> Result<(), FieldError> {
    if window_events == 0 || window_events > WINDOW_EVENTS_MAX {
        return Err(FieldError::InvalidValue {
            field: "subscribe.window_events",
            value: u64::from(window_events),
        });
    }
    Ok(())
}

/// The patterns of a `Subscribe`: still encoded in the received body, or a caller's
/// slice to be encoded.
#[derive(Clone, Copy)]
pub struct Patterns<'a> {
    repr: PatternsRepr<'a>,
}

#[derive(Clone, Copy)]
enum PatternsRepr<'a> {
    /// Validated by the decoder: `count` length-prefixed patterns filling `bytes`.
    Wire {
        count: u8,
        bytes: &'a [u8],
    },
    Slice(&'a [Pattern<'a>]),
}

impl<'a> Patterns<'a> {
    /// Patterns to encode from the caller's slice.
    pub const fn from_patterns(patterns: &'a [Pattern<'a>]) -> Self {
        Patterns {
            repr: PatternsRepr::Slice(patterns),
        }
    }

    pub(crate) const fn from_wire(count: u8, bytes: &'a [u8]) -> Self {
        Patterns {
            repr: PatternsRepr::Wire { count, bytes },
        }
    }

    /// How many patterns there are.
    pub fn len(&self) -> usize {
        match self.repr {
            PatternsRepr::Wire { count, .. } => usize::from(count),
            PatternsRepr::Slice(patterns) => patterns.len(),
        }
    }

    /// Whether there are none (decoded patterns never are).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any pattern matches `topic`. Never allocates.
    pub fn any_matches(&self, topic: &[u8]) -> bool {
        self.iter().any(|pattern| pattern.matches(topic))
    }

    /// The patterns in order.
    pub fn iter(&self) -> PatternIter<'a> {
        match self.repr {
            PatternsRepr::Wire { count, bytes } => PatternIter {
                repr: PatternIterRepr::Wire {
                    remaining: count,
                    reader: Reader::new(bytes),
                },
            },
            PatternsRepr::Slice(patterns) => PatternIter {
                repr: PatternIterRepr::Slice(patterns.iter()),
            },
        }
    }

    /// Bytes all patterns occupy on the wire, each with its length byte.
    pub fn encoded_len(&self) -> usize {
        match self.repr {
            PatternsRepr::Wire { bytes, .. } => bytes.len(),
            PatternsRepr::Slice(patterns) => patterns
                .iter()
                .map(|pattern| 1 + pattern.as_bytes().len())
                .sum(),
        }
    }

    /// The encoded patterns, when they came from the wire.
    pub(crate) fn wire_bytes(&self) -> Option<&'a [u8]> {
        match self.repr {
            PatternsRepr::Wire { bytes, .. } => Some(bytes),
            PatternsRepr::Slice(_) => None,
        }
    }

    /// Checks the count before encoding; returns the encoded bytes of all patterns.
    pub(crate) fn validate_for_encode(&self) -> Result<usize, FieldError> {
        match self.repr {
            PatternsRepr::Wire { bytes, .. } => Ok(bytes.len()),
            PatternsRepr::Slice(patterns) => {
                if patterns.is_empty() || patterns.len() > SUBSCRIPTION_PATTERNS_MAX {
                    return Err(FieldError::InvalidValue {
                        field: "subscribe.pattern_count",
                        value: patterns.len() as u64,
                    });
                }
                // `Pattern` guarantees 1..=PATTERN_BYTES_MAX bytes, each behind a u8 length.
                const _: () = assert!(PATTERN_BYTES_MAX <= u8::MAX as usize);
                let bytes = self.encoded_len();
                check_len(
                    "subscribe.patterns",
                    bytes,
                    SUBSCRIPTION_PATTERN_LIST_BYTES_MAX,
                )?;
                Ok(bytes)
            }
        }
    }
}

impl PartialEq for Patterns<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Patterns<'_> {}

impl core::fmt::Debug for Patterns<'_> {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        formatter.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for Patterns<'a> {
    type Item = Pattern<'a>;
    type IntoIter = PatternIter<'a>;

    fn into_iter(self) -> PatternIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Patterns`].
#[derive(Clone)]
pub struct PatternIter<'a> {
    repr: PatternIterRepr<'a>,
}

#[derive(Clone)]
enum PatternIterRepr<'a> {
    Wire { remaining: u8, reader: Reader<'a> },
    Slice(core::slice::Iter<'a, Pattern<'a>>),
}

impl<'a> Iterator for PatternIter<'a> {
    type Item = Pattern<'a>;

    fn next(&mut self) -> Option<Pattern<'a>> {
        match &mut self.repr {
            PatternIterRepr::Wire { remaining, reader } => {
                if *remaining == 0 {
                    return None;
                }
                *remaining -= 1;
                // Validated by the decoder; see `EventIter::next`.
                match read_pattern(reader) {
                    Ok(pattern) => Some(pattern),
                    Err(_) => {
                        debug_assert!(false, "validated patterns failed to decode");
                        *remaining = 0;
                        None
                    }
                }
            }
            PatternIterRepr::Slice(patterns) => patterns.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = match &self.repr {
            PatternIterRepr::Wire { remaining, .. } => usize::from(*remaining),
            PatternIterRepr::Slice(patterns) => patterns.len(),
        };
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for PatternIter<'_> {}

/// `Deliver`: one event for a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deliver<'a> {
    /// The event's sequence number; confirm by it.
    pub seq: Seq,
    /// When the daemon stored the event, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// The event was sent before, to this subscription or before a restart (delivery
    /// flags bit 0).
    pub redelivered: bool,
    /// How many times it has been sent to this subscription, this time included (at
    /// least 1; saturates at 65535).
    pub delivery_count: u16,
    /// Where the event was first stored (version 2; a relay's events name the first
    /// node, a local event this one). `None` on a version 1 connection.
    pub origin: Option<crate::event::Origin>,
    /// The routing rule version that routed it (version 3; `None` when no rule did,
    /// its version is no longer known, or on an older connection).
    pub rule: Option<DeliverRule>,
    /// The event as stored; `source` is filled in.
    pub event: Event<'a>,
}

/// One frame, either direction, borrowing from the buffer it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// See [`Hello`].
    Hello(Hello<'a>),
    /// Store one event; answered by `Stored` or `Error` with the same correlation.
    Publish {
        /// Chosen by the client, echoed in the reply.
        correlation: u64,
        /// The event.
        event: Event<'a>,
    },
    /// Store several events together; one `Stored` answers for all of them.
    PublishBatch {
        /// Chosen by the client, echoed in the reply.
        correlation: u64,
        /// 1..=[`BATCH_EVENTS_MAX`](crate::event::limits::BATCH_EVENTS_MAX) events.
        events: EventBatch<'a>,
    },
    /// See [`Subscribe`].
    Subscribe(Subscribe<'a>),
    /// Every delivered event with `first_seq <= seq <= last_seq` is processed.
    Confirm {
        /// First sequence number of the range.
        first_seq: Seq,
        /// Last sequence number of the range (at least `first_seq`).
        last_seq: Seq,
    },
    /// Redeliver `seq` after `delay_ms`.
    Nak {
        /// The event.
        seq: Seq,
        /// Delay before redelivery, up to [`NAK_DELAY_MS_MAX`](crate::event::limits::NAK_DELAY_MS_MAX).
        delay_ms: u32,
    },
    /// Still working on `seq`: restart its redelivery deadline.
    Working {
        /// The event.
        seq: Seq,
    },
    /// `seq` will never be processed; do not redeliver it.
    Reject {
        /// The event.
        seq: Seq,
    },
    /// The subscriber finished its own recovery: back to normal mode.
    Recovered,
    /// Ask for the daemon's status.
    Status,
    /// Liveness probe; answered by `Pong` with the same token.
    Ping {
        /// Echoed in the pong.
        token: u64,
    },
    /// The client is leaving; the server closes after reading it.
    Goodbye,
    /// An operator's request, a JSON object (PROTOCOL.md section 10.5); answered by
    /// `StatusReply`.
    Admin {
        /// The request, 1..=[`ADMIN_REQUEST_BYTES_MAX`] bytes.
        json: &'a str,
    },
    /// See [`HelloOk`].
    HelloOk(HelloOk),
    /// The publish with `correlation` is durable in the log.
    Stored {
        /// The publish's correlation.
        correlation: u64,
        /// Sequence number of its first event.
        first_seq: Seq,
        /// Sequence number of its last event.
        last_seq: Seq,
        /// How many events were stored (1 for `Publish`).
        count: u16,
    },
    /// Something failed; see [`ErrorCode::closes_connection`].
    Error {
        /// The failed request's correlation, or 0.
        correlation: u64,
        /// What failed.
        code: ErrorCode,
        /// For people: what failed and why, up to
        /// [`ERROR_MESSAGE_BYTES_MAX`](crate::event::limits::ERROR_MESSAGE_BYTES_MAX) bytes.
        message: &'a str,
    },
    /// The subscription is active.
    Subscribed {
        /// Whether a replay comes first.
        mode: SubscriptionMode,
        /// Events waiting for this subscription at the time of subscribing.
        pending_events: u64,
    },
    /// See [`Deliver`].
    Deliver(Deliver<'a>),
    /// Every replayed event has been sent; new events follow.
    RecoveryDone,
    /// The daemon's status.
    StatusReply {
        /// A JSON document.
        json: &'a str,
    },
    /// Answer to `Ping`.
    Pong {
        /// The ping's token.
        token: u64,
    },
}

impl Frame<'_> {
    /// The frame's type.
    pub const fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::Publish { .. } => FrameType::Publish,
            Frame::PublishBatch { .. } => FrameType::PublishBatch,
            Frame::Subscribe(_) => FrameType::Subscribe,
            Frame::Confirm { .. } => FrameType::Confirm,
            Frame::Nak { .. } => FrameType::Nak,
            Frame::Working { .. } => FrameType::Working,
            Frame::Reject { .. } => FrameType::Reject,
            Frame::Recovered => FrameType::Recovered,
            Frame::Status => FrameType::Status,
            Frame::Ping { .. } => FrameType::Ping,
            Frame::Goodbye => FrameType::Goodbye,
            Frame::Admin { .. } => FrameType::Admin,
            Frame::HelloOk(_) => FrameType::HelloOk,
            Frame::Stored { .. } => FrameType::Stored,
            Frame::Error { .. } => FrameType::Error,
            Frame::Subscribed { .. } => FrameType::Subscribed,
            Frame::Deliver(_) => FrameType::Deliver,
            Frame::RecoveryDone => FrameType::RecoveryDone,
            Frame::StatusReply { .. } => FrameType::StatusReply,
            Frame::Pong { .. } => FrameType::Pong,
        }
    }
}

impl Frame<'_> {
    /// Checks every rule the field types do not already enforce: lengths, ranges,
    /// counts, name grammar. The decoder runs it on every frame it returns, and the
    /// encoder on every frame it writes, so the two accept exactly the same frames.
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            Frame::Hello(hello) => hello.validate(),
            Frame::Publish { event, .. } => event.validate(),
            Frame::PublishBatch { events, .. } => events.validate_for_encode().map(|_| ()),
            Frame::Subscribe(subscribe) => subscribe.validate(),
            Frame::Confirm {
                first_seq,
                last_seq,
            } => validate_seq_range("confirm.last_seq", *first_seq, *last_seq),
            Frame::Nak { delay_ms, .. } => validate_nak_delay(*delay_ms),
            Frame::HelloOk(hello_ok) if hello_ok.version == 0 => Err(FieldError::InvalidValue {
                field: "hello_ok.version",
                value: 0,
            }),
            Frame::Stored {
                first_seq,
                last_seq,
                count,
                ..
            } => validate_stored(*first_seq, *last_seq, *count),
            Frame::Error { message, .. } => {
                check_len("error.message", message.len(), ERROR_MESSAGE_BYTES_MAX)
            }
            Frame::Deliver(deliver) => {
                if deliver.delivery_count == 0 {
                    return Err(FieldError::InvalidValue {
                        field: "deliver.delivery_count",
                        value: 0,
                    });
                }
                deliver.event.validate()
            }
            Frame::StatusReply { json } => {
                check_len("status_reply.json", json.len(), STATUS_JSON_BYTES_MAX)
            }
            Frame::Admin { json: "" } => Err(FieldError::InvalidValue {
                field: "admin.json_len",
                value: 0,
            }),
            Frame::Admin { json } => check_len("admin.json", json.len(), ADMIN_REQUEST_BYTES_MAX),
            Frame::Working { .. }
            | Frame::Reject { .. }
            | Frame::Recovered
            | Frame::Status
            | Frame::Ping { .. }
            | Frame::Goodbye
            | Frame::HelloOk(_)
            | Frame::Subscribed { .. }
            | Frame::RecoveryDone
            | Frame::Pong { .. } => Ok(()),
        }
    }
}

fn validate_seq_range(
    field: &'static str,
    first_seq: Seq,
    last_seq: Seq,
) -> Result<(), FieldError> {
    if last_seq < first_seq {
        return Err(FieldError::InvalidValue {
            field,
            value: last_seq.0,
        });
    }
    Ok(())
}

fn validate_nak_delay(delay_ms: u32) -> Result<(), FieldError> {
    if delay_ms > NAK_DELAY_MS_MAX {
        return Err(FieldError::InvalidValue {
            field: "nak.delay_ms",
            value: u64::from(delay_ms),
        });
    }
    Ok(())
}

fn validate_stored(first_seq: Seq, last_seq: Seq, count: u16) -> Result<(), FieldError> {
    if count == 0 || usize::from(count) > BATCH_EVENTS_MAX {
        return Err(FieldError::InvalidValue {
            field: "stored.count",
            value: u64::from(count),
        });
    }
    validate_seq_range("stored.last_seq", first_seq, last_seq)?;
    // Each event consumes at least one sequence number, so the range spans at least
    // `count` of them (and more when an event took several slots).
    if last_seq.0 - first_seq.0 < u64::from(count) - 1 {
        return Err(FieldError::InvalidValue {
            field: "stored.count",
            value: u64::from(count),
        });
    }
    Ok(())
}
