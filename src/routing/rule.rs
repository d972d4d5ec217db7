//! One routing rule: what it matches (topic pattern, severity range, source pattern),
//! what it decides (deliver to named durable subscriptions, drop, or leave it to the
//! subscriptions' own filters), and its encoding in the log's rule table (the log
//! keeps the bytes opaque, as it keeps a subscription's spec).

use crate::event::limits::{PATTERN_BYTES_MAX, SUBSCRIPTION_NAME_BYTES_MAX};
use crate::event::Severity;
use crate::event::{matches_validated, Pattern, PatternError};
use std::cmp::Reverse;
use thiserror::Error;

/// Durable subscriptions one rule may name.
pub const RULE_TARGETS_MAX: usize = 6;

/// Bytes of an encoded rule's fixed header.
const SPEC_HEADER_BYTES: usize = 12;

/// Spec format version written in byte 0.
const SPEC_VERSION: u8 = 1;

/// The most bytes an encoded rule takes: header, two patterns, every target name with
/// its length byte. The log's entry is sized from it (checked there at compile time).
pub const RULE_SPEC_BYTES_MAX: usize = SPEC_HEADER_BYTES
    + 2 * PATTERN_BYTES_MAX
    + RULE_TARGETS_MAX * (1 + SUBSCRIPTION_NAME_BYTES_MAX);

/// What the prevailing rule does with an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "to")]
pub enum Action {
    /// Each subscription's own filters decide, as without rules.
    Filters,
    /// No subscription receives it (it is stored, and released at once).
    Drop,
    /// Exactly these durable subscriptions receive it, whatever their own filters say;
    /// live-only subscriptions still see it through their filters.
    Deliver(Vec<String>),
}

impl Action {
    fn code(&self) -> u8 {
        match self {
            Action::Filters => 0,
            Action::Drop => 1,
            Action::Deliver(_) => 2,
        }
    }
}

/// A routing rule as an operator writes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Rule {
    /// Higher prevails over lower, before specificity is considered.
    pub priority: i32,
    /// Topic pattern (the subscription filter grammar).
    pub topic: String,
    /// Source pattern, the same grammar over the producer's source split at dots;
    /// `None` matches every source.
    pub source: Option<String>,
    /// Most severe level matched (numerically lowest).
    #[serde(serialize_with = "severity_name")]
    pub most_severe: Severity,
    /// Least severe level matched (numerically highest).
    #[serde(serialize_with = "severity_name")]
    pub least_severe: Severity,
    /// What it decides.
    pub action: Action,
}

fn severity_name<S: serde::Serializer>(s: &Severity, out: S) -> Result<S::Ok, S::Error> {
    out.serialize_str(s.name())
}

/// Why a rule is refused, or its bytes are not a rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuleError {
    /// The topic or source pattern breaks the grammar.
    #[error("{field} pattern {pattern:?}: {reason}")]
    Pattern {
        /// `topic` or `source`.
        field: &'static str,
        /// The pattern given.
        pattern: String,
        /// What is wrong.
        reason: PatternError,
    },
    /// The severity range is empty.
    #[error("severity range {most}..{least} is empty: the most severe level must come first (emerg is 0, debug 7)")]
    EmptySeverityRange {
        /// Most severe given.
        most: Severity,
        /// Least severe given.
        least: Severity,
    },
    /// A deliver action names no subscription, too many, or a bad name.
    #[error("{0}")]
    Targets(String),
    /// Stored bytes that do not decode.
    #[error("stored rule is damaged: {0}")]
    Damaged(&'static str),
}

/// How specific a rule is, compared field by field (greater is more specific). The
/// order is PROTOCOL.md's "which rule prevails" list; it never looks at an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Specificity {
    /// Literal (non-wildcard) topic segments.
    pub topic_literals: u8,
    /// The topic pattern has no trailing `>` (it matches a fixed number of segments).
    pub topic_bounded: bool,
    /// Fewer `*` topic segments is more specific.
    pub topic_stars: Reverse<u8>,
    /// A source pattern is given.
    pub source_given: bool,
    /// Literal source segments.
    pub source_literals: u8,
    /// The source pattern has no trailing `>`.
    pub source_bounded: bool,
    /// Fewer `*` source segments.
    pub source_stars: Reverse<u8>,
    /// Fewer severity levels in the range.
    pub severity_levels: Reverse<u8>,
}

