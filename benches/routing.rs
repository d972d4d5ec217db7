//! Routing cost per event, beside a baseline measured in the same run.
//!
//! - `route/N`: `Routes::route` (what ingest runs for every event) over a table of N
//!   active rules, N = 1, 16, 256: a catch-all `>` at priority -1 and N-1 rules
//!   `fs.volK.>` delivering to `ops`, half of them with a source pattern. The events
//!   cycle over topics that each match the catch-all and one `fs.volK.>` rule (K within
//!   the table), so every rule is looked at and two match.
//! - `baseline/one_pattern_match`: one `matches_validated("fs.vol7.>", topic)`, the unit
//!   of which routing does O(rules): `route/N` over the baseline is the cost in pattern
//!   matches.
//!
//! `cargo bench --bench routing`. Routing allocates nothing per event; that is proven by
//! `tests/routing_alloc.rs`, not here.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use herald::event::{matches_validated, Severity};
use herald::routing::{Action, Routes, Rule};
use std::hint::black_box;

const TOPICS: usize = 64;

fn table(rules: u32) -> Routes {
    let mut all = vec![Rule {
        priority: -1,
        topic: ">".into(),
        source: None,
        most_severe: Severity::Emergency,
        least_severe: Severity::Debug,
        action: Action::Filters,
    }];
    for k in 1..rules {
        all.push(Rule {
            priority: 0,
            topic: format!("fs.vol{k}.>"),
            source: (k % 2 == 0).then(|| "fsd.>".into()),
            most_severe: Severity::Emergency,
            least_severe: Severity::Warning,
            action: Action::Deliver(vec!["ops".into()]),
        });
    }
    let entries: Vec<_> = all
        .iter()
        .enumerate()
        .map(|(i, rule)| rule.first_version(i as u32, i as u32 + 1))
        .collect();
    let (routes, problems) = Routes::load(entries.iter(), u64::from(rules));
    assert!(problems.is_empty(), "{problems:?}");
    routes
}

/// Topics that each match one `fs.volK.>` rule of a table of `rules` (and the
/// catch-all); with one rule, only the catch-all.
fn topics(rules: u32) -> Vec<Vec<u8>> {
    (0..TOPICS)
        .map(|i| {
            let k = 1 + i as u32 % rules.saturating_sub(1).max(1);
            format!("fs.vol{k}.write").into_bytes()
        })
        .collect()
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(1));
    for rules in [1u32, 16, 256] {
        let routes = table(rules);
        let topics = topics(rules);
        // Not a timing claim: a check that the table routes as described, so the
        // figures are for the work the header says.
        let routed = topics
            .iter()
            .filter(|t| routes.route(t, Severity::Error, b"fsd.disk") > 1)
            .count();
        assert_eq!(routed, if rules > 1 { TOPICS } else { 0 });
        let mut i = 0usize;
        group.bench_function(BenchmarkId::from_parameter(rules), |b| {
            b.iter(|| {
                i = (i + 1) % TOPICS;
                black_box(routes.route(
                    black_box(&topics[i]),
                    Severity::Error,
                    black_box(b"fsd.disk"),
                ))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("baseline");
    group.throughput(Throughput::Elements(1));
    let topics = topics(16);
    let mut i = 0usize;
    group.bench_function("one_pattern_match", |b| {
        b.iter(|| {
            i = (i + 1) % TOPICS;
            black_box(matches_validated(
                black_box(b"fs.vol7.>"),
                black_box(&topics[i]),
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
