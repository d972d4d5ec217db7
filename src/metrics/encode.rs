//! A [`Snapshot`] in the Prometheus text format (version 0.0.4), through
//! `prometheus-client`: each metric is a constant read from the snapshot when the
//! exporter's thread encodes it (a [`Collector`]); nothing here is shared with the
//! loop. OPERATIONS.md lists every metric.

use super::histogram::Histogram;
use super::snapshot::{PublishOutcome, Snapshot, SubscriptionSample};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;

/// The `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The snapshot as text. `age_ns`: how long before this answer the loop took it.
pub fn encode(snapshot: Snapshot, age_ns: u64) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(View { snapshot, age_ns }));
    let mut text = String::with_capacity(16 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// One scrape's snapshot, as the registry's only collector.
#[derive(Debug)]
struct View {
    snapshot: Snapshot,
    age_ns: u64,
}

const NS_PER_SECOND: f64 = 1e9;

fn seconds(ns: u64) -> f64 {
    ns as f64 / NS_PER_SECOND
}

fn flag(on: bool) -> u64 {
    u64::from(on)
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// `name` without `_total`: the encoder adds it.
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// `per_unit`: recorded units per unit of the metric (a division, so that a bound of
/// 1000 ns shows as 1e-06 s, not 1.0000000000000002e-06).
fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &Histogram,
    per_unit: f64,
) -> fmt::Result {
    let buckets: Vec<(f64, u64)> = h
        .buckets()
        .map(|(bound, count)| (bound as f64 / per_unit, count))
        .collect();
    e.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum() as f64 / per_unit, h.count(), &buckets, None)
}

/// One series per durable subscription, labelled with its name.
fn per_subscription(
    e: &mut DescriptorEncoder,
    subscriptions: &[SubscriptionSample],
    name: &str,
    help: &str,
    metric_type: MetricType,
    value: fn(&SubscriptionSample) -> u64,
) -> fmt::Result {
    if subscriptions.is_empty() {
        return Ok(());
    }
    let mut family = e.encode_descriptor(name, help, None, metric_type)?;
    for s in subscriptions {
        let label = String::from_utf8_lossy(s.name());
        let labels = [("subscription", label.as_ref())];
        let series = family.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(value(s)).encode(series)?,
            _ => ConstGauge::new(value(s)).encode(series)?,
        }
    }
    Ok(())
}

impl Collector for View {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = &self.snapshot;
        let c = &s.counters;
        let version = env!("CARGO_PKG_VERSION");
        e.encode_descriptor(
            "herald",
            "The daemon: its version, I/O backend, durability gate and what a stored event survives (always 1).",
            None,
            MetricType::Info,
        )?
        .encode_info(&[
            ("version", version),
            ("backend", s.backend),
            ("gate", s.gate),
            ("durability", s.durability),
        ])?;
        gauge(
            &mut e,
            "herald_start_time_seconds",
            "When the daemon started, in seconds since the Unix epoch.",
            seconds(s.started_unix_ns),
        )?;
        gauge(&mut e, "herald_metrics_snapshot_age_seconds", "How long before this answer the loop took the values shown (above a second: the loop did not answer in time, and these are its last).", seconds(self.age_ns))?;
        if let Some(scan) = s.recovery_scan_ns {
            gauge(
                &mut e,
                "herald_recovery_scan_duration_seconds",
                "How long the recovery scan of the region took at start.",
                seconds(scan),
            )?;
        }
        gauge(
            &mut e,
            "herald_replaying_subscriptions",
            "Durable subscriptions in recovery mode, replaying unsettled events after a crash.",
            s.replaying_subscriptions,
        )?;

