//! The daemon loop: one io_uring ring owns the listener and every connection.
//!
//! Each turn of the loop:
//! 1. takes the completions (accepts, receives, sends, signals);
//! 2. **ingest**: decodes every complete frame of every connection with input; all
//!    publishes of the turn go into one group commit (one fence), then the replies
//!    (`stored` only now) are queued in frame order;
//! 3. **indication**: the committed sequence ranges go into the pre-allocated
//!    crossbeam queue that feeds the delivery stage;
//! 4. **delivery**: each subscription gets the events after its position that match
//!    its filters, up to its window and its connection's buffer;
//! 5. **release**: changed cursors are made durable together (one fence);
//! 6. submits receives and sends, then waits (spin, then sleep).
//!
//! Ingest and delivery are two stages of one loop on one thread: on a small machine
//! this avoids a cross-thread wake-up on every publish. The indication queue between
//! them is the seam along which they can be split onto separate threads.

mod admin;

use super::conn::{Conn, RECV_BYTES, REPLY_RESERVE_BYTES};
use super::dedupe::DedupeWindow;
use super::uring::{self, tag, untag, Op};
use super::{DaemonConfig, DaemonError};
use crate::event::limits::{
    DEDUPE_WINDOW_AGE_MAX, DEDUPE_WINDOW_RECORDS_MAX, SUBSCRIPTION_NAME_BYTES_MAX,
};
use crate::log::MappedRegion;
use crate::log::{
    self, AppendError, EventRef, EventView, Log, Seq, Severity, SubscriptionId, SubscriptionMode,
};
use crate::protocol::{
    self, encode, encoded_len, Deliver, ErrorCode, Event, Frame, HelloOk, ServerState, Topic,
    FRAME_BYTES_MAX,
};
use crate::subscription::{Due, SubscriptionSpec, Tracker};
use crossbeam::queue::ArrayQueue;
use io_uring::{opcode, types, IoUring};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

/// Most replies one turn may queue before decoding pauses.
const REPLIES_MAX: usize = 16 * 1024;
/// Longest sleep in the kernel: bounds how late a shutdown, a redelivery deadline or
/// another periodic check runs.
const SLEEP_MAX: Duration = Duration::from_millis(200);
/// Most expired idempotency keys forgotten per turn (bounds the work of one turn).
const DEDUPE_EXPIRE_PER_TURN: usize = 256;
/// Shortest sleep while a redelivery is due.
const REDELIVERY_SLEEP_MIN: Duration = Duration::from_millis(1);
/// How often a publish waiting for room in a full ring looks again.
const FULL_RETRY_INTERVAL: Duration = Duration::from_millis(5);

/// A reply owed to a connection, queued in frame order and encoded after the commit.
#[derive(Copy, Clone, Debug)]
enum Reply {
    HelloOk,
    Stored {
        correlation: u64,
        first: u64,
        last: u64,
        count: u16,
    },
    Error {
        correlation: u64,
        code: ErrorCode,
        message: &'static str,
    },
    Subscribed {
        mode: SubscriptionMode,
        pending: u64,
    },
    Pong {
        token: u64,
    },
}

/// A subscribe that needs the log (creating a durable entry): handled between turns'
/// group commits, so it is copied out of the receive buffer.
#[derive(Copy, Clone)]
struct PendingSubscribe {
    slot: usize,
    name: [u8; SUBSCRIPTION_NAME_BYTES_MAX],
    name_len: usize,
    spec: SubscriptionSpec,
}

/// A subscription known to the delivery stage. A durable one's name, persisted
/// cursor and persistent mode live in the log's entry (`durable`), not here.
struct Sub {
    durable: Option<SubscriptionId>,
    spec: SubscriptionSpec,
    tracker: Tracker,
    conn: Option<usize>,
    /// Recovering (the persistent mode): the events before this position are the
    /// replay; later ones are held until the subscription is normal again.
    replay_end: Option<u64>,
    /// `RecoveryDone` was sent on the current connection.
    recovery_done_sent: bool,
    /// The subscriber sent `Recovered`.
    leave_recovery: bool,
    /// Redeliveries sent (deadline, nak, reconnect) since the daemon started.
    redelivered: u64,
    /// Events that became dead letters since the daemon started.
    dead_lettered: u64,
    /// Live-only: events given up on (no dead letters without a durable entry).
    dropped: u64,
    /// A dead letter an operator asked to replay, in flight on the connection.
    replaying: Option<DeadReplay>,
    /// Dead letters of this subscription marked for replay (0 = none to look for).
    dead_replays: u32,
}

/// A dead letter sent again on an operator's request (`herald dead replay`), outside
/// the window: confirmed, it is purged; rejected, nak'd or not settled in time, it
/// stays a dead letter with one more delivery counted.
#[derive(Copy, Clone, Debug)]
struct DeadReplay {
    id: log::DeadLetterId,
    seq: u64,
    deliveries: u32,
    deadline: u64,
    /// The outcome is queued for the release stage.
    settled: bool,
}

/// What became of a replayed dead letter.
#[derive(Copy, Clone, Debug)]
struct DeadOutcome {
    sub: usize,
    id: log::DeadLetterId,
    confirmed: bool,
    deliveries: u32,
}

impl Sub {
    fn new(durable: Option<SubscriptionId>, spec: SubscriptionSpec, tracker: Tracker) -> Sub {
        Sub {
            durable,
            spec,
            tracker,
            conn: None,
            replay_end: None,
            recovery_done_sent: false,
            leave_recovery: false,
            redelivered: 0,
            dead_lettered: 0,
            dropped: 0,
            replaying: None,
            dead_replays: 0,
        }
    }
}

/// Why an event is to become a dead letter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum DeadCause {
    Rejected,
    Exhausted,
}

/// An event to turn into a dead letter in the release stage (which owns the log for
/// writing), before any cursor passes it.
#[derive(Copy, Clone, Debug)]
struct DeadPending {
    sub: usize,
    seq: u64,
    deliveries: u16,
    cause: DeadCause,
}

/// Most dead letters one turn queues; more wait (postponed) for a later turn.
const DEAD_PENDING_MAX: usize = 1024;

/// The running daemon.
pub struct Daemon {
    config: DaemonConfig,
    log: Log<MappedRegion>,
    ring: IoUring,
    listener: UnixListener,
    signal_fd: OwnedFd,
    signal_buf: Box<[u8; 128]>,
    conns: Vec<Conn>,
    subs: Vec<Option<Sub>>,
    replies: Vec<(usize, Reply)>,
    pending_subscribes: Vec<PendingSubscribe>,
    completions: Vec<(u64, i32, u32)>,
    cursor_updates: Vec<(SubscriptionId, Seq)>,
    indications: ArrayQueue<(u64, u64)>,
    indication_overflow: bool,
    /// End of what the indication queue has announced: delivery reads up to here.
    indicated_end: u64,
    /// Everything below this position existed before the restart.
    recovered_tail: u64,
    /// The daemon's monotonic clock starts here.
    clock: Instant,
    /// This turn's time on that clock, in nanoseconds.
    now: u64,
    dead_pending: Vec<DeadPending>,
    dead_outcomes: Vec<DeadOutcome>,
    /// Idempotency keys of recently stored events.
    dedupe: DedupeWindow,
    /// Publishes answered from the dedupe window since the daemon started.
    deduplicated: u64,
    /// What the start-up checks found (shown by `status`).
    start_findings: Vec<crate::subscription::check::Finding>,
    shutting_down: bool,
    accepting: bool,
    connections_refused: u64,
}

