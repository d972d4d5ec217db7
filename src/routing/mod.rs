//! Routing rules: an ordered, persistent table of rules that decides, when an event is
//! stored, which durable subscriptions it is meant for. The table lives in the log
//! (`log::rules`, one entry per rule version); what a rule matches and decides, the
//! order that picks one prevailing rule among those matching, and the in-memory table
//! the loop routes by are here.

pub mod routes;
pub mod rule;

pub use routes::{Decision, Explained, Explanation, RouteRef, Routes};
pub use rule::{Action, Rule, RuleError, Specificity, RULE_SPEC_BYTES_MAX, RULE_TARGETS_MAX};

const _: () = assert!(RULE_SPEC_BYTES_MAX <= crate::log::layout::RULE_SPEC_BYTES);
