//! What an event is, defined once for every layer: its sequence number ([`Seq`]), its
//! severity ([`Severity`]), the grammar of its topic ([`Topic`]) and of the patterns
//! that select it ([`Pattern`]), the mode of a subscription to it
//! ([`SubscriptionMode`]), where it was first stored ([`Origin`]), and every limit
//! ([`limits`]).
//!
//! A leaf: it uses std, serde and thiserror only, so that `log`, `protocol` and
//! `subscription` share these definitions without depending on one another.

pub mod limits;
mod origin;
mod pattern;
mod seq;
mod severity;
mod subscription_mode;
mod topic;

pub use origin::Origin;
pub use pattern::{covers_validated, matches_validated, Pattern, PatternError};
pub use seq::Seq;
pub use severity::Severity;
pub use subscription_mode::SubscriptionMode;
pub(crate) use topic::is_segment_byte;
pub use topic::{Topic, TopicError};