        let mut publishes = e.encode_descriptor(
            "herald_publishes",
            "Publish and PublishBatch frames answered, by outcome (stored, deduplicated: answered from the idempotency window alone, or the error code).",
            None,
            MetricType::Counter,
        )?;
        for outcome in PublishOutcome::ALL {
            let labels = [("outcome", outcome.name())];
            ConstCounter::new(c.publishes(outcome)).encode(publishes.encode_family(&labels)?)?;
        }
        counter(
            &mut e,
            "herald_stored_events",
            "Events stored in the ring.",
            c.stored_events,
        )?;
        counter(
            &mut e,
            "herald_stored_ring_bytes",
            "Ring bytes the stored events took: whole slots, headers and padding included.",
            c.stored_ring_bytes,
        )?;
        counter(&mut e, "herald_deduplicated_events", "Published events answered from the idempotency window (a repeated key), nothing stored.", s.deduplicated_events)?;
        gauge(
            &mut e,
            "herald_idempotency_keys",
            "Idempotency keys remembered.",
            s.idempotency_keys,
        )?;
        histogram(
            &mut e,
            "herald_group_commit_events",
            "Events per group commit.",
            &c.group_events,
            1.0,
        )?;
        histogram(
            &mut e,
            "herald_commit_duration_seconds",
            "Duration of a group commit: from the first frame of its round read to the fence.",
            &c.commit_ns,
            NS_PER_SECOND,
        )?;
        histogram(
            &mut e,
            "herald_sync_duration_seconds",
            "Duration of a sync to disk (--sync disk), from its submission to its completion.",
            &c.sync_ns,
            NS_PER_SECOND,
        )?;
        counter(&mut e, "herald_syncs", "Syncs to disk completed.", s.syncs)?;
        gauge(
            &mut e,
            "herald_sync_in_flight",
            "A sync to disk is under way (1) or not (0).",
            flag(s.sync_in_flight),
        )?;
        gauge(
            &mut e,
            "herald_answers_held",
            "Answers waiting for their group commit to be durable.",
            s.answers_held,
        )?;

        gauge(
            &mut e,
            "herald_ring_slots",
            "Slots of the ring.",
            s.ring_slots,
        )?;
        gauge(
            &mut e,
            "herald_ring_slot_bytes",
            "Bytes per ring slot.",
            s.ring_slot_bytes,
        )?;
        gauge(
            &mut e,
            "herald_ring_used_slots",
            "Ring slots holding unreleased events.",
            s.ring_used_slots,
        )?;
        gauge(
            &mut e,
            "herald_ring_free_slots",
            "Ring slots free (the reserve included).",
            s.ring_slots.saturating_sub(s.ring_used_slots),
        )?;
        gauge(
            &mut e,
            "herald_ring_reserve_slots",
            "Ring slots kept for crit and more severe events once the rest are used.",
            s.ring_reserve_slots,
        )?;
        gauge(
            &mut e,
            "herald_ring_retained_slots",
            "Released ring slots kept from being overwritten (--retain); 0 without it.",
            s.ring_retained_slots,
        )?;
        counter(
            &mut e,
            "herald_ring_retention_overwritten_slots",
            "Retained ring slots overwritten before their retention ended (the ring is too small for --retain).",
            s.ring_retention_overwritten_slots,
        )?;

        gauge(
            &mut e,
            "herald_dead_letters",
            "Dead letters in the region's dead-letter area.",
            s.dead_letters,
        )?;
        gauge(
            &mut e,
            "herald_dead_letter_slots",
            "Slots of the dead-letter area.",
            s.dead_letter_slots,
        )?;
        gauge(
            &mut e,
            "herald_dead_letter_free_slots",
            "Free slots of the dead-letter area.",
            s.dead_letter_free_slots,
        )?;
        gauge(
            &mut e,
            "herald_dead_letter_area_full",
            "The dead-letter area is full (1): events given up on wait for room, holding the ring.",
            flag(s.dead_letter_area_full),
        )?;
        gauge(
            &mut e,
            "herald_dead_letters_waiting_for_room",
            "Events given up on that wait for room in the dead-letter area.",
            s.dead_letters_waiting,
        )?;

