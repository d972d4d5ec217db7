//! `herald bench`: the daemon's speed beside same-run baselines (bare echo round
//! trips over a Unix socket, loopback TCP and TLS 1.3), through the normal client
//! library and daemon binary.

mod relay;
mod tls;

use crate::peers;
use anyhow::Context;
use hdrhistogram::Histogram;
use herald::client::{Client, Endpoint};
use herald::measure::{
    echo_round_trips, event, histogram, latency, tcp_echo_round_trips, tls_echo_round_trips,
    warmup_count, DaemonProcess, Pacer,
};
use herald::protocol::{Role, Severity};
use std::io::Write;
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
    /// The daemon's I/O backends to measure, each beside the same echo floors.
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

fn publish_latency(endpoint: &Endpoint, payload: usize, n: u64) -> anyhow::Result<Histogram<u64>> {
    let mut c = Client::connect_to(endpoint, Role::Producer, "bench")?;
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

/// Publish → delivered latency: a producer publishes on `socket` at a steady rate well
/// below saturation, each payload carrying its publish time; live subscribers on
/// `subscribe_at` (the same daemon, or a relay of it) record the difference on receipt
/// and confirm.
fn end_to_end(
    socket: &Path,
    subscribe_at: &Path,
    subscribers: usize,
    n: u64,
    rate_per_second: u64,
) -> anyhow::Result<Histogram<u64>> {
    let base = Instant::now();
    let subs: Vec<_> = (0..subscribers)
        .map(|i| -> anyhow::Result<_> {
            let mut c = Client::connect(subscribe_at, Role::Subscriber, &format!("bench-sub-{i}"))?;
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
    let pki = tls::Pki::create(scratch.path()).context("making the run's TLS certificates")?;
    let tls_server = pki.server_config()?;
    let (tls_client, tls_name) = pki.client_config()?;
    let mut latencies = Vec::new();
    let mut ratios = serde_json::Map::new();
    say("echo floors: Unix socket, loopback TCP, TLS 1.3...".into());
    // Each size: its name in rows and in ratio keys, the Unix and TLS echo floors.
    let mut sizes = Vec::new();
    for (payload, shown, key) in [(64usize, "64 B", "64B"), (1024, "1 KiB", "1KiB")] {
        let unix = echo_round_trips(scratch.path(), payload, n)?;
        let tcp = tcp_echo_round_trips(payload, n)?;
        let tls = tls_echo_round_trips(
            tls_server.clone(),
            tls_client.clone(),
            tls_name.clone(),
            payload,
            n,
        )?;
        latencies.push(latency(
            format!("echo round trip {shown} (baseline)"),
            &unix,
        ));
        latencies.push(latency(
            format!("TCP loopback echo round trip {shown} (baseline)"),
            &tcp,
        ));
        latencies.push(latency(
            format!("TLS 1.3 loopback echo round trip {shown} (baseline)"),
            &tls,
        ));
        ratios.insert(
            format!("tcp_echo_{key}_p50_over_unix_echo_p50"),
            p50_ratio(&tcp, &unix).into(),
        );
        // What TLS itself costs a round trip.
        ratios.insert(
            format!("tls_echo_{key}_p50_over_tcp_echo_p50"),
            p50_ratio(&tls, &tcp).into(),
        );
        sizes.push((payload, shown, key, unix, tls));
    }
    let tls_serve_args = pki.serve_args();

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
                "publish latency over the socket and TLS, {io_name}, daemon polling {busy_poll_us} us before sleeping..."
            ));
            let mut serve_args = vec!["--io", io_name];
            serve_args.extend(tls_serve_args.iter().map(String::as_str));
            let d = DaemonProcess::start_with(&herald, busy_poll_us, "256M", None, &serve_args)?;
            let unix_at = Endpoint::Unix(d.socket.clone());
            let tls_at = pki.endpoint(
                d.tls_address()
                    .context("the daemon's ready line names no tls:// address")?
                    .port(),
            );
            let poll = format!("busy_poll_{busy_poll_us}us");
            for (payload, shown, key, unix_echo, tls_echo) in &sizes {
                let unix = publish_latency(&unix_at, *payload, n)?;
                let tls = publish_latency(&tls_at, *payload, n)?;
                ratios.insert(
                    format!("{io_name}_publish_{key}_p50_over_echo_p50_{poll}"),
                    p50_ratio(&unix, unix_echo).into(),
                );
                ratios.insert(
                    format!("{io_name}_tls_publish_{key}_p50_over_tls_echo_p50_{poll}"),
                    p50_ratio(&tls, tls_echo).into(),
                );
                ratios.insert(
                    format!("{io_name}_tls_publish_{key}_p50_over_publish_p50_{poll}"),
                    p50_ratio(&tls, &unix).into(),
                );
                latencies.push(latency(
                    format!("{io_name}: durable publish {shown} (busy poll {busy_poll_us} us)"),
                    &unix,
                ));
                latencies.push(latency(
                    format!(
                        "{io_name}: durable publish over TLS {shown} (busy poll {busy_poll_us} us)"
                    ),
                    &tls,
                ));
            }
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
        let mut single_node_e2e = None;
        for subscribers in [1usize, 4] {
            say(format!(
                "end to end, {io_name}, {subscribers} subscriber(s)..."
            ));
            let h = end_to_end(
                &d.socket,
                &d.socket,
                subscribers,
                n.min(10_000),
                E2E_RATE_PER_SECOND,
            )?;
            if subscribers == 1 {
                single_node_e2e = Some(h.clone());
            }
            latencies.push(latency(
                format!(
                    "{io_name}: publish -> delivered, {subscribers} subscriber(s), {} events/s",
                    E2E_RATE_PER_SECOND
                ),
                &h,
            ));
        }
        drop(d);
        say(format!(
            "end to end through a relay, {io_name}: origin -> relay -> 1 subscriber..."
        ));
        let h = relay::end_to_end(&herald, io_name, n.min(10_000), E2E_RATE_PER_SECOND)?;
        if let Some(single) = &single_node_e2e {
            ratios.insert(
                format!("{io_name}_relay_e2e_p50_over_e2e_p50"),
                p50_ratio(&h, single).into(),
            );
            ratios.insert(
                format!("{io_name}_relay_e2e_p99_over_e2e_p99"),
                (h.value_at_quantile(0.99) as f64 / single.value_at_quantile(0.99) as f64).into(),
            );
        }
        latencies.push(latency(
            format!(
                "{io_name}: publish at origin -> delivered at a relay, 1 subscriber, {} events/s",
                E2E_RATE_PER_SECOND
            ),
            &h,
        ));
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

    // Written, not println!: a reader that goes away (`| head`) is an error main
    // turns into a quiet exit, where println! would panic.
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({ "latency": latencies, "throughput": throughputs, "ratios": ratios })
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let name_width = latencies.iter().map(|l| l.name.len()).max().unwrap_or(0);
    writeln!(
        out,
        "{:<name_width$} {:>9} {:>9} {:>9}",
        "latency (us)", "p50", "p99", "p99.9"
    )?;
    for l in &latencies {
        writeln!(
            out,
            "{:<name_width$} {:>9.1} {:>9.1} {:>9.1}",
            l.name, l.p50_us, l.p99_us, l.p999_us
        )?;
    }
    writeln!(
        out,
        "\n{:<9} {:<10} {:>6} {:>9} {:>16}",
        "io", "producers", "batch", "payload", "events/s"
    )?;
    for t in &throughputs {
        writeln!(
            out,
            "{:<9} {:<10} {:>6} {:>8}B {:>16.0}",
            t.io, t.producers, t.batch, t.payload_bytes, t.events_per_second
        )?;
    }
    writeln!(out, "\nratios (same run):")?;
    let width = ratios.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in &ratios {
        writeln!(out, "  {k:<width$} {:.2}", v.as_f64().unwrap_or(0.0))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `a`'s median over `b`'s: how many of the floor's round trips a measurement costs.
fn p50_ratio(a: &Histogram<u64>, b: &Histogram<u64>) -> f64 {
    a.value_at_quantile(0.5) as f64 / b.value_at_quantile(0.5) as f64
}
