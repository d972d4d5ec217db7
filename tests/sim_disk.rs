//! The durability gate of a region synced to disk, in one process over the simulated
//! reactor and a simulated disk: no `Stored` before the sync that covers it has
//! completed, and no cursor durable ahead of what it releases, whatever image a power
//! cut leaves.

#[path = "support/sim.rs"]
mod sim;

use herald::log::{Log, LogConfig};
use herald::pmem::sim_disk::SimDisk;
use herald::protocol::Frame;
use herald::sim::SimNode;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sim::{confirm, producer, received, subscriber, Got};
use std::collections::BTreeSet;
use std::time::Duration;

fn disk_node(net: &herald::reactor::sim::SimNet) -> SimNode<SimDisk> {
    let log = Log::format(SimDisk::new(1 << 20), &LogConfig::default(), 7).expect("format");
    assert!(log.deferred(), "a simulated disk is synced by the daemon");
    SimNode::start(net, sim::SOCKET, sim::config(), log, true).expect("start")
}

/// Opens a power-cut image and asserts its checks find no problem (`at` says where).
fn open_clean(image: Vec<u8>, at: &str) -> Log<SimDisk> {
    let (log, report) =
        Log::open(SimDisk::from_image(image), &mut |_, _| {}).expect("a crash image opens");
    let findings = herald::subscription::check::check(&report, log.subscriptions());
    let problems: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == herald::subscription::check::Severity::Problem)
        .collect();
    assert!(problems.is_empty(), "{at}: {problems:?}");
    log
}

/// The events a region image holds, by seq (what a restart would find).
fn stored_in(image: Vec<u8>) -> BTreeSet<u64> {
    let (log, _) = Log::open(SimDisk::from_image(image), &mut |_, _| {}).expect("the image opens");
    log.events_since(herald::log::Seq(0), u64::MAX)
        .map(|e| e.seq.0)
        .collect()
}

#[test]
fn no_stored_is_sent_before_the_sync_that_covers_it_completes() {
    let net = sim::net();
    net.set_sync_delay(Duration::from_millis(3));
    let mut node = disk_node(&net);
    let mut p = producer(&mut node, "fsd");
    let mut acknowledged = BTreeSet::new();
    let mut got = Vec::new();
    let mut next_correlation = 1;
    for turn in 0..1000 {
        // A publish every turn: many arrive while a sync is under way.
        if next_correlation <= 100 {
            assert!(p.send(&Frame::Publish {
                correlation: next_correlation,
                event: sim::event("fs.a", b"payload"),
            }));
            next_correlation += 1;
        }
        node.turn().expect("turn");
        got.clear();
        received(&mut p, &mut got);
        for g in &got {
            let Got::Stored { first, .. } = g else {
                panic!("{g:?}")
            };
            acknowledged.insert(*first);
        }
        // Everything acknowledged is in the durable image: a power cut now keeps it.
        let durable = stored_in(node.core().log().medium().durable_image());
        let missing: Vec<_> = acknowledged.difference(&durable).collect();
        assert!(
            missing.is_empty(),
            "turn {turn}: stored {missing:?} before its sync"
        );
    }
    assert_eq!(acknowledged.len(), 100, "every publish was answered");
    let syncs = node.core().log().medium().syncs();
    assert!(
        syncs < 100,
        "group commits share syncs while one is under way: {syncs} syncs for 100 events"
    );
}

