//! The daemon: the indication queue, the io_uring loop that owns every socket, ack
//! tracking and redelivery. `herald serve` is [`serve`].

mod conn;
mod daemon;
pub mod dedupe;
pub mod listener;
mod status;
pub mod uring;

use crate::event::limits::CONNECTIONS_MAX;
use crate::log::{self, LogConfig, StoreOptions};
use crate::log::{FileSync, RegionOptions};
use crate::subscription::check;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `herald serve` can be told.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// Directory for the default region and socket.
    pub data_dir: PathBuf,
    /// Region file or device-DAX node (default `DATA_DIR/region.pmem`).
    pub region: Option<PathBuf>,
    /// Socket path (default `DATA_DIR/herald.sock`).
    pub socket: Option<PathBuf>,
    /// Size of a region file created on first use.
    pub region_bytes: u64,
    /// Geometry of a region created on first use.
    pub log: LogConfig,
    /// Durability mode for ordinary files.
    pub file_sync: FileSync,
    /// Permissions of the socket.
    pub socket_mode: u32,
    /// Connection slots (each with its buffers, allocated at start), at most
    /// [`CONNECTIONS_MAX`].
    pub connections_max: usize,
    /// Microseconds to poll for completions before sleeping in the kernel.
    pub busy_poll_us: u64,
    /// io_uring submission queue entries.
    pub ring_entries: u32,
    /// Capacity of the indication queue between ingest and delivery.
    pub indication_queue_len: usize,
    /// Redelivery policy for subscriptions that do not set their own.
    pub redelivery: RedeliveryConfig,
    /// What a producer gets when the ring is full: `None` = `full` at once; otherwise
    /// its publish waits up to this long for room, then gets `full`.
    pub full_wait: Option<Duration>,
    /// Idempotency keys remembered: at most this many (the newest)...
    pub dedupe_records: usize,
    /// ...and none older than this.
    pub dedupe_age: Duration,
}

/// Defaults of the redelivery policy (a subscription may set its own deadline and
/// maximum delivery count in `Subscribe`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RedeliveryConfig {
    /// An event not settled this long after delivery is redelivered.
    pub ack_deadline: Duration,
    /// Deliveries before an event becomes a dead letter of the subscription.
    pub max_deliveries: u16,
    /// Wait before the first redelivery after a missed deadline; doubles each time.
    pub backoff: Duration,
    /// Longest wait between redeliveries.
    pub backoff_max: Duration,
}

impl Default for RedeliveryConfig {
    fn default() -> Self {
        RedeliveryConfig {
            ack_deadline: Duration::from_secs(30),
            max_deliveries: 5,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

impl RedeliveryConfig {
    /// The policy of a subscription that asked for `ack_deadline_ms` and
    /// `max_deliveries` (0 = this default).
    pub fn policy(&self, ack_deadline_ms: u32, max_deliveries: u16) -> crate::subscription::Policy {
        crate::subscription::Policy {
            ack_deadline_ns: if ack_deadline_ms == 0 {
                self.ack_deadline.as_nanos() as u64
            } else {
                u64::from(ack_deadline_ms) * 1_000_000
            },
            backoff_ns: self.backoff.as_nanos() as u64,
            backoff_max_ns: self.backoff_max.as_nanos() as u64,
            max_deliveries: if max_deliveries == 0 {
                self.max_deliveries
            } else {
                max_deliveries
            },
        }
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            data_dir: PathBuf::from("herald-data"),
            region: None,
            socket: None,
            region_bytes: 64 << 20,
            log: LogConfig::default(),
            file_sync: FileSync::CacheFlush,
            socket_mode: 0o600,
            connections_max: 128,
            busy_poll_us: 0,
            ring_entries: 1024,
            indication_queue_len: 4096,
            redelivery: RedeliveryConfig::default(),
            full_wait: None,
            dedupe_records: dedupe::WINDOW_RECORDS_DEFAULT,
            dedupe_age: dedupe::WINDOW_AGE_DEFAULT,
        }
    }
}

impl DaemonConfig {
    /// The region path in use.
    pub fn region_path(&self) -> PathBuf {
        self.region
            .clone()
            .unwrap_or_else(|| self.data_dir.join("region.pmem"))
    }
    /// The socket path in use.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("herald.sock"))
    }
}

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The region could not be opened or created.
    #[error(transparent)]
    Open(#[from] log::OpenError),
    /// The socket could not be set up.
    #[error(transparent)]
    Listener(#[from] listener::ListenerError),
    /// io_uring is not available.
    #[error("{0}")]
    IoUring(String),
    /// A system call failed.
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    /// The log failed (the region stopped accepting writes).
    #[error(transparent)]
    Log(log::LogError),
    /// More connection slots were asked for than the daemon can tell apart.
    #[error(
        "{0} connection slots asked for; the limit is {CONNECTIONS_MAX} (lower --connections-max)"
    )]
    TooManyConnections(usize),
}

