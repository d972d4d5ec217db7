//! Subscriptions: the durable spec (filters, minimum severity, window, flags) kept in
//! the log's subscription table, the tracker that turns deliveries and confirmations
//! into a durable cursor, the set of every subscription the daemon runs with its
//! recovery mode ([`SubscriptionSet`]), and the region's consistency checks ([`check`]).
//!
//! A spec decides itself which events are meant for it ([`SubscriptionSpec::matches`]),
//! with the pattern grammar of `event`; this module depends on `log` and `event` only
//! (see DESIGN.md).

pub mod check;
mod manage;
mod members;
mod set;
mod spec;
mod tracker;

pub use manage::{ManageError, Placed};
pub use members::{Member, Members};
pub use set::{
    AttachError, DeadReplay, RedeliveryConfig, SinkId, SubscriptionSet, SubscriptionState,
};
pub use spec::{SpecError, SubscriptionSpec};
pub use tracker::{Due, Policy, Sent, Tracker, MEMBERS_MAX};
