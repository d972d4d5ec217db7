//! The daemon's core: one turn of its loop is the data path, in order. It runs over a
//! [`Reactor`] (io_uring, epoll or the simulator) and a [`Medium`] (a mapped region or
//! the simulated one), and calls the kernel through neither directly, so a test drives
//! the whole daemon in one process.
//!
//! One turn:
//! 1. **completions**: accepted connections, received bytes, finished sends, SIGTERM;
//! 2. **ingest** (`ingest.rs`): frames become commands; every publish of the round goes
//!    into one group commit (`commit.rs`), whose answers are held;
//! 3. **gate**: the groups the durability gate has released get their answers encoded
//!    and their events become visible to fan-out;
//! 4. **fan-out** (`fanout.rs`): each subscription's sink gets redeliveries, replayed
//!    dead letters and new events, within its window and the sink's room;
//! 5. **release** (`release.rs`): dead letters written, recoveries ended, moved cursors
//!    persisted in one fence;
//! 6. **control** (`control/`): status and admin requests answered;
//! 7. **arm** the reactor with every receive and send, and wait.

mod completions;
mod relay;
pub(super) mod start;

use super::access::Access;
use super::commit::{CommitPipeline, Gate};
use super::conn::{sink_of, Connections};
use super::dead::DeadQueue;
use super::dedupe::DedupeWindow;
use super::ingest::{decode_frames, Ingest, PendingSubscribe, Stop};
use super::jetstream::{ForwardSink, Forwarder};
use super::metrics::MetricsLink;
use super::notify::{NoNotifier, Notifier};
use super::reply::{Identity, Reply};
use super::sink::ConnSink;
use super::tls::TlsConn;
use super::upstream::{IngestStop, Upstream};
use super::{fanout, release, DaemonConfig, DaemonError};
use crate::log::{self, Log, Seq, SubscriptionId};
use crate::metrics::Counters;
use crate::pmem::Medium;
use crate::protocol::{self, ErrorCode};
use crate::reactor::{Completion, ListenerId, Reactor};
use crate::routing::Routes;
use crate::subscription::{AttachError, SubscriptionSet};
use std::time::Duration;

/// Longest sleep in the kernel: bounds how late a shutdown, a redelivery deadline or
/// another periodic check runs.
const SLEEP_MAX: Duration = Duration::from_millis(200);
/// Most expired idempotency keys forgotten per turn (bounds the work of one turn).
const DEDUPE_EXPIRE_PER_TURN: usize = 256;
/// Shortest sleep while a redelivery is due.
const REDELIVERY_SLEEP_MIN: Duration = Duration::from_millis(1);
/// How often a publish waiting for room in a full ring looks again.
const FULL_RETRY_INTERVAL: Duration = Duration::from_millis(5);
/// Longest a cursor record waits for a group commit's sync to ride on, on a region
/// synced to disk: what a power cut can make subscribers receive again (flagged
/// redelivered), and how long confirmed events may keep their slots in a quiet ring.
const CURSOR_SYNC_DELAY_NS: u64 = 200_000_000;
/// How long a shutdown waits for connections to take their last bytes.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);
/// How often hello and idle deadlines are looked at (their precision: a deadline is
/// enforced at most this much, plus one sleep, late).
const HOUSEKEEPING_INTERVAL_NS: u64 = 100_000_000;

/// Where the daemon stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Serving.
    Running,
    /// SIGTERM: every connection was told `shutting_down`; waiting (until the
    /// deadline, monotonic ns) for their output to go.
    ShuttingDown {
        /// Give up waiting at this time.
        deadline: u64,
    },
    /// Done: the caller closes the log cleanly.
    Stopped,
}

/// What the daemon learned while starting, shown by `status`.
#[derive(Clone, Debug, Default)]
pub struct StartInfo {
    /// What the start-up checks found.
    pub findings: Vec<crate::subscription::check::Finding>,
    /// Why io_uring is not in use, when `--io auto` fell back to epoll.
    pub io_fallback: Option<String>,
    /// The region as opened (None for a simulated medium).
    pub region: Option<crate::pmem::RegionInfo>,
    /// How long the recovery scan took (None: the region was created now).
    pub recovery_scan: Option<Duration>,
}

