//! Routing rules, checked against a brute-force oracle on random tables.
//!
//! For each of 300 fixed seeds a random table of 1..40 rules (topic patterns over a
//! small alphabet with `*` and trailing `>`, optional source patterns, severity ranges,
//! priorities -2..=2, every action) and 200 random events, this proves:
//!
//! - (a) the prevailing rule is independent of the order `Routes::load` is given the
//!   entries in and of which table entry each rule occupies (several shuffled orders,
//!   each with a random permutation of entry indices): the same id for every event;
//!   `route` names that rule's entry;
//! - (b) it is the oracle's choice: among the rules whose `Rule::matches` holds, the
//!   greatest `(priority, specificity(), Reverse(id))`;
//! - (c) `explain` lists exactly the matching rules, prevailing first and then in the
//!   order they lose, and its action is the prevailing rule's (`Filters` with none);
//! - (d) every generated rule validates and round-trips through `encode`/`decode`.
//!
//! It also asserts that the tie-breaks were exercised (events where the winner was
//! decided by specificity, and by id), so the check cannot pass vacuously.

use herald::event::Severity;
use herald::routing::{Action, Routes, Rule, RULE_SPEC_BYTES_MAX};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;

const SEEDS: u64 = 300;
const EVENTS_PER_TABLE: usize = 200;
/// Orders (and entry layouts) each table is loaded in.
const LAYOUTS: usize = 4;

/// Topic segments by position: small, so random patterns and events meet often.
const TOPIC_SEGMENTS: [&[&str]; 4] = [
    &["fs", "net"],
    &["vol1", "vol2", "error"],
    &["error", "vol1", "fs"],
    &["error", "net"],
];
const SOURCE_SEGMENTS: [&[&str]; 2] = [&["fsd", "netd", "app"], &["a", "b"]];
const TARGETS: [&str; 4] = ["ops", "audit", "pager", "archive"];

/// A random pattern over `segments`: 1..=len segments, each a literal or `*`, and
/// sometimes a trailing `>` (which may be the whole pattern).
fn pattern(rng: &mut SmallRng, segments: &[&[&str]]) -> String {
    let len = rng.gen_range(1..=segments.len());
    let mut parts: Vec<&str> = (0..len)
        .map(|i| {
            if rng.gen_bool(0.25) {
                "*"
            } else {
                segments[i].choose(rng).unwrap()
            }
        })
        .collect();
    if rng.gen_bool(0.3) {
        // Replace the last segment or append after it (when there is room).
        if len < segments.len() && rng.gen_bool(0.5) {
            parts.push(">");
        } else {
            *parts.last_mut().unwrap() = ">";
        }
    }
    parts.join(".")
}

/// A random concrete name over `segments` (no wildcards), 1..=len segments.
fn name(rng: &mut SmallRng, segments: &[&[&str]]) -> String {
    let len = rng.gen_range(1..=segments.len());
    (0..len)
        .map(|i| *segments[i].choose(rng).unwrap())
        .collect::<Vec<_>>()
        .join(".")
}

fn severity(rng: &mut SmallRng) -> Severity {
    *Severity::ALL.choose(rng).unwrap()
}

fn random_rule(rng: &mut SmallRng) -> Rule {
    let (a, b) = (severity(rng), severity(rng));
    // Often the full range, so severity narrows only some rules.
    let (most_severe, least_severe) = if rng.gen_bool(0.4) {
        (Severity::Emergency, Severity::Debug)
    } else {
        (a.min(b), a.max(b))
    };
    let action = match rng.gen_range(0..3) {
        0 => Action::Filters,
        1 => Action::Drop,
        _ => {
            let count = rng.gen_range(1..=3);
            Action::Deliver(
                TARGETS
                    .choose_multiple(rng, count)
                    .map(|s| s.to_string())
                    .collect(),
            )
        }
    };
    Rule {
        priority: rng.gen_range(-2..=2),
        topic: pattern(rng, &TOPIC_SEGMENTS),
        source: rng.gen_bool(0.4).then(|| pattern(rng, &SOURCE_SEGMENTS)),
        most_severe,
        least_severe,
        action,
    }
}

struct Event {
    topic: String,
    severity: Severity,
    source: String,
}

fn random_event(rng: &mut SmallRng) -> Event {
    Event {
        topic: name(rng, &TOPIC_SEGMENTS),
        severity: severity(rng),
        source: name(rng, &SOURCE_SEGMENTS),
    }
}

type Key = (i32, herald::routing::Specificity, Reverse<u32>);

fn key(id: u32, rule: &Rule) -> Key {
    (rule.priority, rule.specificity(), Reverse(id))
}

#[derive(Default)]
struct Coverage {
    tables: u64,
    events: u64,
    rules: u64,
    matched: u64,
    several_matched: u64,
    by_priority: u64,
    by_specificity: u64,
    by_id: u64,
}

