//! Subscriptions: the durable spec (filters, minimum severity, window, flags) kept in
//! the log's subscription table, and the tracker that turns deliveries and
//! confirmations into a durable cursor.
//!
//! Topic *matching* is the protocol's pattern grammar; `delivery` applies it to the
//! patterns stored here, so this module depends on `log` only (see DESIGN.md).

mod spec;
mod tracker;

pub use spec::{SpecError, SubscriptionSpec};
pub use tracker::{Due, Policy, Sent, Tracker};
