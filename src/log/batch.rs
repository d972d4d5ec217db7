//! A group commit: events are stored and flushed one by one, then made durable
//! together by one fence ([`Batch::commit`]); a savepoint lets a caller take back part
//! of a group (a batch publish that failed half-way).

use super::layout::*;
use super::{scan, AppendError, Committed, EventRef, Log, LogError, Relayed, Seq};
use crate::event::limits::{KEY_BYTES_MAX, SOURCE_BYTES_MAX, TOPIC_BYTES_MAX};
use crate::pmem::Medium;

/// A savepoint inside a [`Batch`].
#[derive(Copy, Clone, Debug)]
pub struct BatchMark {
    tail: u64,
    first: Option<u64>,
    last: u64,
    count: u32,
}

/// A group commit in progress: events pushed into it are stored and flushed but not
/// durable until [`Batch::commit`] fences them all at once. Dropping it uncommitted
/// rolls the tail back and invalidates what it wrote.
pub struct Batch<'l, M: Medium> {
    log: &'l mut Log<M>,
    start: u64,
    first: Option<u64>,
    last: u64,
    count: u32,
    committed: bool,
    /// Something pushed into this group was invalidated again.
    rolled_back: bool,
}

impl<'l, M: Medium> Batch<'l, M> {
    /// A group commit starting at the log's tail.
    pub(super) fn new(log: &'l mut Log<M>) -> Batch<'l, M> {
        let start = log.tail;
        Batch {
            log,
            start,
            first: None,
            last: 0,
            count: 0,
            committed: false,
            rolled_back: false,
        }
    }

    /// Stores one event into the ring (not yet durable). Allocates nothing.
    pub fn push(&mut self, event: &EventRef<'_>) -> Result<Seq, AppendError> {
        self.push_record(event, None)
    }

    /// Stores one event a relay took from an upstream, with its origin and hop (a
    /// relayed record, FORMAT.md). Refused on a region of layout version 1.
    pub fn push_relayed(
        &mut self,
        event: &EventRef<'_>,
        relayed: &Relayed,
    ) -> Result<Seq, AppendError> {
        if !self.log.geometry.holds_relayed() {
            return Err(AppendError::Invalid(
                "this region's layout (version 1) cannot hold relayed events",
            ));
        }
        self.push_record(event, Some(relayed))
    }

    fn push_record(
        &mut self,
        event: &EventRef<'_>,
        relayed: Option<&Relayed>,
    ) -> Result<Seq, AppendError> {
        let log = &mut *self.log;
        if let Some(reason) = &log.failed {
            return Err(AppendError::Failed(reason.clone()));
        }
        let c = log.consts;
        let ring = log.geometry.ring;
        check_event(event, ring.payload_bytes_max)?;
        let relay_bytes = relayed.map_or(0, |_| RELAY_BLOCK_BYTES);
        let body = relay_bytes
            + event.topic.len()
            + event.source.len()
            + event.key.len()
            + event.payload.len();
        let n = ring.slot_count;
        let span = (SLOT_HEADER_BYTES + body).div_ceil(ring.slot_bytes as usize) as u64;
        let index = log.tail % n;
        let pad = if index + span > n { n - index } else { 0 };
        let used = log.tail - log.overwrite_limit(event.severity.may_use_reserve());
        let limit = if event.severity.may_use_reserve() {
            n
        } else {
            n - ring.reserve_slots
        };
        if used + pad + span > limit {
            return Err(AppendError::Full {
                needed_slots: pad + span,
                free_slots: n - used,
                reserve_slots: ring.reserve_slots,
            });
        }
        if log.tail + pad + span >= SEQ_LIMIT {
            return Err(AppendError::Exhausted { tail: log.tail });
        }
        if log.tail + pad + span - self.start > c.group_slots_max {
            return Err(AppendError::GroupFull {
                slots_max: c.group_slots_max,
            });
        }
        log.note_overwrite(log.tail + pad + span);
        if pad > 0 {
            log.write_pad(log.tail, pad, (log.tail - self.start) as u32);
            log.tail += pad;
        }
        let seq = log.tail;
        let index = if pad > 0 { 0 } else { index };
        write_event(
            log,
            seq,
            index,
            span,
            (seq - self.start) as u32,
            event,
            relayed,
        );
        log.tail += span;
        if let Some(r) = relayed {
            log.pin_relayed(r.link, r.upstream_seq, seq, self.start);
        }
        self.first.get_or_insert(seq);
        self.last = seq;
        self.count += 1;
        Ok(Seq(seq))
    }

    /// A savepoint: [`Batch::rollback_to`] undoes every push after it. Lets a caller
    /// store a group of events all or nothing inside a larger group commit.
    pub fn mark(&self) -> BatchMark {
        BatchMark {
            tail: self.log.tail,
            first: self.first,
            last: self.last,
            count: self.count,
        }
    }

    /// Undoes every push since `mark`: the records are invalidated (their first word
    /// zeroed and flushed, made durable by this batch's fence or its rollback's) and
    /// the tail moves back.
    pub fn rollback_to(&mut self, mark: BatchMark) {
        let n = self.log.geometry.ring.slot_count;
        if mark.tail < self.log.tail {
            self.rolled_back = true;
        }
        let mut p = mark.tail;
        while p < self.log.tail {
            let at = self.log.geometry.slot_offset(p % n);
            let header: SlotHeader =
                bytemuck::pod_read_unaligned(&self.log.medium.bytes()[at..at + SLOT_HEADER_BYTES]);
            self.log.medium.write(at, &[0u8; 8]);
            self.log.medium.flush(at, 8);
            p += (header.span as u64).max(1);
        }
        self.log.tail = mark.tail;
        self.first = mark.first;
        self.last = mark.last;
        self.count = mark.count;
    }

    /// Makes every pushed event durable with one fence. Only after this returns may
    /// the producer be told `stored`, on a medium that is not deferred; on a deferred
    /// one (a file synced to disk), only once a sync begun after it has ended
    /// ([`Log::begin_sync`]).
    ///
    /// A group whose pushes were all rolled back is ordered too: its records'
    /// invalidation must be durable before a producer is told "not stored".
    pub fn commit(mut self) -> Result<Option<Committed>, LogError> {
        self.committed = true;
        if self.log.tail == self.start && !self.rolled_back {
            return Ok(None);
        }
        self.log.order(true)?;
        if self.log.tail == self.start {
            return Ok(None);
        }
        if self.log.subscription_count == 0 {
            // No subscription means no intended recipient: released once stored (but
            // for relayed records whose link mark is not durable yet).
            let tail = self.log.tail;
            self.log.head = self.log.link_pin_floor().map_or(tail, |f| f.min(tail));
        }
        Ok(self.first.map(|first| Committed {
            first: Seq(first),
            last: Seq(self.last),
            count: self.count,
        }))
    }
}

impl<M: Medium> Drop for Batch<'_, M> {
    fn drop(&mut self) {
        if self.committed || self.log.tail == self.start {
            return;
        }
        self.rollback_to(BatchMark {
            tail: self.start,
            first: None,
            last: 0,
            count: 0,
        });
        // Fenced, so the producer's "not stored" stays true across a crash. A failure
        // here marks the log failed (it is recorded by `fence`).
        let _ = self.log.fence();
    }
}

