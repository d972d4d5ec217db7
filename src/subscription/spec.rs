//! The durable part of a subscription, encoded into the log entry's spec bytes.
//!
//! Encoding (version 2, little-endian): `version u8 = 2`, `min_severity u8`,
//! `flags u8` (bit 0: automatic recovery), `pattern_count u8`, `window_events u32`,
//! `ack_deadline_ms u32`, `max_deliveries u16`, `reserved u16 = 0`, then each pattern
//! as `len u8` + bytes. Version 1 (written before redelivery existed) is the same
//! without the 8 bytes after the window; it reads back with the daemon's defaults (0).
//!
//! Every spec holds patterns that passed the pattern grammar (checked when it is built
//! and when it is read back), so [`SubscriptionSpec::matches`] skips validation.

use crate::event::limits::{
    SUBSCRIPTION_PATTERNS_MAX, SUBSCRIPTION_PATTERN_LIST_BYTES_MAX, SUBSCRIPTION_SPEC_BYTES_MAX,
    SUBSCRIPTION_SPEC_HEADER_BYTES,
};
use crate::event::{matches_validated, Pattern, PatternError, Severity};

const HEADER_BYTES: usize = SUBSCRIPTION_SPEC_HEADER_BYTES;
const HEADER_BYTES_V1: usize = 8;
// The version 2 header as the module comment lists it.
const _: () = assert!(HEADER_BYTES == 1 + 1 + 1 + 1 + 4 + 4 + 2 + 2);
const VERSION: u8 = 2;

/// Why a spec cannot be built or read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Patterns too long in total for the subscription table's spec field.
    #[error("topic patterns take {0} bytes; a subscription holds at most {SUBSCRIPTION_PATTERN_LIST_BYTES_MAX}")]
    TooLarge(usize),
    /// Too many or no patterns.
    #[error("a subscription needs 1..={SUBSCRIPTION_PATTERNS_MAX} patterns, got {0}")]
    PatternCount(usize),
    /// A pattern outside the pattern grammar (in stored bytes: damaged, or written by
    /// a herald with another grammar).
    #[error("a topic pattern is invalid: {0}")]
    InvalidPattern(PatternError),
    /// Stored bytes that do not decode (damaged or from another version).
    #[error("stored subscription spec is unreadable: {0}")]
    Damaged(&'static str),
}

/// Filters and settings of one subscription, fixed-size (no heap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionSpec {
    /// Events this severe or more pass.
    pub min_severity: Severity,
    /// Most events in flight.
    pub window_events: u32,
    /// Leave recovery mode once the replay is confirmed, without `Recovered`.
    pub automatic_recovery: bool,
    /// Milliseconds an event may stay unsettled after delivery; 0 = daemon default.
    pub ack_deadline_ms: u32,
    /// Deliveries before an event is dead-lettered; 0 = daemon default.
    pub max_deliveries: u16,
    pattern_count: u8,
    pattern_bytes: [u8; SUBSCRIPTION_PATTERN_LIST_BYTES_MAX],
    pattern_used: u16,
}

impl SubscriptionSpec {
    /// Builds a spec, checking each pattern against the grammar.
    pub fn new<'a>(
        min_severity: Severity,
        window_events: u32,
        automatic_recovery: bool,
        patterns: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<SubscriptionSpec, SpecError> {
        let mut spec = SubscriptionSpec {
            min_severity,
            window_events,
            automatic_recovery,
            ack_deadline_ms: 0,
            max_deliveries: 0,
            pattern_count: 0,
            pattern_bytes: [0; SUBSCRIPTION_PATTERN_LIST_BYTES_MAX],
            pattern_used: 0,
        };
        let mut count = 0usize;
        let mut needed = 0usize;
        for p in patterns {
            Pattern::parse(p).map_err(SpecError::InvalidPattern)?;
            count += 1;
            needed += 1 + p.len();
            if needed > SUBSCRIPTION_PATTERN_LIST_BYTES_MAX || p.len() > u8::MAX as usize {
                continue;
            }
            let at = spec.pattern_used as usize;
            spec.pattern_bytes[at] = p.len() as u8;
            spec.pattern_bytes[at + 1..at + 1 + p.len()].copy_from_slice(p);
            spec.pattern_used += 1 + p.len() as u16;
        }
        if needed > SUBSCRIPTION_PATTERN_LIST_BYTES_MAX {
            return Err(SpecError::TooLarge(needed));
        }
        if count == 0 || count > SUBSCRIPTION_PATTERNS_MAX {
            return Err(SpecError::PatternCount(count));
        }
        spec.pattern_count = count as u8;
        Ok(spec)
    }

