//! The routing rule table: one entry per version of a rule, kept while events it
//! routed may still be read, so an event's one-byte reference (slot header byte 33)
//! always names the version that routed it. The rules' meaning is `routing`'s; here
//! they are opaque bytes with an id, a version and the positions they routed.
//!
//! Order of durability (FORMAT.md, "Rule table"):
//! - creation writes the static part, fences, then the state word `ACTIVE`, fences: a
//!   cut leaves a free entry or a whole one;
//! - retirement writes `retired_at`, fences, then the state word `RETIRED`, fences;
//! - a change creates the next version (same id) in a free entry, then retires the
//!   old one at the same position. A cut between leaves two active versions of one
//!   id: recovery keeps the newer and retires the older at the newer's `first_seq`,
//!   which is where the change took effect;
//! - every change is fenced (synced, on a disk) before it returns, so no event routed
//!   by a version is ever durable without it.

use super::format::Geometry;
use super::layout::*;
use super::{now_unix_ns, Log, LogError};
use crate::pmem::Medium;
use bytemuck::Zeroable;

/// One version of a rule, as the table holds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleEntry {
    /// Its table entry: what an event's reference names (reference = index + 1).
    pub index: u32,
    /// The rule's id, kept by every version.
    pub id: u32,
    /// 1 at creation, one more at each change.
    pub version: u32,
    /// The tail when it took effect: it routed no event below this.
    pub first_seq: u64,
    /// `None` while active; once retired, the position from which its successor (or,
    /// after a delete, nothing) routes.
    pub retired_at: Option<u64>,
    /// When it was written.
    pub created_unix_ns: u64,
    /// The rule's bytes (`routing::Rule`'s encoding).
    #[serde(skip)]
    pub spec: Vec<u8>,
}

impl RuleEntry {
    /// Whether it routes events stored from now on.
    pub fn is_active(&self) -> bool {
        self.retired_at.is_none()
    }

    /// Whether it is the version that routed the event at `seq` that names its entry
    /// (false once the entry was reused by a later rule).
    pub fn routed(&self, seq: u64) -> bool {
        self.first_seq <= seq && self.retired_at.is_none_or(|r| seq < r)
    }
}

/// One entry of the table at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleSlot {
    /// Free.
    Free,
    /// A rule version.
    Entry(RuleEntry),
    /// Its state says it is used but its static part fails its checks: only bytes
    /// changed outside herald's writes do that. Kept (never reused) and reported.
    Damaged,
}

/// Why a rule change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleTableError {
    /// The region was formatted without one.
    #[error("this region has no rule table (formatted before routing rules, or with --rules 0); format a new region to use rules")]
    NoTable,
    /// Every entry holds an active rule or a version events still need.
    #[error("the rule table is full: its {entries} entries hold {active} active rules and {retired} earlier versions kept for events they routed that the ring still holds; delete rules, or wait until those events are released")]
    Full {
        /// Entries in the table.
        entries: u64,
        /// Active rules.
        active: usize,
        /// Retired versions still needed.
        retired: usize,
    },
    /// No active rule has this id.
    #[error("no rule with id {0}")]
    Unknown(u32),
    /// The spec does not fit an entry.
    #[error("rule takes {0} bytes; an entry holds {RULE_SPEC_BYTES}")]
    TooLong(usize),
}

/// What the scan of the rule table found.
#[derive(Clone, Debug, Default)]
pub struct RuleScan {
    /// Every entry, by index (empty when the region has no table).
    pub slots: Vec<RuleSlot>,
    /// The next id to hand out.
    pub next_id: u32,
    /// Older versions left active by an interrupted change: (entry, where to retire it).
    pub superseded: Vec<(u32, u64)>,
}