/// Opens (or creates) the region, recovers it, binds the socket and runs until
/// SIGTERM/SIGINT. `ready` is called once the socket accepts connections.
pub fn serve(config: DaemonConfig, ready: impl FnOnce(&ServeInfo)) -> Result<(), DaemonError> {
    if config.connections_max > CONNECTIONS_MAX {
        return Err(DaemonError::TooManyConnections(config.connections_max));
    }
    let region_path = config.region_path();
    let socket_path = config.socket_path();
    if config.region.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| DaemonError::Io("creating the data directory", e))?;
    }
    let region_options = RegionOptions {
        file_sync: config.file_sync,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    // Bound before the recovery scan: producers can connect at once; the kernel holds
    // their connections until the loop runs, and they are served while the replay is
    // still going on.
    let listener = listener::bind(&socket_path, config.socket_mode)?;
    let opened = open_or_create(&config, &region_path, region_options);
    let (log, report, created) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            let _ = std::fs::remove_file(&socket_path);
            return Err(e);
        }
    };
    let info = log.medium().info().clone();
    tracing::info!(region = %info.path.display(), kind = info.kind.name(), flush = info.flush.name(), "region {}", if created { "created" } else { "opened" });
    tracing::info!(durability = ?info.durability, "{}", info.durability.describe());
    for note in &info.notes {
        tracing::warn!("{note}");
    }
    if let Some(r) = &report {
        tracing::info!(
            live_events = r.live_events,
            holes = r.hole_slots,
            corrupt = r.corrupt_slots,
            head = r.head,
            tail = r.tail,
            scan_ms = r.elapsed.as_millis() as u64,
            "recovery scan done"
        );
        if r.corrupt_slots > 0 {
            tracing::error!(
                corrupt_slots = r.corrupt_slots,
                "the region holds damaged events (run `herald inspect`); they are skipped"
            );
        }
    }
    // The same checks as `herald check`, on what recovery found.
    let findings = match &report {
        Some(r) => check::check(r, log.subscriptions()),
        None => Vec::new(),
    };
    for f in &findings {
        match f.severity {
            check::Severity::Problem => {
                tracing::error!(area = f.area, subject = %f.subject, "{}", f.detail)
            }
            check::Severity::Note => {
                tracing::info!(area = f.area, subject = %f.subject, "{}", f.detail)
            }
        }
    }
    // A region created now has nothing to recover; `Unknown` (a region from before the
    // marker existed) is treated like a crash.
    let previous_stop_clean = report
        .as_ref()
        .is_none_or(|r| r.previous_stop == log::PreviousStop::Clean);
    let mut daemon = daemon::Daemon::new(config, log, listener, previous_stop_clean)?;
    daemon.set_start_findings(findings);
    let serve_info = ServeInfo {
        socket: socket_path.clone(),
        region: info.path.clone(),
        recovery: report,
        started_in: started.elapsed(),
    };
    ready(&serve_info);
    let result = daemon.run();
    let _ = std::fs::remove_file(&socket_path);
    result
}

type Opened = (
    log::Log<log::MappedRegion>,
    Option<log::RecoveryReport>,
    bool,
);

/// Opens the region (running the recovery scan), or creates it on first use.
fn open_or_create(
    config: &DaemonConfig,
    region_path: &std::path::Path,
    region_options: RegionOptions,
) -> Result<Opened, DaemonError> {
    if region_path.exists() {
        let (log, report) = log::open_path(region_path, &region_options, &mut |_, _| {})?;
        return Ok((log, Some(report), false));
    }
    let options = StoreOptions {
        region: region_options,
        config: config.log,
    };
    let node_id = rand::random::<u64>() | 1;
    Ok((
        log::create_file(region_path, config.region_bytes, &options, node_id)?,
        None,
        true,
    ))
}

/// What `ready` learns.
#[derive(Debug)]
pub struct ServeInfo {
    /// The socket clients connect to.
    pub socket: PathBuf,
    /// The region in use.
    pub region: PathBuf,
    /// What recovery found (None for a region created now).
    pub recovery: Option<log::RecoveryReport>,
    /// Time from start to ready.
    pub started_in: std::time::Duration,
}
