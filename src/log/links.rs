//! Upstream links' entries (layout version 2): a relay's record of how far it has
//! stored what an upstream herald sent it. An entry of the subscription table whose
//! state word is [`SUBSCRIPTION_LINK`]; its name is the relay's `--upstream-name`, its
//! spec the caller's (the upstream's node id), and its cursor the **mark**: every
//! event the upstream sent with a seq below it is stored here (an event the upstream
//! sends again below the mark is a duplicate, and confirmed without storing it twice).
//!
//! The mark is written only for events already durable (the caller's rule), with the
//! same two alternating records as a cursor, so a torn update leaves the previous mark.
//! The mark may lag the link's relayed records in the ring, never lead them; each open
//! raises it past them ([`Log::settle_link_marks`], below).
//!
//! Links are kept apart from subscriptions: the recovery scan and the dead-letter
//! checks never see them (their cursors are another node's seqs).
//!
//! But a link holds the head, with **pins**: a relayed record whose upstream seq its
//! link's durable mark does not cover yet keeps its slot from reuse, whatever the local
//! subscriptions have confirmed. Otherwise a power cut before the mark is durable
//! (with `--sync disk` the mark rides on a later sync; on any medium it waits while
//! the confirmation cannot be sent) would leave neither the mark nor the record to
//! say the event was stored, and the upstream, never told, would send it again: stored
//! twice. At open, every link's mark is settled from the relayed records still in the
//! ring, released ones included (they survive until their slots are reused, which the
//! pins forbade), so a new run starts with no pins at all.

use super::table::check_entry;
use super::*;
use std::collections::VecDeque;

/// Runs of pinned records kept per link. Records of one group commit make one run;
/// past this many runs the newest run takes the new records (holding the head a little
/// longer than needed, never letting it pass a record the mark does not cover), so a
/// link's pins are bounded and allocated once.
const LINK_PIN_RUNS_MAX: usize = 256;

/// One link's pinned records, oldest first.
pub(super) struct LinkPins {
    /// The link's entry index.
    entry: u32,
    runs: VecDeque<PinRun>,
}

/// Consecutive relayed records of one link: the position of the first, and the
/// highest upstream seq among them (the mark must pass it to release them).
#[derive(Copy, Clone, Debug)]
struct PinRun {
    first: u64,
    last_upstream: u64,
}

impl LinkPins {
    /// No pins yet for link entry `entry` (allocated here, once).
    pub(super) fn new(entry: u32) -> LinkPins {
        LinkPins {
            entry,
            runs: VecDeque::with_capacity(LINK_PIN_RUNS_MAX),
        }
    }
}

impl<M: Medium> Log<M> {
    /// The upstream links' entries.
    pub fn links(&self) -> impl Iterator<Item = &Subscription> {
        self.links.iter().flatten()
    }

    /// One link entry by id.
    pub fn link(&self, id: SubscriptionId) -> Option<&Subscription> {
        self.links.get(id.0 as usize).and_then(|s| s.as_ref())
    }

    /// Finds a link entry by name.
    pub fn link_by_name(&self, name: &[u8]) -> Option<&Subscription> {
        self.links().find(|s| s.name() == name)
    }

    /// Creates a link entry with its mark at `mark` (fenced before it returns).
    pub fn create_link(
        &mut self,
        name: &[u8],
        spec: &[u8],
        mark: u64,
    ) -> Result<SubscriptionId, LogError> {
        if !self.geometry.holds_relayed() {
            return Err(LogError::Failed(
                "this region's layout (version 1) holds no upstream links: relaying needs \
                 a region formatted by this herald (layout version 2)"
                    .into(),
            ));
        }
        check_entry(name, spec)?;
        if self.link_by_name(name).is_some() {
            return Err(SubscriptionError::Exists.into());
        }
        let index = self.free_entry()?;
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        let new = cursors::NewEntry {
            index: index as u32,
            uid: self.next_uid,
            name,
            spec,
            cursor: mark,
            now_ns: now_unix_ns(),
            link: true,
            record: cursors::FirstRecord::NEW,
        };
        let created = cursors::create(&mut self.medium, &self.geometry, &new).map_err(|e| {
            self.failed = Some(e.to_string());
            LogError::Failed(e.to_string())
        })?;
        self.mark_all_durable();
        self.next_uid = self.next_uid.saturating_add(1);
        self.links[index] = Some(created);
        self.pins.push(LinkPins::new(index as u32));
        Ok(SubscriptionId(index as u32))
    }

