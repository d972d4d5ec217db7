//! What an event is, defined once for every layer, and every limit.
//!
//! A leaf: it uses std, serde and thiserror only, so that `log`, `protocol` and
//! `subscription` share these definitions without depending on one another.

pub mod limits;
mod seq;
mod severity;
mod subscription_mode;

pub use seq::Seq;
pub use severity::Severity;
pub use subscription_mode::SubscriptionMode;
