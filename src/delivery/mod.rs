//! The daemon, as parts along the data path (ARCHITECTURE.md lists the file that owns
//! each step): connections (`conn`), ingest, the commit pipeline with its durability
//! gate and held answers (`commit`), fan-out to sinks (`fanout`, `sink`), the dead-letter
//! queue (`dead`), release, control (status, admin), and the turn that runs them in
//! order (`core`). `herald serve` is [`serve`]: it assembles the parts over a real
//! reactor and a mapped region.

pub mod access;
mod commit;
mod conn;
pub mod control;
mod core;
mod dead;
pub mod dedupe;
mod fanout;
mod ingest;
pub mod jetstream;
pub mod listener;
mod metrics;
mod notify;
mod release;
mod reply;
mod sink;
pub mod tls;
pub mod upstream;

pub use self::core::{Core, Phase, StartInfo};
pub use crate::subscription::RedeliveryConfig;
pub use conn::SLOT_BYTES as CONNECTION_SLOT_BYTES;
pub use notify::{NoNotifier, Notifier};

use crate::log::{self, LogConfig, StoreOptions};
use crate::log::{FileSync, RegionOptions};
use crate::reactor::{epoll::EpollReactor, uring::UringReactor, Reactor};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Which I/O backend `herald serve --io` asks for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IoChoice {
    /// io_uring, falling back to epoll (with the cause logged once) where the host
    /// refuses it.
    Auto,
    /// io_uring or nothing.
    IoUring,
    /// epoll.
    Epoll,
}

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
    /// The socket's group (None: the daemon's own), so that an access policy's users
    /// can be let in with a group-writable `socket_mode`.
    pub socket_group: Option<u32>,
    /// Who may do what (None: every connection may do everything, and the socket's
    /// mode is the only gate).
    pub access: Option<std::sync::Arc<access::Policy>>,
    /// Producer and subscriber connections served at once (each slot with its
    /// buffers, allocated at start); [`CONTROL_SLOTS`] more are kept for control.
    pub connections_max: usize,
    /// A connection that has not said hello this long after it was accepted is told
    /// `timed_out` and closed.
    pub hello_timeout: Duration,
    /// A connection that sent nothing this long is told `timed_out` and closed (None:
    /// never).
    pub idle_timeout: Option<Duration>,
    /// Microseconds to poll for completions before sleeping in the kernel (io_uring).
    pub busy_poll_us: u64,
    /// io_uring submission queue entries.
    pub ring_entries: u32,
    /// The I/O backend.
    pub io: IoChoice,
    /// Redelivery policy for subscriptions that do not set their own.
    pub redelivery: RedeliveryConfig,
    /// What a producer gets when the ring is full: `None` = `full` at once; otherwise
    /// its publish waits up to this long for room, then gets `full`.
    pub full_wait: Option<Duration>,
    /// Released events kept from being overwritten (`--retain`), strictly or not.
    pub retention: Option<crate::log::Retention>,
    /// Idempotency keys remembered: at most this many (the newest)...
    pub dedupe_records: usize,
    /// ...and none older than this.
    pub dedupe_age: Duration,
    /// Serve Prometheus metrics over HTTP on this address (None: no metrics; port 0:
    /// any free port, shown by `status`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Forward matching events into a JetStream stream (`--forward-jetstream`).
    pub forward: Option<jetstream::ForwardConfig>,
    /// Upstream heralds this one relays from (`--upstream`).
    pub upstreams: Vec<upstream::UpstreamConfig>,
    /// Serve the protocol over TLS on TCP too (None: the Unix socket only).
    pub tls: Option<tls::TlsListen>,
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
            socket_group: None,
            access: None,
            connections_max: 128,
            hello_timeout: Duration::from_secs(10),
            idle_timeout: None,
            busy_poll_us: 0,
            ring_entries: 1024,
            io: IoChoice::Auto,
            redelivery: RedeliveryConfig::default(),
            full_wait: None,
            retention: None,
            dedupe_records: dedupe::WINDOW_RECORDS_DEFAULT,
            dedupe_age: dedupe::WINDOW_AGE_DEFAULT,
            metrics_listen: None,
            forward: None,
            upstreams: Vec::new(),
            tls: None,
        }
    }
}