    /// The patterns, as stored.
    pub fn patterns(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut at = 0usize;
        (0..self.pattern_count).map(move |_| {
            let len = self.pattern_bytes[at] as usize;
            let p = &self.pattern_bytes[at + 1..at + 1 + len];
            at += 1 + len;
            p
        })
    }

    /// Encodes into `out`; returns the bytes used.
    pub fn encode(&self, out: &mut [u8; SUBSCRIPTION_SPEC_BYTES_MAX]) -> usize {
        out[0] = VERSION;
        out[1] = self.min_severity.as_u8();
        out[2] = self.automatic_recovery as u8;
        out[3] = self.pattern_count;
        out[4..8].copy_from_slice(&self.window_events.to_le_bytes());
        out[8..12].copy_from_slice(&self.ack_deadline_ms.to_le_bytes());
        out[12..14].copy_from_slice(&self.max_deliveries.to_le_bytes());
        out[14..16].fill(0);
        let used = self.pattern_used as usize;
        out[HEADER_BYTES..HEADER_BYTES + used].copy_from_slice(&self.pattern_bytes[..used]);
        HEADER_BYTES + used
    }

    /// Decodes stored bytes, checking every length.
    pub fn decode(bytes: &[u8]) -> Result<SubscriptionSpec, SpecError> {
        let header = match bytes.first() {
            Some(1) => HEADER_BYTES_V1,
            Some(&VERSION) => HEADER_BYTES,
            Some(_) => return Err(SpecError::Damaged("unknown spec version")),
            None => return Err(SpecError::Damaged("empty")),
        };
        if bytes.len() < header {
            return Err(SpecError::Damaged("shorter than its header"));
        }
        // Both headers start with version, severity, flags, count and the window.
        let Some((fixed, _)) = bytes.split_first_chunk::<HEADER_BYTES_V1>() else {
            return Err(SpecError::Damaged("shorter than its header"));
        };
        let [_, severity, flags, count, w0, w1, w2, w3] = *fixed;
        let (Some(min_severity), 0..=1) = (Severity::from_u8(severity), flags) else {
            return Err(SpecError::Damaged("severity or flags out of range"));
        };
        let count = count as usize;
        let mut rest = bytes.get(header..).unwrap_or_default();
        let mut patterns: [&[u8]; SUBSCRIPTION_PATTERNS_MAX] = [&[]; SUBSCRIPTION_PATTERNS_MAX];
        if count == 0 || count > SUBSCRIPTION_PATTERNS_MAX {
            return Err(SpecError::Damaged("pattern count out of range"));
        }
        for slot in patterns.iter_mut().take(count) {
            let (&len, tail) = rest
                .split_first()
                .ok_or(SpecError::Damaged("pattern list cut short"))?;
            let Some((pattern, after)) = tail.split_at_checked(len as usize) else {
                return Err(SpecError::Damaged("pattern cut short"));
            };
            *slot = pattern;
            rest = after;
        }
        let window = u32::from_le_bytes([w0, w1, w2, w3]);
        let mut spec = SubscriptionSpec::new(
            min_severity,
            window,
            flags == 1,
            patterns.iter().take(count).copied(),
        )?;
        // Version 2 adds the redelivery policy after the window (its length was checked
        // above; a shorter slice simply does not match).
        if header == HEADER_BYTES {
            if let Some(&[a0, a1, a2, a3, m0, m1, ..]) = bytes.get(HEADER_BYTES_V1..header) {
                spec.ack_deadline_ms = u32::from_le_bytes([a0, a1, a2, a3]);
                spec.max_deliveries = u16::from_le_bytes([m0, m1]);
            }
        }
        Ok(spec)
    }