/// The running daemon over reactor `R` and medium `M`.
pub struct Core<R: Reactor, M: Medium> {
    pub(super) config: DaemonConfig,
    pub(super) reactor: R,
    pub(super) log: Log<M>,
    pub(super) conns: Connections<R::Socket>,
    pub(super) subs: SubscriptionSet,
    /// The routing rules, decoded from the log's rule table (rebuilt at each change).
    pub(super) routes: Routes,
    pub(super) pipeline: CommitPipeline,
    pub(super) dead: DeadQueue,
    pub(super) dedupe: DedupeWindow,
    /// Publishes answered from the dedupe window since the daemon started.
    pub(super) deduplicated: u64,
    pub(super) start: StartInfo,
    subscribes: Vec<PendingSubscribe>,
    completions: Vec<Completion<R::Socket>>,
    cursor_updates: Vec<(SubscriptionId, Seq)>,
    /// Since when (monotonic ns) only cursor records wait for a sync, put off.
    cursors_unsynced_since: Option<u64>,
    /// This turn's monotonic time (ns).
    pub(super) now: u64,
    /// This turn's wall-clock time (ns since the epoch).
    pub(super) unix_now: u64,
    phase: Phase,
    /// When hello and idle deadlines are next looked at.
    next_housekeeping: u64,
    /// The `busy` frame a connection beyond every slot gets before it is closed,
    /// encoded once.
    busy_frame: Vec<u8>,
    /// Connections closed for saying no hello, or nothing, in time.
    pub(super) timed_out: u64,
    /// A sync to disk failed (the log is failed too): the turn stops the daemon.
    sync_failed: Option<crate::log::LogError>,
    /// One log line a second, at most, about connections refused or timed out: a
    /// flood of them must not flood the log.
    connection_log: Limiter,
    /// Told of turns, recovery progress and the shutdown (systemd in `herald serve`).
    notifier: Box<dyn Notifier>,
    /// Subscriptions in recovery mode when the notifier was last told.
    replaying: usize,
    /// What metrics count beyond `status` (always kept: additions only).
    pub(super) counters: Counters,
    /// The exporter's exchange, with `--metrics-listen`.
    pub(super) metrics: Option<Box<MetricsLink>>,
    /// When the core was made, ns since the Unix epoch.
    pub(super) started_unix_ns: u64,
    /// The access policy and its refusals.
    pub(super) access: Access,
    /// The JetStream forwarder (`--forward-jetstream`), the sink numbered after every
    /// connection slot.
    pub(super) forwarder: Option<Box<Forwarder<R::Socket>>>,
    /// The upstreams this daemon relays from (`--upstream`), on the reactor slots
    /// after the forwarder's.
    pub(super) upstreams: Vec<Upstream<R::Socket>>,
    /// The TLS listener (`--listen-tls`) and its server configuration.
    pub(super) tls: Option<TlsListener>,
    /// Arming gave a TLS connection plaintext to decode: the next wait does not sleep.
    more_input: bool,
}

/// The TLS listener as the loop knows it.
pub(super) struct TlsListener {
    pub(super) id: ListenerId,
    pub(super) config: std::sync::Arc<rustls::ServerConfig>,
    /// The address bound (the port chosen, for port 0).
    pub(super) address: std::net::SocketAddr,
}

/// Lets a kind of log line through at most once per interval and counts the rest.
#[derive(Default)]
struct Limiter {
    last_ns: Option<u64>,
    suppressed: u64,
}

