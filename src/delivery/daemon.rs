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

use super::conn::{Conn, RECV_BYTES, REPLY_RESERVE_BYTES};
use super::uring::{self, tag, untag, Op};
use super::{DaemonConfig, DaemonError};
use crate::log::{
    self, AppendError, EventRef, EventView, Log, Seq, SubscriptionId, SubscriptionMode,
};
use crate::pmem::MappedRegion;
use crate::protocol::{
    self, encode, encoded_len, Deliver, ErrorCode, Event, Frame, HelloOk, Pattern, ServerState,
    Topic, FRAME_BYTES_MAX,
};
use crate::subscription::{SubscriptionSpec, Tracker};
use crossbeam::queue::ArrayQueue;
use io_uring::{opcode, types, IoUring};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

/// Most replies one turn may queue before decoding pauses.
const REPLIES_MAX: usize = 16 * 1024;
/// Longest sleep in the kernel: bounds how late a shutdown or periodic check runs.
const SLEEP_MAX: Duration = Duration::from_millis(200);

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
        mode: protocol::SubscriptionMode,
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
    name: [u8; 64],
    name_len: usize,
    spec: SubscriptionSpec,
}

/// A subscription known to the delivery stage. A durable one's name and persisted
/// cursor live in the log's entry (`durable`), not here.
struct Sub {
    durable: Option<SubscriptionId>,
    spec: SubscriptionSpec,
    tracker: Tracker,
    conn: Option<usize>,
}

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
            shutting_down: false,
            accepting: true,
            connections_refused: 0,
            config,
            log,
            ring,
            listener,
            signal_fd,
        };
        daemon.load_durable_subscriptions();
        Ok(daemon)
    }

    fn load_durable_subscriptions(&mut self) {
        let mut loaded = Vec::new();
        for s in self.log.subscriptions() {
            // Stored patterns are checked against the grammar once, here; matching
            // then skips validation (`matches_validated`).
            let spec = SubscriptionSpec::decode(s.spec())
                .map_err(|e| e.to_string())
                .and_then(
                    |spec| match spec.patterns().find_map(|p| Pattern::parse(p).err()) {
                        Some(e) => Err(format!("stored pattern invalid: {e}")),
                        None => Ok(spec),
                    },
                );
            let spec = match spec {
                Ok(spec) => spec,
                Err(e) => {
                    // Hold everything for it rather than guess its filters.
                    tracing::warn!(subscription = %String::from_utf8_lossy(s.name()), error = %e, "durable subscription spec unreadable; it receives every event");
                    SubscriptionSpec::new(7, 64, false, [&b">"[..]]).expect("static spec")
                }
            };
            loaded.push(Sub {
                durable: Some(s.id),
                tracker: Tracker::new(s.cursor, spec.window_events, self.recovered_tail),
                spec,
                conn: None,
            });
        }
        for (slot, sub) in loaded.into_iter().enumerate() {
            self.subs[slot] = Some(sub);
        }
    }

    /// Runs until SIGTERM or SIGINT, then shuts down cleanly.
    pub fn run(mut self) -> Result<(), DaemonError> {
        self.arm_accept()?;
        self.arm_signal()?;
        let spin = Duration::from_micros(self.config.busy_poll_us);
        let mut shutdown_deadline: Option<Instant> = None;
        loop {
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
            uring::submit_and_wait(&mut self.ring, spin, SLEEP_MAX)
                .map_err(|e| DaemonError::Io("io_uring_enter", e))?;
        }
        self.release()?;
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
            ..
        } = self;
        let mut batch = log.batch();
        let batch_replies_from = replies.len();
        let mut group_full = false;
        for (slot, conn) in conns.iter_mut().enumerate() {
            if !conn.has_input || conn.closing || conn.blocked || conn.recv_in_flight {
                continue;
            }
            if decode_frames(slot, conn, &mut batch, subs, replies, pending_subscribes) {
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
                for (_, reply) in replies[batch_replies_from..].iter_mut() {
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
                // Decoding counts every reply it owes against the free space, so this
                // is a broken invariant, not bad input.
                Err(e) => panic!("reply space accounting violated on connection {slot}: {e}"),
            }
        }
        self.replies.clear();
    }

    fn subscribe(&mut self, p: &PendingSubscribe) {
        let name = &p.name[..p.name_len];
        let reply = |r| (p.slot, r);
        if !self.conns[p.slot].in_use() || self.conns[p.slot].closing {
            return;
        }
        let index = if name.is_empty() {
            match self.subs.iter().position(|s| s.is_none()) {
                Some(i) => {
                    let tail = self.log.tail().0;
                    self.subs[i] = Some(Sub {
                        durable: None,
                        spec: p.spec,
                        tracker: Tracker::new(tail, p.spec.window_events, 0),
                        conn: None,
                    });
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
            sub.tracker.set_window(p.spec.window_events);
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
            self.subs[i] = Some(Sub {
                durable: Some(id),
                spec: p.spec,
                tracker: Tracker::new(cursor, p.spec.window_events, 0),
                conn: None,
            });
            i
        };
        let sub = self.subs[index].as_mut().expect("set above");
        sub.conn = Some(p.slot);
        self.conns[p.slot].subscription = Some(index);
        let pending = self
            .log
            .events_from(Seq(sub.tracker.cursor()))
            .filter(|e| matches(&sub.spec, e))
            .count() as u64;
        self.replies.push(reply(Reply::Subscribed {
            mode: protocol::SubscriptionMode::Normal,
            pending,
        }));
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
            ..
        } = self;
        for sub in subs.iter_mut().flatten() {
            match sub.conn {
                Some(slot) => pump(log, *indicated_end, sub, &mut conns[slot]),
                None if sub.durable.is_some() => hold(log, *indicated_end, sub),
                None => {}
            }
        }
    }

    fn release(&mut self) -> Result<(), DaemonError> {
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

    fn answer_status(&mut self) {
        for slot in 0..self.conns.len() {
            if !self.conns[slot].status_requested {
                continue;
            }
            self.conns[slot].status_requested = false;
            let json = super::status::status_json(self);
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

    /// For `status`: (name, durable, connected, cursor, pending slots, in flight, mode).
    pub(super) fn subscription_rows(
        &self,
    ) -> impl Iterator<Item = (String, bool, bool, u64, u64, usize, SubscriptionMode)> + '_ {
        let tail = self.log.tail().0;
        self.subs.iter().flatten().map(move |s| {
            let entry = s.durable.and_then(|id| self.log.subscription(id));
            let mode = entry.map_or(SubscriptionMode::Normal, |e| e.mode);
            (
                // Live-only subscriptions have no name.
                entry.map_or(String::new(), |e| {
                    String::from_utf8_lossy(e.name()).into_owned()
                }),
                s.durable.is_some(),
                s.conn.is_some(),
                s.tracker.cursor(),
                tail.saturating_sub(s.tracker.cursor()),
                s.tracker.in_flight(),
                mode,
            )
        })
    }

    /// For `status`: open connections and refused ones.
    pub(super) fn connection_counts(&self) -> (usize, u64) {
        (
            self.conns.iter().filter(|c| c.in_use()).count(),
            self.connections_refused,
        )
    }
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
            first_seq: protocol::Seq(first),
            last_seq: protocol::Seq(last),
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

/// Bytes `reply` will take in the send buffer.
fn reply_bytes(reply: Reply) -> usize {
    encoded_len(&reply_frame(reply, 1, 0, 0)).expect("replies are valid frames")
}

/// Decodes the complete frames in one connection's buffer.
fn decode_frames(
    slot: usize,
    conn: &mut Conn,
    batch: &mut log::Batch<'_, MappedRegion>,
    subs: &mut [Option<Sub>],
    replies: &mut Vec<(usize, Reply)>,
    pending_subscribes: &mut Vec<PendingSubscribe>,
) -> bool {
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
        // Keep room for this frame's reply too, and bound the replies of one turn.
        if conn.send_free() < owed_bytes + REPLY_RESERVE_BYTES || replies.len() >= REPLIES_MAX {
            break;
        }
        let (frame, frame_bytes) = match protocol::decode(&conn.recv[consumed..conn.recv_len]) {
            Ok(Some((frame, n))) => {
                consumed += n;
                (frame, n)
            }
            Ok(None) => {
                conn.has_input = false;
                break;
            }
            Err(e) => {
                replies.push((
                    slot,
                    Reply::Error {
                        correlation: 0,
                        code: e.code(),
                        message: "malformed frame; see PROTOCOL.md",
                    },
                ));
                conn.close_after_flush = true;
                conn.has_input = false;
                consumed = conn.recv_len;
                break;
            }
        };
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
                let reply = match batch.push(&to_log_event(&event, conn.name())) {
                    Ok(seq) => Reply::Stored {
                        correlation,
                        first: seq.0,
                        last: seq.0,
                        count: 1,
                    },
                    Err(AppendError::GroupFull { .. }) => {
                        // This group commit is as large as recovery allows: leave the
                        // frame for the next group (its transition is a self-loop).
                        consumed -= frame_bytes;
                        group_full = true;
                        break;
                    }
                    Err(e) => append_error(correlation, &e),
                };
                replies.push((slot, reply));
            }
            Frame::PublishBatch {
                correlation,
                events,
            } => {
                let mark = batch.mark();
                let mut first = None;
                let mut last = 0;
                let mut failure = None;
                for event in events.iter() {
                    match batch.push(&to_log_event(&event, conn.name())) {
                        Ok(seq) => {
                            first.get_or_insert(seq.0);
                            last = seq.0;
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                if matches!(failure, Some(AppendError::GroupFull { .. })) {
                    batch.rollback_to(mark);
                    consumed -= frame_bytes;
                    group_full = true;
                    break;
                }
                let reply = match (failure, first) {
                    (None, Some(first)) => Reply::Stored {
                        correlation,
                        first,
                        last,
                        count: events.len() as u16,
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
                    s.min_severity.as_u8(),
                    s.window_events,
                    s.automatic_recovery,
                    s.patterns.iter().map(|p| p.as_bytes()),
                );
                match spec {
                    Ok(spec) => {
                        let mut name = [0u8; 64];
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
            } => confirm(conn, subs, first_seq.0, last_seq.0),
            Frame::Reject { seq } => confirm(conn, subs, seq.0, seq.0),
            // Deadlines, naks and recovery mode arrive with the redelivery work; until
            // then these are accepted and have no effect (PROTOCOL.md allows it).
            Frame::Nak { .. } | Frame::Working { .. } | Frame::Recovered => {}
            Frame::Status => conn.status_requested = true,
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

/// Applies a confirmation to the connection's subscription (the state machine admits
/// confirms only once subscribed).
fn confirm(conn: &Conn, subs: &mut [Option<Sub>], first: u64, last: u64) {
    if let Some(sub) = conn.subscription.and_then(|s| subs[s].as_mut()) {
        sub.tracker.confirm(first, last);
    }
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
        severity: log::Severity::from_u8(e.severity.as_u8()).expect("the protocol validated 0..=7"),
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

/// Whether `e` is meant for a subscription with `spec`. Its patterns were validated
/// when the subscription was made (decoded from a frame) or loaded (checked above).
fn matches(spec: &SubscriptionSpec, e: &EventView<'_>) -> bool {
    e.severity as u8 <= spec.min_severity
        && spec
            .patterns()
            .any(|p| protocol::matches_validated(p, e.topic))
}

/// Sends a connected subscription the events after its position, within its window
/// and its connection's buffer.
fn pump(log: &Log<MappedRegion>, end: u64, sub: &mut Sub, conn: &mut Conn) {
    if conn.closing || conn.close_after_flush {
        return;
    }
    let mut events = log.events_since(Seq(sub.tracker.next()), end);
    while sub.tracker.has_room() {
        let Some(e) = events.next() else {
            sub.tracker
                .skip_to(events.next_position().max(sub.tracker.next()));
            break;
        };
        let next = e.seq.0 + e.span as u64;
        if !matches(&sub.spec, &e) {
            sub.tracker.skip_to(next);
            continue;
        }
        let (Ok(topic), Ok(source), Some(severity)) = (
            Topic::new(e.topic),
            std::str::from_utf8(e.source),
            protocol::Severity::from_u8(e.severity as u8),
        ) else {
            // Stored by a producer that bypassed the protocol's checks: skip, loudly.
            tracing::warn!(
                seq = e.seq.0,
                "stored event is not deliverable over the protocol; skipping it"
            );
            sub.tracker.skip_to(next);
            continue;
        };
        let mut deliver = Deliver {
            seq: protocol::Seq(e.seq.0),
            timestamp_ns: e.timestamp_ns,
            redelivered: false,
            delivery_count: 1,
            event: Event {
                topic,
                severity,
                source,
                flags: e.flags,
                key: e.key,
                payload: e.payload,
            },
        };
        let needed = encoded_len(&Frame::Deliver(deliver)).unwrap_or(usize::MAX);
        // Replies have their own room: decoding stops before their bytes run short.
        if conn.send_free() < needed {
            break;
        }
        let sent = sub.tracker.sent(e.seq.0, next);
        deliver.redelivered = sent.redelivered;
        deliver.delivery_count = sent.delivery_count;
        let n = encode(&Frame::Deliver(deliver), conn.send_tail()).expect("space checked above");
        conn.send_end += n;
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
            Some(e) if matches(&sub.spec, &e) => return,
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
