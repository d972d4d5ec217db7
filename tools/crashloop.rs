//! Kills the daemon with SIGKILL over and over while a producer and two subscribers
//! work, for as long as asked; the same checks as `tests/daemon_crash.rs`.
//!
//! `cargo build --release && cargo run --release --example crashloop -- [CYCLES] [SEED]`
//! (uses target/release/herald, or the binary named by HERALD_BIN).

#[path = "../tests/support/crashloop.rs"]
mod crashloop;

fn main() {
    let mut args = std::env::args().skip(1);
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("crashloop [CYCLES (default 500)] [SEED (default random)]");
        return;
    }
    let cycles = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let seed = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(rand::random);
    match crashloop::run(cycles, seed) {
        Ok(s) => println!("{} SIGKILLs, {} events stored, {} deliveries ({} repeats after restarts), seed {seed}: no acknowledged event lost", s.kills, s.stored, s.delivered, s.repeats),
        Err(m) => {
            eprintln!("FAILED: {m}");
            std::process::exit(1);
        }
    }
}