    /// Whether an event with `topic` and `severity` is meant for this subscription:
    /// severe enough, and its topic matches any pattern. Never allocates.
    pub fn matches(&self, topic: &[u8], severity: Severity) -> bool {
        severity <= self.min_severity
            && self
                .patterns()
                .any(|pattern| matches_validated(pattern, topic))
    }

    /// Whether `other` has the same filters (minimum severity and patterns, in order):
    /// a durable subscription's consumer attaches with its filters, which only an
    /// operator's `subscriptions.set` changes.
    pub fn same_filters(&self, other: &SubscriptionSpec) -> bool {
        self.min_severity == other.min_severity && self.patterns().eq(other.patterns())
    }

    /// Every event, window 64: what a durable subscription whose stored spec cannot be
    /// read receives, rather than a guess at its filters.
    pub fn match_all() -> SubscriptionSpec {
        let mut spec = SubscriptionSpec {
            min_severity: Severity::Debug,
            window_events: 64,
            automatic_recovery: false,
            ack_deadline_ms: 0,
            max_deliveries: 0,
            pattern_count: 1,
            pattern_bytes: [0; SUBSCRIPTION_PATTERN_LIST_BYTES_MAX],
            pattern_used: 2,
        };
        spec.pattern_bytes[0] = 1;
        spec.pattern_bytes[1] = b'>';
        spec
    }

