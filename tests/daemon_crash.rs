//! The daemon is SIGKILLed at random moments while a producer publishes and two
//! durable subscribers confirm; nothing acknowledged may be lost. See
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
            println!("daemon crash loop: {} SIGKILLs, {} events stored, {} deliveries ({} repeats after restarts), seed {seed}", s.kills, s.stored, s.delivered, s.repeats);
            assert_eq!(s.kills, cycles);
            assert!(s.stored >= cycles * 20);
        }
        Err(m) => panic!("{m}\nreproduce: HERALD_CRASH_SEED={seed} cargo test --test daemon_crash"),
    }
}
