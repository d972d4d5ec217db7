//! The `status` answer: a JSON document an operator or a script can read
//! (PROTOCOL.md section 10.7 gives its schema).

use super::super::core::Core;
use super::fit_rows;
use crate::log::SubscriptionMode;
use crate::pmem::Medium;
use crate::reactor::Reactor;
use serde_json::{json, Value};

/// Connections listed under `connections.peers` at most (the count of all is `open`):
/// with the rest of the document, well within one frame.
const PEERS_SHOWN_MAX: usize = 64;

/// One subscription as `status` shows it.
#[derive(serde::Serialize)]
pub struct SubscriptionRow {
    /// Its index in the daemon's table: stable while it exists; pages go `after` it.
    pub index: usize,
    /// The durable name; empty for a live-only subscription.
    pub name: String,
    /// Durable (kept across disconnections and restarts).
    pub durable: bool,
    /// A connection is attached.
    pub connected: bool,
    /// Its consumers are a work-queue group.
    pub group: bool,
    /// Each attached connection: its slot (as in `peers`), client name, the events it
    /// holds (delivered to it, not settled) and its window.
    pub members: Vec<Value>,
    /// Paused by an operator: nothing is delivered to it; its events are held.
    pub paused: bool,
    /// Its topic patterns.
    pub filters: Vec<String>,
    /// The least severe level it is delivered.
    pub min_severity: &'static str,
    /// Every position below it is settled or not meant for it.
    pub cursor: u64,
    /// Ring positions from the cursor to the tail (events and padding of every
    /// subscription; an upper bound of what waits for this one).
    pub pending_slots: u64,
    /// Delivered, not settled.
    pub in_flight: usize,
    /// Owed a redelivery (deadline missed, nak, disconnect).
    pub awaiting_redelivery: usize,
    /// Normal or recovering.
    pub mode: SubscriptionMode,
    /// While recovering: where the replay ends.
    pub replay_end: Option<u64>,
    /// Redeliveries since the daemon started.
    pub redelivered: u64,
    /// Dead letters made since the daemon started.
    pub dead_lettered: u64,
    /// Live-only: events given up on since the daemon started.
    pub dropped: u64,
    /// Its acknowledgement deadline.
    pub ack_deadline_ms: u64,
    /// The earliest deadline of its delivered, unsettled events, in ns on the daemon's
    /// monotonic clock (compare two of these, not a wall clock); null when none is
    /// pending. `Working` moves it later.
    pub deadline_monotonic_ns_min: Option<u64>,
    /// Its maximum deliveries.
    pub max_deliveries: u16,
    /// Why its stored state failed the start-up checks, if it did.
    pub damage: Option<&'static str>,
    /// It is the oldest unreleased position: what keeps the ring from being reused.
    pub holds_ring: bool,
}

impl<R: Reactor, M: Medium> Core<R, M> {
    /// The status document. Subscriptions are listed while they fit one frame; the
    /// rest is paged with the `subscriptions` admin request.
    pub(in crate::delivery) fn status_json(&self) -> String {
        let mut doc = self.status_without_subscriptions();
        let total = self.subs.iter().count();
        let fixed = doc.to_string().len();
        let mut rows = Vec::new();
        let shown = fit_rows(fixed, self.subscription_rows(None), &mut rows);
        doc["subscriptions_total"] = total.into();
        doc["subscriptions_shown"] = shown.into();
        if let (true, Some(last)) = (shown < total, rows.last()) {
            doc["subscriptions_next"] = json!({ "after_index": last["index"] });
        }
        doc["subscriptions"] = Value::Array(rows);
        doc.to_string()
    }

