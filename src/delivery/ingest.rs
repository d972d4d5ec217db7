//! Ingest: the complete frames in a connection's receive buffer become commands.
//! Publishes go into the open group commit; settling frames go to the subscription's
//! tracker; subscribes and control requests are queued for the stages that need the
//! log or the whole daemon. No allocation here.
//!
//! A frame is read only when its answer has room (PROTOCOL.md section 10.6): settling
//! frames need none, so they are always read; any other frame waits in the buffer, with
//! the frames behind it, until the client reads what it was sent.

use super::access::{Access, Refusal};
use super::commit::{append_error, CommitPipeline};
use super::conn::Conn;
use super::dead::DeadQueue;
use super::dedupe::DedupeWindow;
use super::reply::{answer_bytes, Reply, REPLY_BYTES_MAX};
use crate::log::{self, AppendError, EventRef};
use crate::metrics::{Counters, PublishOutcome};
use crate::pmem::Medium;
use crate::protocol::{self, ErrorCode, Event, Frame, ServerState, BATCH_EVENTS_MAX};
use crate::routing::Routes;
use crate::subscription::{SubscriptionSet, SubscriptionSpec, SubscriptionState};

/// A subscribe that needs the log (to find or create a durable entry): handled after
/// the round's group commit, so it is copied out of the receive buffer.
#[derive(Copy, Clone)]
pub struct PendingSubscribe {
    /// The connection.
    pub slot: usize,
    /// Its generation.
    pub generation: u32,
    name: [u8; protocol::SUBSCRIPTION_NAME_BYTES_MAX],
    name_len: usize,
    /// Filters and policy.
    pub spec: SubscriptionSpec,
    /// As a member of the subscription's work-queue group.
    pub group: bool,
}

impl PendingSubscribe {
    /// The durable name (empty: live-only).
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }
}

/// What decoding one connection's frames may touch besides the connection and the
/// group commit.
pub struct Ingest<'a> {
    /// Settling frames reach the trackers.
    pub subs: &'a mut SubscriptionSet,
    /// Answers.
    pub pipeline: &'a mut CommitPipeline,
    /// Subscribes for after the group commit.
    pub subscribes: &'a mut Vec<PendingSubscribe>,
    /// Rejected events, replay outcomes.
    pub dead: &'a mut DeadQueue,
    /// Idempotency keys.
    pub dedupe: &'a mut DedupeWindow,
    /// Publishes answered from the dedupe window.
    pub deduplicated: &'a mut u64,
    /// Publish outcomes, for metrics.
    pub counters: &'a mut Counters,
    /// This turn's monotonic time, ns.
    pub now: u64,
    /// This turn's wall-clock time, ns since the epoch: every event of the turn is
    /// stamped with it.
    pub unix_now: u64,
    /// How long a publish may wait for room in a full ring (None: answer `full`).
    pub full_wait_ns: Option<u64>,
    /// The routing rules each stored event is routed by.
    pub routes: &'a Routes,
    /// Open producer and subscriber connections (a hello admits one more)...
    pub serving: &'a mut usize,
    /// ...of at most this many (`--connections-max`).
    pub serving_max: usize,
    /// The access policy, and the log of its refusals.
    pub access: &'a mut Access,
}

/// Why decoding a connection stopped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Everything complete was decoded, or the connection waits (room, a subscribe).
    Done,
    /// The group commit is as large as recovery allows: commit it, then go on.
    GroupFull,
}

/// Decodes the complete frames in connection `slot`'s buffer.
pub fn decode_frames<S, M: Medium>(
    slot: usize,
    conn: &mut Conn<S>,
    batch: &mut log::Batch<'_, M>,
    cx: &mut Ingest<'_>,
) -> Stop {
    // Frames borrow the receive buffer while the connection's other fields change:
    // the buffer is lent out for the duration (an empty box takes no allocation).
    let recv = std::mem::take(&mut conn.recv);
    let received = conn.recv_len;
    let (consumed, stop) = decode_from(&recv[..received], slot, conn, batch, cx);
    conn.recv = recv;
    conn.consume(consumed);
    if conn.machine.state() == ServerState::Closed {
        conn.close_after_flush = true;
    }
    stop
}

