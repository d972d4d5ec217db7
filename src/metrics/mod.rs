//! Metrics for Prometheus (`herald serve --metrics-listen`): what the loop counts,
//! the snapshot it hands over, and the exporter's thread that serves it.
//!
//! The loop never waits for this module and this module never reads the loop's state.
//! The loop keeps plain [`Counters`] (additions per frame; a histogram record per group
//! commit and per sync). When the exporter is asked for `/metrics`, it sets a flag in
//! the [`Exchange`] and waits; the loop looks at the flag once per turn, copies its
//! state into a preallocated [`Snapshot`] and swaps it in under a mutex it only tries;
//! the exporter encodes that copy in the Prometheus text format. So a scrape costs the
//! loop one snapshot (no allocation), and no scrape costs it anything but an atomic
//! load per turn. This module may not use `delivery` (tests/architecture.rs): the
//! exporter cannot reach the loop's state even by mistake.

mod encode;
mod exchange;
mod histogram;
mod http;
mod snapshot;

pub use encode::{encode, CONTENT_TYPE};
pub use exchange::{Exchange, Fetched};
pub use histogram::{
    Histogram, BUCKETS_MAX, COMMIT_NS_BOUNDS, GROUP_EVENTS_BOUNDS, SYNC_NS_BOUNDS,
};
pub use http::{
    Exporter, METRICS_PATH, REQUEST_DEADLINE, REQUEST_HEAD_BYTES_MAX, SNAPSHOT_WAIT, WRITE_TIMEOUT,
};
pub use snapshot::{Counters, PublishOutcome, Snapshot, SubscriptionSample};