impl Daemon {
    /// Takes an opened log and a bound listener; allocates every buffer.
    pub fn new(
        config: DaemonConfig,
        log: Log<MappedRegion>,
        listener: UnixListener,
        previous_stop_clean: bool,
    ) -> Result<Daemon, DaemonError> {
        let ring = uring::create(config.ring_entries).map_err(DaemonError::IoUring)?;
        let signal_fd = block_signals_into_fd()?;
        let connections = config.connections_max;
        let subscriptions = log.geometry().subscriptions.entry_count as usize + connections;
        let recovered_tail = log.tail().0;
        let mut daemon = Daemon {
            indications: ArrayQueue::new(config.indication_queue_len.max(1)),
            conns: (0..connections).map(|_| Conn::new()).collect(),
            subs: (0..subscriptions).map(|_| None).collect(),
            replies: Vec::with_capacity(REPLIES_MAX),
            pending_subscribes: Vec::with_capacity(connections),
            completions: Vec::with_capacity(config.ring_entries as usize * 2),
            cursor_updates: Vec::with_capacity(subscriptions),
            indication_overflow: false,
            indicated_end: recovered_tail,
            signal_buf: Box::new([0; 128]),
            recovered_tail,
            clock: Instant::now(),
            now: 0,
            dead_pending: Vec::with_capacity(DEAD_PENDING_MAX),
            dead_outcomes: Vec::with_capacity(subscriptions),
            dedupe: DedupeWindow::new(
                config.dedupe_records.clamp(1, DEDUPE_WINDOW_RECORDS_MAX),
                config.dedupe_age.min(DEDUPE_WINDOW_AGE_MAX),
            ),
            deduplicated: 0,
            start_findings: Vec::new(),
            shutting_down: false,
            accepting: true,
            connections_refused: 0,
            config,
            log,
            ring,
            listener,
            signal_fd,
        };
        daemon.load_durable_subscriptions(previous_stop_clean)?;
        daemon.rebuild_dedupe_window();
        Ok(daemon)
    }

    /// The dedupe window survives restarts: every keyed event still intact in the
    /// ring (released ones too, until their slots are reused) is remembered again.
    fn rebuild_dedupe_window(&mut self) {
        let tail = self.log.tail().0;
        let oldest = tail.saturating_sub(self.log.geometry().ring.slot_count);
        let mut remembered = 0u64;
        for e in self.log.events_since(Seq(oldest), tail) {
            if !e.key.is_empty() {
                self.dedupe.insert(e.source, e.key, e.seq, e.timestamp_ns);
                remembered += 1;
            }
        }
        self.dedupe.expire(log::now_unix_ns(), usize::MAX);
        if remembered > 0 {
            tracing::info!(
                keys = self.dedupe.len(),
                "idempotency keys rebuilt from the log"
            );
        }
    }

    /// `previous_stop_clean`: else subscriptions with unsettled events start recovering.
    fn load_durable_subscriptions(&mut self, previous_stop_clean: bool) -> Result<(), DaemonError> {
        let mut loaded = Vec::new();
        for s in self.log.subscriptions() {
            // Decoding checks the stored patterns against the grammar.
            let spec = match SubscriptionSpec::decode(s.spec()) {
                Ok(spec) => spec,
                Err(e) => {
                    // Hold everything for it rather than guess its filters.
                    tracing::warn!(subscription = %String::from_utf8_lossy(s.name()), error = %e, "durable subscription spec unreadable; it receives every event");
                    SubscriptionSpec::new(Severity::Debug, 64, false, [&b">"[..]])
                        .expect("static spec")
                }
            };
            let policy = self
                .config
                .redelivery
                .policy(spec.ack_deadline_ms, spec.max_deliveries);
            let tracker = Tracker::new(s.cursor, spec.window_events, self.recovered_tail, policy);
            let mut sub = Sub::new(Some(s.id), spec, tracker);
            // Recovering: it was (a damaged entry, a crash during an earlier recovery),
            // or the last run did not stop cleanly and events wait for it.
            let unsettled = self
                .log
                .events_from(Seq(s.cursor))
                .any(|e| spec.matches(e.topic, e.severity));
            let recovering = s.mode == SubscriptionMode::Recovering
                || s.damage.is_some()
                || (!previous_stop_clean && unsettled);
            if recovering {
                sub.replay_end = Some(self.recovered_tail);
            }
            loaded.push((s.id, s.mode, sub));
        }
        for (slot, (id, stored_mode, sub)) in loaded.into_iter().enumerate() {
            if sub.replay_end.is_some() && stored_mode != SubscriptionMode::Recovering {
                self.log
                    .set_mode(id, SubscriptionMode::Recovering)
                    .map_err(DaemonError::Log)?;
            }
            if sub.replay_end.is_some() {
                tracing::info!(subscription = %String::from_utf8_lossy(self.log.subscription(id).map_or(&b""[..], |e| e.name())), "recovering: unsettled events are replayed before anything new");
            }
            self.subs[slot] = Some(sub);
        }
        Ok(())
    }

    /// Dead letters of subscription `id` an operator asked to replay.
    fn dead_replays_of(&self, id: SubscriptionId) -> u32 {
        self.log
            .dead_letters_of(id)
            .filter(|d| d.replay_requested)
            .count() as u32
    }

    /// Nanoseconds on the daemon's monotonic clock.
    fn clock_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    /// Runs until SIGTERM or SIGINT, then shuts down cleanly.
    pub fn run(mut self) -> Result<(), DaemonError> {
        self.arm_accept()?;
        self.arm_signal()?;
        let spin = Duration::from_micros(self.config.busy_poll_us);
        let mut shutdown_deadline: Option<Instant> = None;
        loop {
            self.now = self.clock_ns();
            self.take_completions();
            self.ingest()?;
            self.deliver();
            self.release()?;
            self.answer_status();
            self.arm_connections()?;
            if self.shutting_down {
                let deadline = *shutdown_deadline
                    .get_or_insert_with(|| Instant::now() + Duration::from_secs(2));
                let flushed = self
                    .conns
                    .iter()
                    .all(|c| !c.in_use() || c.send_start == c.send_end);
                if flushed || Instant::now() >= deadline {
                    break;
                }
            }
            // A producer waiting for room retries every turn: look again soon.
            let mut sleep = if self.conns.iter().any(|c| c.full_since.is_some()) {
                FULL_RETRY_INTERVAL
            } else {
                SLEEP_MAX
            };
            // Wake for the next redelivery deadline of a connected subscription.
            let now = self.clock_ns();
            for sub in self.subs.iter().flatten().filter(|s| s.conn.is_some()) {
                let due = sub
                    .replaying
                    .filter(|r| !r.settled)
                    .map_or(sub.tracker.next_due(), |r| {
                        r.deadline.min(sub.tracker.next_due())
                    });
                sleep = sleep.min(Duration::from_nanos(due.saturating_sub(now)));
            }
            // A due event that cannot go yet (its connection's buffer is full) waits
            // for a send completion, which wakes the loop anyway: never spin.
            let sleep = sleep.max(REDELIVERY_SLEEP_MIN);
            uring::submit_and_wait(&mut self.ring, spin, sleep)
                .map_err(|e| DaemonError::Io("io_uring_enter", e))?;
        }
        self.release()?;
        // Only now: a crash before this line is an unclean stop at the next start.
        self.log.close_clean().map_err(DaemonError::Log)?;
        tracing::info!(
            "shut down cleanly: every acknowledged event is in the log, cursors persisted"
        );
        Ok(())
    }

    fn push_sqe(&mut self, entry: &io_uring::squeue::Entry) -> Result<(), DaemonError> {
        // SAFETY: every buffer referenced by our entries lives in `self.conns` or
        // `self.signal_buf`, allocated once and never moved or freed while the daemon
        // runs; the in-flight flags keep them untouched until the completion arrives.
        unsafe {
            if self.ring.submission().push(entry).is_err() {
                self.ring
                    .submit()
                    .map_err(|e| DaemonError::Io("io_uring_enter", e))?;
                self.ring.submission().push(entry).map_err(|_| {
                    DaemonError::Io(
                        "io_uring submission queue",
                        std::io::Error::other("full after submit"),
                    )
                })?;
            }
        }
        Ok(())
    }

    fn arm_accept(&mut self) -> Result<(), DaemonError> {
        let entry = opcode::AcceptMulti::new(types::Fd(self.listener.as_raw_fd()))
            .build()
            .user_data(tag(Op::Accept, 0, 0));
        self.push_sqe(&entry)
    }

