//! `Admin` requests (PROTOCOL.md section 10.5): an operator pages through
//! subscriptions, lists, replays and purges dead letters while the daemon runs
//! (managing subscriptions is `manage.rs`).

use super::super::core::Core;
use super::fit_rows;
use crate::log::{self, DeadLetterId, SubscriptionId};
use crate::pmem::Medium;
use crate::reactor::Reactor;
use serde::Deserialize;
use serde_json::{json, Value};

/// Most rows one list answer carries (fewer when they would not fit one frame).
const LIST_LIMIT_MAX: usize = 200;
/// Payload bytes shown per dead letter in a list.
const PAYLOAD_PREVIEW_BYTES: usize = 120;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    op: String,
    /// A durable subscription's name; every subscription when absent (list only).
    subscription: Option<String>,
    /// Which dead letters (by original sequence number) to replay or purge.
    #[serde(default)]
    seqs: Vec<u64>,
    /// Every dead letter of the subscription.
    #[serde(default)]
    all: bool,
    /// For lists: at most this many (default and maximum 200).
    limit: Option<usize>,
    /// For `dead.list`: only those after this original seq (to page through)...
    after_seq: Option<u64>,
    /// ...and, with the same seq, after this subscription index (the `next` of the
    /// previous page gives both).
    after_subscription: Option<u32>,
    /// For `subscriptions`: only those with a higher table index (to page through).
    after_index: Option<usize>,
}

#[derive(Copy, Clone)]
enum Act {
    Replay,
    Purge,
}

impl<R: Reactor, M: Medium> Core<R, M> {
    /// Carries out one `Admin` request and returns the JSON answer.
    pub(in crate::delivery) fn admin(&mut self, request: &str) -> String {
        let value: Value = match serde_json::from_str(request) {
            Ok(v) => v,
            Err(e) => return json!({ "error": format!("not a valid request: {e}") }).to_string(),
        };
        let op = value
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let answer = match self.manage(&op, value.clone()) {
            Some(answer) => answer,
            None => match self.rules_op(&op, value.clone()) {
                Some(answer) => answer,
                None => self.inspect_or_act(value),
            },
        };
        match answer {
            Ok(v) => v.to_string(),
            Err(e) => json!({ "error": e }).to_string(),
        }
    }

    fn inspect_or_act(&mut self, request: Value) -> Result<Value, String> {
        match serde_json::from_value::<Request>(request) {
            Err(e) => Err(format!("not a valid request: {e}")),
            Ok(r) => match r.op.as_str() {
                "subscriptions" => Ok(self.subscriptions_page(&r)),
                "dead.list" => self.dead_list(&r),
                "dead.replay" => self.dead_act(&r, Act::Replay),
                "dead.purge" => self.dead_act(&r, Act::Purge),
                "dead.purge_unowned" => self.purge_unowned(),
                other => Err(format!(
                    "unknown op {other:?}; known: subscriptions, subscriptions.create, subscriptions.delete, subscriptions.pause, subscriptions.resume, subscriptions.reset, dead.list, dead.replay, dead.purge, dead.purge_unowned"
                )),
            },
        }
    }

    /// A page of `status`'s subscription rows.
    fn subscriptions_page(&self, r: &Request) -> Value {
        let limit = r.limit.unwrap_or(LIST_LIMIT_MAX).min(LIST_LIMIT_MAX);
        let total = self
            .subs
            .iter()
            .filter(|(index, _)| r.after_index.is_none_or(|a| *index > a))
            .count();
        let mut rows = Vec::new();
        let shown = fit_rows(
            0,
            self.subscription_rows(r.after_index).take(limit),
            &mut rows,
        );
        let next = rows
            .last()
            .filter(|_| shown < total)
            .map(|row| row["index"].clone());
        let mut answer = json!({ "total": total, "shown": shown, "subscriptions": rows });
        if let Some(index) = next {
            answer["next"] = json!({ "after_index": index });
        }
        answer
    }

    fn subscription_named(&self, name: &str) -> Result<SubscriptionId, String> {
        self.log
            .subscription_by_name(name.as_bytes())
            .map(|s| s.id)
            .ok_or_else(|| format!("no durable subscription named {name:?}"))
    }

    fn dead_list(&self, r: &Request) -> Result<Value, String> {
        let filter = match &r.subscription {
            Some(name) => Some(self.subscription_named(name)?),
            None => None,
        };
        let limit = r.limit.unwrap_or(LIST_LIMIT_MAX).min(LIST_LIMIT_MAX);
        let mut matching: Vec<&log::DeadLetter> = self
            .log
            .dead_letters()
            .filter(|d| match filter {
                Some(id) => {
                    d.subscription == id
                        && self.log.subscription(id).map(|s| s.uid) == Some(d.subscription_uid)
                }
                None => true,
            })
            .filter(|d| match (r.after_seq, r.after_subscription) {
                (None, _) => true,
                (Some(seq), None) => d.seq.0 > seq,
                (Some(seq), Some(sub)) => (d.seq.0, d.subscription.0) > (seq, sub),
            })
            .collect();
        matching.sort_by_key(|d| (d.seq.0, d.subscription.0));
        let rows = matching.iter().take(limit).map(|d| self.dead_row(d));
        let mut shown_rows = Vec::new();
        let shown = fit_rows(0, rows, &mut shown_rows);
        let mut answer =
            json!({ "total": matching.len(), "shown": shown, "dead_letters": shown_rows });
        if let (true, Some(last)) = (shown < matching.len(), shown.checked_sub(1)) {
            let d = matching[last];
            answer["next"] =
                json!({ "after_seq": d.seq.0, "after_subscription": d.subscription.0 });
        }
        Ok(answer)
    }

