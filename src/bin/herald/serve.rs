//! `herald serve`: the daemon.
//!
//! [`ServeArgs`] is the one table of the daemon's settings: each field is a flag, a key
//! of the configuration file and an environment variable (`config.rs` derives the last
//! two from the flag), parsed by the flag's own parser whichever layer it comes from.
//! A new setting is a new field here, and a line in [`daemon_config`].

use crate::access::SocketAccess;
use crate::config::Effective;
use crate::logging::LogFormat;
use crate::sdnotify::SdNotify;
use herald::delivery::tls::TlsListen;
use herald::delivery::{self, DaemonConfig, IoChoice, NoNotifier, Notifier, RedeliveryConfig};
use herald::event::limits::CONNECTIONS_MAX;
use herald::log::{LogConfig, Retain, Retention};
use herald::pmem::FileSync;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Durability mode for a region that is an ordinary file.
#[derive(Copy, Clone, Debug, clap::ValueEnum)]
pub enum SyncMode {
    /// Cache-line flushes only: survives a process crash, not a power cut (fast).
    Flush,
    /// Each group commit is synced to disk (fdatasync) before producers are told
    /// stored: survives a power cut. The loop goes on while the disk works, and the
    /// next group gathers meanwhile. `msync` is the same (its old name).
    #[value(alias = "msync")]
    Disk,
}

/// The I/O backend of the daemon's loop.
#[derive(Copy, Clone, Debug, clap::ValueEnum)]
pub enum IoMode {
    /// io_uring where the host allows it, else epoll (the cause is logged once and
    /// shown by `herald status`).
    Auto,
    /// io_uring only: refuse to start without it.
    IoUring,
    /// epoll (edge-triggered, non-blocking sockets), for hosts that refuse io_uring.
    Epoll,
}

impl IoMode {
    /// The name `--io` takes.
    pub fn name(self) -> &'static str {
        match self {
            IoMode::Auto => "auto",
            IoMode::IoUring => "io-uring",
            IoMode::Epoll => "epoll",
        }
    }
}