    /// One row per subscription after table index `after` (all: None), in index
    /// order.
    pub(in crate::delivery) fn subscription_rows(
        &self,
        after: Option<usize>,
    ) -> impl Iterator<Item = Value> + '_ {
        let tail = self.log.tail().0;
        let head = self.log.head().0;
        let used = self.log.used_slots();
        self.subs
            .iter()
            .filter(move |(index, _)| after.is_none_or(|a| *index > a))
            .map(move |(index, s)| {
                let entry = s.durable.and_then(|id| self.log.subscription(id));
                let policy = s.tracker.policy();
                let row = SubscriptionRow {
                    index,
                    name: entry.map_or(String::new(), |e| {
                        String::from_utf8_lossy(e.name()).into_owned()
                    }),
                    durable: s.durable.is_some(),
                    connected: !s.members.is_empty(),
                    group: s.members.group(),
                    members: s
                        .members
                        .iter()
                        .map(|(m, member)| {
                            let slot = member.sink.0 as usize;
                            let client = if slot < self.conns.len() {
                                String::from_utf8_lossy(self.conns.get(slot).name()).into_owned()
                            } else {
                                "(the JetStream forwarder)".to_owned()
                            };
                            json!({
                                "slot": slot,
                                "client": client,
                                "in_flight": s.tracker.held_by(m),
                                "window": member.window,
                            })
                        })
                        .collect(),
                    paused: s.paused,
                    filters: s
                        .spec
                        .patterns()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect(),
                    min_severity: s.spec.min_severity.name(),
                    cursor: s.tracker.cursor(),
                    pending_slots: tail.saturating_sub(s.tracker.cursor()),
                    in_flight: s.tracker.in_flight(),
                    awaiting_redelivery: s.tracker.waiting(),
                    mode: s.mode(),
                    replay_end: s.replay_end,
                    redelivered: s.redelivered,
                    dead_lettered: s.dead_lettered,
                    dropped: s.dropped,
                    ack_deadline_ms: policy.ack_deadline_ns / 1_000_000,
                    deadline_monotonic_ns_min: s.tracker.deadline_min(),
                    max_deliveries: policy.max_deliveries,
                    damage: entry.and_then(|e| e.damage),
                    // The subscriptions whose cursor is the head keep the ring from
                    // being reused: an operator looks here when producers get `full`.
                    holds_ring: s.durable.is_some() && s.tracker.cursor() == head && used > 0,
                };
                serde_json::to_value(row).unwrap_or(Value::Null)
            })
    }

    /// Who is connected: the first [`PEERS_SHOWN_MAX`] open connections, each with its
    /// transport and identity (a Unix peer's credentials, a TLS client certificate's
    /// name).
    fn peers(&self) -> Value {
        let rows: Vec<Value> = (0..self.conns.len())
            .map(|slot| (slot, self.conns.get(slot)))
            .filter(|(_, c)| c.open_for_io())
            .take(PEERS_SHOWN_MAX)
            .map(|(slot, c)| {
                json!({
                    "slot": slot,
                    "transport": if c.tls.is_some() { "tls" } else { "unix" },
                    "identity": c.identity.to_string(),
                    "client": String::from_utf8_lossy(c.name()),
                })
            })
            .collect();
        Value::Array(rows)
    }

    fn status_without_subscriptions(&self) -> Value {
        let log = &self.log;
        let g = log.geometry();
        let config = &self.config;
        let durability = log.medium().durability();
        let region = match &self.start.region {
            Some(info) => json!({
                "path": info.path,
                "kind": info.kind,
                "flush": info.flush.name(),
                "durability": info.durability,
                "guarantee": info.durability.describe(),
            }),
            None => json!({
                "kind": "simulated",
                "durability": durability,
                "guarantee": durability.describe(),
            }),
        };
        let dedupe = &self.dedupe;
        let (dead_free, dead_slots) = log.dead_letter_slots();
        json!({
            "region": region,
            "io": {
                "backend": self.reactor.backend(),
                "io_uring_refused": self.start.io_fallback,
            },
            "commit": {
                "gate": self.pipeline.gate().name(),
                "answers_held": self.pipeline.held(),
                "syncs": self.pipeline.syncs,
                "sync_in_flight": self.pipeline.sync_in_flight(),
            },
            "ring": {
                "slot_count": g.ring.slot_count,
                "slot_bytes": g.ring.slot_bytes,
                "used_slots": log.used_slots(),
                "reserve_slots": g.ring.reserve_slots,
                "head": log.head().0,
                "tail": log.tail().0,
                "held_by_links_from": log.held_by_links_from().map(|s| s.0),
                "retention": log.retention_status().map(|r| json!({
                    "age_ms": match r.retention.retain {
                        crate::log::Retain::Age(ns) => Some(ns / 1_000_000),
                        crate::log::Retain::Bytes(_) => None,
                    },
                    "bytes": match r.retention.retain {
                        crate::log::Retain::Bytes(b) => Some(b),
                        crate::log::Retain::Age(_) => None,
                    },
                    "strict": r.retention.strict,
                    "floor": r.floor,
                    "retained_slots": r.retained_slots,
                    "overwritten_early_slots": r.overwritten_early_slots,
                })),
            },
            "dead_letters": {
                "count": log.dead_letters().count(),
                "slots": dead_slots,
                "free_slots": dead_free,
                "full": self.dead.full_since.is_some(),
                "events_waiting_for_room": self.dead.pending.len(),
            },
            "connections": {
                "open": self.conns.open_count(),
                "serving": self.conns.serving,
                "limit": config.connections_max,
                "control_slots": super::super::CONTROL_SLOTS,
                "buffer_bytes_per_slot": super::super::CONNECTION_SLOT_BYTES,
                "refused_at_limit": self.conns.refused,
                "timed_out": self.timed_out,
                "producers_waiting_for_room": self.conns.waiting_for_room(),
                "tls": {
                    "listen": self.tls.as_ref().map(|t| t.address.to_string()),
                    "handshakes_refused": self.conns.handshakes.refused,
                },
                "peers": self.peers(),
            },
            "when_full": match config.full_wait {
                None => json!({ "policy": "fail" }),
                Some(w) => json!({ "policy": "wait", "timeout_ms": w.as_millis() as u64 }),
            },
            "redelivery_defaults": {
                "ack_deadline_ms": config.redelivery.ack_deadline.as_millis() as u64,
                "max_deliveries": config.redelivery.max_deliveries,
                "backoff_ms": config.redelivery.backoff.as_millis() as u64,
                "backoff_max_ms": config.redelivery.backoff_max.as_millis() as u64,
            },
            "metrics": match self.metrics_listen() {
                Some(address) => json!({
                    "enabled": true,
                    "listen": address.to_string(),
                    "url": format!("http://{address}{}", crate::metrics::METRICS_PATH),
                }),
                None => json!({ "enabled": false, "listen": null, "url": null }),
            },
            "forwarder": self.forwarder.as_ref().map(|f| {
                f.status(self.subs.get(f.subscription), self.now)
            }),
            "node_id": format!("{:016x}", g.node_id),
            "upstreams": self
                .upstreams
                .iter()
                .map(|u| u.status(self.now, self.unix_now))
                .collect::<Vec<_>>(),
            "start_checks": self.start.findings,
            "idempotency": {
                "keys_remembered": dedupe.len(),
                "window_records": dedupe.capacity(),
                "window_age_s": dedupe.max_age().as_secs(),
                "memory_bytes": dedupe.memory_bytes(),
                "publishes_answered_from_window": self.deduplicated,
            },
        })
    }
}
