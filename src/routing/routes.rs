//! The rule table the loop routes by: every rule version the log holds, decoded once
//! per change, so routing an event walks the active rules without allocating.
//!
//! **Which rule prevails** when several match (PROTOCOL.md 10.8): the one with the
//! highest priority; among equal priorities the most specific ([`Specificity`],
//! compared field by field: topic literals, bounded topic, fewer topic `*`, a source
//! given, source literals, bounded source, fewer source `*`, fewer severity levels);
//! among equally specific ones the lowest id. Ids are unique, so the order is total:
//! the outcome never depends on the order rules were added or are stored in.

use super::rule::{Action, Rule, Specificity};
use crate::event::Severity;
use crate::log::RuleEntry;
use std::cmp::Reverse;

/// Which rule version routed an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RouteRef {
    /// The rule's id.
    pub id: u32,
    /// Its version.
    pub version: u32,
}

/// What the rule that routed an event decided, for one subscription to ask.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Each subscription's own filters decide: no rule matched, the rule says so, or
    /// the event names an entry since reused (its version is no longer known).
    OwnFilters,
    /// No subscription receives it.
    Drop,
    /// These durable subscriptions receive it; live-only ones by their own filters.
    Only(&'a [String]),
}

impl Decision<'_> {
    /// Whether a subscription (`name`: a durable one's; `None`: live-only) whose own
    /// filters give `own` receives the event.
    pub fn wants(&self, name: Option<&[u8]>, own: impl FnOnce() -> bool) -> bool {
        match (self, name) {
            (Decision::OwnFilters, _) => own(),
            (Decision::Drop, _) => false,
            (Decision::Only(_), None) => own(),
            (Decision::Only(names), Some(n)) => names.iter().any(|t| t.as_bytes() == n),
        }
    }
}

#[derive(Clone, Debug)]
struct Version {
    entry: RuleEntry,
    rule: Rule,
    key: (i32, Specificity, Reverse<u32>),
}

/// The decoded table, by entry.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    versions: Vec<Option<Version>>,
    /// Entries of active rules: the only ones routing looks at.
    active: Vec<u32>,
}

/// One matching rule in an explanation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Explained {
    /// Its id and version.
    pub rule: RouteRef,
    /// The rule.
    pub spec: Rule,
    /// How specific it is.
    pub specificity: Specificity,
}

/// Every active rule that matches an event, and which prevails and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Explanation {
    /// The matching rules, the prevailing one first, then in the order they lose.
    pub matching: Vec<Explained>,
    /// Why the first one prevails over the second (absent with fewer than two).
    pub reason: Option<String>,
    /// What is decided: the prevailing rule's action, or `filters` without one.
    pub action: Action,
}