/// Arguments of `herald serve`: `--config`, then every setting.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML; keys are the flags' names in snake case, such as
    /// connections_max). Default: /etc/herald/herald.toml when it exists. Flags win over
    /// HERALD_* environment variables, which win over the file.
    #[arg(long, value_name = "PATH", env = "HERALD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the region (DIR/region.pmem) and the socket (DIR/herald.sock);
    /// created if missing.
    #[arg(long, default_value = "herald-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Use this region instead of DIR/region.pmem: a file, a file on a DAX filesystem,
    /// or a device-DAX node such as /dev/dax0.0 (which must already be formatted).
    #[arg(long, value_name = "PATH")]
    region: Option<PathBuf>,
    /// Socket path instead of DIR/herald.sock.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Size of a region file created on first use (K, M, G suffixes; binary units).
    #[arg(long, default_value = "64M", value_parser = parse_size, value_name = "SIZE")]
    region_size: u64,
    /// Bytes per ring slot for a region created on first use (multiple of 64).
    #[arg(long, default_value_t = 128, value_name = "BYTES")]
    slot_bytes: u32,
    /// How commits on an ordinary file are made durable: `flush` survives a process
    /// crash; `disk` (fdatasync before `stored`, old name `msync`) survives a power cut.
    /// Ignored for a DAX region, where the flushes reach persistent memory.
    #[arg(long, value_enum, default_value = "flush")]
    sync: SyncMode,
    /// Socket permissions, octal. 600 lets only the daemon's user (and root) connect.
    /// With an access policy ([[access]] rules in the configuration file), let the users
    /// it names in: 660 with socket_group a group they are in, or 666 (every user
    /// connects, the policy decides what each may do).
    #[arg(long, default_value = "600", value_parser = parse_mode, value_name = "MODE")]
    socket_mode: u32,
    /// Group of the socket, a name or a number (default: the daemon's own group). With
    /// socket_mode 660, its members may connect.
    #[arg(long, value_parser = parse_group, value_name = "GROUP")]
    socket_group: Option<u32>,
    /// Producer and subscriber connections served at once, each slot with its buffers
    /// (484 KiB) allocated at start; at most 65536. Two more slots are kept for
    /// control connections (`herald status` gets in when the rest are taken); a
    /// connection beyond the limit is told `busy` and closed.
    #[arg(long, default_value_t = 128, value_parser = parse_connections_max, value_name = "N", help_heading = "Connections")]
    connections_max: usize,
    /// A connection that has not said hello this long after connecting is told
    /// `timed_out` and closed (so that silent connections cannot hold every slot).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION", help_heading = "Connections")]
    hello_timeout: Duration,
    /// A connection that sends nothing this long is told `timed_out` and closed; 0
    /// (the default) never closes a quiet connection. Clients that may sit quiet then
    /// send Ping more often than this.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration, value_name = "DURATION", help_heading = "Connections")]
    idle_timeout: Duration,
    /// The I/O backend. Docker's default seccomp profile, Kubernetes' RuntimeDefault and
    /// `kernel.io_uring_disabled` refuse io_uring; `auto` then serves with epoll.
    #[arg(long, value_enum, default_value = "auto", value_name = "BACKEND")]
    io: IoMode,
    /// Microseconds to poll for work before sleeping in the kernel. Polling saves a
    /// wake-up when requests arrive back to back, but takes a core: on a 2-core machine
    /// `herald bench` measured it slower at every percentile (p50 18.6 vs 16.9 us,
    /// p99 291 vs 30 us), hence 0. Try it where cores are plentiful.
    #[arg(long, default_value_t = 0, value_name = "US")]
    busy_poll_us: u64,
    /// An event not settled (confirmed or rejected) this long after delivery is
    /// delivered again, flagged redelivered. A subscription may ask for its own.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION", help_heading = "Redelivery")]
    ack_deadline: Duration,
    /// Deliveries of one event before it becomes a dead letter of the subscription
    /// (`herald dead list`) and stops holding the ring. A subscription may ask for its
    /// own.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..), value_name = "N", help_heading = "Redelivery")]
    max_deliveries: u16,
    /// Wait after a missed deadline before the redelivery; doubles with every further
    /// delivery, up to --redelivery-backoff-max.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION", help_heading = "Redelivery")]
    redelivery_backoff: Duration,
    /// Longest wait between redeliveries.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION", help_heading = "Redelivery")]
    redelivery_backoff_max: Duration,
    /// What a producer gets when the ring is full because a durable subscriber is
    /// behind: `fail` answers `full` at once; `wait` holds the publish (and that
    /// connection's later frames) up to --full-wait for room, then answers `full`.
    /// Nothing acknowledged is ever overwritten, and `crit` and more severe events are
    /// still stored from a reserve. `herald status` shows which subscriptions hold the
    /// ring.
    #[arg(long, value_enum, default_value = "fail", help_heading = "Full ring")]
    when_full: WhenFull,
    /// Idempotency keys remembered (the newest): a publish repeating a remembered key
    /// from the same source gets its original `stored` back and stores nothing. Each
    /// takes about 360 bytes, allocated at start (23.6 MB at the default).
    #[arg(long, default_value_t = herald::delivery::dedupe::WINDOW_RECORDS_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..=herald::event::limits::DEDUPE_WINDOW_RECORDS_MAX as u64), value_name = "N", help_heading = "Idempotent publish")]
    dedupe_window_events: u64,
    /// Idempotency keys older than this are forgotten (at most 7 days).
    #[arg(long, default_value = "10m", value_parser = parse_dedupe_age, value_name = "DURATION", help_heading = "Idempotent publish")]
    dedupe_window_age: Duration,
    /// Keep released events from being overwritten for this long (a duration: 1h,
    /// 30m) or this much (a size with a byte unit: 256MiB, 1GB), so that a subscription
    /// created or reset later (`herald subscriptions create --start first`, `time:`,
    /// `ago:`) still has them. The ring keeps released events until it needs their
    /// slots anyway; this decides what a publish that needs them gets: by default the
    /// publish wins and the loss is counted (`herald status`, ring.retention); with
    /// --retain-policy strict it is refused. Not set: nothing is promised.
    #[arg(long, value_name = "DURATION|SIZE", value_parser = parse_retain, help_heading = "Full ring")]
    retain: Option<Retain>,
    /// With --retain, what a publish that needs a retained event's slots gets:
    /// `yield` stores it (the retained event is overwritten, and counted); `strict`
    /// answers `full` (or waits, with --when-full wait), as if a subscriber were behind.
    /// `crit` and more severe events go through either way.
    #[arg(long, value_enum, default_value = "yield", help_heading = "Full ring")]
    retain_policy: RetainPolicy,
    /// How long a publish waits for room with --when-full wait.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION", help_heading = "Full ring")]
    full_wait: Duration,
    /// Serve Prometheus metrics over HTTP on this address (GET /metrics, the text
    /// format), such as 127.0.0.1:9464; not set: no metrics. Port 0 takes a free port,
    /// which `herald status` and the log show. Whoever reaches the address reads the
    /// metrics, subscription names included: keep it on loopback or a trusted network.
    /// OPERATIONS.md lists every metric.
    #[arg(long, value_parser = parse_metrics_listen, value_name = "ADDR", help_heading = "Metrics")]
    metrics_listen: Option<SocketAddr>,
    /// Forward matching events into a NATS JetStream stream on this server:
    /// nats://HOST:PORT (port 4222 if none; resolved once, at start). Each event goes
    /// to subject PREFIX.TOPIC with header Nats-Msg-Id NODE:SEQ, and is released by
    /// herald only once JetStream acknowledged it. The operator creates the stream
    /// (its subjects covering PREFIX.>); until then publishes are retried.
    /// Needs --forward-subject-prefix.
    #[arg(long, value_parser = parse_nats_url, value_name = "URL", help_heading = "Forwarding to JetStream")]
    forward_jetstream: Option<NatsUrl>,
    /// Subjects are PREFIX.TOPIC (herald's topics are already dot-separated NATS
    /// tokens: fs.vol1.error with prefix herald becomes herald.fs.vol1.error).
    #[arg(long, value_parser = parse_subject_prefix, value_name = "PREFIX", help_heading = "Forwarding to JetStream")]
    forward_subject_prefix: Option<String>,
    /// Forward only events whose topic matches (herald's pattern grammar: `*` one
    /// segment, `>` the rest); repeat it, or separate patterns with commas. None:
    /// every event. Fixed when the forwarder's subscription is created.
    #[arg(
        long,
        value_name = "PATTERN",
        value_delimiter = ',',
        help_heading = "Forwarding to JetStream"
    )]
    forward_filter: Vec<String>,
    /// The forwarder's durable subscription: its cursor is what JetStream has
    /// acknowledged (`herald status` lists it with the others).
    #[arg(long, default_value = herald::delivery::jetstream::DEFAULT_NAME, value_name = "NAME", help_heading = "Forwarding to JetStream")]
    forward_name: String,
    /// Most events published to JetStream and not yet acknowledged.
    #[arg(long, default_value_t = herald::delivery::jetstream::DEFAULT_WINDOW, value_parser = clap::value_parser!(u32).range(1..=herald::event::limits::WINDOW_EVENTS_MAX as i64), value_name = "N", help_heading = "Forwarding to JetStream")]
    forward_window: u32,
    /// A PubAck not received this long after the publish: published again (the
    /// stream's duplicate window drops a second copy; keep it longer than this).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION", help_heading = "Forwarding to JetStream")]
    forward_ack_timeout: Duration,
    /// Relay from another herald: hold the durable subscription --upstream-name at the
    /// herald listening on this socket path (or data directory), or on tls://HOST:PORT
    /// (its --listen-tls; needs --upstream-ca, --upstream-cert and --upstream-key),
    /// store every event it
    /// sends in this region with its origin (the first node's id, seq and time), confirm
    /// it upstream only once stored durably, and deliver it to this daemon's
    /// subscribers like a local event. Repeat it to relay from several heralds (each
    /// with the same subscription name and filters). An event the upstream sends again
    /// is recognised and not stored twice, across restarts of either side. The
    /// upstream must be a herald with relay support (protocol version 2).
    #[arg(long, value_name = "SOCKET", help_heading = "Relay")]
    upstream: Vec<String>,
    /// The durable subscription's name at each upstream (letters, digits, `_ - .`):
    /// the upstream keeps what this relay has not confirmed under it. Needs --upstream.
    #[arg(long, value_name = "NAME", help_heading = "Relay")]
    upstream_name: Option<String>,
    /// Relay only events whose topic matches (`*` one segment, `>` the rest); repeat
    /// it, or separate patterns with commas. None: every event. Fixed at the upstream
    /// when the subscription is created there.
    #[arg(
        long,
        value_name = "PATTERN",
        value_delimiter = ',',
        help_heading = "Relay"
    )]
    upstream_filter: Vec<String>,
    /// Relay only events at least this severe: emerg, alert, crit, err, warning,
    /// notice, info, debug, or 0..7.
    #[arg(long, default_value = "debug", value_parser = crate::parse::severity, value_name = "S", help_heading = "Relay")]
    upstream_min_severity: herald::protocol::Severity,
    /// Most events each upstream sends before this relay confirmed them.
    #[arg(long, default_value_t = herald::delivery::upstream::DEFAULT_WINDOW, value_parser = clap::value_parser!(u32).range(1..=herald::event::limits::WINDOW_EVENTS_MAX as i64), value_name = "N", help_heading = "Relay")]
    upstream_window: u32,
    /// How long an upstream waits for this relay's confirmation before it sends an
    /// event again (the copy is recognised here and confirmed, not stored twice).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION", help_heading = "Relay")]
    upstream_ack_timeout: Duration,
    /// For tls:// upstreams: the CA certificate(s) (PEM) that issued their server
    /// certificates (checked against the HOST of the address).
    #[arg(long, value_name = "FILE", help_heading = "Relay")]
    upstream_ca: Option<PathBuf>,
    /// For tls:// upstreams: this relay's client certificate chain (PEM), issued by the
    /// CA the upstreams trust (their --tls-client-ca); its name is the relay's identity
    /// there.
    #[arg(long, value_name = "FILE", help_heading = "Relay")]
    upstream_cert: Option<PathBuf>,
    /// The private key of --upstream-cert (PEM).
    #[arg(long, value_name = "FILE", help_heading = "Relay")]
    upstream_key: Option<PathBuf>,
    /// Also serve the protocol over TCP with TLS 1.3 on this address, such as
    /// 0.0.0.0:7400 (port 0 takes a free port, which the ready line and `herald status`
    /// show). Client certificates are required, verified against --tls-client-ca; the
    /// certificate's name (its first DNS or URI SAN, else its CN) is the connection's
    /// identity, which access rules name with `cert = "NAME"`. There is no plaintext TCP
    /// listener. Needs --tls-cert, --tls-key and --tls-client-ca.
    #[arg(long, value_parser = parse_metrics_listen, value_name = "ADDR", help_heading = "TLS")]
    listen_tls: Option<SocketAddr>,
    /// The server's certificate chain (PEM, the server's own certificate first).
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    tls_key: Option<PathBuf>,
    /// The CA certificate(s) (PEM) that client certificates must be issued by.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    tls_client_ca: Option<PathBuf>,
    /// Log lines on stderr: `text` (key=value; with time and colour on a terminal) or
    /// `json` (one object per line).
    #[arg(long, value_enum, default_value = "text", help_heading = "Logs")]
    pub log_format: LogFormat,
    /// Which log lines are written: a level (error, warn, info, debug, trace) or
    /// tracing filter directives such as `info,herald::delivery=debug`.
    #[arg(long, default_value = "info", value_parser = crate::logging::parse_filter, value_name = "FILTER", env = "RUST_LOG", help_heading = "Logs")]
    pub log_level: String,
}