    fn arm_signal(&mut self) -> Result<(), DaemonError> {
        let entry = opcode::Read::new(
            types::Fd(self.signal_fd.as_raw_fd()),
            self.signal_buf.as_mut_ptr(),
            128,
        )
        .build()
        .user_data(tag(Op::Signal, 0, 0));
        self.push_sqe(&entry)
    }

    fn take_completions(&mut self) {
        self.completions.clear();
        for cqe in self.ring.completion() {
            self.completions
                .push((cqe.user_data(), cqe.result(), cqe.flags()));
        }
        for i in 0..self.completions.len() {
            let (user_data, result, flags) = self.completions[i];
            let (op, slot, generation) = untag(user_data);
            match op {
                Some(Op::Accept) => self.accepted(result, flags),
                Some(Op::Signal) => {
                    if result > 0 {
                        tracing::info!(
                            "signal received: finishing in-flight commits and shutting down"
                        );
                        self.shutting_down = true;
                        self.accepting = false;
                    }
                }
                Some(Op::Recv) => self.received(slot, generation, result),
                Some(Op::Send) => self.sent(slot, generation, result),
                None => tracing::warn!(user_data, "completion with an unknown tag"),
            }
        }
    }

    fn accepted(&mut self, result: i32, flags: u32) {
        if !io_uring::cqueue::more(flags) && self.accepting {
            if let Err(e) = self.arm_accept() {
                tracing::error!(error = %e, "cannot re-arm accept");
            }
        }
        if result < 0 {
            tracing::warn!(error = %std::io::Error::from_raw_os_error(-result), "accept failed");
            return;
        }
        // SAFETY: a successful accept completion carries a new fd that we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(result) };
        if !self.accepting {
            return;
        }
        match self
            .conns
            .iter()
            .position(|c| !c.in_use() && !c.recv_in_flight && !c.send_in_flight)
        {
            Some(slot) => self.conns[slot].open(fd),
            None => {
                self.connections_refused += 1;
                tracing::warn!(
                    limit = self.config.connections_max,
                    "connection refused: all connection slots are in use (raise --connections-max)"
                );
            }
        }
    }

    fn received(&mut self, slot: usize, generation: u32, result: i32) {
        let conn = &mut self.conns[slot];
        if conn.generation != generation {
            return;
        }
        conn.recv_in_flight = false;
        if result <= 0 {
            self.close(slot);
            return;
        }
        conn.recv_len += result as usize;
        conn.has_input = true;
    }

    fn sent(&mut self, slot: usize, generation: u32, result: i32) {
        let conn = &mut self.conns[slot];
        if conn.generation != generation {
            return;
        }
        conn.send_in_flight = false;
        if result < 0 {
            self.close(slot);
            return;
        }
        conn.send_start += result as usize;
        if conn.send_start == conn.send_end {
            conn.send_start = 0;
            conn.send_end = 0;
            if conn.close_after_flush {
                self.close(slot);
                return;
            }
        }
        // Decoding may have paused for lack of reply space.
        if conn.recv_len > 0 {
            conn.has_input = true;
        }
    }

