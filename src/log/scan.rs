//! Record validation and the recovery scanner.
//!
//! Head and tail are never written on the commit path; the scanner rebuilds them:
//! - pass 1 reads every slot, marks the ones holding a valid record for their own
//!   position (magic, `seq % slot_count == index`, sane lengths, checksum), and finds
//!   the record with the highest sequence number: the tail is its end, and its group
//!   commit (via `group_offset`) is the only one that can have been torn;
//! - head is the lowest durable subscription cursor;
//! - pass 2 walks positions from head to tail and classifies each one with the
//!   decision table [`RECOVERY_RULES`].

use super::cursors::Subscription;
use super::event::EventView;
use super::format::Geometry;
use super::layout::*;
use crate::event::{Seq, Severity};
use std::time::{Duration, Instant};

/// What a ring position turned out to be.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotOutcome {
    /// Below every durable cursor: confirmed by every subscriber; reusable.
    Released,
    /// A valid event not yet confirmed by every subscriber.
    Live,
    /// A valid padding record (skipped by readers).
    Padding,
    /// Part of the last, unfenced group commit that never fully reached the medium:
    /// never acknowledged to a producer, so skipping it loses nothing.
    Hole,
    /// A record that had been fenced (an older group) no longer checks: damage.
    Corrupt,
}

/// The inputs of the recovery decision for one position.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SlotFacts {
    /// The position is below the lowest durable cursor.
    pub released: bool,
    /// A record for exactly this position passes every check.
    pub valid: bool,
    /// That record is padding (meaningful only when valid).
    pub padding: bool,
    /// The position is at or after the first record of the last group commit.
    pub unfenced_group: bool,
}

/// One row of the decision table; `None` matches either value.
#[derive(Copy, Clone, Debug)]
pub struct RecoveryRule {
    /// Required `SlotFacts::released`.
    pub released: Option<bool>,
    /// Required `SlotFacts::valid`.
    pub valid: Option<bool>,
    /// Required `SlotFacts::padding`.
    pub padding: Option<bool>,
    /// Required `SlotFacts::unfenced_group`.
    pub unfenced_group: Option<bool>,
    /// The decision.
    pub outcome: SlotOutcome,
}

/// The recovery decision table. Every combination of [`SlotFacts`] matches exactly
/// one row (tested exhaustively).
pub const RECOVERY_RULES: [RecoveryRule; 5] = [
    RecoveryRule {
        released: Some(true),
        valid: None,
        padding: None,
        unfenced_group: None,
        outcome: SlotOutcome::Released,
    },
    RecoveryRule {
        released: Some(false),
        valid: Some(true),
        padding: Some(false),
        unfenced_group: None,
        outcome: SlotOutcome::Live,
    },
    RecoveryRule {
        released: Some(false),
        valid: Some(true),
        padding: Some(true),
        unfenced_group: None,
        outcome: SlotOutcome::Padding,
    },
    RecoveryRule {
        released: Some(false),
        valid: Some(false),
        padding: None,
        unfenced_group: Some(true),
        outcome: SlotOutcome::Hole,
    },
    RecoveryRule {
        released: Some(false),
        valid: Some(false),
        padding: None,
        unfenced_group: Some(false),
        outcome: SlotOutcome::Corrupt,
    },
];

impl RecoveryRule {
    /// Whether the row applies to `f`.
    pub fn matches(&self, f: SlotFacts) -> bool {
        let ok = |want: Option<bool>, have: bool| want.is_none_or(|w| w == have);
        ok(self.released, f.released)
            && ok(self.valid, f.valid)
            && ok(self.padding, f.padding)
            && ok(self.unfenced_group, f.unfenced_group)
    }
}

/// Applies the decision table.
pub fn classify(f: SlotFacts) -> SlotOutcome {
    RECOVERY_RULES
        .iter()
        .find(|r| r.matches(f))
        .map(|r| r.outcome)
        // `every_combination_of_recovery_facts_matches_exactly_one_rule` tries them all.
        .expect("the recovery table covers every combination (tested)")
}

