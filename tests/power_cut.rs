//! Simulated power loss at every fence and at random points between, with random
//! choices of which unfenced words survive. See `support/powercut.rs` for what is
//! checked. Reproduce a failure with `HERALD_POWERCUT_SEED=<seed> cargo test --test power_cut`;
//! run longer with `cargo run --release --example powercut -- --help`.

#[path = "support/powercut.rs"]
mod powercut;

#[test]
fn stored_events_survive_power_cut_at_every_fence_and_between() {
    let base: u64 = std::env::var("HERALD_POWERCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0001);
    let seeds: u64 = std::env::var("HERALD_POWERCUT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    eprintln!(
        "power-cut exploration: seeds {base}..{} (HERALD_POWERCUT_SEED, HERALD_POWERCUT_SEEDS); \
         a failure names its seed and how to rerun it",
        base + seeds
    );
    let mut total = powercut::Stats::default();
    for i in 0..seeds {
        let seed = base + i;
        match powercut::explore(seed, 400, 12, 3) {
            Ok(stats) => total.add(&stats),
            Err(message) => panic!("{message}\nreproduce: HERALD_POWERCUT_SEED={seed} HERALD_POWERCUT_SEEDS=1 cargo test --test power_cut"),
        }
    }
    println!(
        "power-cut exploration: {} crash states checked ({} fence cut points, {} random cut points, {} operations, {} events acknowledged, {} dead letters made, {} clean stops, {} cursors moved back over released events, {} spec changes, {} rule changes, {} events naming a rule, {} restarts from crash images), seeds {base}..{}",
        total.crash_states,
        total.fence_points,
        total.random_points,
        total.operations,
        total.events_acked,
        total.dead_letters,
        total.clean_stops,
        total.resets_back,
        total.spec_changes,
        total.rule_changes,
        total.routed_events,
        total.restarts,
        base + seeds
    );
    assert!(
        total.crash_states >= 100_000,
        "explored too little: {total:?}"
    );
    assert!(total.restarts > 0 && total.events_acked > 1000, "{total:?}");
    assert!(
        total.dead_letters > 100
            && total.clean_stops > 10
            && total.resets_back > 10
            && total.spec_changes > 10
            && total.rule_changes > 50
            && total.routed_events > 500,
        "{total:?}"
    );
}