    /// Starts closing a connection; the slot is freed once no operation is in flight.
    fn close(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        if conn.closing || !conn.in_use() {
            return;
        }
        conn.closing = true;
        if let Some(fd) = &conn.fd {
            // Completes a pending receive at once, so the slot can be released.
            // SAFETY: plain syscall on a live fd we own.
            unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
        if let Some(s) = conn.subscription.take() {
            let sub = self.subs[s].as_mut().expect("attached subscription exists");
            sub.conn = None;
            sub.tracker.disconnect();
            // Still marked for replay in the log: sent again on the next connection.
            sub.replaying = None;
            if sub.durable.is_none() {
                self.subs[s] = None;
            }
        }
    }

    fn arm_connections(&mut self) -> Result<(), DaemonError> {
        for slot in 0..self.conns.len() {
            let conn = &mut self.conns[slot];
            if !conn.in_use() {
                continue;
            }
            if conn.closing {
                if !conn.recv_in_flight && !conn.send_in_flight {
                    conn.fd = None;
                }
                continue;
            }
            if conn.close_after_flush && !conn.send_in_flight && conn.send_start == conn.send_end {
                // Nothing (left) to say: the goodbye or error is complete.
                self.close(slot);
                continue;
            }
            let fd = conn.fd.as_ref().expect("in use").as_raw_fd();
            let generation = conn.generation;
            if conn.wants_send() {
                let pending = &conn.send[conn.send_start..conn.send_end];
                let entry =
                    opcode::Send::new(types::Fd(fd), pending.as_ptr(), pending.len() as u32)
                        .flags(libc::MSG_NOSIGNAL)
                        .build()
                        .user_data(tag(Op::Send, slot, generation));
                conn.send_in_flight = true;
                self.push_sqe(&entry)?;
            }
            let conn = &mut self.conns[slot];
            let may_read = !conn.recv_in_flight
                && !conn.has_input
                && !conn.blocked
                && !conn.close_after_flush
                && !self.shutting_down;
            if may_read && conn.recv_len < RECV_BYTES {
                let tail = &mut conn.recv[conn.recv_len..];
                let entry = opcode::Recv::new(types::Fd(fd), tail.as_mut_ptr(), tail.len() as u32)
                    .build()
                    .user_data(tag(Op::Recv, slot, generation));
                conn.recv_in_flight = true;
                self.push_sqe(&entry)?;
            }
        }
        Ok(())
    }

    /// Decodes frames and commits publishes, in rounds: a round ends with one group
    /// commit, then handles the subscribes that needed the log, which may unblock
    /// connections for another round.
    fn ingest(&mut self) -> Result<(), DaemonError> {
        loop {
            let progress = self.ingest_round();
            self.encode_replies();
            let subscribes = std::mem::take(&mut self.pending_subscribes);
            let had_subscribes = !subscribes.is_empty();
            for p in &subscribes {
                self.subscribe(p);
                self.conns[p.slot].blocked = false;
                self.conns[p.slot].has_input = true;
            }
            self.pending_subscribes = subscribes;
            self.pending_subscribes.clear();
            self.encode_replies();
            let group_full = progress?;
            if !had_subscribes && !group_full {
                return Ok(());
            }
        }
    }

    /// One group commit. Returns whether it filled up (more input waits for a round).
    fn ingest_round(&mut self) -> Result<bool, DaemonError> {
        let Daemon {
            log,
            conns,
            subs,
            replies,
            pending_subscribes,
            indications,
            indication_overflow,
            dead_pending,
            dead_outcomes,
            dedupe,
            deduplicated,
            now,
            config,
            ..
        } = self;
        dedupe.expire(log::now_unix_ns(), DEDUPE_EXPIRE_PER_TURN);
        let mut cx = Ingest {
            subs,
            replies,
            pending_subscribes,
            dead: dead_pending,
            dead_outcomes,
            dedupe,
            deduplicated,
            now: *now,
            full_wait_ns: config.full_wait.map(|d| d.as_nanos() as u64),
        };
        let mut batch = log.batch();
        let batch_replies_from = cx.replies.len();
        let mut group_full = false;
        for (slot, conn) in conns.iter_mut().enumerate() {
            if !conn.has_input || conn.closing || conn.blocked || conn.recv_in_flight {
                continue;
            }
            if decode_frames(slot, conn, &mut batch, &mut cx) {
                group_full = true;
                break;
            }
        }
        let committed = batch.commit();
        match committed {
            Ok(Some(c)) => {
                // The range a group commit made durable: first seq, and the end of
                // the ring positions it wrote.
                if indications.push((c.first.0, log.tail().0)).is_err() {
                    // Delivery reads the log itself; the queue only says where to look.
                    *indication_overflow = true;
                }
                Ok(group_full)
            }
            Ok(None) => Ok(group_full),
            Err(e) => {
                // Nothing of this group may be acknowledged.
                for (_, reply) in cx.replies[batch_replies_from..].iter_mut() {
                    if let Reply::Stored { correlation, .. } = *reply {
                        *reply = Reply::Error {
                            correlation,
                            code: ErrorCode::Internal,
                            message: "the persistent region failed; the event was not stored",
                        };
                    }
                }
                tracing::error!(error = %e, "group commit failed; herald stops writing to the region");
                Err(DaemonError::Log(e))
            }
        }
    }

    fn encode_replies(&mut self) {
        let node_id = self.log.geometry().node_id;
        let payload_max = self
            .log
            .geometry()
            .ring
            .payload_bytes_max
            .min(protocol::EVENT_PAYLOAD_BYTES_MAX as u64) as u32;
        for i in 0..self.replies.len() {
            let (slot, reply) = self.replies[i];
            let conn = &mut self.conns[slot];
            if !conn.in_use() || conn.closing {
                continue;
            }
            if let Reply::Error { code, .. } = reply {
                if code.closes_connection() {
                    conn.close_after_flush = true;
                }
            }
            let frame = reply_frame(
                reply,
                conn.machine.version().unwrap_or(1),
                node_id,
                payload_max,
            );
            conn.send_free();
            match encode(&frame, conn.send_tail()) {
                Ok(n) => conn.send_end += n,
                // Decoding counts every reply it owes against the free space and every
                // reply is built valid, so this is a bug; it costs this connection, never
                // the daemon.
                Err(e) => {
                    tracing::error!(slot, error = %e, ?reply, "a reply could not be encoded; closing the connection");
                    conn.close_after_flush = true;
                }
            }
        }
        self.replies.clear();
    }

    fn subscribe(&mut self, p: &PendingSubscribe) {
        let name = &p.name[..p.name_len];
        let reply = |r| (p.slot, r);
        let policy = self
            .config
            .redelivery
            .policy(p.spec.ack_deadline_ms, p.spec.max_deliveries);
        if !self.conns[p.slot].in_use() || self.conns[p.slot].closing {
            return;
        }
        let index = if name.is_empty() {
            match self.subs.iter().position(|s| s.is_none()) {
                Some(i) => {
                    let tail = self.log.tail().0;
                    let tracker = Tracker::new(tail, p.spec.window_events, 0, policy);
                    self.subs[i] = Some(Sub::new(None, p.spec, tracker));
                    i
                }
                None => {
                    self.replies.push(reply(Reply::Error {
                        correlation: 0,
                        code: ErrorCode::Internal,
                        message: "no free subscription slot",
                    }));
                    return;
                }
            }
        } else if let Some(i) = self
            .log
            .subscription_by_name(name)
            .map(|entry| entry.id)
            .and_then(|id| {
                self.subs
                    .iter()
                    .position(|s| s.as_ref().is_some_and(|s| s.durable == Some(id)))
            })
        {
            let sub = self.subs[i].as_mut().expect("found");
            if sub.conn.is_some() {
                self.replies.push(reply(Reply::Error {
                    correlation: 0,
                    code: ErrorCode::NameInUse,
                    message: "this durable subscription is attached to another connection",
                }));
                return;
            }
            let same_filters = sub.spec.min_severity == p.spec.min_severity
                && sub.spec.patterns().eq(p.spec.patterns());
            if !same_filters {
                self.replies.push(reply(Reply::Error {
                    correlation: 0,
                    code: ErrorCode::Invalid,
                    message: "this durable subscription exists with other filters; filters are fixed at creation: use a new name",
                }));
                return;
            }
            // The redelivery policy is not a filter: each connection may ask anew
            // (0 keeps what the subscription was created with).
            let or_stored = |asked: u32, stored: u32| if asked == 0 { stored } else { asked };
            let policy = self.config.redelivery.policy(
                or_stored(p.spec.ack_deadline_ms, sub.spec.ack_deadline_ms),
                or_stored(p.spec.max_deliveries.into(), sub.spec.max_deliveries.into()) as u16,
            );
            sub.tracker.configure(p.spec.window_events, policy);
            i
        } else {
            let mut stored = [0u8; log::layout::SUBSCRIPTION_SPEC_BYTES_MAX];
            let len = p.spec.encode(&mut stored);
            let id = match self.log.create_subscription(name, &stored[..len]) {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create durable subscription");
                    self.replies.push(reply(Reply::Error {
                        correlation: 0,
                        code: ErrorCode::Internal,
                        message:
                            "cannot create the durable subscription (table full or region failed)",
                    }));
                    return;
                }
            };
            let Some(i) = self.subs.iter().position(|s| s.is_none()) else {
                self.replies.push(reply(Reply::Error {
                    correlation: 0,
                    code: ErrorCode::Internal,
                    message: "no free subscription slot",
                }));
                return;
            };
            let cursor = self.log.subscription(id).expect("just created").cursor;
            let tracker = Tracker::new(cursor, p.spec.window_events, 0, policy);
            self.subs[i] = Some(Sub::new(Some(id), p.spec, tracker));
            i
        };
        let dead_replays = self.subs[index]
            .as_ref()
            .and_then(|s| s.durable)
            .map_or(0, |id| self.dead_replays_of(id));
        let sub = self.subs[index].as_mut().expect("set above");
        sub.conn = Some(p.slot);
        sub.recovery_done_sent = false;
        sub.dead_replays = dead_replays;
        self.conns[p.slot].subscription = Some(index);
        let pending = self
            .log
            .events_from(Seq(sub.tracker.cursor()))
            .filter(|e| sub.spec.matches(e.topic, e.severity))
            .count() as u64;
        let mode = if sub.replay_end.is_some() {
            SubscriptionMode::Recovering
        } else {
            SubscriptionMode::Normal
        };
        self.replies
            .push(reply(Reply::Subscribed { mode, pending }));
    }

    fn deliver(&mut self) {
        while let Some((_, end)) = self.indications.pop() {
            self.indicated_end = self.indicated_end.max(end);
        }
        if std::mem::take(&mut self.indication_overflow) {
            // Announcements were dropped for lack of room; the log itself is the truth.
            self.indicated_end = self.log.tail().0;
        }
        let Daemon {
            log,
            subs,
            conns,
            indicated_end,
            now,
            dead_pending,
            dead_outcomes,
            ..
        } = self;
        for (index, sub) in subs.iter_mut().enumerate() {
            let Some(sub) = sub else { continue };
            match sub.conn {
                Some(slot) => pump(
                    log,
                    *indicated_end,
                    index,
                    sub,
                    &mut conns[slot],
                    *now,
                    dead_pending,
                    dead_outcomes,
                ),
                None if sub.durable.is_some() => hold(log, *indicated_end, sub),
                None => {}
            }
        }
    }

    fn release(&mut self) -> Result<(), DaemonError> {
        self.write_dead_letters()?;
        self.leave_recovery()?;
        self.cursor_updates.clear();
        for sub in self.subs.iter().flatten() {
            let Some(id) = sub.durable else { continue };
            let cursor = sub.tracker.cursor();
            let persisted = self
                .log
                .subscription(id)
                .expect("durable subscriptions stay in the log")
                .cursor;
            if cursor > persisted {
                self.cursor_updates.push((id, Seq(cursor)));
            }
        }
        if self.cursor_updates.is_empty() {
            return Ok(());
        }
        self.log
            .release(&self.cursor_updates)
            .map_err(DaemonError::Log)
    }