fn check_table(seed: u64, coverage: &mut Coverage) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let n = rng.gen_range(1..40usize);
    // Unique ids, not in index order, with gaps.
    let mut ids: Vec<u32> = (1..=1000).collect();
    ids.shuffle(&mut rng);
    ids.truncate(n);
    let rules: Vec<(u32, Rule)> = ids.iter().map(|&id| (id, random_rule(&mut rng))).collect();

    // (d) each rule is valid and its stored form decodes to the same rule.
    for (id, rule) in &rules {
        assert_eq!(rule.validate(), Ok(()), "seed {seed}: rule {id} {rule:?}");
        let mut bytes = Vec::new();
        rule.encode(&mut bytes);
        assert!(bytes.len() <= RULE_SPEC_BYTES_MAX, "seed {seed}: rule {id}");
        assert_eq!(
            Rule::decode(&bytes).as_ref(),
            Ok(rule),
            "seed {seed}: rule {id} does not round-trip"
        );
    }

    // (a) the same table in several orders, each rule at a random entry.
    let layouts: Vec<Routes> = (0..LAYOUTS)
        .map(|_| {
            let mut indices: Vec<u32> = (0..n as u32).collect();
            indices.shuffle(&mut rng);
            let mut entries: Vec<herald::log::RuleEntry> = rules
                .iter()
                .zip(&indices)
                .map(|((id, rule), &index)| rule.first_version(index, *id))
                .collect();
            entries.shuffle(&mut rng);
            let (routes, problems) = Routes::load(entries.iter(), n as u64);
            assert!(problems.is_empty(), "seed {seed}: {problems:?}");
            routes
        })
        .collect();

    for _ in 0..EVENTS_PER_TABLE {
        let event = random_event(&mut rng);
        let (topic, source) = (event.topic.as_bytes(), event.source.as_bytes());
        let what = || {
            format!(
                "seed {seed}: event {} {:?} from {}",
                event.topic, event.severity, event.source
            )
        };

        // (b) the oracle: every rule that matches, greatest key first.
        let mut matching: Vec<&(u32, Rule)> = rules
            .iter()
            .filter(|(_, r)| r.matches(topic, event.severity, source))
            .collect();
        matching.sort_by_key(|(id, r)| Reverse(key(*id, r)));
        let expected = matching.first().map(|(id, _)| *id);

        for routes in &layouts {
            let prevailing = routes.prevailing(topic, event.severity, source);
            assert_eq!(prevailing.map(|e| e.id), expected, "{}", what());
            // `route` names the prevailing rule's entry (entry + 1), 0 for none.
            let route = routes.route(topic, event.severity, source);
            assert_eq!(
                route,
                prevailing.map_or(0, |e| e.index as u8 + 1),
                "{}",
                what()
            );
            if let Some(e) = prevailing {
                let (_, stored) = routes.versions().find(|(v, _)| v.index == e.index).unwrap();
                assert_eq!(stored, &matching[0].1, "{}", what());
            }

            // (c) explain: exactly the matching rules, in the oracle's order.
            let why = routes.explain(topic, event.severity, source);
            let explained: Vec<u32> = why.matching.iter().map(|m| m.rule.id).collect();
            let oracle: Vec<u32> = matching.iter().map(|(id, _)| *id).collect();
            assert_eq!(explained, oracle, "{}", what());
            for (m, (_, rule)) in why.matching.iter().zip(&matching) {
                assert_eq!(&m.spec, rule, "{}", what());
                assert_eq!(m.specificity, rule.specificity(), "{}", what());
            }
            let action = matching
                .first()
                .map_or(Action::Filters, |(_, r)| r.action.clone());
            assert_eq!(why.action, action, "{}", what());
            assert_eq!(why.reason.is_some(), matching.len() >= 2, "{}", what());
        }

        coverage.events += 1;
        if let [(a_id, a), rest @ ..] = matching.as_slice() {
            coverage.matched += 1;
            if let Some((b_id, b)) = rest.first() {
                coverage.several_matched += 1;
                let (ka, kb) = (key(*a_id, a), key(*b_id, b));
                if ka.0 != kb.0 {
                    coverage.by_priority += 1;
                } else if ka.1 != kb.1 {
                    coverage.by_specificity += 1;
                } else {
                    coverage.by_id += 1;
                }
            }
        }
    }
    coverage.tables += 1;
    coverage.rules += n as u64;
}

#[test]
fn the_prevailing_rule_is_the_oracles_whatever_the_table_order() {
    let mut coverage = Coverage::default();
    for seed in 0..SEEDS {
        check_table(seed, &mut coverage);
    }
    eprintln!(
        "routing_rules: {} tables ({} rules, {} layouts each), {} events: {} matched a rule, \
         {} several; the winner decided by priority {}, by specificity {}, by id {}",
        coverage.tables,
        coverage.rules,
        LAYOUTS,
        coverage.events,
        coverage.matched,
        coverage.several_matched,
        coverage.by_priority,
        coverage.by_specificity,
        coverage.by_id
    );
    assert_eq!(coverage.tables, SEEDS);
    assert_eq!(coverage.events, SEEDS * EVENTS_PER_TABLE as u64);
    // Not vacuous: matches are common and every tie-break decided some events.
    assert!(coverage.matched > coverage.events / 4);
    assert!(coverage.by_priority > 100);
    assert!(coverage.by_specificity > 100);
    assert!(coverage.by_id > 10);
}
