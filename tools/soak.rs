//! Mixed load against the real daemon for as long as asked, the daemon SIGKILLed at
//! moments drawn from a seed and restarted, checked as it goes and at the end
//! (`tests/support/soak.rs` says what). Prints a summary and exits 1 on any violation,
//! keeping the data directory and the daemon's log.
//!
//! `cargo build --release && cargo run --release --example soak -- --hours 4`
//! (uses target/release/herald, or the binary named by HERALD_BIN).

#[path = "../tests/support/soak.rs"]
mod soak;

use std::time::Duration;

const USAGE: &str = "\
soak: mixed load against `herald serve`, SIGKILLed and restarted at moments drawn from a
seed; checks that nothing acknowledged is lost or stored twice and that every stored
event is confirmed or a dead letter; prints a summary; exits 1 on any violation.

Usage: soak [--hours N | --minutes N | --seconds N] [--seed SEED] [--rate N]
            [--lifetime-max SECONDS] [--region-mib N] [--sync flush|disk]

  --hours, --minutes, --seconds
        how long to run before the final drain (default 5 minutes)
  --seed SEED
        chooses every lifetime's length and ending and every client's choices
        (default HERALD_SOAK_SEED, else 20151); a failure names it
  --rate N
        events per second the producers aim at together (default 2000)
  --lifetime-max SECONDS
        the longest the daemon runs before a kill (default 120); most lifetimes are
        under a sixth of it, a tenth under a second
  --region-mib N
        the region's size (default 16): the smaller, the sooner a stalled subscriber
        fills the ring
  --sync flush|disk
        `herald serve --sync`: flush (default) or disk (fdatasync before `stored`)

Uses target/<profile>/herald beside this tool, or the binary HERALD_BIN names. The
soak keeps about 11 bytes per event published (2 hours at 2000/s: 160 MB).";

fn parse() -> Result<soak::Config, String> {
    let seed = match std::env::var("HERALD_SOAK_SEED") {
        Ok(text) => number(&text)?,
        Err(_) => soak::DEFAULT_SEED,
    };
    let mut config = soak::Config {
        duration: Duration::from_secs(300),
        seed,
        rate: 2000.0,
        region_mib: 16,
        lifetime_max: Duration::from_secs(120),
        sync_disk: false,
        progress: Some(Duration::from_secs(30)),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--hours" => config.duration = Duration::from_secs(3600 * number(&value()?)?),
            "--minutes" => config.duration = Duration::from_secs(60 * number(&value()?)?),
            "--seconds" => config.duration = Duration::from_secs(number(&value()?)?),
            "--seed" => config.seed = number(&value()?)?,
            "--rate" => match number(&value()?)? {
                0 => return Err("--rate must be at least 1".into()),
                n => config.rate = n as f64,
            },
            "--region-mib" => match number(&value()?)? {
                0..2 => return Err("--region-mib must be at least 2".into()),
                n => config.region_mib = n,
            },
            "--lifetime-max" => match number(&value()?)? {
                0 => return Err("--lifetime-max must be at least 1".into()),
                n => config.lifetime_max = Duration::from_secs(n),
            },
            "--sync" => match value()?.as_str() {
                "flush" => config.sync_disk = false,
                "disk" => config.sync_disk = true,
                other => return Err(format!("--sync is flush or disk, not {other:?}")),
            },
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(config)
}

fn number(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))
}

fn main() {
    let config = match parse() {
        Ok(c) => c,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("soak: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let binary = soak::daemon::herald_binary();
    if !binary.exists() {
        eprintln!(
            "soak: no daemon at {} (build it with `cargo build --release`, or name one with \
             HERALD_BIN)",
            binary.display()
        );
        std::process::exit(2);
    }
    // Printed before anything runs, so that a run that is stopped still names it.
    println!(
        "soak: seed {}, {:?} then a drain, about {} events/s, lifetimes up to {:?}, a {} MiB \
         region, --sync {}, {}",
        config.seed,
        config.duration,
        config.rate,
        config.lifetime_max,
        config.region_mib,
        soak::sync_name(&config),
        binary.display()
    );
    let outcome = soak::run(&config);
    print!("{}", soak::summary(&config, &outcome));
    if outcome.stats.violations > 0 {
        std::process::exit(1);
    }
}
