//! `herald bench`: the daemon's speed beside a same-run baseline (a bare Unix-socket
//! echo round trip), through the normal client library and daemon binary.

use crate::peers;
use hdrhistogram::Histogram;
use herald::client::Client;
use herald::measure::{
    echo_round_trips, event, histogram, latency, warmup_count, DaemonProcess, Pacer,
};
use herald::protocol::{Role, Severity};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `herald bench`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    /// Round trips per latency measurement.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    latency_events: u64,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    seconds: f64,
    /// Small counts and short runs (a smoke test of the harness, not a measurement).
    #[arg(long)]
    quick: bool,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// The daemon's I/O backends to measure, each beside the same echo floor.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "io-uring,epoll",
        value_name = "BACKEND,..."
    )]
    io: Vec<crate::serve::IoMode>,
}

#[derive(clap::Subcommand)]
enum BenchCommand {
    /// Run the same workloads against herald and the systems users would pick instead
    /// (Redis Streams, NATS JetStream, PMDK libpmemlog) and two floors, and print one
    /// table with each system's durability: runs the herald-bench-peers program.
    #[command(after_help = peers::AFTER_HELP)]
    Peers(peers::PeersArgs),
}

/// The topic of `herald bench`'s events.
const TOPIC: &str = "bench.event";

/// The steady load of the end-to-end measurement: far below saturation.
const E2E_RATE_PER_SECOND: u64 = 5_000;

#[derive(serde::Serialize)]
struct Throughput {
    io: &'static str,
    producers: usize,
    batch: usize,
    payload_bytes: usize,
    events_per_second: f64,
}

fn publish_latency(socket: &Path, payload: usize, n: u64) -> anyhow::Result<Histogram<u64>> {
    let mut c = Client::connect(socket, Role::Producer, "bench")?;
    let data = vec![0x5au8; payload];
    let mut h = histogram();
    let warmup = warmup_count(n);
    for i in 0..n + warmup {
        let t = Instant::now();
        c.publish(&event(TOPIC, &data))?;
        if i >= warmup {
            h.record(t.elapsed().as_nanos() as u64)?;
        }
    }
    Ok(h)
}