/// The sync watermark word (0 when never written).
pub fn sync_watermark(bytes: &[u8]) -> u64 {
    bytes
        .get(SYNC_WATERMARK_OFFSET..SYNC_WATERMARK_OFFSET + 8)
        .and_then(|w| w.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Reads the header at slot `index` and returns it if a valid record for that index
/// starts there: magic, kind, position, lengths and checksum all hold.
pub fn valid_record(bytes: &[u8], g: &Geometry, index: u64) -> Option<SlotHeader> {
    let at = g.slot_offset(index);
    let header: SlotHeader = bytemuck::pod_read_unaligned(&bytes[at..at + SLOT_HEADER_BYTES]);
    // A group's first record has a seq of at least 1, so `group_offset < seq`; both
    // bounds keep the scan's position arithmetic from overflowing on a crafted record.
    if header.magic != SLOT_MAGIC
        || header.seq == 0
        || header.seq >= SEQ_LIMIT
        || u64::from(header.group_offset) >= header.seq
        || header.seq % g.ring.slot_count != index
        || header.span == 0
        || index + header.span as u64 > g.ring.slot_count
    {
        return None;
    }
    let body = match header.kind {
        SLOT_KIND_EVENT | SLOT_KIND_RELAYED => {
            if Severity::from_u8(header.severity).is_none()
                || header.topic_len == 0
                || header.key_len as usize > crate::event::limits::KEY_BYTES_MAX
                || header.payload_len as u64 > g.ring.payload_bytes_max
                || g.span_for_body(header.body_len()) != header.span as u64
            {
                return None;
            }
            header.body_len()
        }
        SLOT_KIND_PAD => 0,
        _ => return None,
    };
    let sum = crc_append(
        g.checksum_seed(),
        &bytes[at + 4..at + SLOT_HEADER_BYTES + body],
    );
    (sum == header.checksum).then_some(header)
}

/// Decodes the event at `seq`, or `None` if no valid event starts there.
pub fn read_event<'a>(bytes: &'a [u8], g: &Geometry, seq: Seq) -> Option<EventView<'a>> {
    let index = seq.0 % g.ring.slot_count;
    let h = valid_record(bytes, g, index).filter(|h| h.seq == seq.0 && is_event_kind(h.kind))?;
    // `valid_record` checked it; a record that does not say is no event.
    let severity = Severity::from_u8(h.severity)?;
    let mut at = g.slot_offset(index) + SLOT_HEADER_BYTES;
    let (origin, hop) = if h.kind == SLOT_KIND_RELAYED {
        let r: RelayBlock = bytemuck::pod_read_unaligned(&bytes[at..at + RELAY_BLOCK_BYTES]);
        at += RELAY_BLOCK_BYTES;
        let origin = crate::event::Origin {
            node_id: r.origin_node_id,
            seq: r.origin_seq,
            timestamp_ns: r.origin_timestamp_ns,
        };
        let hop = crate::log::Hop {
            link: r.link,
            upstream_seq: r.upstream_seq,
        };
        (origin, Some(hop))
    } else {
        let origin = crate::event::Origin {
            node_id: g.node_id,
            seq: seq.0,
            timestamp_ns: h.timestamp_ns,
        };
        (origin, None)
    };
    let mut take = |n: usize| {
        let s = &bytes[at..at + n];
        at += n;
        s
    };
    Some(EventView {
        origin,
        hop,
        route: h.route,
        seq,
        span: h.span,
        timestamp_ns: h.timestamp_ns,
        severity,
        flags: h.flags,
        topic: take(h.topic_len as usize),
        source: take(h.source_len as usize),
        key: take(h.key_len as usize),
        payload: take(h.payload_len as usize),
    })
}

/// A run of consecutive positions with the same unusual outcome.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PositionRun {
    /// First position.
    pub first: u64,
    /// Positions in the run.
    pub slots: u64,
}

/// Most runs of holes or corrupt slots kept in a report (counts stay exact).
pub const REPORTED_RUNS_MAX: usize = 64;

/// A subscription whose durable state failed a check at recovery.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SubscriptionProblem {
    /// Entry index.
    pub index: u32,
    /// Name as read (may be damaged).
    pub name: String,
    /// What failed.
    pub problem: String,
    /// The cursor recovery chose instead.
    pub cursor_used: u64,
}

