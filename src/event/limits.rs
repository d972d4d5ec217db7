//! Every limit of herald, in one place: the wire protocol's, the log's, the
//! subscriptions' and the daemon's.
//!
//! The daemon sizes its per-connection buffers from these constants at start-up, so a
//! frame that respects them never needs memory allocated on the event path; the log
//! sizes its slots and subscription entries from them when it formats a region. Each
//! constant's relation to the others, and to the width of the field that carries it on
//! the wire or on the medium, is checked at compile time at the bottom of this file.

use std::time::Duration;

// ----- Frames -----

/// Bytes of the `u32` length field that starts every frame.
pub const FRAME_LENGTH_BYTES: usize = 4;
/// Bytes of `frame_type u8` + `reserved u8`, counted by the length field.
pub const FRAME_TYPE_BYTES: usize = 2;
/// Bytes before a frame's body.
pub const FRAME_HEADER_BYTES: usize = FRAME_LENGTH_BYTES + FRAME_TYPE_BYTES;
/// Largest frame, length field included: one maximal event plus every fixed field.
pub const FRAME_BYTES_MAX: usize = 80 * 1024;
/// Largest frame body (what follows the header).
pub const FRAME_BODY_BYTES_MAX: usize = FRAME_BYTES_MAX - FRAME_HEADER_BYTES;

// ----- Events (on the wire and in the log alike) -----

/// Largest event payload the protocol carries.
pub const EVENT_PAYLOAD_BYTES_MAX: usize = 64 * 1024;
/// Longest topic. Topics are never empty.
pub const TOPIC_BYTES_MAX: usize = 255;
/// Longest event source (producer identity).
pub const SOURCE_BYTES_MAX: usize = 255;
/// Longest client name. An empty publish source is replaced by the client name, so the
/// name must fit where a source fits.
pub const CLIENT_NAME_BYTES_MAX: usize = SOURCE_BYTES_MAX;
/// Longest idempotency key. Empty means "no key".
pub const KEY_BYTES_MAX: usize = 64;
/// Highest (least severe) syslog severity: 7 = debug.
pub const SEVERITY_MAX: u8 = 7;
/// Fixed part of an encoded event: severity, three `u8` lengths, flags, payload length.
pub const EVENT_FIXED_BYTES: usize = 1 + 1 + 1 + 1 + 2 + 4;
/// Largest encoded event.
pub const EVENT_BYTES_MAX: usize = EVENT_FIXED_BYTES
    + TOPIC_BYTES_MAX
    + SOURCE_BYTES_MAX
    + KEY_BYTES_MAX
    + EVENT_PAYLOAD_BYTES_MAX;

// ----- Frame bodies -----

/// `Publish` body before its event: correlation.
pub const PUBLISH_FIXED_BYTES: usize = 8;
/// `PublishBatch` body before its events: correlation, count.
pub const PUBLISH_BATCH_FIXED_BYTES: usize = 8 + 2;
/// Most events in one `PublishBatch`.
pub const BATCH_EVENTS_MAX: usize = 256;
/// `Deliver` body before its event: seq, timestamp, delivery flags, delivery count.
pub const DELIVER_FIXED_BYTES: usize = 8 + 8 + 2 + 2;
/// `Deliver`'s origin block (version 2, delivery flags bit 1): node id, seq, timestamp.
pub const DELIVER_ORIGIN_BYTES: usize = 8 + 8 + 8;
/// Bytes of a `Deliver` frame's rule block (version 3): the routing rule's id and version.
pub const DELIVER_RULE_BYTES: usize = 4 + 4;
/// `Hello` body before the client name: magic, version range, role, name length.
pub const HELLO_FIXED_BYTES: usize = 4 + 2 + 2 + 1 + 1;
/// `Subscribe` body before the name: flags, window, ack deadline, max deliveries, min
/// severity, name length, pattern count.
pub const SUBSCRIBE_FIXED_BYTES: usize = 4 + 4 + 4 + 2 + 1 + 1 + 1;
/// Longest `Admin` request.
pub const ADMIN_REQUEST_BYTES_MAX: usize = 4096;
/// Longest delay a `Nak` may ask for before redelivery: one hour.
pub const NAK_DELAY_MS_MAX: u32 = 60 * 60 * 1000;
/// `Error` body before the message: correlation, code, message length.
pub const ERROR_FIXED_BYTES: usize = 8 + 2 + 2;
/// Longest error message (UTF-8 bytes).
pub const ERROR_MESSAGE_BYTES_MAX: usize = 1024;
/// Longest `StatusReply` JSON document: the whole body.
pub const STATUS_JSON_BYTES_MAX: usize = FRAME_BODY_BYTES_MAX;