    fn dead_row(&self, d: &log::DeadLetter) -> Value {
        let name = self
            .log
            .subscription(d.subscription)
            .filter(|s| s.uid == d.subscription_uid)
            .map(|s| String::from_utf8_lossy(s.name()).into_owned());
        let event = self.log.dead_event(d.id);
        json!({
            "subscription": name,
            "subscription_index": d.subscription.0,
            "seq": d.seq.0,
            "reason": match d.reason {
                log::DeadReason::Rejected => "rejected",
                log::DeadReason::MaxDeliveries => "max_deliveries",
            },
            "deliveries": d.delivery_count,
            "dead_at_unix_ns": d.dead_unix_ns,
            "replay_requested": d.replay_requested,
            "topic": event.map(|e| String::from_utf8_lossy(e.topic).into_owned()),
            "severity": event.map(|e| e.severity.name()),
            "source": event.map(|e| String::from_utf8_lossy(e.source).into_owned()),
            "stored_at_unix_ns": event.map(|e| e.timestamp_ns),
            "payload_bytes": event.map(|e| e.payload.len()),
            "payload_preview": event.map(|e| String::from_utf8_lossy(&e.payload[..e.payload.len().min(PAYLOAD_PREVIEW_BYTES)]).into_owned()),
        })
    }

    /// Purges what no subscription can name: orphans (their subscription was deleted
    /// and the purge that follows did not finish) and damaged records.
    fn purge_unowned(&mut self) -> Result<Value, String> {
        let orphans: Vec<DeadLetterId> = self
            .log
            .dead_letters()
            .filter(|d| d.orphan)
            .map(|d| d.id)
            .collect();
        let damaged: Vec<DeadLetterId> = self.log.damaged_dead_letters().to_vec();
        let ids: Vec<DeadLetterId> = orphans.iter().chain(&damaged).copied().collect();
        self.log.purge_dead(&ids).map_err(|e| e.to_string())?;
        Ok(json!({ "purged": ids.len(), "orphans": orphans.len(), "damaged": damaged.len() }))
    }

    fn dead_act(&mut self, r: &Request, act: Act) -> Result<Value, String> {
        let name = r
            .subscription
            .as_deref()
            .ok_or("say which subscription (\"subscription\": NAME)")?;
        let id = self.subscription_named(name)?;
        if r.all != r.seqs.is_empty() {
            return Err("give either \"seqs\": [...] or \"all\": true".into());
        }
        // Sorted lookups: a request may name a couple of thousand seqs and the area hold
        // millions of dead letters; the loop must not stall on their product.
        let mut wanted = r.seqs.clone();
        wanted.sort_unstable();
        let chosen: Vec<(DeadLetterId, u32, u64)> = self
            .log
            .dead_letters_of(id)
            .filter(|d| r.all || wanted.binary_search(&d.seq.0).is_ok())
            .map(|d| (d.id, d.delivery_count, d.seq.0))
            .collect();
        let mut found: Vec<u64> = chosen.iter().map(|c| c.2).collect();
        found.sort_unstable();
        let missing: Vec<u64> = r
            .seqs
            .iter()
            .copied()
            .filter(|s| found.binary_search(s).is_err())
            .collect();
        let sub_index = self.subs.index_of(id);
        // One in flight right now is left alone: its outcome decides.
        let busy = sub_index
            .and_then(|i| self.subs.get(i))
            .and_then(|s| s.replaying.map(|r| r.id));
        let mut done = 0usize;
        match act {
            Act::Purge => {
                let ids: Vec<DeadLetterId> = chosen
                    .iter()
                    .map(|c| c.0)
                    .filter(|d| Some(*d) != busy)
                    .collect();
                self.log.purge_dead(&ids).map_err(|e| e.to_string())?;
                done = ids.len();
            }
            Act::Replay => {
                for &(dead, deliveries, _) in &chosen {
                    self.log
                        .set_dead_replay(dead, true, deliveries)
                        .map_err(|e| e.to_string())?;
                    done += 1;
                }
                if let Some(sub) = sub_index.and_then(|i| self.subs.get_mut(i)) {
                    sub.dead_replays = sub.dead_replays.saturating_add(done as u32);
                }
            }
        }
        let key = match act {
            Act::Purge => "purged",
            Act::Replay => "replay_requested",
        };
        Ok(json!({ key: done, "not_found": missing, "in_flight": busy.is_some() }))
    }
}
