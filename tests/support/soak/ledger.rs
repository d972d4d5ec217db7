//! What the soak's clients saw, kept per event number in a few bytes each (the event
//! itself is a function of its number, `model.rs`), and the checks made on it.

use super::memory::{Growth, Rss};
use super::model::{self, Behaviour, DURABLE};
use super::treatment::Treatment;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Mutex;

const SENT: u8 = 1;
const ACKED: u8 = 2;
const KEYED: u8 = 4;
const NO_SEQ: u64 = u64::MAX;
/// Violations kept word for word (all are counted).
const VIOLATIONS_KEPT: usize = 50;

/// Counts for the summary.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub lifetimes: u64,
    pub kills: u64,
    pub clean_stops: u64,
    /// Restarts after a kill or a stop, and how long each took to be back: to the
    /// `ready` line, to the first event stored, to every replay delivered (the last
    /// `RecoveryDone`) (milliseconds, largest and sum).
    pub restarts: u64,
    pub ready_ms_max: u64,
    pub ready_ms_sum: u64,
    pub storing_again_ms_max: u64,
    pub storing_again_ms_sum: u64,
    pub storing_again_count: u64,
    pub replay_done_ms_max: u64,
    pub replay_done_ms_sum: u64,
    pub replay_done_count: u64,
    /// `RecoveryDone`s durable subscribers got (a replay after a restart).
    pub recovery_dones: u64,
    /// Checks made after a restart that the recovered log holds every acknowledged
    /// event not yet settled.
    pub recovery_checks: u64,
    pub events_sent: u64,
    pub events_acked: u64,
    pub keyed_acked: u64,
    pub batches_acked: u64,
    pub full_answers: u64,
    /// Events published again: after a kill took their answer (keyed), or `full`.
    pub retried_events: u64,
    pub answered_from_window: u64,
    pub deliveries: u64,
    pub redeliveries: u64,
    pub confirms: u64,
    pub rejects: u64,
    pub naks: u64,
    pub workings: u64,
    /// Times `slow` stopped reading, and for how long in all (milliseconds).
    pub stalls: u64,
    pub stalled_ms: u64,
    pub live_deliveries: u64,
    pub reconnects: u64,
    pub dead_letters: u64,
    pub dead_rejected: u64,
    pub dead_max_deliveries: u64,
    pub replays_requested: u64,
    pub purged: u64,
    pub status_requests: u64,
    pub admin_requests: u64,
    pub rss_samples: u64,
    /// The largest `VmRSS` sampled (the region's resident pages included).
    pub rss_max_bytes: u64,
    /// The daemon's own memory (`RssAnon`): the largest sample, and the largest growth
    /// over its lifetime's start against the bound on that growth.
    pub anon_max_bytes: u64,
    pub anon_growth_max_bytes: u64,
    pub anon_growth_bound_bytes: u64,
    /// Stored events whose `Stored` was lost (a kill) and that were not published again
    /// (no key): delivered all the same.
    pub stored_without_answer: u64,
    /// Client failures while the daemon was up (each a violation too).
    pub errors: u64,
    pub violations: u64,
}

#[derive(Default)]
struct Inner {
    /// Per event number: SENT, ACKED, KEYED.
    flags: Vec<u8>,
    /// Per event number: the seq it was stored under (as its `Stored` or its first
    /// delivery said), or NO_SEQ.
    seq_of: Vec<u64>,
    /// Per event number: a bit per durable subscription that confirmed it.
    confirmed: Vec<u8>,
    /// Per event number: a bit per durable subscription it is a dead letter of.
    dead: Vec<u8>,
    violations: Vec<String>,
    stats: Stats,
}

impl Inner {
    fn grow(&mut self, counter: u64) {
        let need = counter as usize + 1;
        if self.flags.len() < need {
            let len = need.max(self.flags.len() * 2).max(1 << 16);
            self.flags.resize(len, 0);
            self.seq_of.resize(len, NO_SEQ);
            self.confirmed.resize(len, 0);
            self.dead.resize(len, 0);
        }
    }

    fn violation(&mut self, what: String) {
        self.stats.violations += 1;
        if self.violations.len() < VIOLATIONS_KEPT {
            self.violations.push(what);
        }
    }

    /// Event `counter` came back as `seq`: it must have been sent, and every copy of
    /// it must carry one seq (a second one means it was stored twice).
    fn seen_as(&mut self, who: &str, counter: u64, seq: u64) {
        self.grow(counter);
        let i = counter as usize;
        if self.flags[i] & SENT == 0 {
            self.violation(format!(
                "{who}: got event {counter} (seq {seq}), which was never published"
            ));
            return;
        }
        match self.seq_of[i] {
            NO_SEQ => self.seq_of[i] = seq,
            first if first == seq => {}
            first => {
                let key = if self.flags[i] & KEYED != 0 {
                    "its idempotency key"
                } else {
                    "no key"
                };
                self.violation(format!(
                    "{who}: event {counter} ({key}) stored twice: as seq {first} and as {seq}"
                ));
            }
        }
    }
}