/// What a producer gets when the ring is full.
#[derive(Copy, Clone, Debug, clap::ValueEnum)]
pub enum WhenFull {
    /// Answer `full` at once: the producer decides (retry, buffer, drop).
    Fail,
    /// Hold the publish up to --full-wait for room, then answer `full`.
    Wait,
}

/// What a publish that needs a retained event's slots gets.
#[derive(Copy, Clone, Debug, clap::ValueEnum)]
pub enum RetainPolicy {
    /// Stored: the retained event is overwritten, and counted.
    Yield,
    /// `full`, as if a subscriber were behind (crit and more severe events excepted).
    Strict,
}

/// A retention: a size when it ends in a byte unit (B: 256MiB, 1GB, 4096B), else a
/// duration (humantime's `M` is a month, so a size must say bytes).
fn parse_retain(text: &str) -> Result<Retain, String> {
    if text.trim_end().ends_with(['B', 'b']) {
        let bytes = parse_size(text)?;
        if bytes == 0 {
            return Err("a retention of 0 bytes keeps nothing: leave --retain out".into());
        }
        return Ok(Retain::Bytes(bytes));
    }
    if text.trim_end().ends_with(['K', 'M', 'G', 'k', 'g']) {
        return Err(format!(
            "{text:?} is ambiguous: say {text}iB for a size, or a duration in d, h, m (M would be months)"
        ));
    }
    let d = humantime::parse_duration(text).map_err(|e| {
        format!("{text:?}: {e}; want a duration (1h, 30m) or a size with a byte unit (256MiB, 1GB)")
    })?;
    if d.is_zero() {
        return Err("a retention of 0 keeps nothing: leave --retain out".into());
    }
    Ok(Retain::Age(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
}

pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text
        .trim()
        .trim_end_matches(['B', 'b'])
        .trim_end_matches('i');
    let (digits, shift) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 64M or 1G"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_dedupe_age(text: &str) -> Result<Duration, String> {
    let age = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if age > herald::event::limits::DEDUPE_WINDOW_AGE_MAX {
        return Err("at most 7 days".into());
    }
    Ok(age)
}

fn parse_connections_max(text: &str) -> Result<usize, String> {
    let n: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of connections"))?;
    if n > CONNECTIONS_MAX {
        return Err(format!(
            "at most {CONNECTIONS_MAX} connections: each slot allocates about half a MiB of \
             buffers at start"
        ));
    }
    Ok(n)
}

fn parse_metrics_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("{text:?} is not an IP address with a port, such as 127.0.0.1:9464 or [::1]:9464")
    })
}

