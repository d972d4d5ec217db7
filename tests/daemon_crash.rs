//! The daemon is SIGKILLed at random moments while a producer publishes (retrying with
//! idempotency keys after each kill) and three durable subscribers confirm, reject, nak
//! and miss deadlines; nothing acknowledged may be lost or stored twice, and the dead
//! letters are exactly the events given up on. See
//! `support/crashloop.rs` for the checks; `tools/crashloop.rs` runs it for longer.

#[path = "support/crashloop.rs"]
mod crashloop;

#[test]
fn acknowledged_events_survive_fifty_sigkills_of_the_daemon() {
    let seed: u64 = std::env::var("HERALD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let cycles = std::env::var("HERALD_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    match crashloop::run(cycles, seed) {
        Ok(s) => {
            println!("daemon crash loop: {s:?}, seed {seed}");
            assert_eq!(s.kills, cycles);
            assert!(s.stored >= cycles * 20);
            // The failure paths really ran while it killed.
            assert!(s.retried > 0, "no publish was retried after a kill: {s:?}");
            assert!(s.deduplicated > 0, "no retry found its original: {s:?}");
            assert!(s.redeliveries > 0, "no deadline or nak redelivery: {s:?}");
            assert!(s.dead_letters > 0, "no dead letters: {s:?}");
        }
        Err(m) => panic!("{m}\nreproduce: HERALD_CRASH_SEED={seed} cargo test --test daemon_crash"),
    }
}