/// Shared by every client thread of the soak.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
    /// `picky`'s dead letters (by seq) whose replay was asked for: picky confirms them.
    replays: Mutex<HashSet<u64>>,
}

impl Ledger {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn stat(&self, f: impl FnOnce(&mut Stats)) {
        self.with(|i| f(&mut i.stats));
    }

    pub fn stats(&self) -> Stats {
        self.with(|i| i.stats.clone())
    }

    pub fn violation(&self, what: String) {
        self.with(|i| i.violation(what));
    }

    pub fn violations(&self) -> Vec<String> {
        self.with(|i| i.violations.clone())
    }

    /// The events of one publish are about to be sent (again, for those sent before).
    pub fn sent(&self, counters: &[u64], keyed: bool) {
        self.with(|i| {
            for &c in counters {
                i.grow(c);
                if i.flags[c as usize] & SENT == 0 {
                    i.stats.events_sent += 1;
                } else {
                    i.stats.retried_events += 1;
                }
                i.flags[c as usize] |= SENT | if keyed { KEYED } else { 0 };
            }
        });
    }

    /// One publish was answered `Stored` with `first_seq`: its first event's seq,
    /// which every delivery of it must carry.
    pub fn acked(&self, who: &str, counters: &[u64], first_seq: u64) {
        self.with(|i| {
            i.seen_as(who, counters[0], first_seq);
            for &c in counters {
                let flags = &mut i.flags[c as usize];
                if *flags & ACKED == 0 {
                    i.stats.events_acked += 1;
                    if *flags & KEYED != 0 {
                        i.stats.keyed_acked += 1;
                    }
                }
                *flags |= ACKED;
            }
            if counters.len() > 1 {
                i.stats.batches_acked += 1;
            }
        });
    }

    /// A durable subscription (index into `DURABLE`) or a live one (None) got event
    /// `counter` as `seq`.
    pub fn delivered(&self, who: &str, counter: u64, seq: u64, redelivered: bool, live: bool) {
        self.with(|i| {
            i.seen_as(who, counter, seq);
            if live {
                i.stats.live_deliveries += 1;
            } else {
                i.stats.deliveries += 1;
                if redelivered {
                    i.stats.redeliveries += 1;
                }
            }
        });
    }

    /// Durable subscription `sub` is about to confirm event `counter`.
    pub fn confirmed(&self, sub: usize, counter: u64) {
        self.with(|i| {
            i.grow(counter);
            i.confirmed[counter as usize] |= 1 << sub;
            i.stats.confirms += 1;
        });
    }

    /// A row of `dead.list`: event `counter` is a dead letter of `sub` as `seq`. Only
    /// `picky` rejects, and only events it means to reject.
    pub fn dead(&self, sub: usize, counter: u64, seq: u64, reason: &str) {
        self.with(|i| {
            let name = DURABLE[sub].name;
            i.seen_as(&format!("dead letter of {name}"), counter, seq);
            let bit = 1 << sub;
            if i.dead[counter as usize] & bit != 0 {
                // Listed before (kept for its replay, or listed again after a restart).
                return;
            }
            i.dead[counter as usize] |= bit;
            i.stats.dead_letters += 1;
            match reason {
                "rejected" => i.stats.dead_rejected += 1,
                "max_deliveries" => i.stats.dead_max_deliveries += 1,
                other => i.violation(format!("dead letter {seq} has reason {other:?}")),
            }
            let rejects = DURABLE[sub].behaviour == Behaviour::Picky
                && model::treatment(counter) == Treatment::Reject;
            if reason == "rejected" && !rejects {
                i.violation(format!(
                    "event {counter} (seq {seq}) is a dead letter of {name} as rejected, \
                     but {name} never rejected it"
                ));
            }
        });
    }

    pub fn ask_replay(&self, seq: u64) {
        self.replays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(seq);
    }

