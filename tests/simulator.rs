//! The deterministic simulation of the whole daemon (`herald::sim::simulator`), seed
//! after seed on both media, as a short run of what `tools/simulate.rs` runs for hours.
//! Each medium's run checks well over 50,000 power-cut images and asserts that the
//! faults it is meant to exercise (a full ring, a full dead-letter area, crashes of
//! both kinds) did happen, so that a change which quietly stops them cannot pass.
//!
//! Seeds are fixed and printed; `HERALD_SIM_SEED=N` starts from another.

use herald::sim::simulator::{simulate, SimulatorConfig, SimulatorReport};

const SEEDS: u64 = 14;
const STEPS: u64 = 1000;
const PROBES_PER_STEP: f64 = 4.0;

fn first_seed() -> u64 {
    std::env::var("HERALD_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x4e7a1d)
}

fn run(disk: bool) -> Vec<SimulatorReport> {
    let first = first_seed();
    let mode = if disk { "disk" } else { "flush" };
    println!(
        "{mode} mode: seeds {first}..{} (HERALD_SIM_SEED={first} to repeat)",
        first + SEEDS
    );
    (first..first + SEEDS)
        .map(|seed| {
            let config = SimulatorConfig {
                seed,
                steps: STEPS,
                disk,
                probes_per_step: PROBES_PER_STEP,
            };
            match simulate(&config) {
                Ok(report) => {
                    println!(
                        "seed {seed}: {} stored, {} delivered ({} redelivered), {} full, {} dead letters, {} purges, {} process crashes, {} power cuts, {} crash states",
                        report.stored,
                        report.delivered,
                        report.redelivered,
                        report.full,
                        report.dead_letters,
                        report.purges,
                        report.process_crashes,
                        report.power_cuts,
                        report.crash_states
                    );
                    report
                }
                Err(failure) => panic!("{failure}"),
            }
        })
        .collect()
}

fn exercised(reports: &[SimulatorReport]) {
    let sum = |f: fn(&SimulatorReport) -> u64| reports.iter().map(f).sum::<u64>();
    let crash_states = sum(|r| r.crash_states);
    println!("{crash_states} crash states checked in all");
    assert!(crash_states >= 50_000, "only {crash_states} crash states");
    assert!(sum(|r| r.stored) > 10_000, "few events were stored");
    assert!(sum(|r| r.full) > 0, "the ring never filled");
    assert!(sum(|r| r.redelivered) > 0, "nothing was redelivered");
    assert!(sum(|r| r.dead_letters) > 0, "nothing became a dead letter");
    assert!(sum(|r| r.purges) > 0, "the dead-letter area never filled");
    assert!(sum(|r| r.deduplicated) > 0, "no retry was deduplicated");
    assert!(sum(|r| r.process_crashes) > 0, "the process never crashed");
    assert!(sum(|r| r.power_cuts) > 0, "the power was never cut");
}

#[test]
fn the_daemon_keeps_every_promise_through_crashes_and_power_cuts_on_pmem() {
    exercised(&run(false));
}

#[test]
fn the_daemon_keeps_every_promise_through_crashes_and_power_cuts_on_a_disk() {
    exercised(&run(true));
}