    /// Frees a link entry (fenced): the upstream it named is gone or was replaced.
    pub fn delete_link(&mut self, id: SubscriptionId) -> Result<(), LogError> {
        if self.link(id).is_none() {
            return Err(LogError::UnknownSubscription(id));
        }
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        cursors::delete(&mut self.medium, &self.geometry, id.0).map_err(|e| {
            self.failed = Some(e.to_string());
            LogError::Failed(e.to_string())
        })?;
        self.mark_all_durable();
        self.links[id.0 as usize] = None;
        self.pins.retain(|p| p.entry != id.0);
        self.recompute_head();
        Ok(())
    }

    /// Writes link `id`'s mark (it only moves forward): fenced at once, or on a region
    /// synced to disk ordered and durable with the next sync. `Ok(false)`: not written
    /// now, because the previous write still waits for its sync (two alternating
    /// records must never both be unsynced); the caller writes it again later.
    pub fn set_link_mark(&mut self, id: SubscriptionId, mark: u64) -> Result<bool, LogError> {
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        if !self.cursor_writable(id) {
            return Ok(false);
        }
        let Some(s) = self.links.get_mut(id.0 as usize).and_then(|s| s.as_mut()) else {
            return Err(LogError::UnknownSubscription(id));
        };
        if mark <= s.cursor {
            return Ok(true);
        }
        cursors::stage_cursor(
            &mut self.medium,
            &self.geometry,
            s,
            mark,
            SubscriptionMode::Normal,
        );
        self.order(false)?;
        match &mut self.deferred {
            Some(d) => d.covered_by[id.0 as usize] = Some(d.next),
            // Fenced: durable now, so the records it covers no longer hold the head.
            None => self.recompute_head(),
        }
        Ok(true)
    }

    /// A relayed record of link entry `link` with upstream seq `upstream_seq` was
    /// stored at `position` by the group commit that began at `group_start`: it holds
    /// the head until the link's durable mark passes `upstream_seq`. Allocates nothing.
    pub(super) fn pin_relayed(
        &mut self,
        link: u32,
        upstream_seq: u64,
        position: u64,
        group_start: u64,
    ) {
        let Some(pins) = self.pins.iter_mut().find(|p| p.entry == link) else {
            return; // no such link: the caller's record names none
        };
        let full = pins.runs.len() == LINK_PIN_RUNS_MAX;
        match pins.runs.back_mut() {
            Some(run) if run.first >= group_start || full => {
                run.last_upstream = run.last_upstream.max(upstream_seq);
            }
            _ => pins.runs.push_back(PinRun {
                first: position,
                last_upstream: upstream_seq,
            }),
        }
    }

    /// Drops the pins each link's durable mark now covers.
    pub(super) fn release_link_pins(&mut self) {
        for pins in &mut self.pins {
            let i = pins.entry as usize;
            let durable = match (&self.deferred, &self.links[i]) {
                (Some(d), Some(_)) => d.durable_cursor[i],
                (None, Some(l)) => l.cursor,
                (_, None) => u64::MAX,
            };
            while pins.runs.front().is_some_and(|r| r.last_upstream < durable) {
                pins.runs.pop_front();
            }
        }
    }

    /// The lowest position the upstream links hold (relayed records whose mark is not
    /// durable yet), if they hold any below the tail: for `status`.
    pub fn held_by_links_from(&self) -> Option<Seq> {
        self.link_pin_floor().filter(|&p| p < self.tail).map(Seq)
    }