/// What recovery found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecoveryReport {
    /// Lowest unreleased position.
    pub head: u64,
    /// Next position to write.
    pub tail: u64,
    /// Position of the newest valid record (the one that defines the tail), if any.
    pub newest_record: Option<u64>,
    /// Valid unreleased events.
    pub live_events: u64,
    /// Slots they occupy.
    pub live_slots: u64,
    /// Slots of padding between head and tail.
    pub padding_slots: u64,
    /// Torn slots of the last group (never acknowledged).
    pub hole_slots: u64,
    /// Damaged slots of older, fenced groups.
    pub corrupt_slots: u64,
    /// Slots released within the last lap of the ring.
    pub released_slots: u64,
    /// Slots never written since format.
    pub unused_slots: u64,
    /// First runs of holes.
    pub holes: Vec<PositionRun>,
    /// First runs of corrupt slots.
    pub corrupt: Vec<PositionRun>,
    /// Active durable subscriptions.
    pub subscriptions: u64,
    /// Subscriptions whose durable state failed a check.
    pub subscription_problems: Vec<SubscriptionProblem>,
    /// How the previous run stopped (the run-state word, read before a writable open
    /// marks the region running).
    pub previous_stop: super::run_state::PreviousStop,
    /// Valid dead letters (orphans included).
    pub dead_letters: u64,
    /// Slots of the dead-letter area (0: the region has none).
    pub dead_letter_slots: u64,
    /// Slots held by dead letters and damaged dead-letter records.
    pub dead_letter_slots_used: u64,
    /// Damaged dead-letter records and orphans (dead letters whose subscription no
    /// longer exists).
    pub dead_letter_problems: Vec<super::dead::DeadLetterProblem>,
    /// Subscription entries a crash left mid-move (a change of filters): the copy was
    /// kept, and the entry it replaced is freed by the open.
    pub interrupted_moves: u64,
    /// Rule changes a crash interrupted after the new version was written: the older
    /// version was retired at open.
    pub interrupted_rule_changes: u64,
    /// Rule table entries whose state says used but whose bytes fail their checks:
    /// kept, never reused, and reported (only changes outside herald's writes do it).
    pub damaged_rules: Vec<u32>,
    /// Bytes of ring read.
    pub bytes_scanned: u64,
    /// Wall time of the scan.
    #[serde(serialize_with = "serialize_duration_us")]
    pub elapsed: Duration,
}

fn serialize_duration_us<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

/// Calls `progress(done_slots, total_slots)` now and then during pass 1.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Slots between two progress calls.
const PROGRESS_EVERY_SLOTS: u64 = 1 << 16;

