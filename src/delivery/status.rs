//! The `status` reply: a JSON document an operator or a script can read.

use super::daemon::Daemon;

/// Builds the status document (allocates; status is not on the event path).
pub fn status_json(d: &Daemon) -> String {
    let log = d.log();
    let g = log.geometry();
    let info = log.medium().info();
    let (connections, refused) = d.connection_counts();
    let subscriptions: Vec<serde_json::Value> = d
        .subscription_rows()
        .map(
            |(name, durable, connected, cursor, pending, in_flight, mode)| {
                serde_json::json!({
                    "name": name,
                    "durable": durable,
                    "connected": connected,
                    "cursor": cursor,
                    "pending_slots": pending,
                    "in_flight": in_flight,
                    "mode": mode,
                    "holds_ring": durable && cursor == log.head().0 && log.used_slots() > 0,
                })
            },
        )
        .collect();
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
        "connections": { "open": connections, "refused_at_limit": refused },
        "subscriptions": subscriptions,
    })
    .to_string()
}
