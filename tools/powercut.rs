//! Long-running power-cut exploration: the same explorer as `tests/power_cut.rs`,
//! for as long as asked.
//!
//! `cargo run --release --example powercut -- [--seconds N] [--seed S] [--images K]`
//! Prints progress every 10 s and the seed of any failure.

#[path = "../tests/support/powercut.rs"]
mod powercut;

use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("powercut [--seconds N (default 60)] [--seed S (default random)] [--images K (default 16)] [--operations N (default 600)]");
        return;
    }
    let seconds = arg("--seconds").unwrap_or(60);
    let mut seed = arg("--seed").unwrap_or_else(rand::random);
    // A fresh first seed by default (this tool explores; tests/power_cut.rs keeps fixed
    // ones). Each failure names its own seed; rerun it with --seed.
    println!("powercut: seeds from {seed} on, one after another; a failure names its seed (rerun with --seed <it>)");
    let images = arg("--images").unwrap_or(16) as u32;
    let operations = arg("--operations").unwrap_or(600);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut total = powercut::Stats::default();
    let mut last_print = Instant::now();
    let mut seeds = 0;
    while Instant::now() < deadline {
        match powercut::explore(seed, operations, images, 4) {
            Ok(stats) => total.add(&stats),
            Err(message) => {
                eprintln!("FAILED: {message}");
                std::process::exit(1);
            }
        }
        seed = seed.wrapping_add(1);
        seeds += 1;
        if last_print.elapsed() > Duration::from_secs(10) {
            println!(
                "{seeds} seeds, {} crash states, {} restarts",
                total.crash_states, total.restarts
            );
            last_print = Instant::now();
        }
    }
    println!(
        "done: {seeds} seeds, {} crash states checked ({} fence points, {} random points), {} events acknowledged, {} restarts; no failure",
        total.crash_states, total.fence_points, total.random_points, total.events_acked, total.restarts
    );
}
