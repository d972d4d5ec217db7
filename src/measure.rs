//! What `herald bench` (in the `herald` binary) and the peer comparison (the
//! `herald-bench-peers` binary, its own crate) share: a throwaway daemon, latency
//! histograms and their percentiles, the benchmark's event, the echo floors (a Unix
//! socket here; loopback TCP, plain and TLS, in [`tcp_echo`]).
//!
//! It lives in the library, not in either binary, so both measure the same way without
//! one copying the other; it uses only crates herald depends on already, so the
//! peer comparison's dependencies stay out of herald. Not part of the client API.

use crate::protocol::{Event, Severity, Topic};
use anyhow::Context;
use hdrhistogram::Histogram;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod tcp_echo;

pub use tcp_echo::{tcp_echo_round_trips, tls_echo_round_trips, TcpEchoServer};

/// A herald daemon started on a throwaway data directory, stopped (SIGTERM, then waited
/// for) when dropped, whatever happened meanwhile.
pub struct DaemonProcess {
    child: Child,
    /// The daemon's socket.
    pub socket: PathBuf,
    /// The daemon's `ready:` line.
    ready_line: String,
    dir: tempfile::TempDir,
}

impl DaemonProcess {
    /// Starts `HERALD serve` (`herald` is the path of the `herald` binary) with a region
    /// of `region_size` (as `--region-size` takes it) under a new directory in `parent`
    /// (the system's temporary directory when `None`), and waits for its `ready:` line.
    pub fn start(
        herald: &Path,
        busy_poll_us: u64,
        region_size: &str,
        parent: Option<&Path>,
    ) -> anyhow::Result<DaemonProcess> {
        DaemonProcess::start_with(herald, busy_poll_us, region_size, parent, &[])
    }

    /// [`start`](Self::start) with more `herald serve` arguments.
    pub fn start_with(
        herald: &Path,
        busy_poll_us: u64,
        region_size: &str,
        parent: Option<&Path>,
        extra: &[&str],
    ) -> anyhow::Result<DaemonProcess> {
        let dir = match parent {
            Some(parent) => tempfile::Builder::new()
                .prefix("herald-bench-")
                .tempdir_in(parent)?,
            None => tempfile::tempdir()?,
        };
        let mut child = Command::new(herald)
            .args([
                "serve",
                "--region-size",
                region_size,
                "--busy-poll-us",
                &busy_poll_us.to_string(),
                "--data-dir",
            ])
            .arg(dir.path())
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} serve", herald.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let daemon = DaemonProcess {
            child,
            socket: dir.path().join("herald.sock"),
            ready_line: line.trim_end().to_owned(),
            dir,
        };
        anyhow::ensure!(
            line.starts_with("ready:"),
            "the daemon did not start: {line:?}"
        );
        Ok(daemon)
    }

    /// The daemon's data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where its TLS listener listens, as its `ready:` line says (`--listen-tls` with
    /// port 0 lets the system pick one); None without a TLS listener.
    pub fn tls_address(&self) -> Option<std::net::SocketAddr> {
        self.ready_line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("tls://"))
            .and_then(|address| address.parse().ok())
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        // SIGTERM, not Child::kill's SIGKILL: the daemon stops cleanly, as it would in
        // service. nix rather than libc::kill keeps `unsafe` out of this module.
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = signal::kill(pid, Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// A latency histogram in nanoseconds, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is valid")
}

/// One latency distribution's percentiles, in microseconds.
#[derive(serde::Serialize)]
pub struct Latency {
    /// What was measured.
    pub name: String,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Samples.
    pub count: u64,
}

/// The percentiles of `h` (nanoseconds) under `name`.
pub fn latency(name: impl Into<String>, h: &Histogram<u64>) -> Latency {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Latency {
        name: name.into(),
        p50_us: us(0.5),
        p99_us: us(0.99),
        p999_us: us(0.999),
        count: h.len(),
    }
}

/// Operations run before timing starts, as a share of the timed ones (warms the
/// caches, the connection and the server's first allocations).
pub fn warmup_count(timed: u64) -> u64 {
    timed / 10
}

