//! A steady-state daemon turn allocates nothing: the whole daemon core runs in this
//! thread over the simulated reactor and a real mapped region, and a counting global
//! allocator watches every turn of publish → store → deliver → confirm → release.

#[path = "support/alloc_counter.rs"]
mod alloc_counter;
#[path = "support/sim.rs"]
mod sim;

use alloc_counter::{allocations_during, assert_the_counter_counts, CountingAllocator};
use herald::delivery::access::{Policy, Rule, Subject};
use herald::delivery::DaemonConfig;
use herald::log::StoreOptions;
use herald::metrics::Exchange;
use herald::protocol::{EventBatch, Frame};
use herald::reactor::sim::SimNet;
use herald::reactor::PeerCredentials;
use herald::sim::SimNode;
use sim::{confirm, producer_as, subscriber_as, Got};
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn the_counter_sees_allocations_on_this_thread() {
    assert_the_counter_counts();
}

#[test]
fn a_steady_state_daemon_turn_allocates_nothing() {
    steady_state_turns_allocate_nothing(sim::config(), SimNet::DEFAULT_PEER, None);
}

/// The same under an access policy, its producer and subscriber another user whose
/// every publish and subscribe is checked against the rules naming it.
#[test]
fn a_steady_state_turn_under_an_access_policy_allocates_nothing() {
    let rule = |publish: &str, subscribe: &str| Rule {
        subject: Subject::Uid(1001),
        label: "uid 1001".into(),
        publish: vec!["net.>".into(), publish.into()],
        subscribe: vec![subscribe.into()],
        subscriptions: vec!["ops".into()],
        admin: false,
    };
    let policy = Policy::new(
        vec![rule("audit.*", "net.>"), rule("fs.*.error", "fs.>")],
        vec![0],
    )
    .expect("policy");
    let config = DaemonConfig {
        access: Some(Arc::new(policy)),
        ..sim::config()
    };
    let peer = PeerCredentials {
        pid: 9,
        uid: 1001,
        gid: 1001,
    };
    steady_state_turns_allocate_nothing(config, peer, None);
}

#[test]
fn a_metrics_snapshot_taken_every_turn_allocates_nothing() {
    let exchange = Arc::new(Exchange::new(0));
    steady_state_turns_allocate_nothing(
        sim::config(),
        SimNet::DEFAULT_PEER,
        Some(exchange.clone()),
    );
    // The snapshots were taken: one per turn asked for, the last one showing the work.
    let fetched = exchange.fetch(Duration::ZERO);
    assert!(
        fetched.snapshot.number > 2_000,
        "{}",
        fetched.snapshot.number
    );
    assert!(fetched.snapshot.counters.stored_events > 5_000);
    assert_eq!(fetched.snapshot.subscriptions.len(), 1);
}

/// 1000 rounds of publish, batch, keyed publish, deliver and confirm after a warm-up,
/// as `peer`; with `metrics`, the exporter asks for a snapshot before every turn.
fn steady_state_turns_allocate_nothing(
    config: DaemonConfig,
    peer: PeerCredentials,
    metrics: Option<Arc<Exchange>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let log = herald::log::create_file(
        &dir.path().join("region.pmem"),
        2 << 20,
        &StoreOptions::default(),
        3,
    )
    .expect("region");
    let net = sim::net();
    let mut node = SimNode::start(&net, sim::SOCKET, config, log, true).expect("start");
    if let Some(exchange) = &metrics {
        let unbound = "127.0.0.1:0".parse().unwrap();
        node.core_mut().set_metrics(exchange.clone(), unbound);
    }
    // As the exporter does, from this thread: the request is made outside the count.
    let ask = || {
        if let Some(exchange) = &metrics {
            drop(exchange.fetch(Duration::ZERO));
        }
    };
    let (mut sub, subscribed, _) = subscriber_as(&mut node, "ops", 64, "fs.>", peer);
    assert!(
        matches!(subscribed, Got::Subscribed { .. }),
        "{subscribed:?}"
    );
    let mut p = producer_as(&mut node, "fsd", peer);
    let payload = [7u8; 200];
    let plain = sim::event("fs.disk.error", &payload);
    let mut keys = [[0u8; 8]; 4];
    let mut got = Vec::with_capacity(4096);
    let mut cycle = |node: &mut SimNode<_>, round: u64, counted: &mut u64| {
        // Single publishes, a batch, and keyed events (the dedupe window's insert and
        // lookup are on this path).
        assert!(p.send(&Frame::Publish {
            correlation: round * 10,
            event: plain,
        }));
        for (i, key) in keys.iter_mut().enumerate() {
            *key = (round * 4 + i as u64).to_le_bytes();
        }
        let batch: [herald::protocol::Event<'_>; 4] = std::array::from_fn(|i| {
            let mut keyed = plain;
            keyed.key = &keys[i];
            keyed
        });
        assert!(p.send(&Frame::PublishBatch {
            correlation: round * 10 + 1,
            events: EventBatch::from_events(&batch),
        }));
        let mut delivered = 0;
        let mut stored = 0;
        for _ in 0..20 {
            ask();
            let (result, allocations) = allocations_during(|| node.turn());
            result.expect("turn");
            *counted += allocations;
            got.clear();
            sim::received(&mut p, &mut got);
            stored += got
                .iter()
                .filter(|g| matches!(g, Got::Stored { .. }))
                .count();
            got.clear();
            sim::received(&mut sub, &mut got);
            for g in &got {
                if let Got::Deliver { seq, .. } = g {
                    confirm(&mut sub, *seq);
                    delivered += 1;
                }
            }
            if stored == 2 && delivered == 5 {
                break;
            }
        }
        assert_eq!((stored, delivered), (2, 5), "round {round}");
    };
    let mut warm_up = 0;
    for round in 0..20 {
        cycle(&mut node, round, &mut warm_up);
    }
    let mut allocations = 0;
    for round in 20..1020 {
        cycle(&mut node, round, &mut allocations);
    }
    // A few more turns settle the last confirmations.
    for _ in 0..5 {
        ask();
        let (result, n) = allocations_during(|| node.turn());
        result.expect("turn");
        allocations += n;
    }
    assert_eq!(allocations, 0, "steady-state turns allocated");
    let log = node.core().log();
    assert_eq!(
        log.head(),
        log.tail(),
        "everything was confirmed and released"
    );
    assert!(
        log.tail().0 > log.geometry().ring.slot_count,
        "the ring wrapped during the test"
    );
}