#[test]
fn whatever_a_power_cut_leaves_opens_cleanly_with_every_acknowledged_event_and_no_cursor_ahead() {
    let seed: u64 = std::env::var("HERALD_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    println!("seed {seed} (HERALD_SIM_SEED={seed} to repeat)");
    let mut rng = SmallRng::seed_from_u64(seed);
    let net = sim::net();
    net.set_sync_delay(Duration::from_micros(700));
    let mut node = disk_node(&net);
    let (mut sub, _, _) = subscriber(&mut node, "ops", 16);
    let mut p = producer(&mut node, "fsd");
    let mut acknowledged = BTreeSet::new();
    let mut confirmed = BTreeSet::new();
    let mut got = Vec::new();
    let mut images = 0;
    for turn in 0..3000u64 {
        if rng.gen_bool(0.3) {
            let payload = [turn as u8; 1000];
            assert!(p.send(&Frame::Publish {
                correlation: turn + 1,
                event: sim::event("fs.a", &payload),
            }));
        }
        node.turn().expect("turn");
        got.clear();
        received(&mut p, &mut got);
        for g in &got {
            if let Got::Stored { first, .. } = g {
                acknowledged.insert(*first);
            }
        }
        got.clear();
        received(&mut sub, &mut got);
        for g in &got {
            if let Got::Deliver { seq, .. } = g {
                // Confirmed at once, so cursors keep moving and slots are reused.
                confirm(&mut sub, *seq);
                confirmed.insert(*seq);
            }
        }
        if turn % 10 == 0 {
            // A power cut now: any mix of unsynced pages survives.
            let image = node.core().log().medium().crash_image(&mut rng, 0.5);
            let log = open_clean(image, &format!("seed {seed} turn {turn}"));
            // Every acknowledged event is there, unless it was confirmed (then its
            // slot may have been reused).
            let ops = log.subscription_by_name(b"ops").expect("ops is durable");
            let kept: BTreeSet<u64> = log
                .events_since(herald::log::Seq(0), u64::MAX)
                .map(|e| e.seq.0)
                .collect();
            for seq in &acknowledged {
                if *seq >= ops.cursor {
                    assert!(kept.contains(seq), "seed {seed} turn {turn}: lost {seq}");
                } else {
                    assert!(
                        confirmed.contains(seq),
                        "seed {seed} turn {turn}: the cursor ({}) passed {seq}, never confirmed",
                        ops.cursor
                    );
                }
            }
            images += 1;
        }
    }
    assert!(acknowledged.len() > 500, "{}", acknowledged.len());
    let log = node.core().log();
    assert!(
        log.tail().0 > log.geometry().ring.slot_count,
        "the ring wrapped: slots were reused"
    );
    println!(
        "{images} crash images checked, {} events acknowledged",
        acknowledged.len()
    );
}

#[test]
fn a_slot_is_reused_only_once_the_cursor_that_released_it_is_durable() {
    let seed: u64 = std::env::var("HERALD_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    println!("seed {seed} (HERALD_SIM_SEED={seed} to repeat)");
    let mut rng = SmallRng::seed_from_u64(seed);
    let net = sim::net();
    net.set_sync_delay(Duration::from_millis(3));
    let mut node = disk_node(&net);
    // A subscriber that settles in bursts: the ring fills, then a burst of
    // confirmations frees it, and publishes waiting for room land in the freed slots
    // at once, while the cursor that freed them is being synced.
    let (mut sub, _, _) = subscriber(&mut node, "slow", 4096);
    let mut p = producer(&mut node, "fsd");
    let mut delivered: Vec<u64> = Vec::new();
    let mut got = Vec::new();
    let mut fulls = 0;
    let mut checked = 0;
    let payload = [7u8; 1000];
    for turn in 0..4000u64 {
        assert!(p.send(&Frame::Publish {
            correlation: turn + 1,
            event: sim::event("fs.a", &payload),
        }));
        node.turn().expect("turn");
        got.clear();
        received(&mut p, &mut got);
        fulls += got
            .iter()
            .filter(|g| matches!(g, Got::Error { code: 5, .. }))
            .count();
        got.clear();
        received(&mut sub, &mut got);
        delivered.extend(got.iter().filter_map(|g| match g {
            Got::Deliver { seq, .. } => Some(*seq),
            _ => None,
        }));
        if turn % 1000 == 999 && !delivered.is_empty() {
            assert!(sub.send(&Frame::Confirm {
                first_seq: herald::protocol::Seq(delivered[0]),
                last_seq: herald::protocol::Seq(*delivered.last().unwrap()),
            }));
            delivered.clear();
        }
        // Power cuts while freed slots are being reused (the turns after a burst of
        // confirmations), three images a turn.
        let cuts = if turn % 1000 < 400 { 3 } else { 0 };
        for _ in 0..cuts {
            let image = node.core().log().medium().crash_image(&mut rng, 0.5);
            open_clean(image, &format!("seed {seed} turn {turn}"));
            checked += 1;
        }
    }
    assert!(fulls > 100, "the ring was full many times: {fulls}");
    println!("{checked} crash images checked, {fulls} publishes found the ring full");
}

/// The durable cursor of subscription `name` in what a power cut now would leave.
fn durable_cursor(node: &SimNode<SimDisk>, name: &str) -> u64 {
    let image = node.core().log().medium().durable_image();
    let (log, _) = Log::open(SimDisk::from_image(image), &mut |_, _| {}).expect("the image opens");
    log.subscription_by_name(name.as_bytes())
        .map(|s| s.cursor)
        .expect("the subscription is durable")
}

/// Runs turns until the daemon has read a confirmation and written its cursor record
/// (at most 5: a failure detector).
fn cursor_written(node: &mut SimNode<SimDisk>) {
    for _ in 0..5 {
        node.turn().expect("turn");
        if node.core().log().only_cursors_unsynced() {
            return;
        }
    }
    panic!("the confirmation wrote no cursor record");
}

#[test]
fn a_confirmation_rides_on_the_next_commits_sync_or_is_synced_on_its_own_after_a_delay() {
    let net = sim::net();
    net.set_sync_delay(Duration::from_millis(3));
    let mut node = disk_node(&net);
    let (mut sub, _, _) = subscriber(&mut node, "ops", 16);
    let mut p = producer(&mut node, "fsd");
    let first = sim::publish(&mut node, &mut p, 1, b"one");
    let got = sim::turns_until(&mut node, &mut sub, 20, |g| !g.is_empty());
    assert!(
        matches!(got[0], Got::Deliver { seq, .. } if seq == first),
        "{got:?}"
    );
    let syncs = node.core().log().medium().syncs();

    // Confirmed, and an event published right behind the confirmation: the turn that
    // reads the confirmation writes the cursor record and, since nobody waits for
    // it and the ring is quiet, begins no sync of its own; the publish's sync, a turn
    // later, carries it: one sync for both.
    confirm(&mut sub, first);
    node.turn().expect("turn"); // the confirmation arrives
    p.send(&Frame::Publish {
        correlation: 2,
        event: sim::event("fs.sim", b"two"),
    });
    cursor_written(&mut node);
    assert_eq!(
        node.core().log().medium().syncs(),
        syncs,
        "a sync for a cursor alone"
    );
    assert!(
        durable_cursor(&node, "ops") <= first,
        "the cursor is not durable yet"
    );
    let got = sim::turns_until(&mut node, &mut p, 10, |g| !g.is_empty());
    let Got::Stored { first: second, .. } = got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(node.core().log().medium().syncs(), syncs + 1);
    assert!(!node.core().log().only_cursors_unsynced());
    assert_eq!(durable_cursor(&node, "ops"), first + 1);

    // With nothing more published, the loop wakes for it and syncs the cursor on its
    // own once the delay (200 ms of the simulator's clock) has passed.
    let got = sim::turns_until(&mut node, &mut sub, 20, |g| !g.is_empty());
    assert!(
        matches!(got[0], Got::Deliver { seq, .. } if seq == second),
        "{got:?}"
    );
    confirm(&mut sub, second);
    cursor_written(&mut node);
    let confirmed_at = net.now_ns();
    for _ in 0..20 {
        node.turn().expect("turn");
        if !node.core().log().only_cursors_unsynced() && !node.core().log().sync_in_flight() {
            break;
        }
    }
    assert_eq!(node.core().log().medium().syncs(), syncs + 2);
    assert_eq!(durable_cursor(&node, "ops"), second + 1);
    let waited = net.now_ns() - confirmed_at;
    assert!(
        (190_000_000..1_000_000_000).contains(&waited),
        "synced {waited} ns after the confirmation"
    );
}

/// Makes everything written so far durable, as the daemon's sync does.
fn sync(log: &mut Log<SimDisk>) {
    if let Some((number, _)) = log.begin_sync() {
        log.end_sync(number, Ok(())).expect("sync");
    }
}

#[test]
fn an_operators_reset_or_pause_is_durable_on_a_disk_once_it_returns() {
    let mut rng = SmallRng::seed_from_u64(0x5e7);
    let mut log = Log::format(SimDisk::new(1 << 20), &LogConfig::default(), 7).expect("format");
    let mut spec = [0u8; herald::log::layout::SUBSCRIPTION_SPEC_BYTES_MAX];
    let len = herald::subscription::SubscriptionSpec::match_all().encode(&mut spec);
    let a = log.create_subscription(b"a", &spec[..len]).unwrap();
    let payloads: Vec<String> = (0..40).map(|i| format!("event {i}")).collect();
    for p in &payloads {
        log.append(&herald::log::EventRef {
            topic: b"fs.a",
            severity: herald::log::Severity::Error,
            source: b"s",
            flags: 0,
            key: b"",
            payload: p.as_bytes(),
            timestamp_ns: 1,
            route: 0,
        })
        .unwrap();
    }
    sync(&mut log);
    // Released, its cursor record written and not yet synced: the reset must not
    // leave both of its records unsynced.
    let tail = log.tail();
    log.release(&[(a, tail)]).unwrap();
    let first = log.reset_cursor(a, herald::log::Start::First).unwrap();
    assert_eq!(first, herald::log::Seq(1));
    let check = |log: &Log<SimDisk>, rng: &mut SmallRng, cursor: u64, paused: bool| {
        for i in 0..30 {
            let keep: f64 = rng.gen();
            let image = log.medium().crash_image(rng, keep);
            let opened = open_clean(image, &format!("image {i}"));
            let s = opened.subscription_by_name(b"a").expect("a is durable");
            assert_eq!((s.cursor, s.paused), (cursor, paused), "image {i}");
            let held: Vec<Vec<u8>> = opened
                .events_from(herald::log::Seq(cursor))
                .map(|e| e.payload.to_vec())
                .collect();
            let want: Vec<Vec<u8>> = payloads[(cursor - 1) as usize..]
                .iter()
                .map(|p| p.clone().into_bytes())
                .collect();
            assert_eq!(held, want, "image {i}");
        }
    };
    check(&log, &mut rng, 1, false);
    log.set_paused(a, true).unwrap();
    check(&log, &mut rng, 1, true);
    let to = log.reset_cursor(a, herald::log::Start::Seq(25)).unwrap();
    check(&log, &mut rng, to.0, true);
}

#[test]
fn changed_filters_and_rule_changes_are_durable_on_a_disk_once_they_return() {
    let mut rng = SmallRng::seed_from_u64(0x5e75);
    let mut log = Log::format(SimDisk::new(1 << 20), &LogConfig::default(), 7).expect("format");
    let encode = |spec: herald::subscription::SubscriptionSpec| {
        let mut bytes = [0u8; herald::log::layout::SUBSCRIPTION_SPEC_BYTES_MAX];
        let len = spec.encode(&mut bytes);
        bytes[..len].to_vec()
    };
    let before = encode(herald::subscription::SubscriptionSpec::match_all());
    let after = encode(herald::subscription::SubscriptionSpec::match_all().with_policy(5000, 3));
    assert_ne!(before, after);
    let a = log.create_subscription(b"a", &before).unwrap();
    log.append(&herald::log::EventRef {
        topic: b"fs.a",
        severity: herald::log::Severity::Error,
        source: b"s",
        flags: 0,
        key: b"",
        payload: b"unsynced when the filters change",
        timestamp_ns: 1,
        route: 0,
    })
    .unwrap();
    // Each is checked over many power-cut images of the moment it returned.
    let check = |log: &Log<SimDisk>, rng: &mut SmallRng, spec: &[u8], rules: &[(u32, u32)]| {
        for i in 0..30 {
            let keep: f64 = rng.gen();
            let opened = open_clean(log.medium().crash_image(rng, keep), &format!("image {i}"));
            let s = opened.subscription_by_name(b"a").expect("a is durable");
            assert_eq!(s.spec(), spec, "image {i}");
            assert_eq!(s.cursor, 1, "image {i}");
            let mut active: Vec<(u32, u32)> = opened
                .rule_entries()
                .filter(|e| e.is_active())
                .map(|e| (e.id, e.version))
                .collect();
            active.sort();
            assert_eq!(active, rules, "image {i}");
        }
    };
    log.change_spec(a, &after).unwrap();
    check(&log, &mut rng, &after, &[]);
    let first = log.add_rule(b"rule one, version 1").unwrap();
    check(&log, &mut rng, &after, &[(first.id, 1)]);
    log.change_rule(first.id, b"rule one, version 2").unwrap();
    let second = log.add_rule(b"rule two").unwrap();
    check(&log, &mut rng, &after, &[(first.id, 2), (second.id, 1)]);
    log.delete_rule(first.id).unwrap();
    check(&log, &mut rng, &after, &[(second.id, 1)]);
}
