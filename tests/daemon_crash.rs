//! The daemon is SIGKILLed at random moments while a producer publishes (retrying with
//! idempotency keys after each kill), three durable subscribers confirm, reject, nak
//! and miss deadlines, and a work-queue group of two confirms; nothing acknowledged may
//! be lost or stored twice, the dead letters are exactly the events given up on, and
//! the group settles every event. See
//! `support/crashloop.rs` for the checks; `tools/crashloop.rs` runs it for longer.
//!
//! The seed (fixed by default; `HERALD_CRASH_SEED` overrides it, and it is printed at
//! the start and on failure) chooses when each kill comes, counted in acknowledged
//! events, and whether the producer's connection is cut first. It cannot fix how the
//! daemon's and the clients' threads interleave up to that moment, so a seed
//! reproduces a run's choices, not its exact schedule; every check holds for any
//! schedule.

#[path = "support/crashloop.rs"]
mod crashloop;
#[path = "support/seed.rs"]
mod seed;

/// The seed of a run without `HERALD_CRASH_SEED`.
const DEFAULT_SEED: u64 = 0x5eed_c4a5_0001;

#[test]
fn acknowledged_events_survive_fifty_sigkills_of_the_daemon() {
    let cycles = std::env::var("HERALD_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let seed = seed::Seed::from_env(
        "HERALD_CRASH_SEED",
        DEFAULT_SEED,
        &format!("HERALD_CRASH_CYCLES={cycles} cargo test --test daemon_crash"),
    );
    match crashloop::run(cycles, seed.value) {
        Ok(s) => {
            println!("daemon crash loop: {s:?}, seed {}", seed.value);
            assert_eq!(s.kills, cycles);
            assert!(s.stored >= cycles * 20);
            // The failure paths really ran while it killed.
            assert!(s.retried > 0, "no publish was retried after a kill: {s:?}");
            assert!(s.deduplicated > 0, "no retry found its original: {s:?}");
            assert!(s.redeliveries > 0, "no deadline or nak redelivery: {s:?}");
            assert!(s.dead_letters > 0, "no dead letters: {s:?}");
            assert!(
                s.handed_over > 0,
                "no event went from one crew member to the other: {s:?}"
            );
            assert_eq!(s.rule_changes, cycles + 1);
            assert!(
                s.routed_to_even > 0,
                "no odd event reached even through a rule: {s:?}"
            );
        }
        Err(m) => panic!("{m}"),
    }
}
