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
pub mod limits;
mod pattern;
mod state;
mod topic;

pub use decode::{decode, decode_header, FrameHeader};
pub use encode::{encode, encode_error, encode_to_vec, encoded_len};
pub use error::{DecodeError, EncodeError, ErrorCode, FieldError};
pub use event::{Event, EventBatch, EventIter, Seq, Severity};
pub use frame::{
    validate_subscription_name, Deliver, Direction, Frame, FrameType, Hello, HelloOk, PatternIter,
    Patterns, Role, Subscribe, SubscriptionMode, CLIENT_FRAME_TYPES, DELIVER_FLAG_REDELIVERED,
    SERVER_FRAME_TYPES, SUBSCRIBE_FLAG_AUTOMATIC_RECOVERY,
};
pub use limits::*;
pub use pattern::{matches_validated, Pattern, PatternError};
pub use state::{
    client_rule, negotiate_version, server_rule, ClientMachine, ClientRejection, ClientRule,
    ClientState, Rejection, Rule, ServerMachine, ServerState, Transition, CLIENT_STATES,
    CLIENT_TABLE, SERVER_STATES, SERVER_TABLE,
};
pub use topic::{Topic, TopicError};
