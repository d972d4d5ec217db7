//! Kills the daemon with SIGKILL over and over while a producer and three subscribers
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
    // A fresh seed by default (this tool explores; tests/daemon_crash.rs keeps a fixed
    // one), printed before anything runs so a run that hangs or is killed still names it.
    println!("crashloop: {cycles} cycles, seed {seed}; reproduce: crashloop {cycles} {seed}");
    match crashloop::run(cycles, seed) {
        Ok(s) => println!("{s:?}, seed {seed}: no acknowledged event lost or stored twice; dead letters exactly the events given up on"),
        Err(m) => {
            eprintln!("FAILED: {m}");
            std::process::exit(1);
        }
    }
}