fn pattern_shape(pattern: &[u8]) -> (u8, bool, u8) {
    let mut literals = 0u8;
    let mut stars = 0u8;
    let mut bounded = true;
    for segment in pattern.split(|&b| b == b'.') {
        match segment {
            b"*" => stars = stars.saturating_add(1),
            b">" => bounded = false,
            _ => literals = literals.saturating_add(1),
        }
    }
    (literals, bounded, stars)
}

impl Rule {
    /// Checks the patterns, the severity range and the targets.
    pub fn validate(&self) -> Result<(), RuleError> {
        let check = |field: &'static str, pattern: &str| {
            Pattern::parse(pattern.as_bytes())
                .map(|_| ())
                .map_err(|reason| RuleError::Pattern {
                    field,
                    pattern: pattern.to_string(),
                    reason,
                })
        };
        check("topic", &self.topic)?;
        if let Some(source) = &self.source {
            check("source", source)?;
        }
        if self.most_severe > self.least_severe {
            return Err(RuleError::EmptySeverityRange {
                most: self.most_severe,
                least: self.least_severe,
            });
        }
        if let Action::Deliver(targets) = &self.action {
            if targets.is_empty() || targets.len() > RULE_TARGETS_MAX {
                return Err(RuleError::Targets(format!(
                    "a deliver rule names 1 to {RULE_TARGETS_MAX} durable subscriptions, not {}",
                    targets.len()
                )));
            }
            for (i, name) in targets.iter().enumerate() {
                if name.is_empty() || name.len() > SUBSCRIPTION_NAME_BYTES_MAX {
                    return Err(RuleError::Targets(format!(
                        "subscription name {name:?} must be 1 to {SUBSCRIPTION_NAME_BYTES_MAX} bytes"
                    )));
                }
                if targets[..i].contains(name) {
                    return Err(RuleError::Targets(format!(
                        "subscription {name:?} is named twice"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether an event with these fields matches. Never allocates.
    pub fn matches(&self, topic: &[u8], severity: Severity, source: &[u8]) -> bool {
        self.most_severe <= severity
            && severity <= self.least_severe
            && matches_validated(self.topic.as_bytes(), topic)
            && self
                .source
                .as_ref()
                .is_none_or(|p| matches_validated(p.as_bytes(), source))
    }

    /// How specific the rule is (the second key of the prevailing order).
    pub fn specificity(&self) -> Specificity {
        let (topic_literals, topic_bounded, stars) = pattern_shape(self.topic.as_bytes());
        let (source_literals, source_bounded, source_stars) = match &self.source {
            Some(p) => pattern_shape(p.as_bytes()),
            None => (0, false, 0),
        };
        Specificity {
            topic_literals,
            topic_bounded,
            topic_stars: Reverse(stars),
            source_given: self.source.is_some(),
            source_literals,
            source_bounded,
            source_stars: Reverse(source_stars),
            severity_levels: Reverse(
                self.least_severe.as_u8() - self.most_severe.as_u8().min(self.least_severe.as_u8())
                    + 1,
            ),
        }
    }

    /// Appends the rule's stored form to `out` (a validated rule fits
    /// [`RULE_SPEC_BYTES_MAX`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let source = self.source.as_deref().unwrap_or("");
        let targets: &[String] = match &self.action {
            Action::Deliver(t) => t,
            _ => &[],
        };
        out.push(SPEC_VERSION);
        out.push(self.action.code());
        out.push(self.most_severe.as_u8());
        out.push(self.least_severe.as_u8());
        out.extend_from_slice(&self.priority.to_le_bytes());
        out.push(self.topic.len() as u8);
        out.push(source.len() as u8);
        out.push(targets.len() as u8);
        out.push(0);
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(source.as_bytes());
        for t in targets {
            out.push(t.len() as u8);
            out.extend_from_slice(t.as_bytes());
        }
    }

    /// The first version of this rule as table entry `index` holds it once added with
    /// `id`: active, routing from position 1. What a table built by hand (a test, a
    /// benchmark) gives [`super::Routes::load`]; the daemon's entries come from the log.
    pub fn first_version(&self, index: u32, id: u32) -> crate::log::RuleEntry {
        let mut spec = Vec::with_capacity(RULE_SPEC_BYTES_MAX);
        self.encode(&mut spec);
        crate::log::RuleEntry {
            index,
            id,
            version: 1,
            first_seq: 1,
            retired_at: None,
            created_unix_ns: 0,
            spec,
        }
    }

    /// Reads a stored rule back, with every check [`Rule::validate`] makes.
    pub fn decode(bytes: &[u8]) -> Result<Rule, RuleError> {
        let damaged = RuleError::Damaged;
        if bytes.len() < SPEC_HEADER_BYTES {
            return Err(damaged("shorter than its header"));
        }
        if bytes[0] != SPEC_VERSION {
            return Err(damaged("unknown rule format version"));
        }
        let severity = |b: u8| Severity::from_u8(b).ok_or(damaged("severity out of range"));
        let most_severe = severity(bytes[2])?;
        let least_severe = severity(bytes[3])?;
        let priority = i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let (topic_len, source_len, target_count) =
            (bytes[8] as usize, bytes[9] as usize, bytes[10] as usize);
        let mut at = SPEC_HEADER_BYTES;
        let take = |at: &mut usize, n: usize| -> Result<String, RuleError> {
            let part = bytes.get(*at..*at + n).ok_or(damaged("truncated"))?;
            *at += n;
            String::from_utf8(part.to_vec()).map_err(|_| damaged("not UTF-8"))
        };
        let topic = take(&mut at, topic_len)?;
        let source = take(&mut at, source_len)?;
        let mut targets = Vec::with_capacity(target_count.min(RULE_TARGETS_MAX));
        for _ in 0..target_count {
            let len = *bytes.get(at).ok_or(damaged("truncated"))? as usize;
            at += 1;
            targets.push(take(&mut at, len)?);
        }
        if at != bytes.len() {
            return Err(damaged("bytes after the last target"));
        }
        let action = match bytes[1] {
            0 if target_count == 0 => Action::Filters,
            1 if target_count == 0 => Action::Drop,
            2 => Action::Deliver(targets),
            _ => return Err(damaged("unknown action")),
        };
        let rule = Rule {
            priority,
            topic,
            source: (source_len > 0).then_some(source),
            most_severe,
            least_severe,
            action,
        };
        rule.validate()
            .map_err(|_| damaged("fails the rule checks"))?;
        Ok(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn rule(topic: &str, action: Action) -> Rule {
        Rule {
            priority: 0,
            topic: topic.into(),
            source: None,
            most_severe: Severity::Emergency,
            least_severe: Severity::Debug,
            action,
        }
    }

    #[test]
    fn a_rule_round_trips_through_its_stored_form() {
        let mut r = rule(
            "fs.*.error",
            Action::Deliver(vec!["ops".into(), "pager".into()]),
        );
        r.source = Some("fsd.>".into());
        r.priority = -7;
        r.most_severe = Severity::Alert;
        r.least_severe = Severity::Warning;
        let mut bytes = Vec::new();
        r.encode(&mut bytes);
        assert!(bytes.len() <= RULE_SPEC_BYTES_MAX);
        assert_eq!(Rule::decode(&bytes), Ok(r));
        for cut in 0..bytes.len() {
            assert!(Rule::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn matching_checks_every_field() {
        let mut r = rule("fs.>", Action::Drop);
        r.source = Some("fsd".into());
        r.most_severe = Severity::Critical;
        r.least_severe = Severity::Warning;
        assert!(r.matches(b"fs.vol1", Severity::Error, b"fsd"));
        assert!(!r.matches(b"net.vol1", Severity::Error, b"fsd"));
        assert!(!r.matches(b"fs.vol1", Severity::Notice, b"fsd"));
        assert!(!r.matches(b"fs.vol1", Severity::Alert, b"fsd"));
        assert!(!r.matches(b"fs.vol1", Severity::Error, b"other"));
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let mut r = rule("fs..x", Action::Filters);
        assert!(matches!(
            r.validate(),
            Err(RuleError::Pattern { field: "topic", .. })
        ));
        r.topic = "fs".into();
        r.most_severe = Severity::Debug;
        r.least_severe = Severity::Error;
        assert!(matches!(
            r.validate(),
            Err(RuleError::EmptySeverityRange { .. })
        ));
        let r = rule("fs", Action::Deliver(vec![]));
        assert!(matches!(r.validate(), Err(RuleError::Targets(_))));
        let r = rule("fs", Action::Deliver(vec!["a".into(), "a".into()]));
        assert!(matches!(r.validate(), Err(RuleError::Targets(_))));
    }

    #[test]
    fn a_literal_topic_is_more_specific_than_a_wildcard() {
        let s = |t: &str| rule(t, Action::Drop).specificity();
        assert!(s("fs.vol1.error") > s("fs.*.error"));
        assert!(s("fs.*.error") > s("fs.>"));
        assert!(s("fs.*") > s("fs.>"));
        assert!(s("fs.>") > s(">"));
        let mut narrow = rule("fs.>", Action::Drop);
        narrow.least_severe = Severity::Error;
        assert!(narrow.specificity() > s("fs.>"));
    }
}