fn throughput(
    socket: &Path,
    producers: usize,
    batch: usize,
    payload: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..producers)
        .map(|p| {
            let (socket, stop, total) = (socket.to_owned(), stop.clone(), total.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut c = Client::connect(&socket, Role::Producer, &format!("bench-{p}"))?;
                let data = vec![0x5au8; payload];
                let events = vec![event(TOPIC, &data); batch];
                // Keep the pipe full: this many events outstanding per producer.
                let outstanding_max = (512 / batch).max(2) as u64;
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    while c.outstanding() < outstanding_max {
                        if batch == 1 {
                            c.send_publish(&events[0])?;
                        } else {
                            c.send_publish_batch(&events)?;
                        }
                    }
                    c.flush()?;
                    done += c.recv_stored()?.count as u64;
                }
                while c.outstanding() > 0 {
                    c.flush()?;
                    done += c.recv_stored()?.count as u64;
                }
                total.fetch_add(done, Ordering::Relaxed);
                Ok(())
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("producer thread")?;
    }
    Ok(total.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Publish → delivered latency: a producer publishes at a steady rate well below
/// saturation, each payload carrying its publish time; live subscribers record the
/// difference on receipt and confirm.
fn end_to_end(
    socket: &Path,
    subscribers: usize,
    n: u64,
    rate_per_second: u64,
) -> anyhow::Result<Histogram<u64>> {
    let base = Instant::now();
    let subs: Vec<_> = (0..subscribers)
        .map(|i| -> anyhow::Result<_> {
            let mut c = Client::connect(socket, Role::Subscriber, &format!("bench-sub-{i}"))?;
            c.subscribe("", &["bench.>"], Severity::Debug, 256, false)?;
            Ok(std::thread::spawn(
                move || -> anyhow::Result<Histogram<u64>> {
                    let mut h = histogram();
                    for _ in 0..n {
                        let Some(d) = c.next_delivery(Some(Duration::from_secs(10)))? else {
                            anyhow::bail!("delivery timed out")
                        };
                        let sent = u64::from_le_bytes(d.event.payload[..8].try_into()?);
                        let seq = d.seq;
                        h.record((base.elapsed().as_nanos() as u64).saturating_sub(sent))?;
                        c.confirm(seq, seq)?;
                    }
                    Ok(h)
                },
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut p = Client::connect(socket, Role::Producer, "bench-e2e")?;
    let mut pacer = Pacer::new(rate_per_second);
    let mut payload = [0u8; 64];
    for _ in 0..n {
        pacer.wait();
        payload[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
        p.publish(&event(TOPIC, &payload))?;
    }
    let mut all = histogram();
    for s in subs {
        all.add(s.join().expect("subscriber thread")?)?;
    }
    Ok(all)
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(BenchCommand::Peers(peers_args)) = args.command {
        return peers::run(peers_args);
    }
    let (n, seconds) = if args.quick {
        (500, 0.1)
    } else {
        (args.latency_events, args.seconds)
    };
    let say = |line: String| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    // The daemon measured is this very binary.
    let herald = std::env::current_exe()?;
    let scratch = tempfile::tempdir()?;
    let mut latencies = Vec::new();
    let mut ratios = serde_json::Map::new();
    let echo64 = echo_round_trips(scratch.path(), 64, n)?;
    let echo1k = echo_round_trips(scratch.path(), 1024, n)?;
    latencies.push(latency("echo round trip 64 B (baseline)", &echo64));
    latencies.push(latency("echo round trip 1 KiB (baseline)", &echo1k));

    let mut throughputs = Vec::new();
    for io in &args.io {
        let io_name = io.name();
        // Polling before sleeping is io_uring's; epoll sleeps at once.
        let polls: &[u64] = match io {
            crate::serve::IoMode::Epoll => &[0],
            _ => &[50, 0],
        };
        for &busy_poll_us in polls {
            say(format!(
                "publish latency, {io_name}, daemon polling {busy_poll_us} us before sleeping..."
            ));
            let d =
                DaemonProcess::start_with(&herald, busy_poll_us, "256M", None, &["--io", io_name])?;
            let p64 = publish_latency(&d.socket, 64, n)?;
            let p1k = publish_latency(&d.socket, 1024, n)?;
            let ratio = p64.value_at_quantile(0.5) as f64 / echo64.value_at_quantile(0.5) as f64;
            ratios.insert(
                format!("{io_name}_publish_64B_p50_over_echo_p50_busy_poll_{busy_poll_us}us"),
                ratio.into(),
            );
            ratios.insert(
                format!("{io_name}_publish_1KiB_p50_over_echo_p50_busy_poll_{busy_poll_us}us"),
                (p1k.value_at_quantile(0.5) as f64 / echo1k.value_at_quantile(0.5) as f64).into(),
            );
            latencies.push(latency(
                format!("{io_name}: durable publish 64 B (busy poll {busy_poll_us} us)"),
                &p64,
            ));
            latencies.push(latency(
                format!("{io_name}: durable publish 1 KiB (busy poll {busy_poll_us} us)"),
                &p1k,
            ));
        }

        let d = DaemonProcess::start_with(&herald, 0, "256M", None, &["--io", io_name])?;
        for payload in [64usize, 1024] {
            for batch in [1usize, 64] {
                for producers in [1usize, 4, 16] {
                    say(format!(
                        "throughput, {io_name}: {producers} producers, batch {batch}, {payload} B..."
                    ));
                    let eps = throughput(&d.socket, producers, batch, payload, seconds)?;
                    throughputs.push(Throughput {
                        io: io_name,
                        producers,
                        batch,
                        payload_bytes: payload,
                        events_per_second: eps,
                    });
                }
            }
        }
        for subscribers in [1usize, 4] {
            say(format!(
                "end to end, {io_name}, {subscribers} subscriber(s)..."
            ));
            let h = end_to_end(&d.socket, subscribers, n.min(10_000), E2E_RATE_PER_SECOND)?;
            latencies.push(latency(
                format!(
                    "{io_name}: publish -> delivered, {subscribers} subscriber(s), {} events/s",
                    E2E_RATE_PER_SECOND
                ),
                &h,
            ));
        }
        let best = throughputs
            .iter()
            .filter(|t| t.io == io_name)
            .map(|t| t.events_per_second)
            .fold(0.0, f64::max);
        ratios.insert(
            format!("{io_name}_best_throughput_events_per_second"),
            best.into(),
        );
    }

    if args.json {
        println!(
            "{}",
            serde_json::json!({ "latency": latencies, "throughput": throughputs, "ratios": ratios })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<68} {:>9} {:>9} {:>9}",
        "latency (us)", "p50", "p99", "p99.9"
    );
    for l in &latencies {
        println!(
            "{:<68} {:>9.1} {:>9.1} {:>9.1}",
            l.name, l.p50_us, l.p99_us, l.p999_us
        );
    }
    println!(
        "\n{:<9} {:<10} {:>6} {:>9} {:>16}",
        "io", "producers", "batch", "payload", "events/s"
    );
    for t in &throughputs {
        println!(
            "{:<9} {:<10} {:>6} {:>8}B {:>16.0}",
            t.io, t.producers, t.batch, t.payload_bytes, t.events_per_second
        );
    }
    println!("\nratios (same run):");
    for (k, v) in &ratios {
        println!("  {k:<58} {:.2}", v.as_f64().unwrap_or(0.0));
    }
    Ok(ExitCode::SUCCESS)
}