        gauge(
            &mut e,
            "herald_connections_open",
            "Open connections, every role.",
            s.connections_open,
        )?;
        gauge(
            &mut e,
            "herald_connections_serving",
            "Open producer and subscriber connections.",
            s.connections_serving,
        )?;
        gauge(
            &mut e,
            "herald_connections_limit",
            "Producer and subscriber connections served at once (--connections-max).",
            s.connections_limit,
        )?;
        counter(
            &mut e,
            "herald_connections_refused",
            "Connections refused because every slot was in use.",
            s.connections_refused,
        )?;
        counter(
            &mut e,
            "herald_connections_timed_out",
            "Connections closed for saying no hello, or nothing, in time.",
            s.connections_timed_out,
        )?;
        counter(
            &mut e,
            "herald_access_refusals",
            "Frames the access policy refused (forbidden): roles, topics, subscriptions, status.",
            s.access_refusals,
        )?;
        gauge(
            &mut e,
            "herald_producers_waiting_for_room",
            "Producers whose publish waits for room in a full ring (--when-full wait).",
            s.producers_waiting_for_room,
        )?;

        gauge(
            &mut e,
            "herald_durable_subscriptions",
            "Durable subscriptions (attached or not).",
            s.subscriptions.len() as u64,
        )?;
        gauge(
            &mut e,
            "herald_live_subscriptions",
            "Live-only subscriptions attached.",
            s.live_subscriptions,
        )?;
        gauge(
            &mut e,
            "herald_live_in_flight",
            "Events delivered to live-only subscriptions and not settled.",
            s.live_in_flight,
        )?;
        let subs = &s.subscriptions;
        per_subscription(
            &mut e,
            subs,
            "herald_subscription_connected",
            "A connection is attached to the durable subscription (1) or not (0).",
            MetricType::Gauge,
            |s| flag(s.connected),
        )?;
        per_subscription(
            &mut e,
            subs,
            "herald_subscription_recovering",
            "The durable subscription is in recovery mode (1) or normal (0).",
            MetricType::Gauge,
            |s| flag(s.recovering),
        )?;
        per_subscription(
            &mut e,
            subs,
            "herald_subscription_paused",
            "The durable subscription is paused by an operator (1): nothing is delivered to it.",
            MetricType::Gauge,
            |s| flag(s.paused),
        )?;
        per_subscription(&mut e, subs, "herald_subscription_pending_slots", "Ring positions from the subscription's cursor to the tail: an upper bound of what waits for it.", MetricType::Gauge, |s| s.pending_slots)?;
        per_subscription(
            &mut e,
            subs,
            "herald_subscription_in_flight",
            "Events delivered to the subscription and not settled.",
            MetricType::Gauge,
            |s| s.in_flight,
        )?;
        per_subscription(
            &mut e,
            subs,
            "herald_subscription_awaiting_redelivery",
            "Events owed a redelivery (deadline missed, nak, disconnect).",
            MetricType::Gauge,
            |s| s.awaiting_redelivery,
        )?;
        per_subscription(
            &mut e,
            subs,
            "herald_subscription_redeliveries",
            "Redeliveries to the subscription since the daemon started.",
            MetricType::Counter,
            |s| s.redelivered,
        )?;
        per_subscription(&mut e, subs, "herald_subscription_dead_letters", "Dead letters the subscription made since the daemon started (rejected or out of deliveries).", MetricType::Counter, |s| s.dead_lettered)?;
        per_subscription(&mut e, subs, "herald_subscription_holds_ring", "The subscription's cursor is the oldest unreleased position (1): it keeps the ring from being reused.", MetricType::Gauge, |s| flag(s.holds_ring))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_carry_total_on_every_line_and_names_are_label_escaped() {
        let mut s = Snapshot::with_capacity(1);
        s.counters.publish(PublishOutcome::Stored);
        let mut sub = SubscriptionSample::named(b"a\"b\\c");
        sub.redelivered = 3;
        s.subscriptions.push(sub);
        let text = encode(s, 0).unwrap();
        assert!(
            text.contains("# TYPE herald_publishes_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("herald_publishes_total{outcome=\"stored\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "herald_subscription_redeliveries_total{subscription=\"a\\\"b\\\\c\"} 3\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("herald_group_commit_events_bucket{le=\"+Inf\"} 0\n"),
            "{text}"
        );
    }
}
