//! What an event is: its sequence number, severity, and borrowed views for writing
//! and reading.

use std::fmt;

/// A sequence number: the ring position of an event's first slot. Sequence numbers
/// increase strictly but are not dense (an event spanning k slots consumes k of them).
/// It is not a slot index: the index is `seq % slot_count`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The first sequence number of a fresh ring.
    pub const FIRST: Seq = Seq(1);
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Syslog severity levels; lower is more severe.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Severity {
    /// System is unusable.
    Emerg = 0,
    /// Action must be taken immediately.
    Alert = 1,
    /// Critical conditions.
    Crit = 2,
    /// Error conditions.
    Err = 3,
    /// Warning conditions.
    Warning = 4,
    /// Normal but significant.
    Notice = 5,
    /// Informational.
    Info = 6,
    /// Debug-level messages.
    Debug = 7,
}

const SEVERITY_NAMES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

impl Severity {
    /// Decodes a stored or received level; `None` outside 0..=7.
    pub fn from_u8(v: u8) -> Option<Severity> {
        Some(match v {
            0 => Severity::Emerg,
            1 => Severity::Alert,
            2 => Severity::Crit,
            3 => Severity::Err,
            4 => Severity::Warning,
            5 => Severity::Notice,
            6 => Severity::Info,
            7 => Severity::Debug,
            _ => return None,
        })
    }

    /// The syslog keyword (`crit`, `warning`, …).
    pub fn name(self) -> &'static str {
        SEVERITY_NAMES[self as usize]
    }

    /// Parses a keyword (`crit`, also `error`/`warn`/`emergency`) or a number 0..=7.
    pub fn parse(text: &str) -> Option<Severity> {
        let lower = text.to_ascii_lowercase();
        let alias = match lower.as_str() {
            "error" => "err",
            "warn" => "warning",
            "emergency" | "panic" => "emerg",
            "critical" => "crit",
            other => other,
        };
        if let Some(i) = SEVERITY_NAMES.iter().position(|n| *n == alias) {
            return Severity::from_u8(i as u8);
        }
        text.parse::<u8>().ok().and_then(Severity::from_u8)
    }

    /// Whether the event may use the reserve kept for reporting exhaustion.
    pub fn may_use_reserve(self) -> bool {
        self <= Severity::Crit
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An event to append, borrowing all its bytes from the caller (no copy until the
/// bytes land in the slot).
#[derive(Copy, Clone, Debug)]
pub struct EventRef<'a> {
    /// Dot-separated topic, 1..=255 bytes.
    pub topic: &'a [u8],
    /// Severity.
    pub severity: Severity,
    /// Producer identity, 0..=255 bytes.
    pub source: &'a [u8],
    /// Producer-defined flags.
    pub flags: u16,
    /// Idempotency key, 0..=64 bytes (empty = none).
    pub key: &'a [u8],
    /// Payload, up to the ring's configured maximum.
    pub payload: &'a [u8],
    /// Store time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
}

/// A stored event, borrowed from the region.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EventView<'a> {
    /// Its sequence number.
    pub seq: Seq,
    /// Slots it occupies.
    pub span: u16,
    /// Store time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Severity.
    pub severity: Severity,
    /// Producer-defined flags.
    pub flags: u16,
    /// Topic.
    pub topic: &'a [u8],
    /// Producer identity.
    pub source: &'a [u8],
    /// Idempotency key (empty = none).
    pub key: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_parses_names_aliases_and_numbers_and_rejects_the_rest() {
        for v in 0..8u8 {
            let s = Severity::from_u8(v).unwrap();
            assert_eq!(Severity::parse(s.name()), Some(s));
            assert_eq!(Severity::parse(&v.to_string()), Some(s));
        }
        assert_eq!(Severity::parse("ERROR"), Some(Severity::Err));
        assert_eq!(Severity::parse("warn"), Some(Severity::Warning));
        assert_eq!(Severity::parse("8"), None);
        assert_eq!(Severity::parse("loud"), None);
        assert_eq!(Severity::from_u8(8), None);
    }

    #[test]
    fn only_crit_and_above_may_use_the_reserve() {
        assert!(Severity::Emerg.may_use_reserve());
        assert!(Severity::Crit.may_use_reserve());
        assert!(!Severity::Err.may_use_reserve());
    }
}