// ----- Subscriptions -----

/// Longest durable subscription name. Empty means a live-only subscription.
pub const SUBSCRIPTION_NAME_BYTES_MAX: usize = 64;
/// Longest topic pattern.
pub const PATTERN_BYTES_MAX: usize = 255;
/// Most patterns in one subscription (at least one is required).
pub const SUBSCRIPTION_PATTERNS_MAX: usize = 16;
/// Most bytes the patterns of one subscription take in all, each with its length byte
/// (the `patterns` field of `Subscribe`): what the spec field of a subscription table
/// entry holds after its header. The decoder refuses a longer list as too large, so a
/// subscription the protocol accepts can always be stored. It holds 16 patterns of up
/// to 19 bytes, or one of [`PATTERN_BYTES_MAX`] and a few short ones; not 16 of 255.
pub const SUBSCRIPTION_PATTERN_LIST_BYTES_MAX: usize = 332;
/// Largest in-flight window of a subscription, in events (at least one).
pub const WINDOW_EVENTS_MAX: u32 = 4096;
/// Longest acknowledgement deadline a subscription may ask for: one hour.
pub const ACK_DEADLINE_MS_MAX: u32 = 3_600_000;
/// Bytes of a subscription table entry's `spec` field: a subscription's filters and
/// settings as `subscription` encodes them (FORMAT.md, subscription table).
pub const SUBSCRIPTION_SPEC_BYTES_MAX: usize = 348;
/// Bytes of a stored spec before its patterns (version, severity, flags, count,
/// window, ack deadline, max deliveries, reserved).
pub const SUBSCRIPTION_SPEC_HEADER_BYTES: usize = 16;

// ----- The log -----

/// Smallest ring slot.
pub const SLOT_BYTES_MIN: u32 = 64;
/// Largest ring slot.
pub const SLOT_BYTES_MAX: u32 = 64 * 1024;
/// Most subscription entries a region may hold.
pub const SUBSCRIPTION_ENTRIES_MAX: u32 = 4096;
/// Largest payload a region may be formatted for (the daemon still accepts no more
/// than [`EVENT_PAYLOAD_BYTES_MAX`], what the protocol carries).
pub const PAYLOAD_BYTES_MAX_LIMIT: u32 = 16 * 1024 * 1024;
/// Most dead-letter slots (a record's id holds its slot index in 32 bits).
pub const DEAD_LETTER_SLOTS_MAX: u64 = u32::MAX as u64;

// ----- The daemon -----

/// Most connection slots the daemon may be told to allocate. Each slot's buffers are
/// allocated at start, about half a MiB (2 × 80 KiB to receive, 4 × 80 KiB to send,
/// 4 KiB for an admin request), so this many take about 31 GiB: far more clients than
/// one host's agent serves, and still a size a machine can hold.
pub const CONNECTIONS_MAX: usize = 65_536;

/// Most idempotency keys the daemon may be told to remember (4 Mi records, about
/// 1.5 GB allocated at start).
pub const DEDUPE_WINDOW_RECORDS_MAX: usize = 1 << 22;
/// Longest time the daemon may be told to remember an idempotency key: a week.
pub const DEDUPE_WINDOW_AGE_MAX: Duration = Duration::from_secs(7 * 24 * 60 * 60);

// Lengths are carried in fixed-width fields and converted to `usize`; a 16-bit target
// could not hold a frame.
const _: () = assert!(usize::BITS >= 32);