    /// Turns the queued rejected and exhausted events into dead letters, each durable
    /// before its subscription may settle it (and so before any cursor passes it).
    fn write_dead_letters(&mut self) -> Result<(), DaemonError> {
        for i in 0..self.dead_pending.len() {
            let d = self.dead_pending[i];
            let Some(sub) = self.subs[d.sub].as_mut() else {
                continue;
            };
            let Some(id) = sub.durable else { continue };
            if sub.tracker.deliveries(d.seq).is_none() {
                continue; // settled meanwhile (a late confirm)
            }
            // Already a dead letter (written before a crash lost the cursor that
            // passed it): settle it again without a second copy.
            if self.log.dead_letters_of(id).any(|x| x.seq.0 == d.seq) {
                sub.tracker.settle(d.seq);
                continue;
            }
            let reason = match d.cause {
                DeadCause::Rejected => log::DeadReason::Rejected,
                DeadCause::Exhausted => log::DeadReason::MaxDeliveries,
            };
            match self
                .log
                .dead_letter(id, Seq(d.seq), u32::from(d.deliveries), reason)
            {
                Ok(_) => {
                    sub.tracker.settle(d.seq);
                    sub.dead_lettered += 1;
                    let name = self.log.subscription(id).map_or(&b""[..], |e| e.name());
                    tracing::warn!(subscription = %String::from_utf8_lossy(name), seq = d.seq, deliveries = d.deliveries, cause = ?d.cause, "event moved to the subscription's dead letters (`herald dead list`)");
                }
                Err(log::DeadLetterError::Failed(e)) => {
                    self.dead_pending.clear();
                    return Err(DaemonError::Log(log::LogError::Failed(e)));
                }
                Err(e) => {
                    // Kept unsettled (it holds the ring) and tried again later.
                    tracing::error!(seq = d.seq, error = %e, "cannot write a dead letter; the event stays with its subscription");
                }
            }
        }
        self.dead_pending.clear();
        for i in 0..self.dead_outcomes.len() {
            let o = self.dead_outcomes[i];
            let result = if o.confirmed {
                self.log.purge_dead(&[o.id])
            } else {
                self.log.set_dead_replay(o.id, false, o.deliveries)
            };
            if let Some(sub) = self.subs[o.sub].as_mut() {
                sub.replaying = None;
                sub.dead_replays = sub.dead_replays.saturating_sub(1);
            }
            result.map_err(DaemonError::Log)?;
        }
        self.dead_outcomes.clear();
        Ok(())
    }

    /// Returns recovering subscriptions to normal once they said `Recovered` or, in
    /// automatic mode, once their replay is settled; persistently.
    fn leave_recovery(&mut self) -> Result<(), DaemonError> {
        for sub in self.subs.iter_mut().flatten() {
            let Some(replay_end) = sub.replay_end else {
                continue;
            };
            let done = sub.leave_recovery
                || (sub.spec.automatic_recovery
                    && sub.conn.is_some()
                    && sub.tracker.in_flight() == 0
                    && sub.tracker.cursor() >= replay_end);
            if !done {
                continue;
            }
            if let Some(id) = sub.durable {
                self.log
                    .set_mode(id, SubscriptionMode::Normal)
                    .map_err(DaemonError::Log)?;
            }
            sub.replay_end = None;
            sub.leave_recovery = false;
        }
        Ok(())
    }

    fn answer_status(&mut self) {
        for slot in 0..self.conns.len() {
            if !self.conns[slot].status_requested {
                continue;
            }
            self.conns[slot].status_requested = false;
            self.conns[slot].blocked = false;
            let json = if self.conns[slot].admin_len > 0 {
                let len = std::mem::take(&mut self.conns[slot].admin_len);
                let request = String::from_utf8_lossy(&self.conns[slot].admin[..len]).into_owned();
                self.admin(&request)
            } else {
                super::status::status_json(self)
            };
            let conn = &mut self.conns[slot];
            conn.send_free();
            let frame = Frame::StatusReply { json: &json };
            match encode(&frame, conn.send_tail()) {
                Ok(n) => conn.send_end += n,
                Err(e) => tracing::warn!(error = %e, "status reply does not fit"),
            }
            conn.has_input = conn.recv_len > 0;
        }
    }

    /// For `status`: the log.
    pub(super) fn log(&self) -> &Log<MappedRegion> {
        &self.log
    }

    /// For `status`: one row per subscription.
    pub(super) fn subscription_rows(&self) -> impl Iterator<Item = SubRow> + '_ {
        let tail = self.log.tail().0;
        self.subs.iter().flatten().map(move |s| {
            let entry = s.durable.and_then(|id| self.log.subscription(id));
            let policy = s.tracker.policy();
            SubRow {
                // Live-only subscriptions have no name.
                name: entry.map_or(String::new(), |e| {
                    String::from_utf8_lossy(e.name()).into_owned()
                }),
                durable: s.durable.is_some(),
                connected: s.conn.is_some(),
                cursor: s.tracker.cursor(),
                pending_slots: tail.saturating_sub(s.tracker.cursor()),
                in_flight: s.tracker.in_flight(),
                awaiting_redelivery: s.tracker.waiting(),
                mode: if s.replay_end.is_some() {
                    SubscriptionMode::Recovering
                } else {
                    SubscriptionMode::Normal
                },
                replay_end: s.replay_end,
                redelivered: s.redelivered,
                dead_lettered: s.dead_lettered,
                dropped: s.dropped,
                ack_deadline_ms: policy.ack_deadline_ns / 1_000_000,
                max_deliveries: policy.max_deliveries,
                damage: entry.and_then(|e| e.damage),
            }
        })
    }

    /// For `status`: producers whose publish waits for room in a full ring.
    pub(super) fn producers_waiting_for_room(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| c.in_use() && c.full_since.is_some())
            .count()
    }

    /// Keeps what the start-up checks found, for `status`.
    pub fn set_start_findings(&mut self, findings: Vec<crate::subscription::check::Finding>) {
        self.start_findings = findings;
    }

    /// For `status`: what the start-up checks found.
    pub(super) fn start_findings(&self) -> &[crate::subscription::check::Finding] {
        &self.start_findings
    }

    /// For `status`: the idempotency window and the publishes it answered.
    pub(super) fn dedupe(&self) -> (&DedupeWindow, u64) {
        (&self.dedupe, self.deduplicated)
    }

    /// For `status`: the configuration.
    pub(super) fn config(&self) -> &DaemonConfig {
        &self.config
    }

    /// For `status`: open connections and refused ones.
    pub(super) fn connection_counts(&self) -> (usize, u64) {
        (
            self.conns.iter().filter(|c| c.in_use()).count(),
            self.connections_refused,
        )
    }
}

/// One subscription as `status` shows it.
#[derive(serde::Serialize)]
pub(super) struct SubRow {
    pub name: String,
    pub durable: bool,
    pub connected: bool,
    pub cursor: u64,
    pub pending_slots: u64,
    pub in_flight: usize,
    pub awaiting_redelivery: usize,
    pub mode: SubscriptionMode,
    pub replay_end: Option<u64>,
    pub redelivered: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    pub ack_deadline_ms: u64,
    pub max_deliveries: u16,
    pub damage: Option<&'static str>,
}

/// The frame that carries `reply`.
fn reply_frame(reply: Reply, version: u16, node_id: u64, payload_max: u32) -> Frame<'static> {
    match reply {
        Reply::HelloOk => Frame::HelloOk(HelloOk {
            version,
            node_id,
            frame_bytes_max: FRAME_BYTES_MAX as u32,
            event_payload_bytes_max: payload_max,
        }),
        Reply::Stored {
            correlation,
            first,
            last,
            count,
        } => Frame::Stored {
            correlation,
            first_seq: Seq(first),
            last_seq: Seq(last),
            count,
        },
        Reply::Error {
            correlation,
            code,
            message,
        } => Frame::Error {
            correlation,
            code,
            message,
        },
        Reply::Subscribed { mode, pending } => Frame::Subscribed {
            mode,
            pending_events: pending,
        },
        Reply::Pong { token } => Frame::Pong { token },
    }
}

/// Bytes `reply` will take in the send buffer. A reply that would not encode (a bug:
/// every reply is built valid) is counted at the largest size; `encode_replies` then
/// closes its connection instead of sending it.
fn reply_bytes(reply: Reply) -> usize {
    encoded_len(&reply_frame(reply, 1, 0, 0)).unwrap_or(REPLY_BYTES_MAX)
}

/// The largest reply other than `StatusReply`: an `Error` with the longest message.
const REPLY_BYTES_MAX: usize =
    protocol::FRAME_HEADER_BYTES + protocol::ERROR_FIXED_BYTES + protocol::ERROR_MESSAGE_BYTES_MAX;