/// Decodes frames from `recv`, returning how many bytes were consumed.
fn decode_from<S, M: Medium>(
    recv: &[u8],
    slot: usize,
    conn: &mut Conn<S>,
    batch: &mut log::Batch<'_, M>,
    cx: &mut Ingest<'_>,
) -> (usize, Stop) {
    let mut consumed = 0;
    let mut stop = Stop::Done;
    loop {
        let decoded = protocol::decode(&recv[consumed..]);
        let (frame, frame_bytes) = match decoded {
            Ok(Some(decoded)) => decoded,
            Ok(None) => {
                conn.has_input = false;
                break;
            }
            // Its error waits for room like any answer.
            Err(_) if conn.answer_room() < REPLY_BYTES_MAX || !cx.pipeline.has_room() => break,
            Err(e) => {
                // A frame over a limit is well formed: point to where the limits are.
                let message = match e.code() {
                    ErrorCode::TooLarge => {
                        "a frame or field exceeds its limit; PROTOCOL.md section 11 lists them"
                    }
                    _ => "malformed frame; see PROTOCOL.md",
                };
                let reply = Reply::error(0, e.code(), message);
                cx.pipeline.answer(conn, slot, reply, false);
                conn.close_after_flush = true;
                conn.has_input = false;
                consumed = recv.len();
                break;
            }
        };
        // A frame whose answer has no room yet waits in the buffer (with the frames
        // behind it, in order) until the client reads what it was sent.
        let needs = answer_bytes(&frame, conn.machine.state());
        if needs > 0 && (conn.answer_room() < needs || !cx.pipeline.has_room()) {
            break;
        }
        consumed += frame_bytes;
        if let Err((refusal, subject)) = admitted(&frame, conn, cx.access) {
            // Refused by the policy, not by the protocol: the state stays as it was
            // (a refused hello or subscribe may be tried again) and the connection open.
            let correlation = match frame {
                Frame::Publish { correlation, .. } | Frame::PublishBatch { correlation, .. } => {
                    correlation
                }
                _ => 0,
            };
            cx.access.refused(
                cx.now,
                &conn.identity,
                &conn.grant,
                conn.name(),
                refusal,
                subject,
            );
            let reply = Reply::error(correlation, ErrorCode::Forbidden, refusal.message());
            cx.pipeline.answer(conn, slot, reply, false);
            continue;
        }
        if let Err(rejection) = conn.machine.on_receive(&frame) {
            let message = match rejection.code {
                ErrorCode::NotPermitted => "this frame is not permitted for the role given in hello",
                ErrorCode::UnsupportedVersion => "no protocol version in common; this daemon speaks versions 1 and 2",
                _ => "frame not valid in the connection's current state; see the state table in PROTOCOL.md",
            };
            cx.pipeline
                .answer(conn, slot, Reply::error(0, rejection.code, message), false);
            conn.close_after_flush = true;
            conn.has_input = false;
            consumed = recv.len();
            break;
        }
        match frame {
            Frame::Hello(h) => {
                conn.set_name(h.client_name.as_bytes());
                // Producers and subscribers are limited; control connections have
                // slots of their own, so an operator still gets in.
                let reply = if h.role == protocol::Role::Control {
                    Reply::HelloOk
                } else if *cx.serving >= cx.serving_max {
                    Reply::Refused {
                        code: ErrorCode::Busy,
                        before: "connection limit reached: the daemon serves ",
                        number: cx.serving_max as u64,
                        after: " producer and subscriber connections (--connections-max); try again later",
                    }
                } else {
                    *cx.serving += 1;
                    conn.serving = true;
                    Reply::HelloOk
                };
                cx.pipeline.answer(conn, slot, reply, false);
            }
            Frame::Publish { .. } | Frame::PublishBatch { .. } => {
                let published = match frame {
                    Frame::Publish { correlation, event } => {
                        publish(conn, slot, correlation, &event, batch, cx)
                    }
                    Frame::PublishBatch {
                        correlation,
                        events,
                    } => publish_batch(conn, slot, correlation, events, batch, cx),
                    _ => Published::Answered,
                };
                match published {
                    Published::Answered => {}
                    // The frame stays in the buffer (its transition is a self-loop):
                    // it waits for room, or goes into the next group commit.
                    Published::Waits => {
                        consumed -= frame_bytes;
                        break;
                    }
                    Published::GroupFull => {
                        consumed -= frame_bytes;
                        stop = Stop::GroupFull;
                        break;
                    }
                }
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
                        let mut name = [0u8; protocol::SUBSCRIPTION_NAME_BYTES_MAX];
                        name[..s.name.len()].copy_from_slice(s.name.as_bytes());
                        cx.subscribes.push(PendingSubscribe {
                            slot,
                            generation: conn.generation,
                            name,
                            name_len: s.name.len(),
                            spec,
                            group: s.group,
                        });
                        // Later frames (confirms) must see the subscription: stop here.
                        conn.blocked = true;
                        break;
                    }
                    Err(_) => {
                        let reply = Reply::error(
                            0,
                            ErrorCode::Invalid,
                            "topic patterns too long for a durable subscription",
                        );
                        cx.pipeline.answer(conn, slot, reply, false);
                        conn.close_after_flush = true;
                        consumed = recv.len();
                        break;
                    }
                }
            }
            // A group member settles, naks and extends only what it was the last to be
            // sent (a plain subscription's consumer is member 0 of everything).
            Frame::Confirm {
                first_seq,
                last_seq,
            } => {
                if let Some((index, sub, m)) = attached(conn, slot, cx.subs) {
                    sub.tracker.confirm_by(first_seq.0, last_seq.0, m);
                    cx.dead
                        .replay_outcome(index, sub, first_seq.0..=last_seq.0, true);
                }
            }
            Frame::Reject { seq } => {
                if let Some((index, sub, m)) = attached(conn, slot, cx.subs) {
                    if sub.tracker.holds(seq.0, m) {
                        cx.dead.reject(index, sub, seq.0, cx.now);
                    }
                    cx.dead.replay_outcome(index, sub, seq.0..=seq.0, false);
                }
            }
            Frame::Nak { seq, delay_ms } => {
                if let Some((index, sub, m)) = attached(conn, slot, cx.subs) {
                    cx.dead.replay_outcome(index, sub, seq.0..=seq.0, false);
                    if sub.tracker.holds(seq.0, m) {
                        sub.tracker
                            .nak(seq.0, u64::from(delay_ms) * 1_000_000, cx.now);
                    }
                }
            }
            Frame::Working { seq } => {
                if let Some((_, sub, m)) = attached(conn, slot, cx.subs) {
                    if sub.tracker.holds(seq.0, m) {
                        sub.tracker.working(seq.0, cx.now);
                    }
                }
            }
            Frame::Recovered => {
                if let Some((_, sub, _)) = attached(conn, slot, cx.subs) {
                    sub.leave_recovery = sub.replay_end.is_some();
                }
            }
            // Answered by the control stage, one at a time: decoding pauses.
            Frame::Status => {
                conn.control_requested = true;
                conn.blocked = true;
                break;
            }
            Frame::Admin { json } => {
                let n = json.len().min(conn.admin.len());
                conn.admin[..n].copy_from_slice(&json.as_bytes()[..n]);
                conn.admin_len = n;
                conn.control_requested = true;
                conn.blocked = true;
                break;
            }
            Frame::Ping { token } => cx.pipeline.answer(conn, slot, Reply::Pong { token }, false),
            Frame::Goodbye => {
                conn.close_after_flush = true;
                consumed = recv.len();
                break;
            }
            // The state table refuses every server-to-client frame before this point;
            // should one get here, it is answered like any frame out of place.
            Frame::HelloOk(_)
            | Frame::Stored { .. }
            | Frame::Error { .. }
            | Frame::Subscribed { .. }
            | Frame::Deliver(_)
            | Frame::RecoveryDone
            | Frame::StatusReply { .. }
            | Frame::Pong { .. } => {
                let reply = Reply::error(
                    0,
                    ErrorCode::Unexpected,
                    "a server-to-client frame sent to the server; see PROTOCOL.md section 6",
                );
                cx.pipeline.answer(conn, slot, reply, false);
                conn.close_after_flush = true;
                consumed = recv.len();
                break;
            }
        }
    }
    (consumed, stop)
}

