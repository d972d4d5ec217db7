//! An event as the log takes and gives it: borrowed views for writing and reading.
//! What its fields are (`Seq`, `Severity`, the limits) is `crate::event`'s.

use crate::event::{Origin, Seq, Severity};

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
    /// The routing rule that routed it: its rule table entry + 1, 0 for none (the
    /// subscriptions' own filters decide). Stored in the slot header.
    pub route: u8,
}

/// What a relay stores beside an event it took from an upstream herald.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Relayed {
    /// Where the event was first stored (kept across every hop).
    pub origin: Origin,
    /// The link entry of the upstream it came from ([`crate::log::Log::create_link`]).
    pub link: u32,
    /// Its seq at that upstream: the link's high-water mark is built from these.
    pub upstream_seq: u64,
}

/// The hop a relayed event took: from which link, at which upstream seq.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The link entry.
    pub link: u32,
    /// Its seq at the upstream.
    pub upstream_seq: u64,
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
    /// Where it was first stored: this node, its seq and store time for a local event;
    /// the first node's for a relayed one.
    pub origin: Origin,
    /// For a relayed event, the hop it took to reach this node.
    pub hop: Option<Hop>,
    /// The routing rule table entry + 1 of the rule that routed it (0: none; always 0
    /// for a dead letter, which goes to its own subscription only).
    pub route: u8,
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// For tests: an info event of `topic` with a one-byte payload.
#[cfg(test)]
pub(crate) fn test_event(topic: &[u8]) -> EventRef<'_> {
    EventRef {
        topic,
        severity: crate::event::Severity::Info,
        source: b"",
        flags: 0,
        key: b"",
        payload: b"p",
        timestamp_ns: 1,
        route: 0,
    }
}

/// For tests: what a relay stores for `upstream_seq` of node `node_id` via link `link`.
#[cfg(test)]
pub(crate) fn test_relayed(link: u32, node_id: u64, upstream_seq: u64) -> Relayed {
    Relayed {
        origin: crate::event::Origin {
            node_id,
            seq: upstream_seq,
            timestamp_ns: 1,
        },
        link,
        upstream_seq,
    }
}