// Every reply fits the reserve that deliveries leave free, and a status answer (a whole
// frame) fits it too.
const _: () = assert!(REPLY_BYTES_MAX <= REPLY_RESERVE_BYTES);
const _: () = assert!(FRAME_BYTES_MAX <= REPLY_RESERVE_BYTES);

/// Send-buffer room the answer to `frame` needs before the frame may be read, in
/// `state`. Settling frames are answered by nothing, so they are read even while the
/// connection's output is blocked (PROTOCOL.md section 10.6): the confirmations that
/// free a subscriber's window are never stuck behind its deliveries.
fn answer_room(frame: &Frame<'_>, state: ServerState) -> usize {
    if matches!(
        protocol::server_rule(state, frame.frame_type().as_u8()),
        protocol::Rule::Reject(_)
    ) {
        return REPLY_BYTES_MAX;
    }
    match frame {
        Frame::Confirm { .. }
        | Frame::Nak { .. }
        | Frame::Working { .. }
        | Frame::Reject { .. }
        | Frame::Recovered
        | Frame::Goodbye => 0,
        Frame::Status | Frame::Admin { .. } => FRAME_BYTES_MAX,
        _ => REPLY_BYTES_MAX,
    }
}

/// What decoding one connection's frames may touch besides the connection and the
/// group commit.
struct Ingest<'a> {
    subs: &'a mut [Option<Sub>],
    replies: &'a mut Vec<(usize, Reply)>,
    pending_subscribes: &'a mut Vec<PendingSubscribe>,
    dead: &'a mut Vec<DeadPending>,
    dead_outcomes: &'a mut Vec<DeadOutcome>,
    dedupe: &'a mut DedupeWindow,
    deduplicated: &'a mut u64,
    now: u64,
    full_wait_ns: Option<u64>,
}