/// Whether the access policy lets `conn` send `frame`; if not, why and of what (the
/// topic, pattern or name refused). A frame the state table refuses is left to it (its
/// error closes the connection, as without a policy). A hello that is let through
/// fixes the connection's grant.
fn admitted<'f, S>(
    frame: &Frame<'f>,
    conn: &mut Conn<S>,
    access: &Access,
) -> Result<(), (Refusal, &'f [u8])> {
    if !access.restricted() {
        if let Frame::Hello(_) = frame {
            conn.grant = super::access::Grant::EVERYTHING;
        }
        return Ok(());
    }
    let state = conn.machine.state();
    if matches!(
        protocol::server_rule(state, frame.frame_type().as_u8()),
        protocol::Rule::Reject(_)
    ) {
        return Ok(());
    }
    match frame {
        Frame::Hello(h) => {
            if protocol::negotiate_version(h).is_err() {
                return Ok(());
            }
            // Kept even when refused (the state stays AwaitHello, where nothing else is
            // accepted), so that the refusal's log line names the client and its rules.
            conn.set_name(h.client_name.as_bytes());
            conn.grant = access.grant(&conn.identity);
            access
                .check_role(&conn.grant, h.role)
                .map_err(|r| (r, h.role.name().as_bytes()))
        }
        Frame::Publish { event, .. } => {
            let topic = event.topic.as_bytes();
            access
                .check_topic(&conn.grant, topic)
                .map_err(|r| (r, topic))
        }
        // All or nothing, like every other refusal of a batch.
        Frame::PublishBatch { events, .. } => events.iter().try_for_each(|event| {
            let topic = event.topic.as_bytes();
            access
                .check_topic(&conn.grant, topic)
                .map_err(|r| (r, topic))
        }),
        Frame::Subscribe(s) => access.check_subscribe(&conn.grant, s),
        Frame::Status | Frame::Admin { .. } => {
            access.check_admin(&conn.grant).map_err(|r| (r, &b""[..]))
        }
        _ => Ok(()),
    }
}