    /// The lowest position a link's pins hold, if any.
    pub(super) fn link_pin_floor(&self) -> Option<u64> {
        self.pins
            .iter()
            .filter_map(|p| p.runs.front().map(|r| r.first))
            .min()
    }

    /// At open: every link's mark is raised past the relayed records of it still in
    /// the ring (all durable now), written with the open's fence. Needs the whole
    /// ring's records, released ones included: a power cut may have left the head
    /// past records whose mark was not durable yet (the pins held their slots only).
    /// Whether it wrote any.
    pub(super) fn settle_link_marks(&mut self) -> bool {
        if self.pins.is_empty() {
            return false;
        }
        // Opening is not the hot path: one small vector of (entry, mark).
        let mut found: Vec<(u32, u64)> = Vec::new();
        for hop in self.events_since(Seq(0), u64::MAX).filter_map(|e| e.hop) {
            match found.iter_mut().find(|(entry, _)| *entry == hop.link) {
                Some((_, mark)) => *mark = (*mark).max(hop.upstream_seq + 1),
                None => found.push((hop.link, hop.upstream_seq + 1)),
            }
        }
        let mut wrote = false;
        for (entry, mark) in found {
            let Some(l) = self.links.get_mut(entry as usize).and_then(|l| l.as_mut()) else {
                continue; // a record of a link since deleted
            };
            if mark > l.cursor {
                wrote = true;
                cursors::stage_cursor(
                    &mut self.medium,
                    &self.geometry,
                    l,
                    mark,
                    SubscriptionMode::Normal,
                );
            }
        }
        wrote
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pmem::sim::SimMedium;
    use crate::pmem::sim_disk::SimDisk;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn log() -> Log<SimMedium> {
        let config = LogConfig {
            subscription_entries: 8,
            ..LogConfig::default()
        };
        Log::format(SimMedium::new(1 << 20), &config, 0x5eed).unwrap()
    }

    #[test]
    fn a_link_keeps_its_mark_across_a_reopen_and_stays_out_of_the_subscriptions() {
        let mut log = log();
        let sub = log.create_subscription(b"local", b"").unwrap();
        let link = log.create_link(b"up", b"node", 1).unwrap();
        assert_ne!(sub, link, "a link takes an entry of its own");
        assert!(log.set_link_mark(link, 500).unwrap());
        // Below the mark: a no-op, never a step back.
        assert!(log.set_link_mark(link, 10).unwrap());
        assert_eq!(log.subscriptions().count(), 1);
        assert!(log.subscription_by_name(b"up").is_none());
        let (log, _) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
        let l = log.link_by_name(b"up").expect("the link survives");
        assert_eq!(l.cursor, 500);
        assert_eq!(l.spec(), b"node");
        assert_eq!(log.subscriptions().count(), 1);
        // The link's mark (an upstream seq far beyond this ring) holds nothing back.
        assert_eq!(log.head(), log.tail());
    }

    #[test]
    fn a_deleted_link_frees_its_entry() {
        let mut log = log();
        let link = log.create_link(b"up", b"", 7).unwrap();
        log.delete_link(link).unwrap();
        assert!(log.link_by_name(b"up").is_none());
        let (log, _) = Log::open(log.into_medium(), &mut |_, _| {}).unwrap();
        assert_eq!(log.links().count(), 0);
    }

    fn event(topic: &[u8]) -> EventRef<'_> {
        super::event::test_event(topic)
    }

    fn relayed(link: SubscriptionId, upstream_seq: u64) -> Relayed {
        super::event::test_relayed(link.0, 9, upstream_seq)
    }

    /// A small region on a simulated disk (synced by the caller), a local
    /// subscription and a link.
    fn disk_log() -> (Log<SimDisk>, SubscriptionId, SubscriptionId) {
        let config = LogConfig {
            subscription_entries: 8,
            dead_letter_slots: Some(0),
            rule_entries: 0,
            payload_bytes_max: 1024,
            ..LogConfig::default()
        };
        let mut log = Log::format(SimDisk::new(1 << 16), &config, 0x5eed).unwrap();
        assert!(log.deferred());
        let sub = log.create_subscription(b"local", b"").unwrap();
        let link = log.create_link(b"up", b"node", 0).unwrap();
        (log, sub, link)
    }

