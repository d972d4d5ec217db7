//! Where an event was first stored: the node that took it from its producer, the
//! sequence number it got there and when. A relay keeps it with its own copy, so an
//! event that crossed A → B → C still names A (ARCHITECTURE.md, "The relay").

/// The first node's identity of an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Origin {
    /// The node id of the herald that first stored it (its region's `node_id`).
    pub node_id: u64,
    /// Its sequence number there.
    pub seq: u64,
    /// When that herald stored it, ns since the Unix epoch.
    pub timestamp_ns: u64,
}