/// What became of a publish.
enum Published {
    /// Stored, remembered or refused: an answer is queued.
    Answered,
    /// It waits in the buffer for room in a full ring.
    Waits,
    /// The group commit is full: it goes into the next group.
    GroupFull,
}

fn publish<S, M: Medium>(
    conn: &mut Conn<S>,
    slot: usize,
    correlation: u64,
    event: &Event<'_>,
    batch: &mut log::Batch<'_, M>,
    cx: &mut Ingest<'_>,
) -> Published {
    let e = to_log_event(event, conn.name(), cx.unix_now, cx.routes);
    if let Some(seq) = cx.dedupe.lookup(e.source, e.key, e.timestamp_ns) {
        // A retry after a lost `Stored`: the original answer, nothing new. It waits
        // for the open group like any `Stored`, so it is never ahead of the original's.
        *cx.deduplicated += 1;
        cx.counters.publish(PublishOutcome::Deduplicated);
        conn.full_since = None;
        let reply = Reply::Stored {
            correlation,
            first: seq.0,
            last: seq.0,
            count: 1,
        };
        cx.pipeline.answer(conn, slot, reply, true);
        return Published::Answered;
    }
    match batch.push(&e) {
        Ok(seq) => {
            cx.dedupe.insert(e.source, e.key, seq, e.timestamp_ns);
            conn.full_since = None;
            cx.counters.publish(PublishOutcome::Stored);
            let reply = Reply::Stored {
                correlation,
                first: seq.0,
                last: seq.0,
                count: 1,
            };
            cx.pipeline.answer(conn, slot, reply, true);
            Published::Answered
        }
        // This group commit is as large as recovery allows: the frame goes into the
        // next group (its transition is a self-loop).
        Err(AppendError::GroupFull { .. }) => Published::GroupFull,
        Err(AppendError::Full { .. })
            if waits_for_room(&mut conn.full_since, cx.now, cx.full_wait_ns) =>
        {
            Published::Waits
        }
        Err(e) => {
            if !matches!(e, AppendError::Full { .. }) {
                conn.full_since = None;
            }
            cx.counters.publish(outcome_of(&e));
            cx.pipeline
                .answer(conn, slot, append_error(correlation, &e), false);
            Published::Answered
        }
    }
}