/// Connection slots kept beyond `connections_max` for the control role, so that an
/// operator's `herald status` gets in when producers and subscribers fill the rest.
pub const CONTROL_SLOTS: usize = 2;

impl DaemonConfig {
    /// Every connection slot: the served ones and the control ones.
    pub fn connection_slots(&self) -> usize {
        self.connections_max + CONTROL_SLOTS
    }

    /// Every reactor slot: the connection slots, then one for the JetStream
    /// forwarder's outbound connection if there is one, then one per upstream.
    pub fn reactor_slots(&self) -> usize {
        self.connection_slots() + usize::from(self.forward.is_some()) + self.upstreams.len()
    }

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
    /// io_uring was asked for and is not available.
    #[error("{0}")]
    IoUring(String),
    /// A configuration value is out of range.
    #[error("{0}")]
    Config(String),
    /// A system call failed.
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    /// The TLS listener's files cannot be used.
    #[error("cannot serve TLS: {0}")]
    Tls(#[from] crate::tls::TlsFileError),
    /// The log failed (the region stopped accepting writes).
    #[error(transparent)]
    Log(log::LogError),
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
    pub started_in: Duration,
    /// The I/O backend serving.
    pub backend: crate::reactor::Backend,
    /// Subscriptions in recovery mode at start (replaying unconfirmed events after a
    /// crash); later changes go to [`Notifier::replaying`].
    pub replaying_subscriptions: usize,
    /// Where Prometheus metrics are served (`--metrics-listen`, the port bound).
    pub metrics: Option<std::net::SocketAddr>,
    /// Where TLS is served (`--listen-tls`, the port bound).
    pub tls: Option<std::net::SocketAddr>,
}

/// Opens (or creates) the region, recovers it, binds the socket and runs until
/// SIGTERM/SIGINT. `ready` is called once the socket accepts connections.
pub fn serve(config: DaemonConfig, ready: impl FnOnce(&ServeInfo)) -> Result<(), DaemonError> {
    serve_notifying(config, Box::new(NoNotifier), ready)
}

/// [`serve`], telling `notifier` of the loop's turns, of recovery progress and of the
/// shutdown (`herald serve` under systemd).
pub fn serve_notifying(
    config: DaemonConfig,
    notifier: Box<dyn Notifier>,
    ready: impl FnOnce(&ServeInfo),
) -> Result<(), DaemonError> {
    if config.connections_max == 0 || config.connections_max > crate::event::limits::CONNECTIONS_MAX
    {
        return Err(DaemonError::Config(format!(
            "--connections-max {} is outside 1..={}",
            config.connections_max,
            crate::event::limits::CONNECTIONS_MAX
        )));
    }
    let region_path = config.region_path();
    let socket_path = config.socket_path();
    // The directory is created whether or not the region is elsewhere: the socket
    // lives in it by default.
    if config.socket.is_none() || config.region.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| DaemonError::Io("creating the data directory", e))?;
    }
    let region_options = RegionOptions {
        file_sync: config.file_sync,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    // The certificate files are checked before anything is bound or opened: a daemon
    // that cannot serve TLS as configured does not start.
    let tls = match &config.tls {
        Some(listen) => Some(bind_tls(listen)?),
        None => None,
    };
    // Bound before the recovery scan: producers can connect at once; the kernel holds
    // their connections until the loop runs, and they are served while the replay is
    // still going on.
    let listener = listener::bind(&socket_path, config.socket_mode, config.socket_group)?;
    log_access(&config, &socket_path);
    // Bound before the scan too, so that a taken address stops the start at once; a
    // scrape during the scan is answered 503 until the loop runs.
    let exporter = match config.metrics_listen.map(start_exporter).transpose() {
        Ok(exporter) => exporter,
        Err(e) => {
            let _ = std::fs::remove_file(&socket_path);
            return Err(e);
        }
    };
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
        if r.interrupted_moves > 0 {
            tracing::info!(
                entries = r.interrupted_moves,
                "a change of filters was cut by the crash; recovery kept the new filters"
            );
        }
        if r.interrupted_rule_changes > 0 {
            tracing::info!(
                rules = r.interrupted_rule_changes,
                "a routing rule change was cut by the crash; recovery kept the new version"
            );
        }
        if !r.damaged_rules.is_empty() {
            tracing::error!(
                entries = ?r.damaged_rules,
                "routing rule entries are damaged (run `herald inspect`); they route nothing, and events that name them go by each subscription's own filters"
            );
        }
        if r.corrupt_slots > 0 {
            tracing::error!(
                corrupt_slots = r.corrupt_slots,
                "the region holds damaged events (run `herald inspect`); they are skipped"
            );
        }
    }
    // The same checks as `herald check`, on what recovery found.
    let findings = match &report {
        Some(r) => crate::subscription::check::check(r, log.subscriptions()),
        None => Vec::new(),
    };
    for f in &findings {
        match f.severity {
            crate::subscription::check::Severity::Problem => {
                tracing::error!(area = f.area, subject = %f.subject, "{}", f.detail)
            }
            crate::subscription::check::Severity::Note => {
                tracing::info!(area = f.area, subject = %f.subject, "{}", f.detail)
            }
        }
    }
    // A region created now has nothing to recover; `Unknown` (a region from before the
    // marker existed) is treated like a crash.
    let previous_stop_clean = report
        .as_ref()
        .is_none_or(|r| r.previous_stop == log::PreviousStop::Clean);
    let served = Served {
        config,
        log,
        listener: OwnedFd::from(listener),
        notifier,
        previous_stop_clean,
        start: StartInfo {
            findings,
            io_fallback: None,
            region: Some(info.clone()),
            recovery_scan: report.as_ref().map(|r| r.elapsed),
        },
        serve_info: ServeInfo {
            socket: socket_path.clone(),
            region: info.path.clone(),
            recovery: report,
            started_in: started.elapsed(),
            backend: crate::reactor::Backend::Epoll,
            replaying_subscriptions: 0,
            metrics: exporter.as_ref().map(|(e, _)| e.local_addr()),
            tls: tls.as_ref().map(|t| t.2),
        },
        metrics: exporter,
        tls,
    };
    let result = match choose_backend(&served.config) {
        Ok(Chosen::Uring(reactor)) => served.run(*reactor, ready),
        Ok(Chosen::Epoll(reactor, fallback)) => {
            let mut served = served;
            served.start.io_fallback = fallback;
            served.run(*reactor, ready)
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&socket_path);
    result
}