impl Routes {
    /// Decodes the log's rule versions. An entry whose bytes pass the log's checks but
    /// do not decode as a rule (written by a newer herald, or damaged) routes nothing;
    /// each is returned with the reason, for the caller to report.
    pub fn load<'a>(
        entries: impl Iterator<Item = &'a RuleEntry>,
        table_entries: u64,
    ) -> (Routes, Vec<(RuleEntry, super::RuleError)>) {
        let mut routes = Routes {
            versions: vec![None; table_entries as usize],
            active: Vec::with_capacity(table_entries as usize),
        };
        let mut problems = Vec::new();
        for e in entries {
            match Rule::decode(&e.spec) {
                Ok(rule) => {
                    let key = (rule.priority, rule.specificity(), Reverse(e.id));
                    if e.is_active() {
                        routes.active.push(e.index);
                    }
                    routes.versions[e.index as usize] = Some(Version {
                        entry: e.clone(),
                        rule,
                        key,
                    });
                }
                Err(error) => problems.push((e.clone(), error)),
            }
        }
        (routes, problems)
    }

    /// The reference to store with an event (entry + 1 of the prevailing rule, 0 for
    /// none). O(active rules), no allocation.
    pub fn route(&self, topic: &[u8], severity: Severity, source: &[u8]) -> u8 {
        // The log's table has at most 255 entries, so entry + 1 fits; `load` keeps no
        // entry beyond (a table built by hand, as a benchmark does, may be larger).
        self.prevailing(topic, severity, source)
            .and_then(|e| u8::try_from(e.index + 1).ok())
            .unwrap_or(0)
    }

    /// The active rule that prevails for an event, if any matches. O(active rules),
    /// no allocation: what [`Routes::route`] does per event.
    pub fn prevailing(
        &self,
        topic: &[u8],
        severity: Severity,
        source: &[u8],
    ) -> Option<&RuleEntry> {
        let mut best: Option<&Version> = None;
        for &i in &self.active {
            let Some(v) = &self.versions[i as usize] else {
                continue;
            };
            if v.rule.matches(topic, severity, source) && best.is_none_or(|b| v.key > b.key) {
                best = Some(v);
            }
        }
        best.map(|v| &v.entry)
    }

    fn version(&self, route: u8, seq: u64) -> Option<&Version> {
        let index = (route as usize).checked_sub(1)?;
        self.versions
            .get(index)?
            .as_ref()
            .filter(|v| v.entry.routed(seq))
    }

    /// What the version named by an event's reference decided.
    pub fn decide(&self, route: u8, seq: u64) -> Decision<'_> {
        match self.version(route, seq).map(|v| &v.rule.action) {
            None | Some(Action::Filters) => Decision::OwnFilters,
            Some(Action::Drop) => Decision::Drop,
            Some(Action::Deliver(names)) => Decision::Only(names),
        }
    }

    /// The rule version an event's reference names, if it is still known.
    pub fn rule_of(&self, route: u8, seq: u64) -> Option<RouteRef> {
        self.version(route, seq).map(|v| RouteRef {
            id: v.entry.id,
            version: v.entry.version,
        })
    }

    /// Whether an event's reference names an entry whose version is no longer known
    /// (the entry was reused after the event was released).
    pub fn forgotten(&self, route: u8, seq: u64) -> bool {
        route != 0 && self.version(route, seq).is_none()
    }

    /// Every active rule matching the event, the prevailing one first, and why.
    pub fn explain(&self, topic: &[u8], severity: Severity, source: &[u8]) -> Explanation {
        let mut matching: Vec<&Version> = self
            .active
            .iter()
            .filter_map(|&i| self.versions[i as usize].as_ref())
            .filter(|v| v.rule.matches(topic, severity, source))
            .collect();
        matching.sort_by_key(|v| Reverse(v.key));
        let reason = match matching.as_slice() {
            [a, b, ..] => Some(if a.key.0 != b.key.0 {
                format!(
                    "rule {} has priority {}, above rule {}'s {}",
                    a.entry.id, a.key.0, b.entry.id, b.key.0
                )
            } else if a.key.1 != b.key.1 {
                format!(
                    "equal priority; rule {} is more specific than rule {} ({})",
                    a.entry.id,
                    b.entry.id,
                    specificity_difference(&a.key.1, &b.key.1)
                )
            } else {
                format!(
                    "equal priority and specificity; rule {} has the lower id",
                    a.entry.id
                )
            }),
            _ => None,
        };
        Explanation {
            action: matching
                .first()
                .map_or(Action::Filters, |v| v.rule.action.clone()),
            matching: matching
                .into_iter()
                .map(|v| Explained {
                    rule: RouteRef {
                        id: v.entry.id,
                        version: v.entry.version,
                    },
                    spec: v.rule.clone(),
                    specificity: v.key.1,
                })
                .collect(),
            reason,
        }
    }

    /// Every rule version known, with its decoded rule, by entry.
    pub fn versions(&self) -> impl Iterator<Item = (&RuleEntry, &Rule)> {
        self.versions.iter().flatten().map(|v| (&v.entry, &v.rule))
    }
}

