//! Error codes sent on the wire, and the errors of decoding and encoding.

use super::frame::FrameType;
use crate::event::limits::FRAME_BYTES_MAX;
use crate::event::{PatternError, TopicError};
use thiserror::Error;

/// The code of an `Error` frame. Numbers and meanings are stable within a protocol
/// version; PROTOCOL.md documents each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// A frame is malformed: bad length, unknown type, bad field value.
    Invalid = 1,
    /// A well-formed frame that is not valid in the connection's state.
    Unexpected = 2,
    /// The hello's version range and the server's have nothing in common.
    UnsupportedVersion = 3,
    /// A frame or one of its fields exceeds a limit.
    TooLarge = 4,
    /// The log has no room; the publish was not stored. The only code that leaves the
    /// connection open: the producer may retry.
    Full = 5,
    /// The durable subscription name is attached to another connection.
    NameInUse = 6,
    /// The daemon is shutting down.
    ShuttingDown = 7,
    /// The daemon failed internally (for example the log could not be written).
    Internal = 8,
    /// The role chosen in the hello does not allow this frame.
    NotPermitted = 9,
    /// The daemon is at its connection limit; the message names it.
    Busy = 10,
    /// The durable subscription cannot be created: the region's subscription table is
    /// full.
    TableFull = 11,
    /// The connection did not say hello, or said nothing, within the daemon's limit.
    TimedOut = 12,
    /// The daemon's access policy does not let this connection's identity do this (a
    /// role, a topic, a subscription name, an operator's request). The connection stays
    /// open for what it may do.
    Forbidden = 13,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::Invalid,
        ErrorCode::Unexpected,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TooLarge,
        ErrorCode::Full,
        ErrorCode::NameInUse,
        ErrorCode::ShuttingDown,
        ErrorCode::Internal,
        ErrorCode::NotPermitted,
        ErrorCode::Busy,
        ErrorCode::TableFull,
        ErrorCode::TimedOut,
        ErrorCode::Forbidden,
    ];

    /// The code carrying `value`, if there is one.
    pub const fn from_u16(value: u16) -> Option<Self> {
        match value {
            1 => Some(ErrorCode::Invalid),
            2 => Some(ErrorCode::Unexpected),
            3 => Some(ErrorCode::UnsupportedVersion),
            4 => Some(ErrorCode::TooLarge),
            5 => Some(ErrorCode::Full),
            6 => Some(ErrorCode::NameInUse),
            7 => Some(ErrorCode::ShuttingDown),
            8 => Some(ErrorCode::Internal),
            9 => Some(ErrorCode::NotPermitted),
            10 => Some(ErrorCode::Busy),
            11 => Some(ErrorCode::TableFull),
            12 => Some(ErrorCode::TimedOut),
            13 => Some(ErrorCode::Forbidden),
            _ => None,
        }
    }

    /// The value on the wire.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code's name as PROTOCOL.md spells it.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::Invalid => "invalid",
            ErrorCode::Unexpected => "unexpected",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Full => "full",
            ErrorCode::NameInUse => "name_in_use",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
            ErrorCode::NotPermitted => "not_permitted",
            ErrorCode::Busy => "busy",
            ErrorCode::TableFull => "table_full",
            ErrorCode::TimedOut => "timed_out",
            ErrorCode::Forbidden => "forbidden",
        }
    }

    /// Whether the server closes the connection after sending this code: every code
    /// but `full` (retry later) and `forbidden` (do something else).
    pub const fn closes_connection(self) -> bool {
        !matches!(self, ErrorCode::Full | ErrorCode::Forbidden)
    }
}