/// Says at start who may connect and what they may do.
fn log_access(config: &DaemonConfig, socket: &std::path::Path) {
    let mode = format!("{:04o}", config.socket_mode);
    match &config.access {
        None => tracing::info!(
            socket = %socket.display(),
            socket_mode = %mode,
            "no access policy: whoever can open the socket may do everything (mode 0600, \
             the default, lets only the daemon's user and root connect); [[access]] rules \
             in the configuration file restrict what each user may do"
        ),
        Some(policy) => tracing::info!(
            socket = %socket.display(),
            socket_mode = %mode,
            rules = policy.rules().len(),
            "access policy in force: each connection may do what the rules naming its user \
             or group allow (the daemon's user and root: everything); others are refused \
             with `forbidden`"
        ),
    }
}

/// Everything opened before the reactor is chosen.
struct Served {
    config: DaemonConfig,
    log: log::Log<log::MappedRegion>,
    listener: OwnedFd,
    notifier: Box<dyn Notifier>,
    previous_stop_clean: bool,
    start: StartInfo,
    serve_info: ServeInfo,
    /// The metrics exporter (serving until dropped) and its exchange with the loop.
    metrics: Option<(crate::metrics::Exporter, Arc<crate::metrics::Exchange>)>,
    /// The TLS listener, its configuration and the address bound.
    tls: Option<BoundTls>,
}