/// Scans the ring, fixes up subscription cursors that fail their checks (flagging
/// them damaged, never dropping events for them), and reports head, tail and counts.
/// Also returns every run of holes (the report keeps only the first few), so that a
/// writable open can seal them.
pub fn scan(
    bytes: &[u8],
    g: &Geometry,
    subscriptions: &mut [Option<Subscription>],
    progress: Progress<'_>,
) -> (RecoveryReport, Vec<PositionRun>) {
    let started = Instant::now();
    let n = g.ring.slot_count;
    let mut valid = vec![0u64; n.div_ceil(64) as usize];
    let mut newest: Option<SlotHeader> = None;
    let mut index = 0;
    while index < n {
        if index % PROGRESS_EVERY_SLOTS == 0 {
            progress(index, n);
        }
        match valid_record(bytes, g, index) {
            Some(h) => {
                valid[(index / 64) as usize] |= 1 << (index % 64);
                if newest.is_none_or(|b| h.seq > b.seq) {
                    newest = Some(h);
                }
                // Continuation slots of a valid record hold body bytes, not headers.
                index += h.span as u64;
            }
            None => index += 1,
        }
    }
    progress(n, n);
    let (tail_end, last_group_first) = match newest {
        Some(h) => (h.seq + h.span as u64, h.seq - h.group_offset as u64),
        None => (Seq::FIRST.0, Seq::FIRST.0),
    };
    // On a region synced to disk, every group after the watermark may have been
    // written but not synced (one sync under way, the next group gathering), and a
    // power cut may keep any of their pages: their torn records were never
    // acknowledged either.
    let watermark = sync_watermark(bytes);
    let last_group_first = if watermark > 0 {
        last_group_first.min(watermark)
    } else {
        last_group_first
    };
    let window_start = tail_end.saturating_sub(n).max(Seq::FIRST.0);
    let is_valid_at = |p: u64| {
        let i = p % n;
        valid[(i / 64) as usize] & (1 << (i % 64)) != 0
            && bytemuck::pod_read_unaligned::<SlotHeader>(
                &bytes[g.slot_offset(i)..g.slot_offset(i) + SLOT_HEADER_BYTES],
            )
            .seq == p
    };
    let first_valid_from = |from: u64| {
        (from..tail_end)
            .find(|&p| is_valid_at(p))
            .unwrap_or(tail_end)
    };

    let mut report = RecoveryReport::default();
    for s in subscriptions.iter_mut().flatten() {
        report.subscriptions += 1;
        let problem = if let Some(d) = s.damage {
            Some(d.to_string())
        } else if s.cursor > tail_end {
            Some(format!("cursor {} is beyond the tail {tail_end}", s.cursor))
        } else if s.cursor < window_start {
            Some(format!(
                "cursor {} is older than the oldest slot {window_start}",
                s.cursor
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            // Conservative: hold every event still in the ring for it, and replay.
            s.cursor = first_valid_from(window_start);
            s.mode = crate::event::SubscriptionMode::Recovering;
            s.damage
                .get_or_insert("durable state failed a consistency check");
            report.subscription_problems.push(SubscriptionProblem {
                index: s.id.0,
                name: String::from_utf8_lossy(s.name()).into_owned(),
                problem,
                cursor_used: s.cursor,
            });
        }
    }
    let head = subscriptions
        .iter()
        .flatten()
        .map(|s| s.cursor)
        .min()
        .unwrap_or(tail_end);
    report.head = head;
    report.tail = tail_end;
    report.newest_record = newest.map(|h| h.seq);
    report.released_slots = head - window_start;
    report.unused_slots = n - (tail_end - window_start);

    let mut all_holes = Vec::new();
    let mut p = head;
    while p < tail_end {
        let record_valid = is_valid_at(p);
        let header = record_valid.then(|| {
            let i = g.slot_offset(p % n);
            bytemuck::pod_read_unaligned::<SlotHeader>(&bytes[i..i + SLOT_HEADER_BYTES])
        });
        let facts = SlotFacts {
            released: p < head,
            valid: record_valid,
            padding: header.is_some_and(|h| h.kind == SLOT_KIND_PAD),
            unfenced_group: p >= last_group_first,
        };
        let step = header.map_or(1, |h| h.span as u64);
        match classify(facts) {
            SlotOutcome::Live => {
                report.live_events += 1;
                report.live_slots += step;
            }
            SlotOutcome::Padding => report.padding_slots += step,
            SlotOutcome::Hole => {
                report.hole_slots += 1;
                extend_run(&mut report.holes, p, REPORTED_RUNS_MAX);
                extend_run(&mut all_holes, p, usize::MAX);
            }
            SlotOutcome::Corrupt => {
                report.corrupt_slots += 1;
                extend_run(&mut report.corrupt, p, REPORTED_RUNS_MAX);
            }
            // `released` is `p < head`, and the walk starts at head.
            SlotOutcome::Released => unreachable!("the walk starts at head"),
        }
        p += step;
    }
    report.bytes_scanned = n * g.ring.slot_bytes;
    report.elapsed = started.elapsed();
    (report, all_holes)
}

fn extend_run(runs: &mut Vec<PositionRun>, p: u64, runs_max: usize) {
    if let Some(last) = runs.last_mut() {
        if last.first + last.slots == p {
            last.slots += 1;
            return;
        }
    }
    if runs.len() < runs_max {
        runs.push(PositionRun { first: p, slots: 1 });
    }
}

/// Iterates the valid events in `from..to`, skipping padding, holes and damage.
pub struct LiveEvents<'a> {
    bytes: &'a [u8],
    geometry: &'a Geometry,
    next: u64,
    to: u64,
}

impl<'a> LiveEvents<'a> {
    /// Events at positions `from..to`.
    pub fn new(bytes: &'a [u8], geometry: &'a Geometry, from: u64, to: u64) -> Self {
        LiveEvents {
            bytes,
            geometry,
            next: from,
            to,
        }
    }

    /// The next position the iterator will examine (after the last event returned,
    /// or `to` once exhausted).
    pub fn next_position(&self) -> u64 {
        self.next
    }
}

impl<'a> Iterator for LiveEvents<'a> {
    type Item = EventView<'a>;
    fn next(&mut self) -> Option<EventView<'a>> {
        let n = self.geometry.ring.slot_count;
        while self.next < self.to {
            let p = self.next;
            match valid_record(self.bytes, self.geometry, p % n).filter(|h| h.seq == p) {
                Some(h) => {
                    self.next += h.span as u64;
                    if is_event_kind(h.kind) {
                        return read_event(self.bytes, self.geometry, Seq(p));
                    }
                }
                None => self.next += 1,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_of_recovery_facts_matches_exactly_one_rule() {
        for bits in 0..16u8 {
            let f = SlotFacts {
                released: bits & 1 != 0,
                valid: bits & 2 != 0,
                padding: bits & 4 != 0,
                unfenced_group: bits & 8 != 0,
            };
            let matching: Vec<_> = RECOVERY_RULES.iter().filter(|r| r.matches(f)).collect();
            assert_eq!(matching.len(), 1, "facts {f:?} match {matching:?}");
        }
    }

    #[test]
    fn the_table_says_what_recovery_promises() {
        let f = |released, valid, padding, unfenced_group| {
            classify(SlotFacts {
                released,
                valid,
                padding,
                unfenced_group,
            })
        };
        assert_eq!(f(true, true, false, false), SlotOutcome::Released);
        assert_eq!(f(false, true, false, false), SlotOutcome::Live);
        assert_eq!(f(false, true, true, true), SlotOutcome::Padding);
        assert_eq!(f(false, false, false, true), SlotOutcome::Hole);
        assert_eq!(f(false, false, false, false), SlotOutcome::Corrupt);
    }
}