impl core::fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A field whose value breaks the protocol. Shared by decoding (the peer sent it) and
/// encoding (the caller tried to send it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FieldError {
    /// Longer than its limit.
    #[error("{field} is {bytes} bytes; the limit is {max}")]
    TooLong {
        /// Which field, as `frame.field`.
        field: &'static str,
        /// Its length.
        bytes: usize,
        /// Its limit.
        max: usize,
    },
    /// A value outside the field's range (unknown enum value, reserved bit set, …).
    #[error("{field} has invalid value {value}")]
    InvalidValue {
        /// Which field, as `frame.field`.
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// A byte the field's grammar does not allow.
    #[error("{field}: byte 0x{byte:02x} at offset {offset} is not allowed")]
    InvalidByte {
        /// Which field, as `frame.field`.
        field: &'static str,
        /// Offset of the byte in the field.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// Text that is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    NotUtf8 {
        /// Which field, as `frame.field`.
        field: &'static str,
    },
    /// A topic that breaks the topic grammar.
    #[error("topic: {0}")]
    Topic(#[from] TopicError),
    /// A pattern that breaks the pattern grammar.
    #[error("pattern: {0}")]
    Pattern(#[from] PatternError),
}

/// Why bytes received are not a valid frame. Every variant means the stream cannot be
/// trusted any further: the receiver sends [`DecodeError::code`] and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The length field does not even cover the type and reserved bytes.
    #[error(
        "frame length field is {length}; it must count at least the 2 bytes of type and reserved"
    )]
    LengthTooShort {
        /// The length field.
        length: u32,
    },
    /// The length field announces a frame above [`FRAME_BYTES_MAX`].
    #[error("frame of {frame_bytes} bytes exceeds the limit of {FRAME_BYTES_MAX} bytes")]
    FrameTooLarge {
        /// Whole frame size announced, length field included.
        frame_bytes: u64,
    },
    /// A frame type byte this version does not define.
    #[error("unknown frame type 0x{frame_type:02x}")]
    UnknownFrameType {
        /// The type byte.
        frame_type: u8,
    },
    /// The reserved header byte is not zero.
    #[error("reserved header byte is 0x{value:02x}; it must be 0")]
    ReservedNotZero {
        /// The reserved byte.
        value: u8,
    },
    /// The body ends before a field it should contain.
    #[error("{field}: the frame body ends before this field")]
    Truncated {
        /// The field that did not fit.
        field: &'static str,
    },
    /// The body goes on after its last field.
    #[error("{frame_type} frame has {bytes} bytes after its last field")]
    TrailingBytes {
        /// The frame's type.
        frame_type: FrameType,
        /// How many bytes are left over.
        bytes: usize,
    },
    /// A `Hello` that does not start with `HRLD`.
    #[error("hello magic is {found:02x?}; expected the bytes of \"HRLD\"")]
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// A field breaks the protocol.
    #[error(transparent)]
    Field(#[from] FieldError),
}

impl DecodeError {
    /// The error code to send before closing the connection.
    pub const fn code(&self) -> ErrorCode {
        match self {
            DecodeError::FrameTooLarge { .. } | DecodeError::Field(FieldError::TooLong { .. }) => {
                ErrorCode::TooLarge
            }
            _ => ErrorCode::Invalid,
        }
    }
}

impl From<TopicError> for DecodeError {
    fn from(error: TopicError) -> Self {
        DecodeError::Field(FieldError::Topic(error))
    }
}

impl From<PatternError> for DecodeError {
    fn from(error: PatternError) -> Self {
        DecodeError::Field(FieldError::Pattern(error))
    }
}

/// Why a frame could not be encoded. Nothing was sent; the caller's data or buffer is at
/// fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The output buffer cannot hold the frame.
    #[error("frame needs {needed} bytes but the buffer has room for {available}")]
    BufferTooSmall {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The frame would exceed [`FRAME_BYTES_MAX`].
    #[error("frame of {frame_bytes} bytes exceeds the limit of {FRAME_BYTES_MAX} bytes")]
    FrameTooLarge {
        /// Whole frame size, length field included.
        frame_bytes: usize,
    },
    /// A field breaks the protocol.
    #[error(transparent)]
    Field(#[from] FieldError),
}
