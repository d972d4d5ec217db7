//! Topic patterns for subscription filters (NATS style).
//!
//! A pattern is a topic whose segments may also be `*` (exactly one segment) or, as the
//! last segment only, `>` (one or more segments): `fs.*.error`, `fs.>`, `>`.

use super::limits::PATTERN_BYTES_MAX;
use super::topic::{is_segment_byte, Topic};
use thiserror::Error;

/// Why a byte string is not a valid pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PatternError {
    /// A pattern has at least one segment.
    #[error("pattern is empty")]
    Empty,
    /// Longer than [`PATTERN_BYTES_MAX`].
    #[error("pattern is {bytes} bytes; the limit is {PATTERN_BYTES_MAX}")]
    TooLong {
        /// Length of the rejected pattern.
        bytes: usize,
    },
    /// Two dots in a row, or a dot at the start or end.
    #[error("pattern has an empty segment at byte {offset}")]
    EmptySegment {
        /// Byte offset where the empty segment starts.
        offset: usize,
    },
    /// A byte outside `A-Z a-z 0-9 _ - . * >`.
    #[error("pattern byte 0x{byte:02x} at offset {offset} is not one of A-Z a-z 0-9 _ - . * >")]
    InvalidByte {
        /// Offset of the byte.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// `*` or `>` inside a segment, such as `fs*`.
    #[error("wildcard at offset {offset} is not a whole segment")]
    WildcardInSegment {
        /// Offset of the wildcard byte.
        offset: usize,
    },
    /// `>` anywhere but the last segment, such as `a.>.b`.
    #[error("'>' at offset {offset} is not the last segment")]
    FullWildcardNotLast {
        /// Offset of the `>`.
        offset: usize,
    },
}

/// Whether `topic` matches `pattern`, where `pattern` already passed
/// [`Pattern::parse`] (kept as bytes by a holder that cannot keep the borrow): the
/// matching step alone, without validating again. For bytes that never passed
/// `parse` the answer is unspecified, but never a panic.
pub fn matches_validated(pattern: &[u8], topic: &[u8]) -> bool {
    let mut pattern_segments = pattern.split(|&byte| byte == b'.');
    let mut topic_segments = topic.split(|&byte| byte == b'.');
    loop {
        match (pattern_segments.next(), topic_segments.next()) {
            (None, None) => return true,
            // Validation put `>` last, and a topic segment is there: it matches all
            // that remains.
            (Some(b">"), Some(_)) => return true,
            (Some(b"*"), Some(_)) => {}
            (Some(literal), Some(segment)) if literal == segment => {}
            _ => return false,
        }
    }
}

/// Whether every topic `inner` matches is matched by `outer` too: `fs.>` covers
/// `fs.*.error` and `fs.vol1`, `fs.*` covers `fs.vol1` but not `fs.>`. Both already
/// passed [`Pattern::parse`] (for other bytes the answer is unspecified, never a
/// panic). The access policy asks it of a subscription's patterns: a subscriber may
/// only ask for topics it is allowed to receive.
pub fn covers_validated(outer: &[u8], inner: &[u8]) -> bool {
    let mut outer_segments = outer.split(|&byte| byte == b'.');
    let mut inner_segments = inner.split(|&byte| byte == b'.');
    loop {
        match (outer_segments.next(), inner_segments.next()) {
            (None, None) => return true,
            // `>` takes one or more segments, and whatever `inner` has here (a literal,
            // `*` or `>`) stands for at least one.
            (Some(b">"), Some(_)) => return true,
            // `*` takes exactly one segment: `inner`'s `>` may stand for more.
            (Some(b"*"), Some(segment)) if segment != b">" => {}
            (Some(literal), Some(segment))
                if literal == segment && segment != b"*" && segment != b">" => {}
            _ => return false,
        }
    }
}

/// A validated pattern, borrowed from the buffer it was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pattern<'a>(&'a str);