/// The event every herald benchmark publishes, on `topic`.
pub fn event<'a>(topic: &'a str, payload: &'a [u8]) -> Event<'a> {
    Event {
        topic: Topic::new(topic.as_bytes()).expect("benchmark topics are valid"),
        severity: Severity::Info,
        source: "",
        flags: 0,
        key: b"",
        payload,
    }
}

/// Most bytes the echo server reads at once.
const ECHO_BUFFER_BYTES: usize = 256 * 1024;

/// A bare echo server on a Unix socket: one thread per accepted connection, each
/// returning every byte it reads, in messages of `message_bytes`. It stops when its clients hang up
/// and the listener is dropped.
pub struct EchoServer {
    /// Where it listens.
    pub path: PathBuf,
    /// Bytes echoed so far, counted by the server after writing them back.
    echoed_bytes: Arc<AtomicU64>,
    message_bytes: usize,
    stop: Arc<AtomicBool>,
}

impl EchoServer {
    /// Listens at `path` and serves connections in the background.
    pub fn start(path: PathBuf, message_bytes: usize) -> std::io::Result<EchoServer> {
        let listener = UnixListener::bind(&path)?;
        let echoed_bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counter, stopped) = (echoed_bytes.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                // Relaxed: the flag carries no data; drop wakes accept with a connection.
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut s) = stream else { return };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    // Bytes back as they come, whatever their framing: a pipelined
                    // batch costs one read and one write, as it would for a server.
                    let mut buf = vec![0u8; ECHO_BUFFER_BYTES];
                    while let Ok(n @ 1..) = s.read(&mut buf) {
                        // Counted before the bytes go back, so a client that has its
                        // echo finds it counted. Relaxed: the socket orders the two.
                        counter.fetch_add(n as u64, Ordering::Relaxed);
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(EchoServer {
            path,
            echoed_bytes,
            message_bytes,
            stop,
        })
    }

    /// Whole messages echoed so far (read after the clients are done).
    pub fn echoed_messages(&self) -> u64 {
        self.echoed_bytes.load(Ordering::Relaxed) / self.message_bytes as u64
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accepting thread so it sees the flag and closes the listener.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A client timing write + read of the same bytes against an [`EchoServer`]: the floor
/// any request/reply over a Unix socket pays on this machine.
pub fn echo_round_trips(dir: &Path, payload: usize, n: u64) -> anyhow::Result<Histogram<u64>> {
    let server = EchoServer::start(dir.join(format!("echo-{payload}.sock")), payload)?;
    let mut c = UnixStream::connect(&server.path)?;
    round_trips(&mut c, payload, n)
}

/// Times write + read of `payload` bytes on `stream` (an echo), `n` times after a
/// warm-up: every echo floor's client, whatever the stream.
fn round_trips(
    stream: &mut (impl Read + Write),
    payload: usize,
    n: u64,
) -> anyhow::Result<Histogram<u64>> {
    let mut buf = vec![7u8; payload];
    let mut h = histogram();
    let warmup = warmup_count(n);
    for i in 0..n + warmup {
        let t = Instant::now();
        stream.write_all(&buf)?;
        stream.flush()?;
        stream.read_exact(&mut buf)?;
        if i >= warmup {
            h.record(t.elapsed().as_nanos() as u64)?;
        }
    }
    Ok(h)
}

/// Paces a producer at a steady rate by sleeping: a spinning producer would take one
/// of the machine's cores and measure CPU contention instead of the system under test.
pub struct Pacer {
    interval: Duration,
    next: Instant,
}

impl Pacer {
    /// A pacer for `rate_per_second` events per second, starting now.
    pub fn new(rate_per_second: u64) -> Pacer {
        Pacer {
            interval: Duration::from_nanos(1_000_000_000 / rate_per_second.max(1)),
            next: Instant::now(),
        }
    }

    /// Sleeps until the next event is due. A late event is sent at once and the
    /// schedule is kept (no catching up by skipping).
    pub fn wait(&mut self) {
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
        self.next += self.interval;
    }
}
