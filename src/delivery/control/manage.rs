//! `Admin` requests that manage durable subscriptions (PROTOCOL.md section 10.5):
//! create one before its consumer exists, starting where the operator says; delete,
//! pause, resume; move a cursor back to replay or forward to skip; change filters.
//! Each is durable in the region before it is answered.

use super::super::core::Core;
use crate::event::limits::{ACK_DEADLINE_MS_MAX, WINDOW_EVENTS_MAX};
use crate::event::Severity;
use crate::log::Start;
use crate::pmem::Medium;
use crate::reactor::Reactor;
use crate::subscription::{ManageError, Placed, SubscriptionSpec};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// The window a created subscription stores; each consumer that attaches sets its own.
const CREATED_WINDOW_EVENTS: u32 = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    subscription: String,
    /// Topic patterns; every topic (`>`) when empty.
    #[serde(default)]
    filter: Vec<String>,
    /// Least severe level delivered (default: every level).
    min_severity: Option<String>,
    /// 0 or absent: the daemon's default.
    #[serde(default)]
    ack_deadline_ms: u32,
    /// 0 or absent: the daemon's default.
    #[serde(default)]
    max_deliveries: u16,
    /// Where it starts (default `new`).
    start: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delete {
    subscription: String,
    /// Keep its dead letters, as orphans, instead of purging them.
    #[serde(default)]
    keep_dead_letters: bool,
}

/// `subscriptions.set`: what is absent stays as it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Set {
    subscription: String,
    /// The new topic patterns (all of them, replacing the old).
    filter: Option<Vec<String>>,
    min_severity: Option<String>,
    /// 0: the daemon's default.
    ack_deadline_ms: Option<u32>,
    /// 0: the daemon's default.
    max_deliveries: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Named {
    subscription: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    subscription: String,
    /// Where the cursor goes.
    to: String,
}

impl<R: Reactor, M: Medium> Core<R, M> {
    /// Carries out a `subscriptions.*` management op; `None` when `op` is not one.
    pub(super) fn manage(&mut self, op: &str, request: Value) -> Option<Result<Value, String>> {
        Some(match op {
            "subscriptions.create" => parse::<Create>(request).and_then(|r| self.create(r)),
            "subscriptions.delete" => parse::<Delete>(request).and_then(|r| {
                self.subs
                    .delete(&mut self.log, r.subscription.as_bytes(), r.keep_dead_letters)
                    .map_err(|e| e.to_string())?;
                tracing::info!(subscription = %r.subscription, keep_dead_letters = r.keep_dead_letters, "durable subscription deleted by an operator");
                Ok(json!({
                    "deleted": r.subscription,
                    "dead_letters": if r.keep_dead_letters { "kept" } else { "purged" },
                }))
            }),
            "subscriptions.pause" => parse::<Named>(request).and_then(|r| self.pause(r, true)),
            "subscriptions.resume" => parse::<Named>(request).and_then(|r| self.pause(r, false)),
            "subscriptions.reset" => parse::<Reset>(request).and_then(|r| self.reset(r)),
            "subscriptions.set" => parse::<Set>(request).and_then(|r| self.set(r)),
            _ => return None,
        })
    }

    fn create(&mut self, r: Create) -> Result<Value, String> {
        crate::protocol::validate_subscription_name(r.subscription.as_bytes())
            .map_err(|e| format!("subscription name: {e}"))?;
        let min_severity = match &r.min_severity {
            None => Severity::Debug,
            Some(text) => severity(text)?,
        };
        ack_deadline(r.ack_deadline_ms)?;
        let patterns: Vec<&[u8]> = if r.filter.is_empty() {
            vec![b">"]
        } else {
            r.filter.iter().map(|p| p.as_bytes()).collect()
        };
        const { assert!(CREATED_WINDOW_EVENTS <= WINDOW_EVENTS_MAX) };
        let spec = SubscriptionSpec::new(min_severity, CREATED_WINDOW_EVENTS, true, patterns)
            .map_err(|e| format!("filter: {e}"))?
            .with_policy(r.ack_deadline_ms, r.max_deliveries);
        let start = Start::parse(r.start.as_deref().unwrap_or("new"), self.unix_now)?;
        let placed = self
            .subs
            .create(
                &mut self.log,
                r.subscription.as_bytes(),
                spec,
                start,
                &self.config.redelivery,
            )
            .map_err(|e| e.to_string())?;
        tracing::info!(subscription = %r.subscription, cursor = placed.cursor.0, "durable subscription created by an operator");
        let mut answer = placed_json(placed);
        answer["created"] = r.subscription.into();
        Ok(answer)
    }