impl<'a> Pattern<'a> {
    /// Validates `bytes` against the pattern grammar and borrows them.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PatternError> {
        if bytes.is_empty() {
            return Err(PatternError::Empty);
        }
        if bytes.len() > PATTERN_BYTES_MAX {
            return Err(PatternError::TooLong { bytes: bytes.len() });
        }
        let mut offset = 0;
        let mut segments = bytes.split(|&byte| byte == b'.').peekable();
        while let Some(segment) = segments.next() {
            let is_last = segments.peek().is_none();
            validate_segment(segment, offset, is_last)?;
            offset += segment.len() + 1;
        }
        // Every byte was checked to be ASCII above.
        match core::str::from_utf8(bytes) {
            Ok(text) => Ok(Pattern(text)),
            Err(error) => Err(PatternError::InvalidByte {
                offset: error.valid_up_to(),
                byte: bytes[error.valid_up_to()],
            }),
        }
    }

    /// Whether `topic` matches this pattern. Never allocates. `topic` is assumed to be a
    /// valid topic; for anything else the answer is unspecified (but never a panic).
    pub fn matches(&self, topic: &[u8]) -> bool {
        matches_validated(self.0.as_bytes(), topic)
    }

    /// Whether `topic` matches this pattern.
    pub fn matches_topic(&self, topic: Topic<'_>) -> bool {
        self.matches(topic.as_bytes())
    }

    /// The pattern as text.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// The pattern's bytes, as they appear on the wire.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0.as_bytes()
    }
}

fn validate_segment(segment: &[u8], offset: usize, is_last: bool) -> Result<(), PatternError> {
    match segment {
        [] => Err(PatternError::EmptySegment { offset }),
        b"*" => Ok(()),
        b">" if is_last => Ok(()),
        b">" => Err(PatternError::FullWildcardNotLast { offset }),
        literal => {
            for (index, &byte) in literal.iter().enumerate() {
                if byte == b'*' || byte == b'>' {
                    return Err(PatternError::WildcardInSegment {
                        offset: offset + index,
                    });
                }
                if !is_segment_byte(byte) {
                    return Err(PatternError::InvalidByte {
                        offset: offset + index,
                        byte,
                    });
                }
            }
            Ok(())
        }
    }
}