/// Reads the table without writing (analyze and open share it).
pub fn scan(bytes: &[u8], g: &Geometry) -> RuleScan {
    if !g.has_rules() {
        return RuleScan::default();
    }
    let seed = g.checksum_seed();
    let mut slots: Vec<RuleSlot> = (0..g.rules.entry_count as u32)
        .map(|i| read_slot(bytes, g, i, seed))
        .collect();
    let at =
        g.rules_data_offset as usize - SECTION_HEADER_PAGE_BYTES as usize + RULE_NEXT_ID_OFFSET;
    // Inside the section (read_geometry checked it); 0 would only mean "no word".
    let word = bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes);
    let highest = slots
        .iter()
        .filter_map(|s| match s {
            RuleSlot::Entry(e) => Some(e.id),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let next_id = (word.min(u32::MAX as u64) as u32).max(highest.saturating_add(1));
    let mut superseded = Vec::new();
    for i in 0..slots.len() {
        let RuleSlot::Entry(older) = &slots[i] else {
            continue;
        };
        if !older.is_active() {
            continue;
        }
        let newer = slots.iter().find_map(|s| match s {
            RuleSlot::Entry(e)
                if e.is_active() && e.id == older.id && e.version > older.version =>
            {
                Some(e.first_seq)
            }
            _ => None,
        });
        if let (Some(at), RuleSlot::Entry(e)) = (newer, &mut slots[i]) {
            e.retired_at = Some(at);
            superseded.push((i as u32, at));
        }
    }
    RuleScan {
        slots,
        next_id: next_id.max(1),
        superseded,
    }
}

fn read_slot(bytes: &[u8], g: &Geometry, index: u32, seed: u32) -> RuleSlot {
    let at = g.rule_offset(index);
    let entry = &bytes[at..at + RULE_ENTRY_BYTES];
    let h: RuleHeader = bytemuck::pod_read_unaligned(&entry[..RULE_SPEC_OFFSET]);
    let retired_at = match h.state {
        RULE_FREE => return RuleSlot::Free,
        RULE_ACTIVE => None,
        RULE_RETIRED => Some(h.retired_at),
        _ => return RuleSlot::Damaged,
    };
    let sane = h.magic == RULE_MAGIC
        && h.state_high == 0
        && h.id > 0
        && h.version > 0
        && h.spec_len as usize <= RULE_SPEC_BYTES
        && h.checksum == crc_append(seed, &entry[RULE_CHECKED_OFFSET..]);
    if !sane {
        return RuleSlot::Damaged;
    }
    let spec_len = h.spec_len as usize;
    RuleSlot::Entry(RuleEntry {
        index,
        id: h.id,
        version: h.version,
        first_seq: h.first_seq,
        retired_at,
        created_unix_ns: h.created_unix_ns,
        spec: entry[RULE_SPEC_OFFSET..RULE_SPEC_OFFSET + spec_len].to_vec(),
    })
}

/// Writes the retirement of entry `index` at `at`: two words, the position first, each
/// fenced, so a state word that says retired never goes with another position.
fn retire<M: Medium>(medium: &mut M, g: &Geometry, index: u32, at: u64) -> std::io::Result<()> {
    let offset = g.rule_offset(index);
    medium.write(offset + 8, &at.to_le_bytes());
    medium.flush(offset + 8, 8);
    medium.fence()?;
    set_state(medium, g, index, RULE_RETIRED);
    medium.fence()
}

fn set_state<M: Medium>(medium: &mut M, g: &Geometry, index: u32, state: u32) {
    let offset = g.rule_offset(index);
    medium.write(offset, &(state as u64).to_le_bytes());
    medium.flush(offset, 8);
}

/// The retirements an interrupted change left to do, written by a writable open.
pub(super) fn finish_changes<M: Medium>(
    medium: &mut M,
    g: &Geometry,
    superseded: &[(u32, u64)],
) -> std::io::Result<()> {
    for &(index, at) in superseded {
        retire(medium, g, index, at)?;
    }
    Ok(())
}

impl<M: Medium> Log<M> {
    /// Every rule version the table holds (active and retired), by entry.
    pub fn rule_entries(&self) -> impl Iterator<Item = &RuleEntry> {
        self.rules.slots.iter().filter_map(|s| match s {
            RuleSlot::Entry(e) => Some(e),
            _ => None,
        })
    }

    /// Entries of the rule table (0: the region has none).
    pub fn rule_table_entries(&self) -> u64 {
        self.geometry.rules.entry_count
    }

    /// Adds a rule (version 1, a new id) routing events stored from now on.
    pub fn add_rule(&mut self, spec: &[u8]) -> Result<RuleEntry, LogError> {
        let id = self.rules.next_id;
        self.write_rule(id, 1, spec, None)
    }

    /// Replaces active rule `id` by its next version, for events stored from now on;
    /// events stored before keep the version that routed them.
    pub fn change_rule(&mut self, id: u32, spec: &[u8]) -> Result<RuleEntry, LogError> {
        let old = self.active_rule(id)?;
        self.write_rule(id, old.version + 1, spec, Some(old.index))
    }

    /// Retires active rule `id`: events stored from now on are routed without it.
    pub fn delete_rule(&mut self, id: u32) -> Result<RuleEntry, LogError> {
        let old = self.active_rule(id)?;
        self.fail_if_failed()?;
        let at = self.tail;
        retire(&mut self.medium, &self.geometry, old.index, at).map_err(|e| self.fail(e))?;
        self.mark_all_durable();
        let retired = RuleEntry {
            retired_at: Some(at),
            ..old
        };
        self.rules.slots[retired.index as usize] = RuleSlot::Entry(retired.clone());
        Ok(retired)
    }

    fn active_rule(&self, id: u32) -> Result<RuleEntry, LogError> {
        if !self.geometry.has_rules() {
            return Err(RuleTableError::NoTable.into());
        }
        self.rule_entries()
            .find(|e| e.id == id && e.is_active())
            .cloned()
            .ok_or(RuleTableError::Unknown(id).into())
    }

    fn fail_if_failed(&self) -> Result<(), LogError> {
        match &self.failed {
            Some(reason) => Err(LogError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: std::io::Error) -> LogError {
        self.failed = Some(e.to_string());
        LogError::Failed(e.to_string())
    }

    /// A free entry: a never-used or freed one, else the first retired version that no
    /// event the ring still holds names (freed first, on its own fence, so a cut during
    /// the reuse leaves it free rather than a mix).
    fn free_rule_entry(&mut self) -> Result<u32, LogError> {
        if !self.geometry.has_rules() {
            return Err(RuleTableError::NoTable.into());
        }
        let slots = &self.rules.slots;
        if let Some(i) = slots.iter().position(|s| *s == RuleSlot::Free) {
            return Ok(i as u32);
        }
        // The oldest position any reader may still reach: released events stay
        // readable above the lowest place a start can reach back to.
        let floor = self.held_from().0.min(self.head);
        let spent = slots.iter().position(
            |s| matches!(s, RuleSlot::Entry(e) if e.retired_at.is_some_and(|r| r <= floor)),
        );
        let Some(i) = spent else {
            let active = self.rule_entries().filter(|e| e.is_active()).count();
            return Err(RuleTableError::Full {
                entries: self.geometry.rules.entry_count,
                active,
                retired: self.rule_entries().count() - active,
            }
            .into());
        };
        self.fail_if_failed()?;
        set_state(&mut self.medium, &self.geometry, i as u32, RULE_FREE);
        self.medium.fence().map_err(|e| self.fail(e))?;
        self.mark_all_durable();
        self.rules.slots[i] = RuleSlot::Free;
        Ok(i as u32)
    }

    fn write_rule(
        &mut self,
        id: u32,
        version: u32,
        spec: &[u8],
        replaces: Option<u32>,
    ) -> Result<RuleEntry, LogError> {
        if spec.len() > RULE_SPEC_BYTES {
            return Err(RuleTableError::TooLong(spec.len()).into());
        }
        let index = self.free_rule_entry()?;
        self.fail_if_failed()?;
        let first_seq = self.tail;
        let g = self.geometry;
        let mut h = RuleHeader::zeroed();
        h.magic = RULE_MAGIC;
        h.id = id;
        h.version = version;
        h.first_seq = first_seq;
        h.created_unix_ns = now_unix_ns();
        h.spec_len = spec.len() as u16;
        let mut entry = [0u8; RULE_ENTRY_BYTES];
        entry[..RULE_SPEC_OFFSET].copy_from_slice(bytemuck::bytes_of(&h));
        entry[RULE_SPEC_OFFSET..RULE_SPEC_OFFSET + spec.len()].copy_from_slice(spec);
        let checksum = crc_append(g.checksum_seed(), &entry[RULE_CHECKED_OFFSET..]);
        entry[16..20].copy_from_slice(&checksum.to_le_bytes());
        let at = g.rule_offset(index);
        // The next-id word first, in the static part's fence: an id is never handed
        // out twice, even if this entry is freed and the table emptied.
        let next =
            g.rules_data_offset as usize - SECTION_HEADER_PAGE_BYTES as usize + RULE_NEXT_ID_OFFSET;
        let next_id = self.rules.next_id.max(id.saturating_add(1));
        self.medium.write(next, &(next_id as u64).to_le_bytes());
        self.medium.flush(next, 8);
        self.medium.write(at + 8, &entry[8..]);
        self.medium.flush(at, RULE_ENTRY_BYTES);
        let result = (|| {
            self.medium.fence()?;
            set_state(&mut self.medium, &g, index, RULE_ACTIVE);
            self.medium.fence()?;
            if let Some(old) = replaces {
                retire(&mut self.medium, &g, old, first_seq)?;
            }
            Ok(())
        })();
        result.map_err(|e| self.fail(e))?;
        // Synced: everything before it is durable too.
        self.mark_all_durable();
        self.rules.next_id = next_id;
        if let Some(old) = replaces {
            if let RuleSlot::Entry(e) = &mut self.rules.slots[old as usize] {
                e.retired_at = Some(first_seq);
            }
        }
        let new = RuleEntry {
            index,
            id,
            version,
            first_seq,
            retired_at: None,
            created_unix_ns: h.created_unix_ns,
            spec: spec.to_vec(),
        };
        self.rules.slots[index as usize] = RuleSlot::Entry(new.clone());
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::event::test_event;
    use crate::log::manage::tests::small_log;
    use crate::pmem::sim::SimMedium;

    fn reopen(log: Log<SimMedium>) -> Log<SimMedium> {
        Log::open(log.into_medium(), &mut |_, _| {})
            .expect("open")
            .0
    }

    #[test]
    fn rules_survive_a_reopen_with_ids_versions_and_positions() {
        let mut log = small_log(256);
        let a = log.add_rule(b"rule a").expect("add");
        log.append(&test_event(b"fs.x")).expect("append");
        let a2 = log.change_rule(a.id, b"rule a2").expect("change");
        let b = log.add_rule(b"rule b").expect("add");
        log.delete_rule(b.id).expect("delete");
        assert_eq!((a2.id, a2.version), (a.id, 2));
        assert!(a2.first_seq > a.first_seq);
        let log = reopen(log);
        let entries: Vec<_> = log.rule_entries().cloned().collect();
        let find = |id, v| {
            entries
                .iter()
                .find(|e| e.id == id && e.version == v)
                .cloned()
        };
        assert_eq!(find(a.id, 1).and_then(|e| e.retired_at), Some(a2.first_seq));
        assert_eq!(find(a.id, 2).map(|e| e.spec), Some(b"rule a2".to_vec()));
        assert!(find(a.id, 2).is_some_and(|e| e.is_active()));
        assert!(find(b.id, 1).is_some_and(|e| !e.is_active()));
        assert!(find(a.id, 1).is_some_and(|e| e.routed(a.first_seq)));
        assert!(find(a.id, 1).is_some_and(|e| !e.routed(a2.first_seq)));
    }

    #[test]
    fn ids_are_never_handed_out_twice() {
        let mut log = small_log(256);
        let a = log.add_rule(b"a").expect("add");
        log.delete_rule(a.id).expect("delete");
        let mut log = reopen(log);
        let b = log.add_rule(b"b").expect("add");
        assert!(b.id > a.id);
    }

    #[test]
    fn a_change_cut_before_the_old_version_was_retired_keeps_the_new_one() {
        let mut log = small_log(256);
        let a = log.add_rule(b"old").expect("add");
        log.append(&test_event(b"fs.x")).expect("append");
        let first_seq = log.tail().0;
        // What a change writes before its retirement: the new version, active.
        let a2 = log.write_rule(a.id, 2, b"new", None).expect("write");
        assert_eq!(a2.first_seq, first_seq);
        let scan = scan(log.medium().bytes(), log.geometry());
        assert_eq!(scan.superseded, vec![(a.index, first_seq)]);
        let log = reopen(log);
        let active: Vec<_> = log.rule_entries().filter(|e| e.is_active()).collect();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].spec, b"new");
        // The open wrote the retirement: a second scan has nothing left to do.
        assert!(scan_of(&log).superseded.is_empty());
    }

    fn scan_of(log: &Log<SimMedium>) -> RuleScan {
        scan(log.medium().bytes(), log.geometry())
    }

    #[test]
    fn a_full_table_reuses_only_versions_no_held_event_names() {
        let mut log = small_log(256);
        let entries = log.rule_table_entries();
        let a = log.add_rule(b"a").expect("add");
        for _ in 1..entries {
            log.add_rule(b"x").expect("add");
        }
        let err = log.add_rule(b"y").expect_err("full");
        assert!(
            matches!(err, LogError::Rules(RuleTableError::Full { .. })),
            "{err}"
        );
        log.delete_rule(a.id).expect("delete");
        // Retired at the tail, which nothing holds below: reusable at once.
        let c = log.add_rule(b"c").expect("reuse");
        assert_eq!(c.index, a.index);
        assert!(scan_of(&log).slots.iter().all(|s| *s != RuleSlot::Damaged));
    }

    #[test]
    fn a_flipped_byte_is_damage_not_a_rule() {
        let mut log = small_log(256);
        let a = log.add_rule(b"rule").expect("add");
        let at = log.geometry().rule_offset(a.index) + RULE_SPEC_OFFSET;
        let byte = log.medium().bytes()[at] ^ 1;
        log.medium_mut().write(at, &[byte]);
        assert_eq!(scan_of(&log).slots[a.index as usize], RuleSlot::Damaged);
    }
}
