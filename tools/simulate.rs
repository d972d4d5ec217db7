//! Runs the deterministic simulation of the whole daemon (`herald::sim::simulator`) for
//! as long as asked, seed after seed, both media, and prints what it checked.
//!
//! `cargo run --release --example simulate -- [--seconds N] [--seed S] [--disk|--flush]
//! [--steps N] [--probes N]`: `--probes` is power-cut images checked per step; with `--seed`, that one seed is run (a failure prints its seed).

use herald::sim::simulator::{simulate, SimulatorConfig};
use std::time::{Duration, Instant};

fn main() {
    let mut seconds = 60u64;
    let mut seed: Option<u64> = None;
    let mut modes = vec![false, true];
    let mut steps = 2000u64;
    let mut probes = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} takes a number"))
        };
        match a.as_str() {
            "--seconds" => seconds = value("--seconds"),
            "--seed" => seed = Some(value("--seed")),
            "--steps" => steps = value("--steps"),
            "--probes" => probes = value("--probes"),
            "--disk" => modes = vec![true],
            "--flush" => modes = vec![false],
            other => {
                eprintln!(
                    "unknown argument {other}; see the comment at the top of tools/simulate.rs"
                );
                std::process::exit(2);
            }
        }
    }
    let until = Instant::now() + Duration::from_secs(seconds);
    let first = seed.unwrap_or_else(rand::random);
    println!("seeds from {first}, {steps} steps each, for {seconds} s");
    let (mut runs, mut crash_states, mut events) = (0u64, 0u64, 0u64);
    let mut next = first;
    loop {
        for &disk in &modes {
            let config = SimulatorConfig {
                seed: next,
                steps,
                disk,
                probes_per_step: probes as f64,
            };
            match simulate(&config) {
                Ok(r) => {
                    if seed.is_some() {
                        println!("{}", serde_json::to_string(&r).unwrap_or_default());
                    }
                    runs += 1;
                    crash_states += r.crash_states;
                    events += r.stored;
                }
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            }
        }
        next = next.wrapping_add(1);
        if seed.is_some() || Instant::now() >= until {
            break;
        }
    }
    println!("{runs} simulations, {events} events stored, {crash_states} crash states checked: ok");
}