/// A group name or number, resolved now (at start).
/// A `--forward-jetstream` URL as written and where it resolved.
#[derive(Clone, Debug)]
pub struct NatsUrl {
    text: String,
    address: SocketAddr,
}

fn parse_nats_url(text: &str) -> Result<NatsUrl, String> {
    Ok(NatsUrl {
        text: text.to_owned(),
        address: herald::delivery::jetstream::parse_url(text)?,
    })
}

fn parse_subject_prefix(text: &str) -> Result<String, String> {
    herald::delivery::jetstream::check_subject_prefix(text)?;
    Ok(text.to_owned())
}

/// The forwarder the settings ask for; the URL and the prefix go together.
pub fn forward_config(
    args: &ServeArgs,
) -> Result<Option<herald::delivery::jetstream::ForwardConfig>, String> {
    let (url, prefix) = match (&args.forward_jetstream, &args.forward_subject_prefix) {
        (None, None) => return Ok(None),
        (Some(url), Some(prefix)) => (url, prefix),
        (Some(_), None) => {
            return Err("--forward-jetstream needs --forward-subject-prefix".to_owned())
        }
        (None, Some(_)) => {
            return Err("--forward-subject-prefix is only used with --forward-jetstream".to_owned())
        }
    };
    if args.forward_name.is_empty() {
        return Err("--forward-name must not be empty".to_owned());
    }
    for pattern in &args.forward_filter {
        herald::event::Pattern::parse(pattern.as_bytes())
            .map_err(|e| format!("--forward-filter {pattern:?}: {e}"))?;
    }
    Ok(Some(herald::delivery::jetstream::ForwardConfig {
        url: url.text.clone(),
        address: url.address,
        subject_prefix: prefix.clone(),
        filters: args.forward_filter.clone(),
        name: args.forward_name.clone(),
        window: args.forward_window,
        ack_timeout: args.forward_ack_timeout,
    }))
}

