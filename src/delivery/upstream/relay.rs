//! What the relay does with what an upstream sends: deliveries committed as relayed
//! records in the turn's group commit, strictly in the order they came (a delivery
//! the ring has no room for stops the reading, so nothing is ever skipped);
//! duplicates (below the mark) confirmed without storing them again; confirmations
//! sent once the group holding their event is durable; the mark written to the link
//! entry once the events it covers are durable.

use super::link::{State, Upstream};
use crate::event::Origin;
use crate::log::{AppendError, Batch, EventRef, Log, LogError, Relayed, Seq};
use crate::pmem::Medium;
use crate::protocol::{decode, Frame};
use crate::routing::Routes;

/// Bytes a `Confirm` frame takes, with room to spare for the next.
const CONFIRM_ROOM_BYTES: usize = 64;
/// At most one log line per this interval about events refused.
const REFUSED_LOG_INTERVAL_NS: u64 = 1_000_000_000;

/// Why the relay's ingest stopped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IngestStop {
    /// Nothing more to take now.
    Done,
    /// The group commit is full: another round takes the rest.
    GroupFull,
}

impl<S> Upstream<S> {
    /// After a `HelloOk`: finds (or creates) the link entry of the upstream's node,
    /// rebuilds the mark from it and from the relayed records still in the ring, and
    /// asks for the subscription. `taken`: the node is already linked through another
    /// `--upstream` (the connection is then dropped).
    pub fn link_up<M: Medium>(&mut self, log: &mut Log<M>, taken: bool) -> Result<(), String> {
        let State::NeedLink { node_id } = self.state else {
            return Ok(());
        };
        if taken {
            return Err(format!(
                "node {node_id:016x} is already relayed through another --upstream"
            ));
        }
        if node_id == log.geometry().node_id {
            return Err("the upstream is this herald itself".into());
        }
        let name = link_name(node_id);
        let existing = log.link_by_name(name.as_bytes()).map(|l| l.id);
        let other_node = self.entry.is_some() && self.entry != existing;
        // Another node answers at this address than the last connection's: what that
        // connection took is the other node's, and moves its mark once durable (within
        // a sync). Until then this link waits, so that no seq crosses between marks.
        self.link_deferred = other_node && self.previous_link_unsettled();
        if self.link_deferred {
            return Ok(());
        }
        let entry = match existing {
            Some(id) => id,
            None => log
                .create_link(name.as_bytes(), self.config.name.as_bytes(), 0)
                .map_err(|e| format!("cannot record the upstream link in the region: {e}"))?,
        };
        let written = log.link(entry).map_or(0, |l| l.cursor);
        let in_ring = log
            .events_from(log.head())
            .filter_map(|e| e.hop)
            .filter(|h| h.link == entry.0)
            .map(|h| h.upstream_seq + 1)
            .max()
            .unwrap_or(0);
        self.entry = Some(entry);
        self.mark = written.max(in_ring);
        self.mark_written = written;
        // Not `mark`: on a reconnect, records the last connection took may wait for
        // their group's sync still, and a mark must never cover what is not durable.
        // They stay pending (and move the mark when durable); the first link after a
        // start finds nothing pending, and the open settled the mark (`written`).
        self.mark_due = if other_node {
            written
        } else {
            self.mark_due.max(written)
        };
        self.stale = self.pending.len();
        self.subscribe()
    }