type BoundTls = (OwnedFd, Arc<rustls::ServerConfig>, std::net::SocketAddr);

/// Checks the TLS files and binds the TLS listener.
fn bind_tls(listen: &tls::TlsListen) -> Result<BoundTls, DaemonError> {
    let server = tls::server_config(listen)?;
    let listener = std::net::TcpListener::bind(listen.address).map_err(|e| {
        DaemonError::Config(format!(
            "cannot listen for TLS on {} (--listen-tls): {e}",
            listen.address
        ))
    })?;
    let address = listener
        .local_addr()
        .map_err(|e| DaemonError::Io("reading the TLS listener's address", e))?;
    Ok((OwnedFd::from(listener), server, address))
}

impl Served {
    fn run<R: Reactor<Listener = OwnedFd>>(
        mut self,
        mut reactor: R,
        ready: impl FnOnce(&ServeInfo),
    ) -> Result<(), DaemonError> {
        reactor
            .listen(self.listener)
            .map_err(|e| DaemonError::Io("listening on the socket", e))?;
        let tls = match self.tls {
            Some((fd, server, address)) => {
                let id = reactor
                    .listen(fd)
                    .map_err(|e| DaemonError::Io("listening for TLS", e))?;
                Some((id, server, address))
            }
            None => None,
        };
        self.serve_info.backend = reactor.backend();
        tracing::info!(backend = %reactor.backend(), "I/O backend");
        let mut core = Core::new(
            self.config,
            reactor,
            self.log,
            self.previous_stop_clean,
            self.start,
        )?;
        core.set_notifier(self.notifier);
        if let Some((id, server, address)) = tls {
            tracing::info!(address = %address, "serving TLS 1.3 on {address}: client certificates required");
            core.serve_tls(id, server, address);
        }
        if let Some((exporter, exchange)) = &self.metrics {
            core.set_metrics(exchange.clone(), exporter.local_addr());
            tracing::info!(address = %exporter.local_addr(), "serving Prometheus metrics at http://{}{}", exporter.local_addr(), crate::metrics::METRICS_PATH);
        }
        self.serve_info.replaying_subscriptions = core.replaying_subscriptions();
        ready(&self.serve_info);
        core.run()
    }
}

/// Binds the metrics address and starts the exporter's thread.
fn start_exporter(
    address: std::net::SocketAddr,
) -> Result<(crate::metrics::Exporter, Arc<crate::metrics::Exchange>), DaemonError> {
    let exchange = Arc::new(crate::metrics::Exchange::new(0));
    let exporter = crate::metrics::Exporter::start(address, exchange.clone()).map_err(|e| {
        DaemonError::Config(format!(
            "cannot serve metrics on {address} (--metrics-listen): {e}"
        ))
    })?;
    Ok((exporter, exchange))
}

enum Chosen {
    Uring(Box<UringReactor>),
    /// epoll, and why io_uring is not used when it was tried.
    Epoll(Box<EpollReactor>, Option<String>),
}

fn choose_backend(config: &DaemonConfig) -> Result<Chosen, DaemonError> {
    let spin = Duration::from_micros(config.busy_poll_us);
    let epoll = |fallback| {
        EpollReactor::new(config.reactor_slots())
            .map(|r| Chosen::Epoll(Box::new(r), fallback))
            .map_err(|e| DaemonError::Io("setting up epoll", e))
    };
    match config.io {
        IoChoice::Epoll => epoll(None),
        IoChoice::IoUring => UringReactor::new(config.ring_entries, spin)
            .map(|r| Chosen::Uring(Box::new(r)))
            .map_err(|refusal| DaemonError::IoUring(refusal.explanation)),
        IoChoice::Auto => match UringReactor::new(config.ring_entries, spin) {
            Ok(r) => Ok(Chosen::Uring(Box::new(r))),
            Err(refusal) => {
                tracing::warn!(
                    cause = refusal.cause,
                    "io_uring refused, serving with epoll: {}",
                    refusal.explanation
                );
                epoll(Some(format!("{}: {}", refusal.cause, refusal.explanation)))
            }
        },
    }
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