    /// One sync, begun and ended (what the daemon's sync step does).
    fn sync(log: &mut Log<SimDisk>) {
        if let Some((n, _)) = log.begin_sync() {
            log.end_sync(n, Ok(())).unwrap();
        }
    }

    fn relay(log: &mut Log<SimDisk>, link: SubscriptionId, upstream: std::ops::Range<u64>) -> u64 {
        let mut batch = log.batch();
        let mut first = None;
        for u in upstream {
            let seq = batch.push_relayed(&event(b"r"), &relayed(link, u)).unwrap();
            first.get_or_insert(seq.0);
        }
        batch.commit().unwrap();
        first.unwrap()
    }

    #[test]
    fn a_relayed_record_holds_the_head_until_its_link_mark_is_durable() {
        let (mut log, sub, link) = disk_log();
        let first = relay(&mut log, link, 0..3);
        sync(&mut log);
        // Every local subscriber confirmed it, durably...
        log.release(&[(sub, log.tail())]).unwrap();
        sync(&mut log);
        // ...but the mark still says nothing of it: its slots are not free.
        assert_eq!(log.head().0, first);
        assert!(log.set_link_mark(link, 2).unwrap());
        assert_eq!(log.head().0, first, "a mark written is not durable yet");
        sync(&mut log);
        assert_eq!(
            log.head().0,
            first,
            "the mark passed two of the three records"
        );
        // The previous mark is durable, so the next may be written.
        assert!(log.set_link_mark(link, 3).unwrap());
        sync(&mut log);
        assert_eq!(log.head(), log.tail());
    }

    #[test]
    fn on_pmem_the_mark_is_durable_when_written_and_frees_the_records_at_once() {
        let mut log = log();
        let link = log.create_link(b"up", b"node", 0).unwrap();
        let mut batch = log.batch();
        let first = batch.push_relayed(&event(b"r"), &relayed(link, 0)).unwrap();
        batch.commit().unwrap();
        // No local subscription: only the pin holds the record.
        assert_eq!(log.head(), first);
        assert_eq!(log.held_by_links_from(), Some(first));
        assert!(log.set_link_mark(link, 1).unwrap());
        assert_eq!(log.head(), log.tail());
        assert_eq!(log.held_by_links_from(), None);
    }

    #[test]
    fn opening_settles_each_mark_past_the_relayed_records_in_the_ring_released_or_not() {
        let (mut log, sub, link) = disk_log();
        relay(&mut log, link, 0..5);
        log.release(&[(sub, log.tail())]).unwrap();
        sync(&mut log);
        // A power cut now: the records are durable, the mark was never written, and
        // the local cursor (durable) is past them all.
        let image = log.medium().durable_image();
        let (log, _) = Log::open(SimDisk::from_image(image), &mut |_, _| {}).unwrap();
        assert_eq!(log.link(link).unwrap().cursor, 5);
        assert_eq!(
            log.head(),
            log.tail(),
            "settled: nothing is pinned any more"
        );
        // Written durably by the open itself.
        let image = log.medium().durable_image();
        let (log, _) = Log::open(SimDisk::from_image(image), &mut |_, _| {}).unwrap();
        assert_eq!(log.link(link).unwrap().cursor, 5);
    }