fn publish_batch<S, M: Medium>(
    conn: &mut Conn<S>,
    slot: usize,
    correlation: u64,
    events: protocol::EventBatch<'_>,
    batch: &mut log::Batch<'_, M>,
    cx: &mut Ingest<'_>,
) -> Published {
    let mark = batch.mark();
    let mut first = None;
    let mut last = 0;
    let mut first_new = None;
    let mut repeats = 0u64;
    let mut failure = None;
    // The number each event resolved to: a repeated key resolves to the number of its
    // first event, so `Stored.count` counts distinct ones.
    let mut resolved = [0u64; BATCH_EVENTS_MAX];
    let mut resolved_len = 0;
    for event in events.iter() {
        let e = to_log_event(&event, conn.name(), cx.unix_now, cx.routes);
        // A remembered or repeated key keeps its original number (PROTOCOL.md 10.1).
        let stored = match cx.dedupe.lookup(e.source, e.key, e.timestamp_ns) {
            Some(seq) => {
                repeats += 1;
                Ok(seq)
            }
            None => batch.push(&e).inspect(|seq| {
                first_new.get_or_insert(*seq);
                cx.dedupe.insert(e.source, e.key, *seq, e.timestamp_ns);
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
            cx.dedupe.truncate_from(seq);
        }
    } else {
        *cx.deduplicated += repeats;
    }
    match failure {
        Some(AppendError::GroupFull { .. }) => {
            batch.rollback_to(mark);
            return Published::GroupFull;
        }
        Some(AppendError::Full { .. })
            if waits_for_room(&mut conn.full_since, cx.now, cx.full_wait_ns) =>
        {
            batch.rollback_to(mark);
            return Published::Waits;
        }
        Some(AppendError::Full { .. }) => {}
        _ => conn.full_since = None,
    }
    cx.counters.publish(match (&failure, first) {
        (None, Some(_)) if first_new.is_none() => PublishOutcome::Deduplicated,
        (None, Some(_)) => PublishOutcome::Stored,
        (Some(e), _) => outcome_of(e),
        (None, None) => PublishOutcome::Invalid,
    });
    let (reply, durable) = match (failure, first) {
        (None, Some(first)) => (
            Reply::Stored {
                correlation,
                first,
                last,
                count: distinct(&mut resolved[..resolved_len]),
            },
            true,
        ),
        (Some(e), _) => {
            // All or nothing (PROTOCOL.md): undo this batch's events. If some were
            // pushed, "not stored" may be said only once their undoing is durable.
            batch.rollback_to(mark);
            (append_error(correlation, &e), first_new.is_some())
        }
        (None, None) => (
            Reply::error(correlation, ErrorCode::Invalid, "empty batch"),
            false,
        ),
    };
    cx.pipeline.answer(conn, slot, reply, durable);
    Published::Answered
}

/// How many distinct numbers `seqs` holds (sorting it). A batch's `Stored.count`: at
/// least 1 for a non-empty batch, and never more than `last - first + 1`, so the
/// answer always encodes.
pub fn distinct(seqs: &mut [u64]) -> u16 {
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

/// The metrics outcome of a publish the log refused.
fn outcome_of(e: &AppendError) -> PublishOutcome {
    match e {
        AppendError::Full { .. } => PublishOutcome::Full,
        AppendError::TooLarge { .. } => PublishOutcome::TooLarge,
        AppendError::Invalid(_) => PublishOutcome::Invalid,
        // Each is answered `internal` (commit.rs, append_error).
        AppendError::GroupFull { .. } | AppendError::Failed(_) | AppendError::Exhausted { .. } => {
            PublishOutcome::Internal
        }
    }
}

/// The connection's subscription, its index, and the connection's member number in it.
fn attached<'s, S>(
    conn: &Conn<S>,
    slot: usize,
    subs: &'s mut SubscriptionSet,
) -> Option<(usize, &'s mut SubscriptionState, u8)> {
    let index = conn.subscription?;
    let sub = subs.get_mut(index)?;
    let m = sub.members.find(super::conn::sink_of(slot))?;
    Some((index, sub, m))
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

/// The log's view of a published event: an empty source is the client's name, and
/// the prevailing routing rule is found now, once (it is stored with the event).
fn to_log_event<'a>(
    e: &Event<'a>,
    connection_name: &'a [u8],
    unix_now: u64,
    routes: &Routes,
) -> EventRef<'a> {
    let source = if e.source.is_empty() {
        connection_name
    } else {
        e.source.as_bytes()
    };
    EventRef {
        topic: e.topic.as_bytes(),
        severity: e.severity,
        source,
        flags: e.flags,
        key: e.key,
        payload: e.payload,
        timestamp_ns: unix_now,
        route: routes.route(e.topic.as_bytes(), e.severity, source),
    }
}

#[cfg(test)]
mod tests {
    use super::distinct;

    #[test]
    fn a_batch_counts_each_resolved_number_once() {
        assert_eq!(distinct(&mut [5, 5]), 1);
        assert_eq!(distinct(&mut [9, 3, 9, 12]), 3);
        assert_eq!(distinct(&mut [1]), 1);
        let mut all: Vec<u64> = (0..256).map(|i| 1000 - i).collect();
        assert_eq!(distinct(&mut all), 256);
    }
}