    fn pause(&mut self, r: Named, paused: bool) -> Result<Value, String> {
        self.subs
            .set_paused(&mut self.log, r.subscription.as_bytes(), paused)
            .map_err(|e| e.to_string())?;
        tracing::info!(subscription = %r.subscription, paused, "durable subscription paused or resumed by an operator");
        Ok(json!({ "subscription": r.subscription, "paused": paused }))
    }

    fn reset(&mut self, r: Reset) -> Result<Value, String> {
        let was = self
            .log
            .subscription_by_name(r.subscription.as_bytes())
            .map(|s| s.cursor)
            .ok_or_else(|| ManageError::Unknown(r.subscription.clone()).to_string())?;
        let start = Start::parse(&r.to, self.unix_now)?;
        let placed = self
            .subs
            .reset(&mut self.log, r.subscription.as_bytes(), start)
            .map_err(|e| e.to_string())?;
        tracing::info!(subscription = %r.subscription, from = was, to = placed.cursor.0, "durable subscription's cursor reset by an operator");
        let mut answer = placed_json(placed);
        answer["subscription"] = r.subscription.into();
        answer["was"] = was.into();
        Ok(answer)
    }
}

impl<R: Reactor, M: Medium> Core<R, M> {
    fn set(&mut self, r: Set) -> Result<Value, String> {
        let unknown = || ManageError::Unknown(r.subscription.clone()).to_string();
        let entry = self
            .log
            .subscription_by_name(r.subscription.as_bytes())
            .ok_or_else(unknown)?;
        let was = self
            .subs
            .index_of(entry.id)
            .and_then(|i| self.subs.get(i))
            .map(|s| s.spec)
            .ok_or_else(unknown)?;
        if r.filter.is_none()
            && r.min_severity.is_none()
            && r.ack_deadline_ms.is_none()
            && r.max_deliveries.is_none()
        {
            return Err(
                "nothing to change: give filter, min_severity, ack_deadline_ms or max_deliveries"
                    .into(),
            );
        }
        let min_severity = match &r.min_severity {
            None => was.min_severity,
            Some(text) => severity(text)?,
        };
        let spec = match &r.filter {
            Some(filter) if filter.is_empty() => {
                return Err("filter: give at least one pattern (`>` for every topic)".into())
            }
            Some(filter) => SubscriptionSpec::new(
                min_severity,
                was.window_events,
                was.automatic_recovery,
                filter.iter().map(|p| p.as_bytes()),
            ),
            None => SubscriptionSpec::new(
                min_severity,
                was.window_events,
                was.automatic_recovery,
                was.patterns(),
            ),
        }
        .map_err(|e| format!("filter: {e}"))?;
        let ack_deadline_ms = r.ack_deadline_ms.unwrap_or(was.ack_deadline_ms);
        ack_deadline(ack_deadline_ms)?;
        let spec = spec.with_policy(
            ack_deadline_ms,
            r.max_deliveries.unwrap_or(was.max_deliveries),
        );
        self.subs
            .change_spec(
                &mut self.log,
                r.subscription.as_bytes(),
                spec,
                &self.config.redelivery,
            )
            .map_err(|e| e.to_string())?;
        let patterns: Vec<String> = spec
            .patterns()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        tracing::info!(subscription = %r.subscription, filters = ?patterns, min_severity = spec.min_severity.name(), "durable subscription's filters changed by an operator");
        let cursor = self
            .log
            .subscription_by_name(r.subscription.as_bytes())
            .map_or(0, |s| s.cursor);
        Ok(json!({
            "subscription": r.subscription,
            "filters": patterns,
            "min_severity": spec.min_severity.name(),
            "ack_deadline_ms": spec.ack_deadline_ms,
            "max_deliveries": spec.max_deliveries,
            "cursor": cursor,
        }))
    }
}

fn severity(text: &str) -> Result<Severity, String> {
    Severity::parse(text).ok_or_else(|| {
        format!("min_severity {text:?}: use emerg, alert, crit, err, warning, notice, info, debug or 0..7")
    })
}

fn ack_deadline(ms: u32) -> Result<(), String> {
    if ms > ACK_DEADLINE_MS_MAX {
        return Err(format!(
            "ack_deadline_ms {ms} is beyond the limit, {ACK_DEADLINE_MS_MAX} (one hour)"
        ));
    }
    Ok(())
}

fn placed_json(p: Placed) -> Value {
    json!({ "cursor": p.cursor.0, "held_from": p.held_from.0, "tail": p.tail.0 })
}

/// The request's fields but `op`, which chose the type.
pub(super) fn parse<T: DeserializeOwned>(mut request: Value) -> Result<T, String> {
    if let Some(fields) = request.as_object_mut() {
        fields.remove("op");
    }
    serde_json::from_value(request).map_err(|e| format!("not a valid request: {e}"))
}
