//! Proves that routing an event allocates nothing: over a full rule table (255 rules,
//! the log's most) a counting global allocator watches the test thread while it does
//! per event what ingest and fanout do: `route` to pick the reference to store, then
//! `decide`, `rule_of` and `Decision::wants` for a subscription asking about it.

use herald::event::Severity;
use herald::routing::{Action, Decision, Routes, Rule};

#[path = "support/alloc_counter.rs"]
mod alloc_counter;

use alloc_counter::{allocations_during, assert_the_counter_counts, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const RULES: u32 = 255;

fn full_table() -> Routes {
    let rules: Vec<Rule> = (0..RULES)
        .map(|k| Rule {
            // The `>` rules lowest, so the specific ones (of every action) prevail.
            priority: if k % 4 == 3 { -2 } else { (k % 3) as i32 - 1 },
            topic: match k % 4 {
                0 => format!("fs.vol{k}.>"),
                1 => format!("fs.*.k{k}"),
                2 => format!("net.k{k}"),
                _ => ">".into(),
            },
            source: (k % 5 == 0).then(|| "fsd.>".into()),
            most_severe: Severity::Emergency,
            // The `>` rules (k % 4 == 3) take every severity: k = 3 matches everything.
            least_severe: if k % 2 == 0 || k % 4 == 3 {
                Severity::Debug
            } else {
                Severity::Warning
            },
            action: match k % 3 {
                0 => Action::Drop,
                1 => Action::Filters,
                _ => Action::Deliver(vec!["ops".into(), format!("t{k}")]),
            },
        })
        .collect();
    let entries: Vec<_> = rules
        .iter()
        .enumerate()
        .map(|(i, rule)| rule.first_version(i as u32, 1000 + i as u32))
        .collect();
    let (routes, problems) = Routes::load(entries.iter(), u64::from(RULES));
    assert!(problems.is_empty(), "{problems:?}");
    routes
}

#[test]
fn the_counter_sees_allocations_on_this_thread() {
    assert_the_counter_counts();
}

#[test]
fn routing_an_event_allocates_nothing() {
    let routes = full_table();
    // Built before counting: the events' names are the producer's bytes, not routing's.
    let topics: Vec<Vec<u8>> = (0..RULES)
        .flat_map(|k| {
            [
                format!("fs.vol{k}.write"),
                format!("fs.vol1.k{k}"),
                format!("net.k{k}"),
                format!("other.k{k}"),
            ]
        })
        .map(String::into_bytes)
        .collect();
    let sources: [&[u8]; 2] = [b"fsd.disk", b"app"];
    let ((routed, delivered, dropped), allocations) = allocations_during(|| {
        let (mut routed, mut delivered, mut dropped) = (0u64, 0u64, 0u64);
        for (i, topic) in topics.iter().enumerate() {
            let severity = Severity::ALL[i % Severity::ALL.len()];
            let route = routes.route(topic, severity, sources[i % 2]);
            let seq = i as u64 + 1;
            routed += u64::from(routes.rule_of(route, seq).is_some());
            let decision = routes.decide(route, seq);
            dropped += u64::from(decision == Decision::Drop);
            delivered += u64::from(decision.wants(Some(b"ops"), || false));
        }
        (routed, delivered, dropped)
    });
    assert_eq!(allocations, 0, "routing allocated {allocations} times");
    // Every kind of decision was reached, so the loop did the work it claims.
    let events = topics.len() as u64;
    assert!(
        routed == events,
        "a catch-all matches every event: {routed} of {events}"
    );
    assert!(
        delivered > 0 && dropped > 0 && delivered + dropped < events,
        "delivered {delivered}, dropped {dropped} of {events}"
    );
}