impl core::fmt::Display for Pattern<'_> {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        formatter.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, topic: &str) -> bool {
        Pattern::parse(pattern.as_bytes())
            .unwrap()
            .matches(topic.as_bytes())
    }

    #[test]
    fn star_matches_exactly_one_segment() {
        assert!(matches("fs.*.error", "fs.vol1.error"));
        assert!(!matches("fs.*.error", "fs.error"));
        assert!(!matches("fs.*.error", "fs.a.b.error"));
        assert!(matches("*", "fs"));
        assert!(!matches("*", "fs.a"));
    }

    #[test]
    fn greater_than_matches_one_or_more_trailing_segments() {
        assert!(matches("fs.>", "fs.a"));
        assert!(matches("fs.>", "fs.a.b.c"));
        assert!(!matches("fs.>", "fs"));
        assert!(!matches("fs.>", "net.a"));
        assert!(matches(">", "anything.at.all"));
        assert!(matches("*.>", "a.b"));
        assert!(!matches("*.>", "a"));
    }

    #[test]
    fn literal_segments_match_only_themselves() {
        assert!(matches("fs.vol1", "fs.vol1"));
        assert!(!matches("fs.vol1", "fs.vol10"));
        assert!(!matches("fs.vol1", "fs.vol1.x"));
        assert!(!matches("fs.vol1.x", "fs.vol1"));
    }

    fn covers(outer: &str, inner: &str) -> bool {
        Pattern::parse(outer.as_bytes()).unwrap();
        Pattern::parse(inner.as_bytes()).unwrap();
        covers_validated(outer.as_bytes(), inner.as_bytes())
    }

    #[test]
    fn a_pattern_covers_the_patterns_whose_topics_it_all_matches() {
        assert!(covers(">", "fs.>"));
        assert!(covers(">", "*"));
        assert!(covers("fs.>", "fs.*.error"));
        assert!(covers("fs.>", "fs.>"));
        assert!(covers("fs.>", "fs.a.>"));
        assert!(covers("fs.*", "fs.vol1"));
        assert!(covers("fs.*", "fs.*"));
        assert!(covers("fs.*.error", "fs.vol1.error"));
        assert!(covers("fs.vol1", "fs.vol1"));
        assert!(covers("*.>", "a.b.>"));
        assert!(!covers("fs.*", "fs.>"));
        assert!(!covers("fs.vol1", "fs.*"));
        assert!(!covers("fs.>", "fs"));
        assert!(!covers("fs.>", ">"));
        assert!(!covers("fs.>", "*.a"));
        assert!(!covers("fs.*.error", "fs.*"));
        assert!(!covers("fs.*", "fs.*.error"));
        assert!(!covers("fs.vol1", "fs.vol1.x"));
        assert!(!covers("a.b", "a.>"));
    }

    /// A small deterministic generator (xorshift), so the property test needs no
    /// dependency; the seed is fixed, printed, and `HERALD_PATTERN_SEED` overrides it.
    struct Xorshift(u64);

    impl Xorshift {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn random_pattern(rng: &mut Xorshift) -> String {
        let segments = 1 + rng.below(4);
        let mut out = Vec::new();
        for i in 0..segments {
            let last = i + 1 == segments;
            out.push(match rng.below(if last { 5 } else { 4 }) {
                0 | 1 => ["a", "b"][rng.below(2) as usize],
                2 | 3 => "*",
                _ => ">",
            });
        }
        out.join(".")
    }

    /// The property the access policy rests on: `outer` covers `inner` exactly when no
    /// topic matches `inner` without matching `outer` (every topic of up to six
    /// segments over a small alphabet is tried, enough for patterns of four).
    #[test]
    fn covering_agrees_with_matching_on_random_patterns() {
        let seed = std::env::var("HERALD_PATTERN_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_cafe_u64);
        eprintln!("seed {seed} (HERALD_PATTERN_SEED overrides it)");
        let mut rng = Xorshift(seed | 1);
        let topics = short_topics();
        for _ in 0..2000 {
            let outer = random_pattern(&mut rng);
            let inner = random_pattern(&mut rng);
            let escape = topics
                .iter()
                .find(|t| matches(&inner, t) && !matches(&outer, t));
            assert_eq!(
                covers(&outer, &inner),
                escape.is_none(),
                "seed {seed}: outer {outer}, inner {inner}, a topic of inner's only: {escape:?}"
            );
        }
    }

    /// Every topic of one to six segments `a`, `b`, `c`, `z` (`z` is in no pattern: it
    /// stands for any other segment).
    fn short_topics() -> Vec<String> {
        let mut all = Vec::new();
        let mut level = vec![String::new()];
        for _ in 0..6 {
            let mut longer = Vec::new();
            for t in &level {
                for s in ["a", "b", "c", "z"] {
                    longer.push(if t.is_empty() {
                        s.to_owned()
                    } else {
                        format!("{t}.{s}")
                    });
                }
            }
            all.extend(longer.iter().cloned());
            level = longer;
        }
        all
    }

    #[test]
    fn malformed_patterns_are_rejected_with_the_offending_offset() {
        let cases: [(&[u8], PatternError); 7] = [
            (b"", PatternError::Empty),
            (b"a.>.b", PatternError::FullWildcardNotLast { offset: 2 }),
            (b">.a", PatternError::FullWildcardNotLast { offset: 0 }),
            (b"a..b", PatternError::EmptySegment { offset: 2 }),
            (b"a.", PatternError::EmptySegment { offset: 2 }),
            (b"fs*", PatternError::WildcardInSegment { offset: 2 }),
            (
                b"a.b c",
                PatternError::InvalidByte {
                    offset: 3,
                    byte: b' ',
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(Pattern::parse(bytes), Err(expected), "{bytes:?}");
        }
        let long = "x".repeat(256);
        assert_eq!(
            Pattern::parse(long.as_bytes()),
            Err(PatternError::TooLong { bytes: 256 })
        );
    }
}
