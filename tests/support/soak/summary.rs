//! The soak's summary, as the tool prints it and the test shows it.

use super::{Config, Outcome};
use std::fmt::Write;

/// A mean of `sum` over `count`, 0 for none.
fn mean(sum: u64, count: u64) -> u64 {
    sum.checked_div(count).unwrap_or(0)
}

/// What a run did and found, a few lines; the seed is in the first.
pub fn summary(config: &Config, o: &Outcome) -> String {
    let s = &o.stats;
    let mut out = String::new();
    let mut line = |text: String| {
        let _ = writeln!(out, "{text}");
    };
    line(format!(
        "soak: seed {}, {:.0} s, --sync {}: {} daemon lifetimes: {} SIGKILLs, {} SIGTERMs",
        config.seed,
        o.elapsed.as_secs_f64(),
        super::sync_name(config),
        s.lifetimes,
        s.kills,
        s.clean_stops
    ));
    line(format!(
        "  events: {} stored ({} with idempotency keys, {} batches), {} sent; {} published \
         again (after a kill or `full`), {} answered from the idempotency window, {} stored \
         whose answer a kill took (no key: not sent again); {} answered `full`",
        s.events_acked,
        s.keyed_acked,
        s.batches_acked,
        s.events_sent,
        s.retried_events,
        s.answered_from_window,
        s.stored_without_answer,
        s.full_answers
    ));
    line(format!(
        "  deliveries: {} to durable subscriptions ({} redeliveries), {} to live ones; {} \
         confirms, {} rejects, {} naks, {} working; {} reconnects; `slow` stalled {} times \
         ({} s in all)",
        s.deliveries,
        s.redeliveries,
        s.live_deliveries,
        s.confirms,
        s.rejects,
        s.naks,
        s.workings,
        s.reconnects,
        s.stalls,
        s.stalled_ms / 1000
    ));
    line(format!(
        "  dead letters: {} ({} rejected, {} max_deliveries), {} replays asked, {} purged",
        s.dead_letters, s.dead_rejected, s.dead_max_deliveries, s.replays_requested, s.purged
    ));
    line(format!(
        "  recovery: {} restarts, each checked to hold every unsettled acknowledged event \
         ({} checks); ready after max {} ms (mean {}); storing again after max {} ms (mean \
         {}); {} replays to durable subscribers, all delivered after max {} ms (mean {})",
        s.restarts,
        s.recovery_checks,
        s.ready_ms_max,
        mean(s.ready_ms_sum, s.restarts),
        s.storing_again_ms_max,
        mean(s.storing_again_ms_sum, s.storing_again_count),
        s.recovery_dones,
        s.replay_done_ms_max,
        mean(s.replay_done_ms_sum, s.replay_done_count)
    ));
    line(format!(
        "  memory: daemon RSS over {} samples: max {} KiB (the region's pages included); \
         its own (RssAnon) max {} KiB, at most {} KiB above its lifetime's start (bound {} \
         KiB); {} status and {} admin requests",
        s.rss_samples,
        s.rss_max_bytes / 1024,
        s.anon_max_bytes / 1024,
        s.anon_growth_max_bytes / 1024,
        s.anon_growth_bound_bytes / 1024,
        s.status_requests,
        s.admin_requests
    ));
    line(format!(
        "  client errors: {}; violations: {}",
        s.errors, s.violations
    ));
    for v in &o.violations {
        line(format!("  VIOLATION: {v}"));
    }
    if s.violations > 0 {
        line(format!(
            "  FAILED with seed {}: run again with --seed {} (or HERALD_SOAK_SEED={}){}",
            config.seed,
            config.seed,
            config.seed,
            o.kept.as_ref().map_or(String::new(), |d| format!(
                "; kept {} (the region and daemon.log)",
                d.display()
            ))
        ));
    } else {
        line(
            "  ok: every stored event was confirmed by or is a dead letter of each durable \
             subscription meant to get it; nothing acknowledged lost in a restart; nothing \
             stored twice; RSS within its bound"
                .into(),
        );
    }
    out
}