/// Decodes the complete frames in one connection's buffer.
fn decode_frames(
    slot: usize,
    conn: &mut Conn,
    batch: &mut log::Batch<'_, MappedRegion>,
    cx: &mut Ingest<'_>,
) -> bool {
    let Ingest {
        subs,
        replies,
        pending_subscribes,
        dead,
        dead_outcomes,
        dedupe,
        deduplicated,
        now,
        full_wait_ns,
    } = cx;
    let now = *now;
    let mut consumed = 0;
    let mut group_full = false;
    // Replies are encoded after the group commit: count the bytes already owed to this
    // connection in this turn, so every one of them will have room.
    let mut owed_bytes = 0;
    let mut counted = replies.len();
    loop {
        owed_bytes += replies[counted..]
            .iter()
            .map(|(_, r)| reply_bytes(*r))
            .sum::<usize>();
        counted = replies.len();
        // Bound the replies of one turn.
        if replies.len() >= REPLIES_MAX {
            break;
        }
        // Nothing is written to the send buffer while decoding (replies are encoded
        // after the group commit), so its room is read once per frame, up front.
        let free = conn.send_free();
        let (frame, frame_bytes) = match protocol::decode(&conn.recv[consumed..conn.recv_len]) {
            Ok(Some((frame, n))) => {
                consumed += n;
                (frame, n)
            }
            Ok(None) => {
                conn.has_input = false;
                break;
            }
            // Its error waits for room like any answer.
            Err(_) if free < owed_bytes + REPLY_BYTES_MAX => break,
            Err(e) => {
                // A frame over a limit is well formed: point to where the limits are.
                let message = match e.code() {
                    ErrorCode::TooLarge => {
                        "a frame or field exceeds its limit; PROTOCOL.md section 11 lists them"
                    }
                    _ => "malformed frame; see PROTOCOL.md",
                };
                replies.push((
                    slot,
                    Reply::Error {
                        correlation: 0,
                        code: e.code(),
                        message,
                    },
                ));
                conn.close_after_flush = true;
                conn.has_input = false;
                consumed = conn.recv_len;
                break;
            }
        };
        // A frame whose answer has no room yet waits in the buffer (with the frames
        // behind it, in order) until the client reads what it was sent.
        if free < owed_bytes + answer_room(&frame, conn.machine.state()) {
            consumed -= frame_bytes;
            break;
        }
        if let Err(rejection) = conn.machine.on_receive(&frame) {
            let message = match rejection.code {
                ErrorCode::NotPermitted => "this frame is not permitted for the role given in hello",
                ErrorCode::UnsupportedVersion => "no protocol version in common; this daemon speaks version 1",
                _ => "frame not valid in the connection's current state; see the state table in PROTOCOL.md",
            };
            replies.push((
                slot,
                Reply::Error {
                    correlation: 0,
                    code: rejection.code,
                    message,
                },
            ));
            conn.close_after_flush = true;
            conn.has_input = false;
            consumed = conn.recv_len;
            break;
        }
        match frame {
            Frame::Hello(h) => {
                let name = h.client_name.as_bytes();
                conn.name[..name.len()].copy_from_slice(name);
                conn.name_len = name.len();
                replies.push((slot, Reply::HelloOk));
            }
            Frame::Publish { correlation, event } => {
                let e = to_log_event(&event, conn.name());
                if let Some(seq) = dedupe.lookup(e.source, e.key, e.timestamp_ns) {
                    // A retry after a lost `Stored`: the original answer, nothing new.
                    **deduplicated += 1;
                    conn.full_since = None;
                    replies.push((
                        slot,
                        Reply::Stored {
                            correlation,
                            first: seq.0,
                            last: seq.0,
                            count: 1,
                        },
                    ));
                    continue;
                }
                let reply = match batch.push(&e) {
                    Ok(seq) => {
                        dedupe.insert(e.source, e.key, seq, e.timestamp_ns);
                        Reply::Stored {
                            correlation,
                            first: seq.0,
                            last: seq.0,
                            count: 1,
                        }
                    }
                    Err(AppendError::GroupFull { .. }) => {
                        // This group commit is as large as recovery allows: leave the
                        // frame for the next group (its transition is a self-loop).
                        consumed -= frame_bytes;
                        group_full = true;
                        break;
                    }
                    Err(AppendError::Full { .. })
                        if waits_for_room(&mut conn.full_since, now, *full_wait_ns) =>
                    {
                        // Left in the buffer (the transition is a self-loop); this
                        // connection's later frames wait behind it, in order.
                        consumed -= frame_bytes;
                        break;
                    }
                    Err(e) => append_error(correlation, &e),
                };
                if !matches!(
                    reply,
                    Reply::Error {
                        code: ErrorCode::Full,
                        ..
                    }
                ) {
                    conn.full_since = None;
                }
                replies.push((slot, reply));
            }
            Frame::PublishBatch {
                correlation,
                events,
            } => {
                let mark = batch.mark();
                let mut first = None;
                let mut last = 0;
                let mut first_new = None;
                let mut repeats = 0u64;
                let mut failure = None;
                // The number each event resolved to: a repeated key resolves to the
                // number of its first event, so `Stored.count` counts distinct ones.
                let mut resolved = [0u64; protocol::BATCH_EVENTS_MAX];
                let mut resolved_len = 0;
                for event in events.iter() {
                    let e = to_log_event(&event, conn.name());
                    // A repeated key keeps its original number (PROTOCOL.md 10.1).
                    let stored = match dedupe.lookup(e.source, e.key, e.timestamp_ns) {
                        Some(seq) => {
                            repeats += 1;
                            Ok(seq)
                        }
                        None => batch.push(&e).inspect(|seq| {
                            first_new.get_or_insert(*seq);
                            dedupe.insert(e.source, e.key, *seq, e.timestamp_ns);
                        }),
                    };
                    match stored {
                        Ok(seq) => {
                            first = Some(first.map_or(seq.0, |f: u64| f.min(seq.0)));
                            last = last.max(seq.0);
                            // The decoder bounds a batch to BATCH_EVENTS_MAX events.
                            if let Some(r) = resolved.get_mut(resolved_len) {
                                *r = seq.0;
                                resolved_len += 1;
                            }
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                if failure.is_some() {
                    // All or nothing: the keys of this batch's new events go too.
                    if let Some(seq) = first_new {
                        dedupe.truncate_from(seq);
                    }
                } else {
                    **deduplicated += repeats;
                }
                if matches!(failure, Some(AppendError::GroupFull { .. })) {
                    batch.rollback_to(mark);
                    consumed -= frame_bytes;
                    group_full = true;
                    break;
                }
                if matches!(failure, Some(AppendError::Full { .. }))
                    && waits_for_room(&mut conn.full_since, now, *full_wait_ns)
                {
                    batch.rollback_to(mark);
                    consumed -= frame_bytes;
                    break;
                }
                if !matches!(failure, Some(AppendError::Full { .. })) {
                    conn.full_since = None;
                }
                let reply = match (failure, first) {
                    (None, Some(first)) => Reply::Stored {
                        correlation,
                        first,
                        last,
                        count: distinct(&mut resolved[..resolved_len]),
                    },
                    (Some(e), _) => {
                        // All or nothing (PROTOCOL.md): undo this batch's events.
                        batch.rollback_to(mark);
                        append_error(correlation, &e)
                    }
                    (None, None) => Reply::Error {
                        correlation,
                        code: ErrorCode::Invalid,
                        message: "empty batch",
                    },
                };
                replies.push((slot, reply));
            }
            Frame::Subscribe(s) => {
                let spec = SubscriptionSpec::new(
                    s.min_severity,
                    s.window_events,
                    s.automatic_recovery,
                    s.patterns.iter().map(|p| p.as_bytes()),
                )
                .map(|spec| spec.with_policy(s.ack_deadline_ms, s.max_deliveries));
                match spec {
                    Ok(spec) => {
                        let mut name = [0u8; SUBSCRIPTION_NAME_BYTES_MAX];
                        name[..s.name.len()].copy_from_slice(s.name.as_bytes());
                        pending_subscribes.push(PendingSubscribe {
                            slot,
                            name,
                            name_len: s.name.len(),
                            spec,
                        });
                        // Later frames (confirms) must see the subscription: stop here.
                        conn.blocked = true;
                        break;
                    }
                    Err(_) => {
                        replies.push((
                            slot,
                            Reply::Error {
                                correlation: 0,
                                code: ErrorCode::Invalid,
                                message: "topic patterns too long for a durable subscription",
                            },
                        ));
                        conn.close_after_flush = true;
                        consumed = conn.recv_len;
                        break;
                    }
                }
            }
            Frame::Confirm {
                first_seq,
                last_seq,
            } => {
                if let Some((index, sub)) = attached(conn, subs) {
                    sub.tracker.confirm(first_seq.0, last_seq.0);
                    replay_outcome(index, sub, first_seq.0..=last_seq.0, true, dead_outcomes);
                }
            }
            Frame::Reject { seq } => {
                if let Some((index, sub)) = attached(conn, subs) {
                    reject(index, sub, seq.0, now, dead);
                    replay_outcome(index, sub, seq.0..=seq.0, false, dead_outcomes);
                }
            }
            Frame::Nak { seq, delay_ms } => {
                if let Some((index, sub)) = attached(conn, subs) {
                    replay_outcome(index, sub, seq.0..=seq.0, false, dead_outcomes);
                    sub.tracker.nak(seq.0, u64::from(delay_ms) * 1_000_000, now);
                }
            }
            Frame::Working { seq } => {
                if let Some((_, sub)) = attached(conn, subs) {
                    sub.tracker.working(seq.0, now);
                }
            }
            Frame::Recovered => {
                if let Some((_, sub)) = attached(conn, subs) {
                    sub.leave_recovery = sub.replay_end.is_some();
                }
            }
            // Answered after this turn's replies, one at a time: decoding pauses.
            Frame::Status => {
                conn.status_requested = true;
                conn.blocked = true;
                break;
            }
            Frame::Admin { json } => {
                conn.admin[..json.len()].copy_from_slice(json.as_bytes());
                conn.admin_len = json.len();
                conn.status_requested = true;
                conn.blocked = true;
                break;
            }
            Frame::Ping { token } => replies.push((slot, Reply::Pong { token })),
            Frame::Goodbye => {
                conn.close_after_flush = true;
                consumed = conn.recv_len;
                break;
            }
            // The state table refuses every server-to-client frame.
            _ => unreachable!("the state machine rejects frames a client may not send"),
        }
    }
    conn.consume(consumed);
    if conn.machine.state() == ServerState::Closed {
        conn.close_after_flush = true;
    }
    group_full
}

/// How many distinct numbers `seqs` holds (sorting it). A batch's `Stored.count`: at
/// least 1 for a non-empty batch, and never more than `last - first + 1`, so the reply
/// always encodes.
fn distinct(seqs: &mut [u64]) -> u16 {
    seqs.sort_unstable();
    let mut count = 0u16;
    let mut previous = None;
    for &seq in seqs.iter() {
        if previous != Some(seq) {
            count += 1;
            previous = Some(seq);
        }
    }
    count
}

/// Settles a replayed dead letter whose seq is in `seqs`: `confirmed`, it is purged;
/// otherwise it stays dead with one more delivery.
fn replay_outcome(
    index: usize,
    sub: &mut Sub,
    seqs: std::ops::RangeInclusive<u64>,
    confirmed: bool,
    outcomes: &mut Vec<DeadOutcome>,
) {
    let Some(r) = sub.replaying.as_mut() else {
        return;
    };
    if r.settled || !seqs.contains(&r.seq) || outcomes.len() == outcomes.capacity() {
        return;
    }
    r.settled = true;
    outcomes.push(DeadOutcome {
        sub: index,
        id: r.id,
        confirmed,
        deliveries: r.deliveries,
    });
}

/// The connection's subscription and its index.
fn attached<'s>(conn: &Conn, subs: &'s mut [Option<Sub>]) -> Option<(usize, &'s mut Sub)> {
    let index = conn.subscription?;
    subs[index].as_mut().map(|sub| (index, sub))
}

/// `seq` will never be processed by this subscriber: a durable subscription keeps it
/// as a dead letter (written before its cursor may pass it); a live-only one drops it.
fn reject(index: usize, sub: &mut Sub, seq: u64, now: u64, dead: &mut Vec<DeadPending>) {
    if sub.durable.is_none() {
        if sub.tracker.settle(seq) {
            sub.dropped += 1;
        }
        return;
    }
    // The deliveries it really had (postponing counts it as exhausted).
    let Some(deliveries) = sub.tracker.deliveries(seq) else {
        return;
    };
    // Not sent again meanwhile; if the queue is full it comes back as exhausted later.
    if sub.tracker.postpone(seq, now).is_some() && dead.len() < DEAD_PENDING_MAX {
        dead.push(DeadPending {
            sub: index,
            seq,
            deliveries,
            cause: DeadCause::Rejected,
        });
    }
}

/// Whether a publish that found the ring full waits for room (and since when), or is
/// answered `full` now.
fn waits_for_room(full_since: &mut Option<u64>, now: u64, full_wait_ns: Option<u64>) -> bool {
    let Some(limit) = full_wait_ns else {
        return false;
    };
    let since = *full_since.get_or_insert(now);
    if now.saturating_sub(since) < limit {
        return true;
    }
    *full_since = None;
    false
}

fn append_error(correlation: u64, e: &AppendError) -> Reply {
    let (code, message) = match e {
        AppendError::Full { .. } => (
            ErrorCode::Full,
            "the log is full: durable subscribers have not confirmed enough events; retry later",
        ),
        AppendError::TooLarge { .. } => (
            ErrorCode::TooLarge,
            "the event is larger than this region's payload limit",
        ),
        AppendError::Invalid(why) => (ErrorCode::Invalid, *why),
        AppendError::GroupFull { .. } => {
            unreachable!("a full group is committed and decoding resumes")
        }
        AppendError::Failed(_) => (
            ErrorCode::Internal,
            "the persistent region failed; the event was not stored",
        ),
    };
    Reply::Error {
        correlation,
        code,
        message,
    }
}

fn to_log_event<'a>(e: &Event<'a>, connection_name: &'a [u8]) -> EventRef<'a> {
    EventRef {
        topic: e.topic.as_bytes(),
        severity: e.severity,
        source: if e.source.is_empty() {
            connection_name
        } else {
            e.source.as_bytes()
        },
        flags: e.flags,
        key: e.key,
        payload: e.payload,
        timestamp_ns: log::now_unix_ns(),
    }
}

/// What became of one event offered to a connection.
enum Offer {
    Sent,
    /// The send buffer is full: stop for this turn.
    NoRoom,
    /// Stored by a producer that bypassed the protocol's checks.
    Undeliverable,
}

/// Encodes one `Deliver` into the connection's send buffer if it fits; `sent` is
/// asked for the redelivery flag and count only once the frame is sure to go.
fn offer(
    conn: &mut Conn,
    e: &EventView<'_>,
    sent: impl FnOnce() -> crate::subscription::Sent,
) -> Offer {
    let (Ok(topic), Ok(source)) = (Topic::new(e.topic), std::str::from_utf8(e.source)) else {
        return Offer::Undeliverable;
    };
    let mut deliver = Deliver {
        seq: e.seq,
        timestamp_ns: e.timestamp_ns,
        redelivered: false,
        delivery_count: 1,
        event: Event {
            topic,
            severity: e.severity,
            source,
            flags: e.flags,
            key: e.key,
            payload: e.payload,
        },
    };
    let Ok(needed) = encoded_len(&Frame::Deliver(deliver)) else {
        return Offer::Undeliverable;
    };
    // Deliveries leave the last REPLY_RESERVE_BYTES to answers, so that a client that
    // reads what it is sent always gets its answers (PROTOCOL.md section 10.6).
    if conn.send_free() < needed + REPLY_RESERVE_BYTES {
        return Offer::NoRoom;
    }
    let s = sent();
    deliver.redelivered = s.redelivered;
    deliver.delivery_count = s.delivery_count;
    match encode(&Frame::Deliver(deliver), conn.send_tail()) {
        Ok(n) => {
            conn.send_end += n;
            Offer::Sent
        }
        // The room was checked above and the event encoded once already.
        Err(_) => Offer::NoRoom,
    }
}

/// Sends a connected subscription what it is owed: due redeliveries first, then the
/// events after its position (held at the replay's end while it is recovering),
/// within its window and its connection's buffer.
#[allow(clippy::too_many_arguments)] // the stage's state, borrowed field by field
fn pump(
    log: &Log<MappedRegion>,
    end: u64,
    index: usize,
    sub: &mut Sub,
    conn: &mut Conn,
    now: u64,
    dead: &mut Vec<DeadPending>,
    outcomes: &mut Vec<DeadOutcome>,
) {
    if conn.closing || conn.close_after_flush {
        return;
    }
    while let Some(due) = sub.tracker.due(now) {
        match due {
            Due::Redeliver { seq } => {
                let Some(e) = log.read(Seq(seq)) else {
                    // Cannot happen while the cursor holds it; never loop on it.
                    tracing::error!(seq, "an unsettled event is not readable; settling it");
                    sub.tracker.settle(seq);
                    continue;
                };
                match offer(conn, &e, || sub.tracker.resent(seq, now)) {
                    Offer::Sent => sub.redelivered += 1,
                    Offer::NoRoom => return,
                    Offer::Undeliverable => {
                        sub.tracker.settle(seq);
                    }
                }
            }
            Due::Exhausted { seq, deliveries } => {
                sub.tracker.postpone(seq, now);
                if sub.durable.is_none() {
                    tracing::warn!(
                        seq,
                        deliveries,
                        "live-only subscription gave up on an event after its maximum deliveries"
                    );
                    sub.tracker.settle(seq);
                    sub.dropped += 1;
                } else if dead.len() < DEAD_PENDING_MAX {
                    dead.push(DeadPending {
                        sub: index,
                        seq,
                        deliveries,
                        cause: DeadCause::Exhausted,
                    });
                }
            }
        }
    }
    replay_dead_letter(log, index, sub, conn, now, outcomes);
    let end = sub.replay_end.map_or(end, |r| r.min(end));
    let mut events = log.events_since(Seq(sub.tracker.next()), end);
    while sub.tracker.has_room() {
        let Some(e) = events.next() else {
            sub.tracker
                .skip_to(events.next_position().max(sub.tracker.next()));
            break;
        };
        let next = e.seq.0 + e.span as u64;
        if !sub.spec.matches(e.topic, e.severity) {
            sub.tracker.skip_to(next);
            continue;
        }
        match offer(conn, &e, || sub.tracker.sent(e.seq.0, next, now)) {
            Offer::Sent => {}
            Offer::NoRoom => return,
            Offer::Undeliverable => {
                tracing::warn!(
                    seq = e.seq.0,
                    "stored event is not deliverable over the protocol; skipping it"
                );
                sub.tracker.skip_to(next);
            }
        }
    }
    if let Some(replay_end) = sub.replay_end {
        if !sub.recovery_done_sent && sub.tracker.next() >= replay_end {
            let frame = Frame::RecoveryDone;
            if conn.send_free() >= protocol::FRAME_HEADER_BYTES + REPLY_RESERVE_BYTES {
                if let Ok(n) = encode(&frame, conn.send_tail()) {
                    conn.send_end += n;
                    sub.recovery_done_sent = true;
                }
            }
        }
    }
}

/// Sends the next dead letter an operator asked to replay, one at a time; a replay
/// not settled within the deadline stays a dead letter.
fn replay_dead_letter(
    log: &Log<MappedRegion>,
    index: usize,
    sub: &mut Sub,
    conn: &mut Conn,
    now: u64,
    outcomes: &mut Vec<DeadOutcome>,
) {
    if let Some(r) = sub.replaying {
        if !r.settled && now >= r.deadline {
            replay_outcome(index, sub, r.seq..=r.seq, false, outcomes);
        }
        return;
    }
    let (Some(id), true) = (sub.durable, sub.dead_replays > 0) else {
        return;
    };
    let next = log.dead_letters_of(id).find(|d| d.replay_requested);
    let Some(d) = next.copied() else {
        sub.dead_replays = 0;
        return;
    };
    let Some(e) = log.dead_event(d.id) else {
        return;
    };
    let deliveries = d.delivery_count.saturating_add(1);
    let sent = || crate::subscription::Sent {
        redelivered: true,
        delivery_count: deliveries.min(u32::from(u16::MAX)) as u16,
    };
    if let Offer::Sent = offer(conn, &e, sent) {
        sub.replaying = Some(DeadReplay {
            id: d.id,
            seq: d.seq.0,
            deliveries,
            deadline: now.saturating_add(sub.tracker.policy().ack_deadline_ns),
            settled: false,
        });
    }
}

/// A durable subscription without a connection holds the first event meant for it;
/// events before that, not meant for it, are passed so they can be released.
fn hold(log: &Log<MappedRegion>, end: u64, sub: &mut Sub) {
    if sub.tracker.in_flight() > 0 {
        return;
    }
    let mut events = log.events_since(Seq(sub.tracker.next()), end);
    loop {
        match events.next() {
            Some(e) if sub.spec.matches(e.topic, e.severity) => return,
            Some(e) => sub.tracker.skip_to(e.seq.0 + e.span as u64),
            None => {
                sub.tracker
                    .skip_to(events.next_position().max(sub.tracker.next()));
                return;
            }
        }
    }
}

fn block_signals_into_fd() -> Result<OwnedFd, DaemonError> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block()
        .map_err(|e| DaemonError::Io("sigprocmask", e.into()))?;
    // A subscriber that vanishes must not kill the daemon with SIGPIPE (sends also
    // carry MSG_NOSIGNAL).
    // SAFETY: setting a signal disposition to ignore has no memory effects.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let fd =
        nix::sys::signalfd::SignalFd::with_flags(&set, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC)
            .map_err(|e| DaemonError::Io("signalfd", e.into()))?;
    // SAFETY: we take the raw fd out of the SignalFd and forget the wrapper, so the fd
    // has exactly one owner.
    let raw = fd.as_raw_fd();
    std::mem::forget(fd);
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