    /// Takes what the buffer holds: control frames, and deliveries into `batch` (the
    /// turn's group commit, whose number is `group`). `Err`: drop the connection.
    pub fn ingest<M: Medium>(
        &mut self,
        batch: &mut Batch<'_, M>,
        group: u64,
        now: u64,
        unix_now: u64,
        routes: &Routes,
    ) -> Result<IngestStop, String> {
        self.waiting_for_room = false;
        // Taken out while frames borrow it; an empty box allocates nothing.
        let recv = std::mem::take(&mut self.recv);
        let mut at = self.recv_start;
        let result = loop {
            if matches!(self.state, State::NeedLink { .. } | State::Closing) {
                break Ok(IngestStop::Done);
            }
            let (frame, n) = match decode(&recv[at..self.recv_len]) {
                Ok(None) => break Ok(IngestStop::Done),
                Ok(Some(decoded)) => decoded,
                Err(e) => {
                    break Err(format!(
                        "the upstream sent a frame that does not decode: {e}"
                    ))
                }
            };
            let Frame::Deliver(d) = frame else {
                at += n;
                match self.on_control(&frame) {
                    Ok(()) => continue,
                    Err(why) => break Err(why),
                }
            };
            if self.state != State::Streaming {
                break Err("the upstream sent a delivery before the subscription".into());
            }
            if self.pending.len() == self.pending.capacity() {
                // More unconfirmed than the window allows: wait for confirmations.
                break Ok(IngestStop::Done);
            }
            let seq = d.seq.0;
            let origin = d.origin.unwrap_or(Origin {
                node_id: self.upstream_node.unwrap_or(0),
                seq,
                timestamp_ns: d.timestamp_ns,
            });
            if seq < self.mark {
                // Stored before (a redelivery, or one after a crash here): confirmed
                // once what is committed now is durable, never stored twice.
                if let Err(why) = self.machine.on_receive(&frame) {
                    break Err(format!(
                        "the upstream sent {:?} out of turn",
                        why.frame_type
                    ));
                }
                at += n;
                self.duplicates += 1;
                self.pending.push_back((seq, group));
                continue;
            }
            let event = EventRef {
                topic: d.event.topic.as_str().as_bytes(),
                severity: d.event.severity,
                source: d.event.source.as_bytes(),
                flags: d.event.flags,
                key: d.event.key,
                payload: d.event.payload,
                timestamp_ns: unix_now,
                // Routed here by this node's rules, like a local event.
                route: routes.route(
                    d.event.topic.as_str().as_bytes(),
                    d.event.severity,
                    d.event.source.as_bytes(),
                ),
            };
            let relayed = Relayed {
                origin,
                link: self.entry.map_or(u32::MAX, |e| e.0),
                upstream_seq: seq,
            };
            match batch.push_relayed(&event, &relayed) {
                Ok(Seq(_)) => {
                    let _ = self.machine.on_receive(&frame);
                    at += n;
                    self.mark = seq + 1;
                    self.relayed += 1;
                    self.newest_seq = self.newest_seq.max(seq);
                    self.newest_origin_ns = origin.timestamp_ns;
                    self.pending.push_back((seq, group));
                }
                Err(AppendError::Full { .. }) => {
                    // Back-pressure: nothing is read until there is room.
                    self.waiting_for_room = true;
                    break Ok(IngestStop::Done);
                }
                Err(AppendError::GroupFull { .. }) => break Ok(IngestStop::GroupFull),
                Err(AppendError::Failed(_) | AppendError::Exhausted { .. }) => {
                    // The log refuses every write now; the daemon stops at its commit.
                    break Ok(IngestStop::Done);
                }
                Err(e @ (AppendError::Invalid(_) | AppendError::TooLarge { .. })) => {
                    // This region cannot hold it (a smaller payload limit than the
                    // upstream's): the upstream keeps it as a dead letter of the
                    // relay's subscription, where an operator sees it.
                    if !self.queue_reject(seq) {
                        break Ok(IngestStop::Done);
                    }
                    let _ = self.machine.on_receive(&frame);
                    at += n;
                    self.refused += 1;
                    if self
                        .refused_logged_at
                        .is_none_or(|t| now.saturating_sub(t) >= REFUSED_LOG_INTERVAL_NS)
                    {
                        tracing::warn!(upstream = %self.config.text, seq, error = %e, refused_in_all = self.refused, "relaying from the upstream: an event this region cannot hold was rejected (it is a dead letter at the upstream)");
                        self.refused_logged_at = Some(now);
                    }
                }
            }
        };
        self.recv = recv;
        self.consume(at - self.recv_start);
        result
    }

    /// Confirms upstream every event whose group is durable now (`durable_group`), in
    /// ranges, and writes the mark those events allow. `Err`: the log failed.
    pub fn confirm<M: Medium>(
        &mut self,
        durable_group: u64,
        log: &mut Log<M>,
    ) -> Result<(), LogError> {
        let streaming = self.state == State::Streaming;
        let mut run: Option<(u64, u64)> = None;
        while let Some(&(seq, group)) = self.pending.front() {
            if group > durable_group {
                break;
            }
            if self.stale > 0 {
                // An earlier connection's: the mark only.
                self.stale -= 1;
            } else if streaming {
                match run {
                    // A redelivery goes back in seq: it starts a range of its own.
                    Some((first, last)) if seq > last => run = Some((first, seq)),
                    Some((first, last)) => {
                        if !self.confirm_room() || !self.queue_confirm(first, last) {
                            break;
                        }
                        run = Some((seq, seq));
                    }
                    None if !self.confirm_room() => break,
                    None => run = Some((seq, seq)),
                }
            }
            self.pending.pop_front();
            self.mark_due = self.mark_due.max(seq + 1);
        }
        if let Some((first, last)) = run {
            // Room was checked before the range was begun.
            let _ = self.queue_confirm(first, last);
        }
        if let Some(entry) = self.entry {
            if self.mark_due > self.mark_written && log.set_link_mark(entry, self.mark_due)? {
                self.mark_written = self.mark_due;
            }
        }
        Ok(())
    }

    /// Whether the last link's taken seqs still wait for their groups, or its mark
    /// for its write.
    fn previous_link_unsettled(&self) -> bool {
        !self.pending.is_empty() || self.mark_due > self.mark_written
    }

