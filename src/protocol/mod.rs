//! herald's wire protocol: frame types, encode/decode, and the connection state
//! machine. PROTOCOL.md at the repository root is the specification; this module is its
//! implementation.
//!
//! The module is pure: it knows nothing of sockets, persistence or io_uring. Decoding
//! borrows from the receive buffer and never allocates or panics, whatever the bytes;
//! encoding writes into a buffer the caller sized at start-up.
//!
//! ```
//! use herald::protocol::{decode, encode, Frame, Hello, Role, FRAME_BYTES_MAX};
//!
//! let mut buffer = vec![0u8; FRAME_BYTES_MAX];
//! let hello = Frame::Hello(Hello {
//!     version_min: 1,
//!     version_max: 1,
//!     role: Role::Producer,
//!     client_name: "fsd",
//! });
//! let written = encode(&hello, &mut buffer).unwrap();
//! let (frame, consumed) = decode(&buffer[..written]).unwrap().unwrap();
//! assert_eq!((frame, consumed), (hello, written));
//! ```

mod decode;
mod encode;
mod error;
mod event;
mod frame;
mod state;
mod version;

pub use crate::event::{
    matches_validated, Pattern, PatternError, Seq, Severity, SubscriptionMode, Topic, TopicError,
};
pub use decode::{decode, decode_header, FrameHeader};
pub use encode::{encode, encode_error, encode_to_vec, encoded_len};
pub use error::{DecodeError, EncodeError, ErrorCode, FieldError};
pub use event::{Event, EventBatch, EventIter};
pub use frame::{
    validate_subscription_name, Deliver, DeliverRule, Direction, Frame, FrameType, Hello, HelloOk,
    PatternIter, Patterns, Role, Subscribe, CLIENT_FRAME_TYPES, DELIVER_FLAG_ORIGIN,
    DELIVER_FLAG_REDELIVERED, DELIVER_FLAG_RULE, SERVER_FRAME_TYPES,
    SUBSCRIBE_FLAG_AUTOMATIC_RECOVERY, SUBSCRIBE_FLAG_GROUP,
};
// The protocol's limits live with every other limit in `event`; re-exported so that a
// client sees the whole protocol here.
pub use crate::event::limits::{
    ACK_DEADLINE_MS_MAX, ADMIN_REQUEST_BYTES_MAX, BATCH_EVENTS_MAX, CLIENT_NAME_BYTES_MAX,
    DELIVER_FIXED_BYTES, DELIVER_ORIGIN_BYTES, DELIVER_RULE_BYTES, ERROR_FIXED_BYTES,
    ERROR_MESSAGE_BYTES_MAX, EVENT_BYTES_MAX, EVENT_FIXED_BYTES, EVENT_PAYLOAD_BYTES_MAX,
    FRAME_BODY_BYTES_MAX, FRAME_BYTES_MAX, FRAME_HEADER_BYTES, FRAME_LENGTH_BYTES,
    FRAME_TYPE_BYTES, HELLO_FIXED_BYTES, KEY_BYTES_MAX, NAK_DELAY_MS_MAX, PATTERN_BYTES_MAX,
    PUBLISH_BATCH_FIXED_BYTES, PUBLISH_FIXED_BYTES, SEVERITY_MAX, SOURCE_BYTES_MAX,
    STATUS_JSON_BYTES_MAX, SUBSCRIBE_FIXED_BYTES, SUBSCRIPTION_NAME_BYTES_MAX,
    SUBSCRIPTION_PATTERNS_MAX, SUBSCRIPTION_PATTERN_LIST_BYTES_MAX, TOPIC_BYTES_MAX,
    WINDOW_EVENTS_MAX,
};
pub use state::{
    client_rule, negotiate_version, server_rule, ClientMachine, ClientRejection, ClientRule,
    ClientState, Rejection, Rule, ServerMachine, ServerState, Transition, CLIENT_STATES,
    CLIENT_TABLE, SERVER_STATES, SERVER_TABLE,
};
pub use version::{HELLO_MAGIC, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN};
