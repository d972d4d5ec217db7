//! The `status` reply: a JSON document an operator or a script can read.

use super::daemon::Daemon;

/// Builds the status document (allocates; status is not on the event path).
pub fn status_json(d: &Daemon) -> String {
    let log = d.log();
    let g = log.geometry();
    let info = log.medium().info();
    let (connections, refused) = d.connection_counts();
    let head = log.head().0;
    let subscriptions: Vec<serde_json::Value> = d
        .subscription_rows()
        .map(|row| {
            // The subscriptions whose cursor is the head are what keeps the ring from
            // being reused: an operator looks here when producers get `full`.
            let holds_ring = row.durable && row.cursor == head && log.used_slots() > 0;
            let mut v = serde_json::to_value(&row).expect("plain data");
            v["holds_ring"] = holds_ring.into();
            v
        })
        .collect();
    let config = d.config();
    let (dedupe, deduplicated) = d.dedupe();
    serde_json::json!({
        "region": {
            "path": info.path,
            "kind": info.kind,
            "flush": info.flush.name(),
            "durability": info.durability,
            "guarantee": info.durability.describe(),
        },
        "ring": {
            "slot_count": g.ring.slot_count,
            "slot_bytes": g.ring.slot_bytes,
            "used_slots": log.used_slots(),
            "reserve_slots": g.ring.reserve_slots,
            "head": log.head().0,
            "tail": log.tail().0,
        },
        "connections": {
            "open": connections,
            "refused_at_limit": refused,
            "producers_waiting_for_room": d.producers_waiting_for_room(),
        },
        "when_full": match config.full_wait {
            None => serde_json::json!({ "policy": "fail" }),
            Some(w) => serde_json::json!({ "policy": "wait", "timeout_ms": w.as_millis() as u64 }),
        },
        "redelivery_defaults": {
            "ack_deadline_ms": config.redelivery.ack_deadline.as_millis() as u64,
            "max_deliveries": config.redelivery.max_deliveries,
            "backoff_ms": config.redelivery.backoff.as_millis() as u64,
            "backoff_max_ms": config.redelivery.backoff_max.as_millis() as u64,
        },
        "subscriptions": subscriptions,
        "start_checks": d.start_findings(),
        "idempotency": {
            "keys_remembered": dedupe.len(),
            "window_records": dedupe.capacity(),
            "window_age_s": dedupe.max_age().as_secs(),
            "memory_bytes": dedupe.memory_bytes(),
            "publishes_answered_from_window": deduplicated,
        },
    })
    .to_string()
}
