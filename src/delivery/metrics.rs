//! The loop's side of `--metrics-listen`: once per turn, if the exporter asked, the
//! daemon's counters and state are copied into a preallocated snapshot and handed over
//! (`crate::metrics` explains the exchange). Nothing here allocates once the link is
//! set: the snapshot keeps room for every durable subscription of the table.

use super::core::Core;
use crate::log::SubscriptionMode;
use crate::metrics::{Exchange, Snapshot, SubscriptionSample};
use crate::pmem::{Durability, Medium};
use crate::reactor::Reactor;
use std::net::SocketAddr;
use std::sync::Arc;

/// The exchange with the exporter's thread, and the snapshot the loop fills.
pub(super) struct MetricsLink {
    exchange: Arc<Exchange>,
    snapshot: Snapshot,
    /// The address metrics are served on (for `status`).
    pub(super) listen: SocketAddr,
    /// When the sync under way was submitted (monotonic ns).
    sync_began_ns: u64,
}

impl<R: Reactor, M: Medium> Core<R, M> {
    /// Serves snapshots to the exporter on `exchange`, whose address is `listen`: from
    /// now on the loop looks once per turn whether one is wanted, and times group
    /// commits and syncs.
    pub fn set_metrics(&mut self, exchange: Arc<Exchange>, listen: SocketAddr) {
        let durable = self.log.geometry().subscriptions.entry_count as usize;
        exchange.reserve(durable);
        self.metrics = Some(Box::new(MetricsLink {
            exchange,
            snapshot: Snapshot::with_capacity(durable),
            listen,
            sync_began_ns: 0,
        }));
    }

    /// Where metrics are served, if they are.
    pub fn metrics_listen(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.listen)
    }

    /// Once per turn: a snapshot for the exporter, if it asked.
    pub(super) fn publish_metrics(&mut self) {
        let Some(mut link) = self.metrics.take() else {
            return;
        };
        if link.exchange.wanted() {
            self.fill(&mut link.snapshot);
            // Refused only while the exporter holds the lock: the request stands, and
            // the next turn offers again.
            link.exchange.offer(&mut link.snapshot);
        }
        self.metrics = Some(link);
    }

    /// A sync was submitted: its duration is measured from now.
    pub(super) fn metrics_sync_began(&mut self) {
        if let Some(link) = &mut self.metrics {
            link.sync_began_ns = self.reactor.now_ns();
        }
    }

    /// The sync under way completed, seen at `now` (this turn's start).
    pub(super) fn metrics_sync_completed(&mut self, now: u64) {
        if let Some(link) = &self.metrics {
            let ns = now.saturating_sub(link.sync_began_ns);
            self.counters.sync_ns.record(ns);
        }
    }

    fn fill(&self, s: &mut Snapshot) {
        let log = &self.log;
        let g = log.geometry();
        let (dead_free, dead_slots) = log.dead_letter_slots();
        s.taken_unix_ns = self.reactor.unix_ns();
        s.started_unix_ns = self.started_unix_ns;
        s.backend = self.reactor.backend().name();
        s.gate = self.pipeline.gate().name();
        s.durability = match log.medium().durability() {
            Durability::PowerCut => "power_cut",
            Durability::ProcessCrash => "process_crash",
            Durability::Disk => "disk",
        };
        s.recovery_scan_ns = self.start.recovery_scan.map(|d| d.as_nanos() as u64);
        s.counters = self.counters;
        s.answers_held = self.pipeline.held() as u64;
        s.syncs = self.pipeline.syncs;
        s.sync_in_flight = self.pipeline.sync_in_flight();
        s.ring_slots = g.ring.slot_count;
        s.ring_slot_bytes = g.ring.slot_bytes;
        s.ring_used_slots = log.used_slots();
        s.ring_reserve_slots = g.ring.reserve_slots;
        let retention = log.retention_status();
        s.ring_retained_slots = retention.map_or(0, |r| r.retained_slots);
        s.ring_retention_overwritten_slots = retention.map_or(0, |r| r.overwritten_early_slots);
        s.dead_letters = log.dead_letters().count() as u64;
        s.dead_letter_slots = dead_slots;
        s.dead_letter_free_slots = dead_free;
        s.dead_letter_area_full = self.dead.full_since.is_some();
        s.dead_letters_waiting = self.dead.pending.len() as u64;
        s.connections_open = self.conns.open_count() as u64;
        s.connections_serving = self.conns.serving as u64;
        s.connections_limit = self.config.connections_max as u64;
        s.connections_refused = self.conns.refused;
        s.connections_timed_out = self.timed_out;
        s.access_refusals = self.access.refused;
        s.producers_waiting_for_room = self.conns.waiting_for_room() as u64;
        s.idempotency_keys = self.dedupe.len() as u64;
        s.deduplicated_events = self.deduplicated;
        self.fill_subscriptions(s);
    }

    fn fill_subscriptions(&self, s: &mut Snapshot) {
        let tail = self.log.tail().0;
        let head = self.log.head().0;
        let used = self.log.used_slots();
        s.subscriptions.clear();
        s.live_subscriptions = 0;
        s.live_in_flight = 0;
        s.replaying_subscriptions = 0;
        for (_, sub) in self.subs.iter() {
            let Some(id) = sub.durable else {
                s.live_subscriptions += 1;
                s.live_in_flight += sub.tracker.in_flight() as u64;
                continue;
            };
            // Bounded by the table: the snapshot was made with room for every entry.
            if s.subscriptions.len() == s.subscriptions.capacity() {
                continue;
            }
            let name = self.log.subscription(id).map_or(&[][..], |e| e.name());
            let recovering = sub.mode() == SubscriptionMode::Recovering;
            s.replaying_subscriptions += u64::from(recovering);
            let cursor = sub.tracker.cursor();
            let mut sample = SubscriptionSample::named(name);
            sample.connected = !sub.members.is_empty();
            sample.recovering = recovering;
            sample.pending_slots = tail.saturating_sub(cursor);
            sample.in_flight = sub.tracker.in_flight() as u64;
            sample.awaiting_redelivery = sub.tracker.waiting() as u64;
            sample.redelivered = sub.redelivered;
            sample.dead_lettered = sub.dead_lettered;
            sample.holds_ring = cursor == head && used > 0;
            sample.paused = sub.paused;
            s.subscriptions.push(sample);
        }
    }
}
