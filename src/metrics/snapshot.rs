//! What one scrape shows: a plain copy of the loop's counters and state, taken by the
//! loop between two turns' work and read by the exporter's thread only. Nothing in it
//! points into the loop's structures, and it allocates nothing when taken again (its
//! one list keeps its capacity).

use super::histogram::{Histogram, COMMIT_NS_BOUNDS, GROUP_EVENTS_BOUNDS, SYNC_NS_BOUNDS};
use crate::event::limits::SUBSCRIPTION_NAME_BYTES_MAX;

/// How a publish frame (`Publish` or `PublishBatch`, one each) was answered.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// `Stored`, with at least one new event.
    Stored,
    /// `Stored` from the idempotency window alone: nothing new was written.
    Deduplicated,
    /// `full`: the ring had no room (after the wait, with `--when-full wait`).
    Full,
    /// `too_large`.
    TooLarge,
    /// `invalid`.
    Invalid,
    /// `internal`: the region failed.
    Internal,
}

impl PublishOutcome {
    /// Every outcome, in the order they are shown.
    pub const ALL: [PublishOutcome; 6] = [
        PublishOutcome::Stored,
        PublishOutcome::Deduplicated,
        PublishOutcome::Full,
        PublishOutcome::TooLarge,
        PublishOutcome::Invalid,
        PublishOutcome::Internal,
    ];

    /// The `outcome` label's value.
    pub fn name(self) -> &'static str {
        match self {
            PublishOutcome::Stored => "stored",
            PublishOutcome::Deduplicated => "deduplicated",
            PublishOutcome::Full => "full",
            PublishOutcome::TooLarge => "too_large",
            PublishOutcome::Invalid => "invalid",
            PublishOutcome::Internal => "internal",
        }
    }
}

/// What the loop counts for the metrics that `herald status` does not already keep:
/// publish outcomes, stored events and bytes, and the commit and sync histograms.
/// Updated per frame by additions, per group commit and per sync by a histogram
/// record: no allocation, lock or system call.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Publish frames by outcome, indexed as [`PublishOutcome::ALL`].
    pub publishes: [u64; 6],
    /// Events stored (committed in a group).
    pub stored_events: u64,
    /// Ring bytes those events took: whole slots, headers and padding included.
    pub stored_ring_bytes: u64,
    /// Events per non-empty group commit.
    pub group_events: Histogram,
    /// Duration of a non-empty group commit, ns: from the round's first frame read to
    /// the fence (recorded only while metrics are served: the clock is read for it).
    pub commit_ns: Histogram,
    /// Duration of a sync to disk, ns: submitted to completion seen by the loop.
    pub sync_ns: Histogram,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            publishes: [0; 6],
            stored_events: 0,
            stored_ring_bytes: 0,
            group_events: Histogram::new(GROUP_EVENTS_BOUNDS),
            commit_ns: Histogram::new(COMMIT_NS_BOUNDS),
            sync_ns: Histogram::new(SYNC_NS_BOUNDS),
        }
    }
}

impl Counters {
    /// Counts one publish frame's answer.
    pub fn publish(&mut self, outcome: PublishOutcome) {
        self.publishes[outcome as usize] += 1;
    }

    /// A non-empty group commit of `events` events taking `ring_bytes` of the ring;
    /// `duration_ns` when it was timed.
    pub fn group_committed(&mut self, events: u32, ring_bytes: u64, duration_ns: Option<u64>) {
        self.stored_events += u64::from(events);
        self.stored_ring_bytes += ring_bytes;
        self.group_events.record(u64::from(events));
        if let Some(ns) = duration_ns {
            self.commit_ns.record(ns);
        }
    }

    /// Publish frames answered with `outcome`.
    pub fn publishes(&self, outcome: PublishOutcome) -> u64 {
        self.publishes[outcome as usize]
    }
}

/// One durable subscription.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionSample {
    name: [u8; SUBSCRIPTION_NAME_BYTES_MAX],
    name_len: u8,
    /// A connection is attached.
    pub connected: bool,
    /// In recovery mode (replaying after a crash).
    pub recovering: bool,
    /// Ring positions from its cursor to the tail.
    pub pending_slots: u64,
    /// Delivered, not settled.
    pub in_flight: u64,
    /// Owed a redelivery.
    pub awaiting_redelivery: u64,
    /// Redeliveries since the daemon started.
    pub redelivered: u64,
    /// Dead letters made since the daemon started.
    pub dead_lettered: u64,
    /// Its cursor is the oldest unreleased position.
    pub holds_ring: bool,
    /// Paused by an operator.
    pub paused: bool,
}