    #[test]
    fn pins_stay_bounded_and_still_hold_every_record_the_mark_does_not_cover() {
        let mut log = log();
        let link = log.create_link(b"up", b"node", 0).unwrap();
        let groups = LINK_PIN_RUNS_MAX as u64 + 40;
        let mut firsts = Vec::new();
        for u in 0..groups {
            let mut batch = log.batch();
            firsts.push(
                batch
                    .push_relayed(&event(b"r"), &relayed(link, u))
                    .unwrap()
                    .0,
            );
            batch.commit().unwrap();
        }
        let runs = |log: &Log<SimMedium>| log.pins[0].runs.len();
        assert_eq!(
            runs(&log),
            LINK_PIN_RUNS_MAX,
            "one run per group, up to the bound"
        );
        // The mark past every record but those of the last run: the head stays at the
        // newest run, which took every record past the bound.
        assert!(log.set_link_mark(link, groups - 1).unwrap());
        assert_eq!(log.head().0, firsts[LINK_PIN_RUNS_MAX - 1]);
        assert!(log.set_link_mark(link, groups).unwrap());
        assert_eq!(log.head(), log.tail());
        assert_eq!(runs(&log), 0);
    }

    /// A relay's life on a region synced to disk, its steps in a random order each
    /// round: relayed groups committed and synced (then the upstream may be told), the
    /// local subscriber confirming them, local traffic trying to reuse their slots,
    /// and the mark written. After every step, power cuts: the durable image and
    /// random mixes of uncertain pages. Whatever survives, the link's mark (settled by
    /// the open) must cover every upstream seq the upstream could have been told was
    /// stored: else it sends it again and it is stored twice.
    #[test]
    fn no_power_cut_at_any_step_forgets_an_upstream_seq_the_upstream_was_told_was_stored() {
        let mut rng = SmallRng::seed_from_u64(0x11);
        for round_seed in 0..12u64 {
            let (mut log, sub, link) = disk_log();
            let ring = log.geometry().ring.slot_count;
            let mut next_upstream = 0u64;
            let mut told = 0u64; // every upstream seq below this was confirmed upstream
            for round in 0..20 {
                let mut steps = [0u8, 1, 2, 3];
                let mut step_rng = SmallRng::seed_from_u64(round_seed * 100 + round);
                for i in (1..steps.len()).rev() {
                    steps.swap(i, step_rng.gen_range(0..=i));
                }
                for step in steps {
                    match step {
                        0 => {
                            let n = step_rng.gen_range(1..4);
                            if relay_some(&mut log, link, next_upstream..next_upstream + n) {
                                sync(&mut log);
                                next_upstream += n;
                                told = next_upstream;
                            }
                        }
                        1 => {
                            log.release(&[(sub, log.tail())]).unwrap();
                            sync(&mut log);
                        }
                        2 => {
                            // Local events, confirmed at once, around the whole ring.
                            for _ in 0..ring {
                                if log.append(&event(b"local")).is_err() {
                                    break; // full: held by the pins
                                }
                                log.release(&[(sub, log.tail())]).unwrap();
                                sync(&mut log);
                            }
                        }
                        _ => {
                            let _ = log.set_link_mark(link, next_upstream).unwrap();
                        }
                    }
                    let mut images = vec![log.medium().durable_image()];
                    images.extend((0..3).map(|_| log.medium().crash_image(&mut rng, 0.5)));
                    for image in images {
                        let (opened, _) =
                            Log::open(SimDisk::from_image(image), &mut |_, _| {}).unwrap();
                        let mark = opened.link(link).map_or(0, |l| l.cursor);
                        assert!(
                            mark >= told,
                            "seed {round_seed} round {round} step {step}: the mark after a \
                             power cut is {mark}, but the upstream was told of every seq \
                             below {told}"
                        );
                    }
                }
            }
        }
    }

    /// Commits relayed records for `upstream`, unless the ring is full (the relay then
    /// waits, as the daemon's does).
    fn relay_some(
        log: &mut Log<SimDisk>,
        link: SubscriptionId,
        upstream: std::ops::Range<u64>,
    ) -> bool {
        let mut batch = log.batch();
        for u in upstream {
            if batch.push_relayed(&event(b"r"), &relayed(link, u)).is_err() {
                return false; // dropped: rolled back
            }
        }
        batch.commit().unwrap();
        true
    }
}