fn check_event(e: &EventRef<'_>, payload_max: u64) -> Result<(), AppendError> {
    if e.topic.is_empty() || e.topic.len() > TOPIC_BYTES_MAX {
        return Err(AppendError::Invalid("topic must be 1..=255 bytes"));
    }
    if e.source.len() > SOURCE_BYTES_MAX {
        return Err(AppendError::Invalid("source must be at most 255 bytes"));
    }
    if e.key.len() > KEY_BYTES_MAX {
        return Err(AppendError::Invalid(
            "idempotency key must be at most 64 bytes",
        ));
    }
    if e.payload.len() as u64 > payload_max {
        return Err(AppendError::TooLarge {
            bytes: e.payload.len(),
            max_bytes: payload_max,
        });
    }
    Ok(())
}

fn write_event<M: Medium>(
    log: &mut Log<M>,
    seq: u64,
    index: u64,
    span: u64,
    group_offset: u32,
    e: &EventRef<'_>,
    relayed: Option<&Relayed>,
) {
    let mut h: SlotHeader = bytemuck::Zeroable::zeroed();
    h.magic = SLOT_MAGIC;
    h.kind = if relayed.is_some() {
        SLOT_KIND_RELAYED
    } else {
        SLOT_KIND_EVENT
    };
    h.severity = e.severity as u8;
    h.seq = seq;
    h.timestamp_ns = e.timestamp_ns;
    h.payload_len = e.payload.len() as u32;
    h.flags = e.flags;
    h.topic_len = e.topic.len() as u8;
    h.source_len = e.source.len() as u8;
    h.key_len = e.key.len() as u8;
    h.route = e.route;
    h.span = span as u16;
    h.group_offset = group_offset;
    assert_eq!(
        index,
        seq % log.geometry.ring.slot_count,
        "a record's slot is its seq"
    );
    let start = (log.geometry.ring_data_offset + index * log.geometry.ring.slot_bytes) as usize;
    let mut at = start;
    log.medium.write(at, bytemuck::bytes_of(&h));
    at += SLOT_HEADER_BYTES;
    if let Some(r) = relayed {
        let block = RelayBlock {
            origin_node_id: r.origin.node_id,
            origin_seq: r.origin.seq,
            origin_timestamp_ns: r.origin.timestamp_ns,
            upstream_seq: r.upstream_seq,
            link: r.link,
            reserved: 0,
        };
        log.medium.write(at, bytemuck::bytes_of(&block));
        at += RELAY_BLOCK_BYTES;
    }
    for part in [e.topic, e.source, e.key, e.payload] {
        log.medium.write(at, part);
        at += part.len();
    }
    // One checksum pass over the record's contiguous bytes, just written (still in
    // cache), instead of one call per field.
    let sum = crc_append(log.consts.checksum_seed, &log.medium.bytes()[start + 4..at]);
    log.medium.write(start, &sum.to_le_bytes());
    // Paired assertion, kept in release builds: what we flush must be what recovery
    // will accept (it re-reads the record just written, still in cache).
    assert!(
        scan::valid_record(log.medium.bytes(), &log.geometry, index).is_some(),
        "a record about to be flushed would not pass recovery's checks"
    );
    log.medium.flush(start, at - start);
}