    /// Sets the redelivery policy (0 = the daemon's default for either).
    pub fn with_policy(mut self, ack_deadline_ms: u32, max_deliveries: u16) -> SubscriptionSpec {
        self.ack_deadline_ms = ack_deadline_ms;
        self.max_deliveries = max_deliveries;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::limits::PATTERN_BYTES_MAX;

    #[test]
    fn specs_round_trip_through_their_stored_bytes() {
        let spec = SubscriptionSpec::new(Severity::Error, 64, true, [&b"fs.*.error"[..], b"net.>"])
            .unwrap();
        let mut out = [0u8; SUBSCRIPTION_SPEC_BYTES_MAX];
        let n = spec.encode(&mut out);
        let back = SubscriptionSpec::decode(&out[..n]).unwrap();
        assert_eq!(back, spec);
        assert_eq!(
            back.patterns().collect::<Vec<_>>(),
            vec![&b"fs.*.error"[..], b"net.>"]
        );
    }

    #[test]
    fn the_redelivery_policy_round_trips_and_version_1_specs_read_with_defaults() {
        let spec = SubscriptionSpec::new(Severity::Info, 8, false, [&b">"[..]])
            .unwrap()
            .with_policy(1500, 3);
        let mut out = [0u8; SUBSCRIPTION_SPEC_BYTES_MAX];
        let n = spec.encode(&mut out);
        assert_eq!(SubscriptionSpec::decode(&out[..n]).unwrap(), spec);
        // Version 1, as written before redelivery existed: window 8, pattern ">".
        let v1 = [1u8, 6, 0, 1, 8, 0, 0, 0, 1, b'>'];
        let old = SubscriptionSpec::decode(&v1).unwrap();
        assert_eq!(
            old,
            SubscriptionSpec::new(Severity::Info, 8, false, [&b">"[..]]).unwrap()
        );
        assert_eq!((old.ack_deadline_ms, old.max_deliveries), (0, 0));
    }

    #[test]
    fn oversized_or_empty_pattern_lists_are_refused() {
        let long = [b'a'; 200];
        assert!(matches!(
            SubscriptionSpec::new(Severity::Debug, 1, false, [&long[..], &long[..]]),
            Err(SpecError::TooLarge(402))
        ));
        assert!(matches!(
            SubscriptionSpec::new(Severity::Debug, 1, false, std::iter::empty()),
            Err(SpecError::PatternCount(0))
        ));
        let many = vec![&b"a"[..]; 17];
        assert!(matches!(
            SubscriptionSpec::new(Severity::Debug, 1, false, many),
            Err(SpecError::PatternCount(17))
        ));
    }

    #[test]
    fn the_longest_pattern_list_the_protocol_accepts_is_stored_and_one_byte_more_is_not() {
        let long = [b'a'; PATTERN_BYTES_MAX];
        let fill = [b'b'; SUBSCRIPTION_PATTERN_LIST_BYTES_MAX - (1 + PATTERN_BYTES_MAX) - 1];
        let spec = SubscriptionSpec::new(Severity::Debug, 8, false, [&long[..], &fill[..]])
            .unwrap()
            .with_policy(1000, 2);
        let mut out = [0u8; SUBSCRIPTION_SPEC_BYTES_MAX];
        let n = spec.encode(&mut out);
        assert_eq!(n, HEADER_BYTES + SUBSCRIPTION_PATTERN_LIST_BYTES_MAX);
        assert_eq!(SubscriptionSpec::decode(&out[..n]).unwrap(), spec);
        let over = [b'b'; SUBSCRIPTION_PATTERN_LIST_BYTES_MAX - (1 + PATTERN_BYTES_MAX)];
        assert_eq!(
            SubscriptionSpec::new(Severity::Debug, 8, false, [&long[..], &over[..]]),
            Err(SpecError::TooLarge(SUBSCRIPTION_PATTERN_LIST_BYTES_MAX + 1))
        );
    }

    #[test]
    fn damaged_stored_specs_are_errors_for_every_truncation() {
        let spec =
            SubscriptionSpec::new(Severity::Error, 64, false, [&b"fs.>"[..], b"a.b"]).unwrap();
        let mut out = [0u8; SUBSCRIPTION_SPEC_BYTES_MAX];
        let n = spec.encode(&mut out);
        for cut in 0..n {
            assert!(
                SubscriptionSpec::decode(&out[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = out;
        bad[0] = 9;
        assert!(SubscriptionSpec::decode(&bad[..n]).is_err());
    }

    #[test]
    fn patterns_outside_the_grammar_are_refused_when_built_and_when_read_back() {
        assert_eq!(
            SubscriptionSpec::new(Severity::Debug, 4, false, [&b"fs.>"[..], b"a.>.b"]),
            Err(SpecError::InvalidPattern(
                PatternError::FullWildcardNotLast { offset: 2 }
            ))
        );
        // Version 2 bytes as a damaged entry might hold them: window 4, pattern "fs*".
        let mut stored = vec![2u8, 7, 0, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
        stored.extend_from_slice(b"fs*");
        assert!(matches!(
            SubscriptionSpec::decode(&stored),
            Err(SpecError::InvalidPattern(
                PatternError::WildcardInSegment { .. }
            ))
        ));
    }

    #[test]
    fn an_event_matches_when_severe_enough_and_any_pattern_matches_its_topic() {
        let spec =
            SubscriptionSpec::new(Severity::Warning, 4, false, [&b"fs.*.error"[..], b"net.>"])
                .unwrap();
        assert!(spec.matches(b"fs.vol1.error", Severity::Warning));
        assert!(spec.matches(b"net.link.down", Severity::Emergency));
        assert!(!spec.matches(b"fs.vol1.error", Severity::Notice));
        assert!(!spec.matches(b"fs.error", Severity::Error));
        assert!(!spec.matches(b"dns.timeout", Severity::Error));
    }
}