// The length field is a u32, and HelloOk reports both maxima as u32.
const _: () = assert!(FRAME_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(EVENT_PAYLOAD_BYTES_MAX <= u32::MAX as usize);
// The largest event fits in a frame whichever frame carries it.
const _: () =
    assert!(FRAME_HEADER_BYTES + PUBLISH_FIXED_BYTES + EVENT_BYTES_MAX <= FRAME_BYTES_MAX);
const _: () =
    assert!(FRAME_HEADER_BYTES + PUBLISH_BATCH_FIXED_BYTES + EVENT_BYTES_MAX <= FRAME_BYTES_MAX);
const _: () = assert!(
    FRAME_HEADER_BYTES
        + DELIVER_FIXED_BYTES
        + DELIVER_ORIGIN_BYTES
        + DELIVER_RULE_BYTES
        + EVENT_BYTES_MAX
        <= FRAME_BYTES_MAX
);
// Fields whose length is carried in a u8, on the wire and in a slot header alike.
const _: () = assert!(TOPIC_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(SOURCE_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(CLIENT_NAME_BYTES_MAX <= SOURCE_BYTES_MAX);
const _: () = assert!(KEY_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(SUBSCRIPTION_NAME_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(PATTERN_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(SUBSCRIPTION_PATTERNS_MAX <= u8::MAX as usize);
// A pattern without wildcards names one topic, so every topic can be subscribed to.
const _: () = assert!(PATTERN_BYTES_MAX >= TOPIC_BYTES_MAX);
// Counts carried in a u16: the batch count and Stored's count.
const _: () = assert!(BATCH_EVENTS_MAX <= u16::MAX as usize);
const _: () = assert!(ERROR_MESSAGE_BYTES_MAX <= u16::MAX as usize);
// The largest hello, subscribe and error frames fit.
const _: () =
    assert!(FRAME_HEADER_BYTES + HELLO_FIXED_BYTES + CLIENT_NAME_BYTES_MAX <= FRAME_BYTES_MAX);
const _: () = assert!(
    FRAME_HEADER_BYTES
        + SUBSCRIBE_FIXED_BYTES
        + SUBSCRIPTION_NAME_BYTES_MAX
        + SUBSCRIPTION_PATTERN_LIST_BYTES_MAX
        <= FRAME_BYTES_MAX
);
const _: () =
    assert!(FRAME_HEADER_BYTES + ERROR_FIXED_BYTES + ERROR_MESSAGE_BYTES_MAX <= FRAME_BYTES_MAX);
const _: () = assert!(SEVERITY_MAX == 7);

// The io_uring operation tag carries a connection slot in 24 bits (delivery::uring).
const _: () = assert!(CONNECTIONS_MAX <= 1 << 24);

// The log stores what the protocol carries: a region formatted for the largest payload
// takes the largest event.
const _: () = assert!(EVENT_PAYLOAD_BYTES_MAX <= PAYLOAD_BYTES_MAX_LIMIT as usize);
// A loaded entry keeps its spec length in a u16.
const _: () = assert!(SUBSCRIPTION_SPEC_BYTES_MAX <= u16::MAX as usize);
// Every pattern list the protocol accepts is stored: it fits the spec field after the
// spec's header.
const _: () = assert!(
    SUBSCRIPTION_SPEC_HEADER_BYTES + SUBSCRIPTION_PATTERN_LIST_BYTES_MAX
        <= SUBSCRIPTION_SPEC_BYTES_MAX
);
// Each other pattern limit can still be reached: the list holds the longest pattern
// behind its length byte, and as many one-byte patterns as a subscription may have;
// and the list's limit is the tighter one (below as many of the longest patterns).
const _: () = assert!(SUBSCRIPTION_PATTERN_LIST_BYTES_MAX > PATTERN_BYTES_MAX);
const _: () = assert!(SUBSCRIPTION_PATTERN_LIST_BYTES_MAX >= SUBSCRIPTION_PATTERNS_MAX * 2);
const _: () = assert!(
    SUBSCRIPTION_PATTERN_LIST_BYTES_MAX <= SUBSCRIPTION_PATTERNS_MAX * (1 + PATTERN_BYTES_MAX)
);
// Slots are whole cache lines.
const _: () = assert!(SLOT_BYTES_MIN.is_multiple_of(64) && SLOT_BYTES_MAX.is_multiple_of(64));
const _: () = assert!(SLOT_BYTES_MIN <= SLOT_BYTES_MAX);
// Subscription ids are u32.
const _: () = assert!(SUBSCRIPTION_ENTRIES_MAX as u64 <= u32::MAX as u64);