    pub fn replay_asked(&self, seq: u64) -> bool {
        self.replays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&seq)
    }

    /// A sample `now` of the daemon's resident memory, and what
    /// [`memory::within_bound`] found of its growth since the lifetime began.
    pub fn rss(&self, lifetime: u64, now: Rss, growth: Result<Growth, String>) {
        self.with(|i| {
            let st = &mut i.stats;
            st.rss_samples += 1;
            st.rss_max_bytes = st.rss_max_bytes.max(now.total);
            st.anon_max_bytes = st.anon_max_bytes.max(now.anon);
            match growth {
                Ok(g) => {
                    st.anon_growth_max_bytes = st.anon_growth_max_bytes.max(g.anon);
                    st.anon_growth_bound_bytes = st.anon_growth_bound_bytes.max(g.anon_bound);
                }
                Err(e) => i.violation(format!("lifetime {lifetime}: {e}")),
            }
        });
    }

    /// The checks at the end, once everything drained: every event answered `Stored`
    /// was confirmed by, or is a dead letter of, each durable subscription it was meant
    /// for.
    pub fn check_complete(&self) {
        self.with(|i| {
            let mut missing = 0u64;
            for c in 0..i.flags.len() {
                let flags = i.flags[c];
                if flags & SENT != 0 && flags & ACKED == 0 && i.seq_of[c] != NO_SEQ {
                    i.stats.stored_without_answer += 1;
                }
                if flags & ACKED == 0 {
                    continue;
                }
                for (s, spec) in DURABLE.iter().enumerate() {
                    if !model::meant_for(spec.patterns, c as u64) {
                        continue;
                    }
                    // What picky gives up on must be a dead letter: a confirm of it
                    // (after an operator's replay) comes on top.
                    let gives_up = spec.behaviour == Behaviour::Picky
                        && model::treatment(c as u64).dead_reason().is_some();
                    let settled = if gives_up {
                        i.dead[c]
                    } else {
                        i.confirmed[c] | i.dead[c]
                    };
                    if settled & (1 << s) == 0 {
                        missing += 1;
                        if missing <= 20 {
                            let seq = i.seq_of[c];
                            i.violation(format!(
                                "event {c} (seq {}) was stored but {} {}",
                                if seq == NO_SEQ {
                                    "unknown".to_owned()
                                } else {
                                    seq.to_string()
                                },
                                spec.name,
                                if gives_up {
                                    "does not have it as a dead letter"
                                } else {
                                    "neither confirmed it nor has it as a dead letter"
                                }
                            ));
                        }
                    }
                }
            }
            if missing > 20 {
                i.violation(format!("... {} more such events", missing - 20));
            }
        });
    }

    /// After a restart, before any client is back, with every dead letter listed:
    /// the recovered log must still hold every acknowledged event that a durable
    /// subscription meant to get it has neither confirmed nor has as a dead letter.
    /// For each such event whose seq is known (stored alone, first of a batch, or
    /// delivered before): it is below the log's tail, not below the ring's head, and
    /// not below that subscription's cursor. `status` is the daemon's document, asked
    /// for before the dead letters were listed (a cursor can only have moved on since).
    pub fn check_recovered(&self, lifetime: u64, status: &Value) {
        let ring = &status["ring"];
        let (Some(head), Some(tail)) = (ring["head"].as_u64(), ring["tail"].as_u64()) else {
            return self.violation(format!(
                "lifetime {lifetime}: status without a ring: {status}"
            ));
        };
        let rows = status["subscriptions"].as_array();
        let cursors: Vec<Option<u64>> = DURABLE
            .iter()
            .map(|spec| {
                rows.and_then(|rows| rows.iter().find(|r| r["name"] == spec.name))
                    .and_then(|r| r["cursor"].as_u64())
            })
            .collect();
        self.with(|i| {
            i.stats.recovery_checks += 1;
            for (s, cursor) in cursors.iter().enumerate() {
                if cursor.is_none() {
                    let name = DURABLE[s].name;
                    i.violation(format!(
                        "lifetime {lifetime}: no subscription {name} recovered"
                    ));
                }
            }
            let mut found = 0;
            for c in 0..i.flags.len() {
                let seq = i.seq_of[c];
                if i.flags[c] & ACKED == 0 || seq == NO_SEQ {
                    continue;
                }
                let mut lost = Vec::new();
                if seq >= tail {
                    lost.push(format!("beyond the recovered tail {tail}"));
                }
                let mut lost_for = 0u8;
                for (s, spec) in DURABLE.iter().enumerate() {
                    let settled = (i.confirmed[c] | i.dead[c]) & (1 << s) != 0;
                    if settled || !model::meant_for(spec.patterns, c as u64) {
                        continue;
                    }
                    if seq < head {
                        lost.push(format!(
                            "unsettled by {} below the ring's head {head}",
                            spec.name
                        ));
                        lost_for |= 1 << s;
                    }
                    if let Some(cursor) = cursors[s].filter(|&cursor| seq < cursor) {
                        lost.push(format!(
                            "unsettled by {} below its cursor {cursor}",
                            spec.name
                        ));
                        lost_for |= 1 << s;
                    }
                }
                // Reported once: later restarts and the final check pass over it.
                i.confirmed[c] |= lost_for;
                if !lost.is_empty() {
                    found += 1;
                    if found <= 20 {
                        i.violation(format!(
                            "lifetime {lifetime}: acknowledged event {c} (seq {seq}) lost in \
                             the restart: {}",
                            lost.join("; ")
                        ));
                    }
                }
            }
            if found > 20 {
                i.violation(format!(
                    "lifetime {lifetime}: ... {} more lost events",
                    found - 20
                ));
            }
        });
    }

    /// A restart took `ready` to the `ready` line.
    pub fn restarted(&self, ready: std::time::Duration) {
        let ms = ready.as_millis() as u64;
        self.stat(|s| {
            s.restarts += 1;
            s.ready_ms_max = s.ready_ms_max.max(ms);
            s.ready_ms_sum += ms;
        });
    }
}