impl SubscriptionSample {
    /// A sample for the subscription named `name` (cut at the name limit), every
    /// number zero.
    pub fn named(name: &[u8]) -> SubscriptionSample {
        let len = name.len().min(SUBSCRIPTION_NAME_BYTES_MAX);
        let mut bytes = [0u8; SUBSCRIPTION_NAME_BYTES_MAX];
        bytes[..len].copy_from_slice(&name[..len]);
        SubscriptionSample {
            name: bytes,
            name_len: len as u8,
            connected: false,
            recovering: false,
            pending_slots: 0,
            in_flight: 0,
            awaiting_redelivery: 0,
            redelivered: 0,
            dead_lettered: 0,
            holds_ring: false,
            paused: false,
        }
    }

    /// The name as stored (any bytes; the label shows it as UTF-8, invalid bytes
    /// replaced).
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len as usize]
    }
}

/// Everything one scrape shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Numbered by the exchange, from 1; 0: no snapshot was taken yet.
    pub number: u64,
    /// When the loop took it, ns since the Unix epoch.
    pub taken_unix_ns: u64,
    /// When the daemon started, ns since the Unix epoch.
    pub started_unix_ns: u64,
    /// The I/O backend (`io-uring`, `epoll`).
    pub backend: &'static str,
    /// The durability gate (`fence`, `sync`).
    pub gate: &'static str,
    /// What a stored event survives (`power_cut`, `process_crash`, `disk`).
    pub durability: &'static str,
    /// The recovery scan at start, ns (None: the region was created at this start).
    pub recovery_scan_ns: Option<u64>,
    /// Durable subscriptions in recovery mode.
    pub replaying_subscriptions: u64,
    /// The loop's own counters.
    pub counters: Counters,
    /// Answers waiting for their group's gate.
    pub answers_held: u64,
    /// Syncs to disk completed.
    pub syncs: u64,
    /// A sync is under way.
    pub sync_in_flight: bool,
    /// Ring slots in all.
    pub ring_slots: u64,
    /// Bytes per slot.
    pub ring_slot_bytes: u64,
    /// Slots holding unreleased events.
    pub ring_used_slots: u64,
    /// Slots kept for `crit` and more severe events when the rest are used.
    pub ring_reserve_slots: u64,
    /// Released slots retained (`--retain`) now.
    pub ring_retained_slots: u64,
    /// Retained slots overwritten before their retention ended.
    pub ring_retention_overwritten_slots: u64,
    /// Dead letters in the region's area.
    pub dead_letters: u64,
    /// Slots of the dead-letter area.
    pub dead_letter_slots: u64,
    /// Free slots of the dead-letter area.
    pub dead_letter_free_slots: u64,
    /// The area is full: events given up on wait for room.
    pub dead_letter_area_full: bool,
    /// Events given up on that wait for room in the area.
    pub dead_letters_waiting: u64,
    /// Open connections (every role).
    pub connections_open: u64,
    /// Producer and subscriber connections.
    pub connections_serving: u64,
    /// `--connections-max`.
    pub connections_limit: u64,
    /// Connections refused at the limit since the daemon started.
    pub connections_refused: u64,
    /// Connections closed for saying no hello, or nothing, in time.
    pub connections_timed_out: u64,
    /// Frames the access policy refused (`forbidden`) since the daemon started.
    pub access_refusals: u64,
    /// Producers whose publish waits for room in a full ring.
    pub producers_waiting_for_room: u64,
    /// Idempotency keys remembered.
    pub idempotency_keys: u64,
    /// Publishes (events) answered from the idempotency window.
    pub deduplicated_events: u64,
    /// Live-only subscriptions attached.
    pub live_subscriptions: u64,
    /// Events delivered to them and not settled.
    pub live_in_flight: u64,
    /// Every durable subscription, in table order (at most the table's entries).
    pub subscriptions: Vec<SubscriptionSample>,
}

impl Snapshot {
    /// An empty snapshot with room for `subscriptions` durable subscriptions, so that
    /// filling it again never allocates.
    pub fn with_capacity(subscriptions: usize) -> Snapshot {
        Snapshot {
            subscriptions: Vec::with_capacity(subscriptions),
            ..Snapshot::default()
        }
    }
}