/// The first field in which `a` is more specific than `b`, in words.
fn specificity_difference(a: &Specificity, b: &Specificity) -> &'static str {
    if a.topic_literals != b.topic_literals {
        "more literal topic segments"
    } else if a.topic_bounded != b.topic_bounded {
        "its topic pattern has no trailing '>'"
    } else if a.topic_stars != b.topic_stars {
        "fewer '*' topic segments"
    } else if a.source_given != b.source_given {
        "it names a source"
    } else if a.source_literals != b.source_literals {
        "more literal source segments"
    } else if a.source_bounded != b.source_bounded {
        "its source pattern has no trailing '>'"
    } else if a.source_stars != b.source_stars {
        "fewer '*' source segments"
    } else {
        "a narrower severity range"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u32, id: u32, rule: &Rule) -> RuleEntry {
        rule.first_version(index, id)
    }

    fn rule(topic: &str, priority: i32, action: Action) -> Rule {
        Rule {
            priority,
            topic: topic.into(),
            source: None,
            most_severe: Severity::Emergency,
            least_severe: Severity::Debug,
            action,
        }
    }

    #[test]
    fn priority_then_specificity_then_id_decide() {
        let rules = [
            entry(0, 5, &rule("fs.>", 0, Action::Drop)),
            entry(1, 3, &rule("fs.vol1", 0, Action::Filters)),
            entry(2, 9, &rule(">", 1, Action::Deliver(vec!["ops".into()]))),
            entry(3, 2, &rule("fs.vol1", 0, Action::Drop)),
        ];
        let (routes, problems) = Routes::load(rules.iter(), 8);
        assert!(problems.is_empty());
        // Priority 1 beats every more specific rule.
        assert_eq!(routes.route(b"fs.vol1", Severity::Error, b""), 3);
        let without_priority: Vec<_> = rules.iter().filter(|e| e.id != 9).cloned().collect();
        let (routes, _) = Routes::load(without_priority.iter(), 8);
        // fs.vol1 (ids 3 and 2) beat fs.>; of the two the lower id, 2 (entry 3).
        assert_eq!(routes.route(b"fs.vol1", Severity::Error, b""), 4);
        assert_eq!(routes.route(b"fs.vol2", Severity::Error, b""), 1);
        assert_eq!(routes.route(b"net", Severity::Error, b""), 0);
        let why = routes.explain(b"fs.vol1", Severity::Error, b"");
        assert_eq!(why.matching.len(), 3);
        assert_eq!(why.matching[0].rule.id, 2);
        assert!(why.reason.unwrap().contains("lower id"));
        assert_eq!(why.action, Action::Drop);
    }

    #[test]
    fn an_event_keeps_the_version_that_routed_it() {
        let mut old = entry(0, 1, &rule("fs.>", 0, Action::Drop));
        old.retired_at = Some(10);
        let mut new = entry(1, 1, &rule("fs.>", 0, Action::Deliver(vec!["ops".into()])));
        new.version = 2;
        new.first_seq = 10;
        let (routes, _) = Routes::load([old, new].iter(), 4);
        assert_eq!(routes.route(b"fs.a", Severity::Error, b""), 2);
        assert_eq!(routes.decide(1, 9), Decision::Drop);
        assert_eq!(routes.rule_of(1, 9), Some(RouteRef { id: 1, version: 1 }));
        assert!(matches!(routes.decide(2, 10), Decision::Only(_)));
        // A reference outside the version's positions: its entry was reused.
        assert_eq!(routes.decide(1, 10), Decision::OwnFilters);
        assert!(routes.forgotten(1, 10));
        assert!(!routes.forgotten(0, 10));
    }

    #[test]
    fn a_decision_applies_to_durable_subscriptions_by_name() {
        let names = vec!["ops".to_string()];
        let only = Decision::Only(&names);
        assert!(only.wants(Some(b"ops"), || false));
        assert!(!only.wants(Some(b"audit"), || true));
        assert!(only.wants(None, || true));
        assert!(!Decision::Drop.wants(None, || true));
        assert!(Decision::OwnFilters.wants(Some(b"x"), || true));
    }
}
