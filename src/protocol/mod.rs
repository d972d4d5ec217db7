//! herald's wire protocol: frame types, encode/decode, and the connection state
//! machine. PROTOCOL.md at the repository root is the specification; this module is its
//! implementation.

pub mod limits;
mod pattern;
mod topic;

pub use limits::*;
pub use pattern::{Pattern, PatternError};
pub use topic::{Topic, TopicError};