impl Limiter {
    /// Whether a line may go out at `now`; if so, how many were held back since the
    /// last one.
    fn allow(&mut self, now: u64, interval_ns: u64) -> Option<u64> {
        match self.last_ns {
            Some(last) if now.saturating_sub(last) < interval_ns => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_ns = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

impl<R: Reactor, M: Medium> Core<R, M> {
    /// Tells `notifier`, from now on, of every turn, of recovery progress and of the
    /// shutdown.
    pub fn set_notifier(&mut self, notifier: Box<dyn Notifier>) {
        self.notifier = notifier;
    }

    /// Subscriptions in recovery mode (replaying unconfirmed events after a crash).
    pub fn replaying_subscriptions(&self) -> usize {
        count_replaying(&self.subs)
    }

    /// Runs turns until a SIGTERM's shutdown is complete, then closes the log cleanly.
    pub fn run(mut self) -> Result<(), DaemonError> {
        while self.turn()? != Phase::Stopped {}
        self.stop()
    }

    /// After the last turn: the final release, then the clean-stop mark. A crash before
    /// `close_clean` is an unclean stop at the next start.
    pub fn stop(&mut self) -> Result<(), DaemonError> {
        self.release()?;
        self.log.close_clean().map_err(DaemonError::Log)?;
        tracing::info!(
            "shut down cleanly: every acknowledged event is in the log, cursors persisted"
        );
        Ok(())
    }

    /// One turn of the loop: the data path in order, then a wait for the next
    /// completions (at most until the next deadline). Returns where the daemon stands.
    pub fn turn(&mut self) -> Result<Phase, DaemonError> {
        self.now = self.reactor.now_ns();
        self.unix_now = self.reactor.unix_ns();
        self.notifier.turn(self.now);
        self.take_completions();
        if let Some(e) = self.sync_failed.take() {
            self.pipeline.fail(&mut self.conns);
            self.flush_before_failing();
            return Err(DaemonError::Log(e));
        }
        self.housekeeping();
        if let Err(e) = self.ingest() {
            // Nothing of the failed group may be acknowledged: its producers are told
            // so before the daemon stops.
            self.pipeline.fail(&mut self.conns);
            self.flush_before_failing();
            return Err(e);
        }
        self.pipeline.release(&mut self.conns);
        self.confirm_upstreams()?;
        self.fan_out();
        self.release()?;
        self.control();
        self.publish_metrics();
        self.start_sync();
        self.arm();
        if let Phase::ShuttingDown { deadline } = self.phase {
            // Answers held for a sync under way go out before the daemon stops.
            let said_all = self.conns.flushed() && self.pipeline.held() == 0;
            if said_all || self.now >= deadline {
                self.phase = Phase::Stopped;
                return Ok(self.phase);
            }
        }
        let sleep = if std::mem::take(&mut self.more_input) {
            Duration::ZERO
        } else {
            self.sleep()
        };
        self.completions.clear();
        self.reactor
            .wait(sleep, &mut self.completions)
            .map_err(|e| DaemonError::Io("waiting for I/O", e))?;
        Ok(self.phase)
    }

    /// Bytes of the daemon's own buffers and tables (not the region): what a steady
    /// load must not make grow.
    pub fn footprint_bytes(&self) -> usize {
        self.conns.len() * super::conn::SLOT_BYTES
            + self.subs.footprint_bytes()
            + self.pipeline.footprint_bytes()
            + self.dead.footprint_bytes()
            + self.dedupe.memory_bytes()
            + self.subscribes.capacity() * std::mem::size_of::<PendingSubscribe>()
            + self.completions.capacity() * std::mem::size_of::<Completion<R::Socket>>()
            + self.cursor_updates.capacity() * std::mem::size_of::<(SubscriptionId, Seq)>()
            + self.forwarder.as_ref().map_or(0, |f| f.footprint_bytes())
            + self
                .upstreams
                .iter()
                .map(|u| u.footprint_bytes())
                .sum::<usize>()
    }

    /// Frames the access policy refused since the daemon started.
    pub fn access_refusals(&self) -> u64 {
        self.access.refused
    }

    /// The reactor (tests drive the simulator's clients beside it).
    pub fn reactor(&self) -> &R {
        &self.reactor
    }

    /// The log.
    pub fn log(&self) -> &Log<M> {
        &self.log
    }

    /// Gives the log back (tests reopen its medium as a restart would).
    pub fn into_log(self) -> Log<M> {
        self.log
    }

    /// SIGTERM: stop accepting, tell every connection `shutting_down` (after what it is
    /// already owed), and wait for their output to go.
    fn terminate(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        tracing::info!("signal received: finishing in-flight commits and shutting down");
        self.notifier.stopping();
        self.reactor.stop_accepting();
        self.phase = Phase::ShuttingDown {
            deadline: self.now + SHUTDOWN_FLUSH.as_nanos() as u64,
        };
        for slot in 0..self.conns.len() {
            let conn = self.conns.get_mut(slot);
            if !conn.open_for_io() || conn.close_after_flush {
                continue;
            }
            let reply = Reply::error(
                0,
                ErrorCode::ShuttingDown,
                "the daemon is shutting down; reconnect later",
            );
            // Behind the answers already held: they go first.
            self.pipeline.answer(conn, slot, reply, false);
        }
    }

    /// Every [`HOUSEKEEPING_INTERVAL_NS`]: a connection that has not said hello within
    /// the hello timeout, or (with an idle timeout) sent nothing within it, is told
    /// `timed_out` and closed.
    fn housekeeping(&mut self) {
        if self.now < self.next_housekeeping || self.phase != Phase::Running {
            return;
        }
        self.next_housekeeping = self.now + HOUSEKEEPING_INTERVAL_NS;
        self.log.advance_retention(self.unix_now);
        let replaying = count_replaying(&self.subs);
        if replaying != self.replaying {
            self.replaying = replaying;
            self.notifier.replaying(replaying);
        }
        let hello_ns = self.config.hello_timeout.as_nanos() as u64;
        let idle_ns = self.config.idle_timeout.map(|d| d.as_nanos() as u64);
        for slot in 0..self.conns.len() {
            let conn = self.conns.get_mut(slot);
            let handshaking = conn
                .tls
                .as_ref()
                .is_some_and(|t| !t.established() || t.failed());
            if conn.open_for_io()
                && handshaking
                && self.now.saturating_sub(conn.opened_ns) >= hello_ns
            {
                // Nothing can be said before the handshake: the connection just goes.
                if conn.tls.as_ref().is_some_and(|t| !t.failed()) {
                    self.timed_out += 1;
                    self.conns.handshakes.refused(
                        self.now,
                        slot,
                        "the handshake did not finish within the hello timeout (--hello-timeout)",
                    );
                }
                self.close(slot);
                continue;
            }
            let conn = self.conns.get_mut(slot);
            if !conn.open_for_io() || conn.close_after_flush {
                continue;
            }
            let reply = if conn.machine.state() == protocol::ServerState::AwaitHello
                && self.now.saturating_sub(conn.opened_ns) >= hello_ns
            {
                Reply::Refused {
                    code: ErrorCode::TimedOut,
                    before: "no hello within ",
                    number: self.config.hello_timeout.as_secs(),
                    after: " s of connecting (--hello-timeout)",
                }
            } else if idle_ns
                .is_some_and(|idle| self.now.saturating_sub(conn.last_input_ns) >= idle)
            {
                Reply::Refused {
                    code: ErrorCode::TimedOut,
                    before: "nothing received for ",
                    number: self.config.idle_timeout.map_or(0, |d| d.as_secs()),
                    after: " s (--idle-timeout); send Ping to keep a quiet connection",
                }
            } else {
                continue;
            };
            self.timed_out += 1;
            if let Some(more) = self.connection_log.allow(self.now, 1_000_000_000) {
                tracing::info!(
                    slot,
                    timed_out_since_last_line = more,
                    "closing a connection that said no hello, or nothing, in time"
                );
            }
            self.pipeline.answer(conn, slot, reply, false);
        }
    }

    /// Starts closing a connection and detaches its subscription.
    fn close(&mut self, slot: usize) {
        if let Some(index) = self.conns.close(&mut self.reactor, slot) {
            self.subs.detach(index, sink_of(slot));
        }
    }

    /// Decodes and commits in rounds: a round ends with one group commit, then
    /// handles the subscribes that needed the log, which may unblock connections for
    /// another round.
    fn ingest(&mut self) -> Result<(), DaemonError> {
        self.dedupe.expire(self.unix_now, DEDUPE_EXPIRE_PER_TURN);
        self.link_upstreams();
        loop {
            let stop = self.ingest_round()?;
            let subscribes = std::mem::take(&mut self.subscribes);
            let had_subscribes = !subscribes.is_empty();
            for p in &subscribes {
                self.subscribe(p);
            }
            self.subscribes = subscribes;
            self.subscribes.clear();
            if !had_subscribes && stop != Stop::GroupFull {
                return Ok(());
            }
        }
    }

    /// One group commit of what every connection's buffer holds.
    fn ingest_round(&mut self) -> Result<Stop, DaemonError> {
        let Core {
            log,
            conns,
            subs,
            pipeline,
            subscribes,
            dead,
            dedupe,
            deduplicated,
            now,
            unix_now,
            config,
            counters,
            metrics,
            reactor,
            access,
            upstreams,
            routes,
            ..
        } = self;
        // Only while metrics are served is the clock read for a commit's duration.
        let started_ns = metrics.is_some().then(|| reactor.now_ns());
        let tail_before = log.tail().0;
        let (slots, serving) = conns.slots_and_serving();
        let mut cx = Ingest {
            subs,
            pipeline,
            subscribes,
            dead,
            dedupe,
            deduplicated,
            counters,
            now: *now,
            unix_now: *unix_now,
            full_wait_ns: config.full_wait.map(|d| d.as_nanos() as u64),
            serving,
            serving_max: config.connections_max,
            access,
            routes,
        };
        let mut batch = log.batch();
        let mut stop = Stop::Done;
        for (slot, conn) in slots.iter_mut().enumerate() {
            let readable = conn.has_input
                && conn.open_for_io()
                && !conn.close_after_flush
                && !conn.blocked
                && !conn.reactor_owns_recv();
            if !readable {
                continue;
            }
            if decode_frames(slot, conn, &mut batch, &mut cx) == Stop::GroupFull {
                stop = Stop::GroupFull;
                break;
            }
        }
        if stop != Stop::GroupFull {
            let group = cx.pipeline.open_group();
            for u in upstreams.iter_mut() {
                match u.ingest(&mut batch, group, *now, *unix_now, routes) {
                    Ok(IngestStop::Done) => {}
                    Ok(IngestStop::GroupFull) => {
                        stop = Stop::GroupFull;
                        break;
                    }
                    Err(why) => u.fail(reactor, &why, *now, *unix_now),
                }
            }
        }
        match cx.pipeline.commit(batch) {
            Ok(committed) => {
                let tail = log.tail().0;
                if let Some(c) = committed.filter(|c| c.count > 0) {
                    let ring_bytes = (tail - tail_before) * log.geometry().ring.slot_bytes;
                    let duration_ns = started_ns.map(|s| reactor.now_ns().saturating_sub(s));
                    cx.counters
                        .group_committed(c.count, ring_bytes, duration_ns);
                }
                cx.pipeline.committed_to(tail);
                Ok(stop)
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; herald stops writing to the region");
                Err(DaemonError::Log(e))
            }
        }
    }

    /// Attaches a `Subscribe`'s subscription and answers it.
    fn subscribe(&mut self, p: &PendingSubscribe) {
        let conn = self.conns.get_mut(p.slot);
        if conn.generation != p.generation || !conn.open_for_io() {
            return;
        }
        conn.blocked = false;
        conn.has_input = true;
        let attached = self.subs.attach(
            &mut self.log,
            p.name(),
            p.spec,
            &self.config.redelivery,
            sink_of(p.slot),
            p.group,
        );
        let reply = match attached {
            Ok(index) => {
                self.conns.get_mut(p.slot).subscription = Some(index);
                let sub = self.subs.get(index);
                let mode = match sub.map(|s| s.mode()) {
                    Some(log::SubscriptionMode::Recovering) => {
                        protocol::SubscriptionMode::Recovering
                    }
                    _ => protocol::SubscriptionMode::Normal,
                };
                Reply::Subscribed {
                    mode,
                    pending: self.subs.pending(index, &self.log, &self.routes),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "subscribe refused");
                match e {
                    AttachError::NameInUse => Reply::error(0, ErrorCode::NameInUse, "this durable subscription is attached to another connection (a work-queue group's members all subscribe with the group flag)"),
                    AttachError::GroupNeedsName => Reply::error(0, ErrorCode::Invalid, "a work-queue group needs a durable subscription name"),
                    AttachError::GroupFull(_) => Reply::error(0, ErrorCode::NameInUse, "the work-queue group has its most members (16)"),
                    AttachError::OtherFilters => Reply::error(0, ErrorCode::Invalid, "this durable subscription exists with other filters: subscribe with its filters, or change them first (`herald subscriptions set NAME --filter ...`)"),
                    AttachError::TableFull(entries) => Reply::Refused {
                        code: ErrorCode::TableFull,
                        before: "the region's subscription table is full (",
                        number: entries,
                        after: " durable subscriptions): attach to an existing one, or delete one",
                    },
                    AttachError::NoSlot => Reply::error(0, ErrorCode::Internal, "no free subscription slot"),
                    AttachError::Log(_) => Reply::error(0, ErrorCode::Internal, "cannot create the durable subscription: the region failed"),
                }
            }
        };
        let conn = self.conns.get_mut(p.slot);
        self.pipeline.answer(conn, p.slot, reply, false);
    }

    fn fan_out(&mut self) {
        let end = self.pipeline.durable_end();
        let Core {
            log,
            subs,
            conns,
            now,
            dead,
            forwarder,
            routes,
            ..
        } = self;
        let stored = fanout::Stored { log, routes };
        for (index, sub) in subs.iter_mut() {
            if sub.paused || sub.members.is_empty() {
                // Paused: nothing is delivered, its in-flight events wait, and the
                // events it is owed are held. Detached: held likewise.
                if sub.durable.is_some() {
                    fanout::hold(&stored, end, sub);
                }
                continue;
            }
            let (order, members) = sub.members.by_load(&sub.tracker);
            for &m in &order[..members] {
                let Some(sink) = sub.members.get(m).map(|s| s.sink) else {
                    continue;
                };
                if sink.0 as usize >= conns.len() {
                    if let Some(f) = forwarder.as_deref_mut() {
                        let sink = &mut ForwardSink(f);
                        fanout::pump(&stored, end, index, sub, m, sink, *now, dead);
                    }
                } else {
                    let conn = conns.get_mut(sink.0 as usize);
                    let sink = &mut ConnSink(conn);
                    fanout::pump(&stored, end, index, sub, m, sink, *now, dead);
                }
            }
        }
    }

    /// On a region synced to disk: once nothing is being synced, syncs what this turn
    /// and the turns since the last sync wrote (group commits and cursor releases)
    /// while the loop goes on; the next group gathers meanwhile.
    ///
    /// Cursor records alone are not synced at once: nobody waits for them, and a sync
    /// of them would be in flight when the next publish comes, which would then wait
    /// for two. They ride on the next group commit's sync, or are synced on their
    /// own when the ring is filling (their slots are freed only once they are
    /// durable), at shutdown, or [`CURSOR_SYNC_DELAY_NS`] after they were written.
    fn start_sync(&mut self) {
        if self.pipeline.sync_in_flight() {
            return;
        }
        if self.log.only_cursors_unsynced() {
            let since = *self.cursors_unsynced_since.get_or_insert(self.now);
            let filling = self.log.used_slots() * 4 >= self.log.ring_slots() * 3
                || self.conns.waiting_for_room() > 0;
            let due = self.now.saturating_sub(since) >= CURSOR_SYNC_DELAY_NS;
            if !filling && !due && self.phase == Phase::Running {
                self.pipeline.nothing_to_sync();
                return;
            }
        }
        self.cursors_unsynced_since = None;
        match self.log.begin_sync() {
            Some((number, request)) => {
                self.pipeline.sync_began(number, self.log.tail().0);
                self.reactor.sync(request.fd, number as u32);
                self.metrics_sync_began();
            }
            None => self.pipeline.nothing_to_sync(),
        }
    }

    fn release(&mut self) -> Result<(), DaemonError> {
        release::release(
            &mut self.log,
            &mut self.subs,
            &mut self.dead,
            &mut self.cursor_updates,
            self.now,
        )
        .map_err(DaemonError::Log)
    }

    fn arm(&mut self) {
        let reading = self.phase == Phase::Running;
        if let Some(f) = self.forwarder.as_deref_mut() {
            let sub = self.subs.get_mut(f.subscription);
            f.tick(&mut self.reactor, sub, self.now, self.unix_now);
            f.arm(&mut self.reactor);
        }
        for u in self.upstreams.iter_mut() {
            u.tick(&mut self.reactor, self.now, self.unix_now);
            self.more_input |= u.arm(&mut self.reactor, self.now, self.unix_now);
        }
        let outcome = self.conns.arm(&mut self.reactor, reading, self.now);
        self.more_input |= outcome.more_input;
        for slot in outcome.to_close.iter() {
            self.close(slot);
        }
    }

    /// How long the loop may sleep: until the next redelivery deadline of an attached
    /// subscription, soon while a publish waits for room, at most [`SLEEP_MAX`].
    fn sleep(&self) -> Duration {
        if self.conns.waiting_for_room() > 0 {
            return FULL_RETRY_INTERVAL;
        }
        let mut sleep = SLEEP_MAX;
        if let Some(since) = self.cursors_unsynced_since {
            let due = since + CURSOR_SYNC_DELAY_NS;
            sleep = sleep.min(Duration::from_nanos(due.saturating_sub(self.now)));
        }
        // The forwarder's subscription waits for its connection, not its deadlines,
        // while it is not connected (its events are all due then).
        let forwarder = self.forwarder.as_ref();
        if let Some(at) = forwarder.and_then(|f| f.deadline()) {
            sleep = sleep.min(Duration::from_nanos(at.saturating_sub(self.now)));
        }
        for at in self.upstreams.iter().filter_map(|u| u.deadline(self.now)) {
            sleep = sleep.min(Duration::from_nanos(at.saturating_sub(self.now)));
        }
        let idle_forwarder = forwarder.filter(|f| !f.ready()).map(|f| f.subscription);
        for (_, sub) in self
            .subs
            .iter()
            .filter(|(i, s)| !s.members.is_empty() && !s.paused && Some(*i) != idle_forwarder)
        {
            sleep = sleep.min(Duration::from_nanos(
                sub.next_due().saturating_sub(self.now),
            ));
        }
        // A due event that cannot go yet (its sink is full) waits for a send
        // completion, which wakes the loop anyway: never spin.
        sleep.max(REDELIVERY_SLEEP_MIN)
    }

    /// The log failed: give the answers just turned into errors a chance to go out.
    fn flush_before_failing(&mut self) {
        self.arm();
        let mut spare = Vec::new();
        let _ = self.reactor.wait(Duration::ZERO, &mut spare);
    }
}

/// Subscriptions in recovery mode.
fn count_replaying(subs: &SubscriptionSet) -> usize {
    subs.iter()
        .filter(|(_, s)| s.mode() == log::SubscriptionMode::Recovering)
        .count()
}
