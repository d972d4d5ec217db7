//! Sequence numbers.

use std::fmt;

/// A sequence number: an event's place in the log's order, the ring position of its
/// first slot. Strictly increasing but not dense: an event that occupies several log
/// slots consumes several numbers. It is not a slot index: the index is
/// `seq % slot_count`.
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