/// The upstreams the settings ask for; an address needs the subscription's name.
pub fn upstream_configs(
    args: &ServeArgs,
) -> Result<Vec<herald::delivery::upstream::UpstreamConfig>, String> {
    use herald::delivery::upstream;
    if args.upstream.is_empty() {
        if args.upstream_name.is_some() || !args.upstream_filter.is_empty() {
            return Err(
                "--upstream-name and --upstream-filter are only used with --upstream".into(),
            );
        }
        return Ok(Vec::new());
    }
    let Some(name) = &args.upstream_name else {
        return Err(
            "--upstream needs --upstream-name: the durable subscription this relay holds at the upstream"
                .into(),
        );
    };
    herald::protocol::validate_subscription_name(name.as_bytes())
        .map_err(|e| format!("--upstream-name {name:?}: {e}"))?;
    if name.is_empty() {
        return Err("--upstream-name must not be empty".into());
    }
    for pattern in &args.upstream_filter {
        herald::event::Pattern::parse(pattern.as_bytes())
            .map_err(|e| format!("--upstream-filter {pattern:?}: {e}"))?;
    }
    let tls = upstream_tls(args)?;
    let ack_ms = args.upstream_ack_timeout.as_millis();
    if ack_ms == 0 || ack_ms > u128::from(herald::event::limits::ACK_DEADLINE_MS_MAX) {
        return Err(format!(
            "--upstream-ack-timeout must be between 1 ms and {} ms",
            herald::event::limits::ACK_DEADLINE_MS_MAX
        ));
    }
    args.upstream
        .iter()
        .map(|text| {
            let address = upstream::parse_address(text).map_err(|e| format!("--upstream: {e}"))?;
            let tls = match (&address, &tls) {
                (upstream::UpstreamAddress::Tls { .. }, None) => {
                    return Err(format!(
                        "--upstream {text}: a tls:// upstream needs --upstream-ca, \
                         --upstream-cert and --upstream-key"
                    ))
                }
                (upstream::UpstreamAddress::Tls { .. }, Some(t)) => Some(t.clone()),
                (upstream::UpstreamAddress::Unix(_), _) => None,
            };
            Ok(upstream::UpstreamConfig {
                text: text.clone(),
                address,
                tls,
                name: name.clone(),
                filters: args.upstream_filter.clone(),
                min_severity: args.upstream_min_severity,
                window: args.upstream_window,
                ack_timeout: args.upstream_ack_timeout,
            })
        })
        .collect()
}

