//! A short run of the soak tool (`tools/soak.rs`): the real daemon under mixed load,
//! killed and restarted, every restart and the end checked.

#[path = "support/seed.rs"]
mod seed;
#[path = "support/soak.rs"]
mod soak;

#[test]
fn a_short_soak_with_kills_loses_nothing_acknowledged_stores_nothing_twice_and_stays_within_its_memory_bound(
) {
    // The soak tool (tools/soak.rs) for 25 s: mixed producers and subscribers, lifetimes
    // of up to 6 s ended by SIGKILL (or SIGTERM) at moments drawn from the seed, every
    // restart checked, then a drain and the final checks.
    let seed = seed::Seed::from_env(
        "HERALD_SOAK_SEED",
        soak::DEFAULT_SEED,
        "cargo test --release --test soak",
    );
    let config = soak::Config {
        duration: std::time::Duration::from_secs(25),
        seed: seed.value,
        rate: 1500.0,
        // A stall fills its ring (1.8 MB) in about two seconds.
        region_mib: 2,
        lifetime_max: std::time::Duration::from_secs(6),
        sync_disk: false,
        progress: None,
    };
    let outcome = soak::run(&config);
    let summary = soak::summary(&config, &outcome);
    eprintln!("{summary}");
    let s = &outcome.stats;
    assert_eq!(s.violations, 0, "{summary}");
    // The seed's lifetimes: the kills happened, and every restart was checked.
    assert!(s.kills > 0 && s.restarts >= s.kills, "{summary}");
    assert_eq!(s.recovery_checks, s.restarts, "{summary}");
    assert!(
        s.events_acked > 0 && s.deliveries > 0 && s.dead_letters > 0,
        "{summary}"
    );
}