    fn confirm_room(&self) -> bool {
        self.send_room() >= CONFIRM_ROOM_BYTES
    }
}

/// The link entry's name for an upstream node.
fn link_name(node_id: u64) -> String {
    format!("upstream.{node_id:016x}")
}

#[cfg(test)]
mod tests {
    use super::super::link::LINK_RETRY_NS;
    use super::*;
    use crate::delivery::upstream::{UpstreamAddress, UpstreamConfig};
    use crate::log::LogConfig;
    use crate::pmem::sim_disk::SimDisk;
    use std::time::Duration;

    const NODE: u64 = 42;

    fn upstream() -> Upstream<()> {
        Upstream::new(
            UpstreamConfig {
                text: "/run/up.sock".into(),
                address: UpstreamAddress::Unix("/run/up.sock".into()),
                name: "relay".into(),
                filters: Vec::new(),
                min_severity: crate::event::Severity::Debug,
                window: 8,
                ack_timeout: Duration::from_secs(1),
                tls: None,
            },
            0,
        )
    }

    /// What a `HelloOk` from the upstream's node leads to: the link, then the
    /// subscription taken.
    fn link(u: &mut Upstream<()>, log: &mut Log<SimDisk>) {
        link_to(u, log, NODE);
        assert_eq!(u.state, State::AwaitSubscribed);
        u.state = State::Streaming;
    }

    fn link_to(u: &mut Upstream<()>, log: &mut Log<SimDisk>, node_id: u64) {
        u.state = State::NeedLink { node_id };
        u.link_up(log, false).expect("no refusal");
    }

    /// What `ingest` does with a delivery of upstream seq `seq`, in group `group`.
    fn take(u: &mut Upstream<()>, log: &mut Log<SimDisk>, seq: u64, group: u64) {
        let event = crate::log::event::test_event(b"r");
        let relayed = crate::log::event::test_relayed(u.entry.expect("linked").0, NODE, seq);
        let mut batch = log.batch();
        batch.push_relayed(&event, &relayed).expect("room");
        batch.commit().expect("commit");
        u.mark = seq + 1;
        u.pending.push_back((seq, group));
    }

    #[test]
    fn a_reconnect_writes_no_mark_over_records_whose_group_is_not_durable_yet() {
        let mut log = Log::format(SimDisk::new(1 << 20), &LogConfig::default(), 1).unwrap();
        let mut u = upstream();
        link(&mut u, &mut log);
        let entry = u.entry.unwrap();
        take(&mut u, &mut log, 0, 1);
        // The connection drops before group 1 is durable, and comes back at once.
        link(&mut u, &mut log);
        assert_eq!(u.mark, 1, "the record in the ring still counts as stored");
        let room = u.send_room();
        u.confirm(0, &mut log).unwrap();
        assert_eq!(log.link(entry).unwrap().cursor, 0, "group 1 is not durable");
        u.confirm(1, &mut log).unwrap();
        assert_eq!(
            log.link(entry).unwrap().cursor,
            1,
            "durable now: the mark moves"
        );
        assert_eq!(
            u.send_room(),
            room,
            "the last connection's delivery is not confirmed on this one"
        );
        // This connection's own deliveries are confirmed as before.
        take(&mut u, &mut log, 1, 2);
        u.confirm(2, &mut log).unwrap();
        assert!(u.send_room() < room, "a Confirm was queued");
    }

    #[test]
    fn another_node_at_the_address_is_linked_once_the_last_nodes_seqs_are_marked() {
        let mut log = Log::format(SimDisk::new(1 << 20), &LogConfig::default(), 1).unwrap();
        let mut u = upstream();
        link(&mut u, &mut log);
        let first = u.entry.unwrap();
        for seq in 0..5 {
            take(&mut u, &mut log, seq, 1);
        }
        // The upstream was replaced: node 43 answers before group 1 is durable.
        link_to(&mut u, &mut log, NODE + 1);
        assert!(matches!(u.state, State::NeedLink { .. }), "the link waits");
        assert_eq!(u.entry, Some(first));
        assert_eq!(u.deadline(7), Some(7 + LINK_RETRY_NS));
        u.confirm(1, &mut log).unwrap();
        assert_eq!(
            log.link(first).unwrap().cursor,
            5,
            "node 42's seqs, its mark"
        );
        link_to(&mut u, &mut log, NODE + 1);
        assert_eq!(u.state, State::AwaitSubscribed);
        let second = u.entry.unwrap();
        assert_ne!(second, first);
        assert_eq!(u.mark, 0, "node 43's mark starts at its own");
        u.confirm(1, &mut log).unwrap();
        assert_eq!(
            log.link(second).unwrap().cursor,
            0,
            "no seq of node 42 in it"
        );
    }
}