/// The client side of tls:// upstreams: the three files go together, and are read and
/// checked now (an expired certificate is refused at start, not at the first connect).
fn upstream_tls(
    args: &ServeArgs,
) -> Result<Option<herald::delivery::upstream::UpstreamTls>, String> {
    let (ca, cert, key) = match (&args.upstream_ca, &args.upstream_cert, &args.upstream_key) {
        (None, None, None) => return Ok(None),
        (Some(ca), Some(cert), Some(key)) => (ca, cert, key),
        _ => {
            return Err(
                "--upstream-ca, --upstream-cert and --upstream-key go together (a tls:// \
                 upstream requires a client certificate)"
                    .into(),
            )
        }
    };
    let unix_s = (herald::reactor::system_unix_ns() / 1_000_000_000) as i64;
    let files = herald::tls::ClientFiles {
        ca: (ca, "--upstream-ca"),
        identity: Some(((cert, "--upstream-cert"), (key, "--upstream-key"))),
    };
    let config = herald::tls::checked_client_config(&files, unix_s).map_err(|e| e.0)?;
    Ok(Some(herald::delivery::upstream::UpstreamTls { config }))
}

fn parse_group(text: &str) -> Result<u32, String> {
    if let Ok(gid) = text.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(text) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(format!("no group {text:?} on this host")),
        Err(e) => Err(format!("cannot look up group {text:?}: {e}")),
    }
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{text:?} is not an octal mode like 600"))
}

