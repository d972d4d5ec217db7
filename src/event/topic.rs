//! Topics: dot-separated names such as `fs.vol1.error`.
//!
//! Grammar: `topic = segment *("." segment)`, `segment = 1*(ALPHA / DIGIT / "_" / "-")`,
//! 1 to [`TOPIC_BYTES_MAX`] bytes in all. Every valid topic is ASCII.

use super::limits::TOPIC_BYTES_MAX;
use thiserror::Error;

/// Why a byte string is not a valid topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TopicError {
    /// A topic has at least one segment.
    #[error("topic is empty")]
    Empty,
    /// Longer than [`TOPIC_BYTES_MAX`].
    #[error("topic is {bytes} bytes; the limit is {TOPIC_BYTES_MAX}")]
    TooLong {
        /// Length of the rejected topic.
        bytes: usize,
    },
    /// Two dots in a row, or a dot at the start or end.
    #[error("topic has an empty segment at byte {offset}")]
    EmptySegment {
        /// Byte offset where the empty segment starts.
        offset: usize,
    },
    /// A byte outside `A-Z a-z 0-9 _ - .`.
    #[error("topic byte 0x{byte:02x} at offset {offset} is not one of A-Z a-z 0-9 _ - .")]
    InvalidByte {
        /// Offset of the byte.
        offset: usize,
        /// The byte.
        byte: u8,
    },
}

/// Whether `byte` may appear inside a topic segment (or a literal pattern segment).
pub(crate) const fn is_segment_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// A validated topic, borrowed from the buffer it was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Topic<'a>(&'a str);

impl<'a> Topic<'a> {
    /// Checks `bytes` against the topic grammar without keeping it.
    pub fn validate(bytes: &[u8]) -> Result<(), TopicError> {
        if bytes.is_empty() {
            return Err(TopicError::Empty);
        }
        if bytes.len() > TOPIC_BYTES_MAX {
            return Err(TopicError::TooLong { bytes: bytes.len() });
        }
        let mut segment_start = 0;
        for (offset, &byte) in bytes.iter().enumerate() {
            if byte == b'.' {
                if offset == segment_start {
                    return Err(TopicError::EmptySegment { offset });
                }
                segment_start = offset + 1;
            } else if !is_segment_byte(byte) {
                return Err(TopicError::InvalidByte { offset, byte });
            }
        }
        if segment_start == bytes.len() {
            return Err(TopicError::EmptySegment {
                offset: segment_start,
            });
        }
        Ok(())
    }

    /// Validates `bytes` and borrows them as a topic.
    pub fn new(bytes: &'a [u8]) -> Result<Self, TopicError> {
        Self::validate(bytes)?;
        // A valid topic is ASCII, so this cannot fail; mapping the error keeps the
        // function total without `unsafe`.
        match core::str::from_utf8(bytes) {
            Ok(text) => Ok(Topic(text)),
            Err(error) => Err(TopicError::InvalidByte {
                offset: error.valid_up_to(),
                byte: bytes[error.valid_up_to()],
            }),
        }
    }

    /// The topic as text.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// The topic's bytes, as they appear on the wire.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0.as_bytes()
    }

    /// The topic's segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &'a str> {
        self.0.split('.')
    }
}

impl core::fmt::Display for Topic<'_> {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        formatter.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_topics_are_accepted() {
        for topic in ["a", "fs", "fs.vol1.error", "A-b_c.9", &"x".repeat(255)] {
            assert_eq!(Topic::validate(topic.as_bytes()), Ok(()), "{topic}");
        }
    }

    #[test]
    fn malformed_topics_are_rejected_with_the_offending_offset() {
        let long = "x".repeat(256);
        let cases: [(&[u8], TopicError); 7] = [
            (b"", TopicError::Empty),
            (long.as_bytes(), TopicError::TooLong { bytes: 256 }),
            (b".a", TopicError::EmptySegment { offset: 0 }),
            (b"a..b", TopicError::EmptySegment { offset: 2 }),
            (b"a.", TopicError::EmptySegment { offset: 2 }),
            (
                b"a.*",
                TopicError::InvalidByte {
                    offset: 2,
                    byte: b'*',
                },
            ),
            (
                b"a b",
                TopicError::InvalidByte {
                    offset: 1,
                    byte: b' ',
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(Topic::validate(bytes), Err(expected), "{bytes:?}");
        }
    }
}