/// The TLS listener the settings ask for: None without --listen-tls; an error when
/// one of its files is not given, or a file is given without it.
pub fn tls_listen(args: &ServeArgs) -> Result<Option<TlsListen>, String> {
    let files = [
        ("--tls-cert", &args.tls_cert),
        ("--tls-key", &args.tls_key),
        ("--tls-client-ca", &args.tls_client_ca),
    ];
    let Some(address) = args.listen_tls else {
        if let Some((flag, _)) = files.iter().find(|(_, f)| f.is_some()) {
            return Err(format!(
                "{flag} is given without --listen-tls: give the address to serve TLS on"
            ));
        }
        return Ok(None);
    };
    let missing: Vec<&str> = files
        .iter()
        .filter(|(_, f)| f.is_none())
        .map(|(flag, _)| *flag)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "--listen-tls needs {} (the server's certificate and key, and the CA that \
             issues client certificates)",
            missing.join(", ")
        ));
    }
    Ok(Some(TlsListen {
        address,
        cert: args.tls_cert.clone().unwrap_or_default(),
        key: args.tls_key.clone().unwrap_or_default(),
        client_ca: args.tls_client_ca.clone().unwrap_or_default(),
    }))
}

/// What the settings ask of the daemon (the TLS listener only when [`tls_listen`]
/// accepts its settings).
pub fn daemon_config(args: &ServeArgs) -> DaemonConfig {
    DaemonConfig {
        data_dir: args.data_dir.clone(),
        region: args.region.clone(),
        socket: args.socket.clone(),
        region_bytes: args.region_size,
        log: LogConfig {
            slot_bytes: args.slot_bytes,
            ..LogConfig::default()
        },
        file_sync: match args.sync {
            SyncMode::Flush => FileSync::CacheFlush,
            SyncMode::Disk => FileSync::Disk,
        },
        socket_mode: args.socket_mode,
        socket_group: args.socket_group,
        connections_max: args.connections_max,
        hello_timeout: args.hello_timeout,
        idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
        busy_poll_us: args.busy_poll_us,
        io: match args.io {
            IoMode::Auto => IoChoice::Auto,
            IoMode::IoUring => IoChoice::IoUring,
            IoMode::Epoll => IoChoice::Epoll,
        },
        redelivery: RedeliveryConfig {
            ack_deadline: args.ack_deadline,
            max_deliveries: args.max_deliveries,
            backoff: args.redelivery_backoff,
            backoff_max: args.redelivery_backoff_max.max(args.redelivery_backoff),
        },
        dedupe_records: args.dedupe_window_events as usize,
        dedupe_age: args.dedupe_window_age,
        full_wait: match args.when_full {
            WhenFull::Fail => None,
            WhenFull::Wait => Some(args.full_wait),
        },
        retention: args.retain.map(|retain| Retention {
            retain,
            strict: matches!(args.retain_policy, RetainPolicy::Strict),
        }),
        metrics_listen: args.metrics_listen,
        forward: forward_config(args).ok().flatten(),
        upstreams: upstream_configs(args).unwrap_or_default(),
        tls: tls_listen(args).ok().flatten(),
        ..DaemonConfig::default()
    }
}

pub fn run(args: ServeArgs, effective: Option<&Effective>) -> anyhow::Result<ExitCode> {
    forward_config(&args).map_err(anyhow::Error::msg)?;
    upstream_configs(&args).map_err(anyhow::Error::msg)?;
    tls_listen(&args).map_err(anyhow::Error::msg)?;
    if args.retain.is_none() && matches!(args.retain_policy, RetainPolicy::Strict) {
        anyhow::bail!("--retain-policy strict needs --retain DURATION|SIZE: say what to retain");
    }
    let mut config = daemon_config(&args);
    if let Some(access) = effective.and_then(|e| e.access.as_ref()) {
        let socket = SocketAccess::of_daemon(config.socket_mode, config.socket_group);
        for line in socket.shut_out(access) {
            tracing::warn!("{line}");
        }
        config.access = Some(access.policy.clone());
    }
    // Under systemd (Type=notify): progress, readiness, the watchdog and the shutdown.
    let notify = SdNotify::from_env();
    let socket = config.socket_path();
    let notifier: Box<dyn Notifier> = match &notify {
        Some(n) => {
            let region = config.region_path();
            n.status(&if region.exists() {
                format!(
                    "scanning the region {} for unconfirmed events",
                    region.display()
                )
            } else {
                format!("creating the region {}", region.display())
            });
            Box::new(n.loop_notifier(&socket))
        }
        None => Box::new(NoNotifier),
    };
    delivery::serve_notifying(config, notifier, |info| {
        let replayed = info.recovery.as_ref().map_or(0, |r| r.live_events);
        // One line on stdout, for scripts and tests to wait on.
        let tls = info
            .tls
            .map(|address| format!(" and tls://{address}"))
            .unwrap_or_default();
        println!(
            "ready: serving on {}{tls} (region {}, {} unconfirmed events recovered, started in {} ms, io {})",
            info.socket.display(),
            info.region.display(),
            replayed,
            info.started_in.as_millis(),
            info.backend
        );
        let _ = std::io::stdout().flush();
        if let Some(n) = &notify {
            n.ready(info);
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retentions_parse_as_a_duration_or_a_size_and_refuse_ambiguity() {
        assert_eq!(parse_retain("1h"), Ok(Retain::Age(3_600_000_000_000)));
        assert_eq!(parse_retain("256MiB"), Ok(Retain::Bytes(256 << 20)));
        assert_eq!(parse_retain("1GB"), Ok(Retain::Bytes(1 << 30)));
        assert_eq!(parse_retain("4096B"), Ok(Retain::Bytes(4096)));
        for bad in ["1M", "512k", "0s", "0B", "soon", ""] {
            assert!(parse_retain(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn sizes_and_modes_parse_like_an_operator_writes_them() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("100000"), Ok(100000));
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o660"), Ok(0o660));
        assert!(parse_mode("999").is_err());
        assert_eq!(
            parse_metrics_listen("127.0.0.1:9464"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert!(parse_metrics_listen("[::1]:0").is_ok());
        let refused = parse_metrics_listen("localhost").unwrap_err();
        assert!(refused.contains("127.0.0.1:9464"), "{refused}");
    }

    #[test]
    fn connection_slots_above_the_limit_are_refused_with_the_limit() {
        assert_eq!(parse_connections_max("128"), Ok(128));
        assert_eq!(parse_connections_max("65536"), Ok(CONNECTIONS_MAX));
        let refused = parse_connections_max("65537").unwrap_err();
        assert!(refused.contains("at most 65536"), "{refused}");
        assert!(parse_connections_max("many").is_err());
    }
}
