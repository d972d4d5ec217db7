//! `Admin` requests that manage routing rules (PROTOCOL.md section 10.8): list, add,
//! change and delete rules, and explain which rule routes a given event. Each change
//! is durable in the region before it is answered, and applies to events stored after
//! it; events stored before keep the rule version that routed them.

use super::super::core::{start::load_routes, Core};
use super::fit_rows;
use super::manage::parse;
use crate::event::Severity;
use crate::log::RuleEntry;
use crate::pmem::Medium;
use crate::reactor::Reactor;
use crate::routing::{Action, Rule};
use serde::Deserialize;
use serde_json::{json, Value};

/// `rules.add` and `rules.set`: what a rule says. For `set`, absent fields keep their
/// values.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RuleFields {
    /// The rule to change (`set` and `delete` only).
    id: Option<u32>,
    priority: Option<i32>,
    topic: Option<String>,
    /// A source pattern; `""` (on `set`) removes it.
    source: Option<String>,
    /// Most severe level matched (default `emerg`).
    most_severe: Option<String>,
    /// Least severe level matched (default `debug`).
    least_severe: Option<String>,
    /// `deliver`, `drop` or `filters`.
    action: Option<String>,
    /// The durable subscriptions a `deliver` rule names.
    to: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct List {
    /// Earlier versions kept for the events they routed, too.
    #[serde(default)]
    all_versions: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Explain {
    topic: String,
    severity: String,
    #[serde(default)]
    source: String,
}

impl<R: Reactor, M: Medium> Core<R, M> {
    /// Carries out a `rules.*` op; `None` when `op` is not one.
    pub(super) fn rules_op(&mut self, op: &str, request: Value) -> Option<Result<Value, String>> {
        Some(match op {
            "rules.list" => parse::<List>(request).map(|r| self.rules_list(r.all_versions)),
            "rules.add" => parse::<RuleFields>(request).and_then(|r| self.rules_add(r)),
            "rules.set" => parse::<RuleFields>(request).and_then(|r| self.rules_set(r)),
            "rules.delete" => parse::<RuleFields>(request).and_then(|r| self.rules_delete(r)),
            "rules.explain" => parse::<Explain>(request).and_then(|r| self.rules_explain(r)),
            _ => return None,
        })
    }

    fn rules_list(&self, all_versions: bool) -> Value {
        let mut rows = Vec::new();
        let versions: Vec<_> = self
            .routes
            .versions()
            .filter(|(e, _)| all_versions || e.is_active())
            .collect();
        let total = versions.len();
        let mut sorted = versions;
        sorted.sort_by_key(|(e, _)| (e.id, e.version));
        let shown = fit_rows(
            256,
            sorted.into_iter().map(|(e, r)| rule_row(e, r)),
            &mut rows,
        );
        json!({
            "rules": rows,
            "shown": shown,
            "total": total,
            "entries": self.log.rule_table_entries(),
            "entries_used": self.log.rule_entries().count(),
        })
    }

    fn rules_add(&mut self, r: RuleFields) -> Result<Value, String> {
        if r.id.is_some() {
            return Err("rules.add takes no id: the daemon gives one".into());
        }
        let Some(topic) = r.topic.clone() else {
            return Err("rules.add needs a topic pattern (\">\" for every topic)".into());
        };
        let base = Rule {
            priority: 0,
            topic,
            source: None,
            most_severe: Severity::Emergency,
            least_severe: Severity::Debug,
            action: Action::Filters,
        };
        if r.action.is_none() {
            return Err("rules.add needs an action: deliver (with to), drop or filters".into());
        }
        let rule = apply(base, r)?;
        let entry = self.write_rule(|log, spec| log.add_rule(spec), &rule)?;
        tracing::info!(rule = entry.id, "routing rule added by an operator");
        Ok(self.changed("added", &entry, &rule))
    }

    fn rules_set(&mut self, r: RuleFields) -> Result<Value, String> {
        let id = r.id.ok_or("rules.set needs the rule's id")?;
        let old = self.active_rule(id)?;
        let rule = apply(old, r)?;
        let entry = self.write_rule(|log, spec| log.change_rule(id, spec), &rule)?;
        tracing::info!(
            rule = entry.id,
            version = entry.version,
            "routing rule changed by an operator"
        );
        Ok(self.changed("changed", &entry, &rule))
    }

    fn rules_delete(&mut self, r: RuleFields) -> Result<Value, String> {
        let id = r.id.ok_or("rules.delete needs the rule's id")?;
        let entry = self.log.delete_rule(id).map_err(|e| e.to_string())?;
        self.routes = load_routes(&self.log);
        tracing::info!(rule = id, "routing rule deleted by an operator");
        Ok(json!({ "deleted": id, "version": entry.version, "from_seq": entry.retired_at }))
    }

    fn rules_explain(&self, r: Explain) -> Result<Value, String> {
        crate::event::Topic::validate(r.topic.as_bytes()).map_err(|e| format!("topic: {e}"))?;
        let severity = severity(&r.severity)?;
        let why = self
            .routes
            .explain(r.topic.as_bytes(), severity, r.source.as_bytes());
        let recipients = self.recipients(&why.action, r.topic.as_bytes(), severity);
        let mut answer = serde_json::to_value(&why).map_err(|e| e.to_string())?;
        answer["recipients"] = recipients.into();
        Ok(answer)
    }

    /// The durable subscriptions an event would go to under `action`.
    fn recipients(&self, action: &Action, topic: &[u8], severity: Severity) -> Vec<String> {
        let names = self
            .log
            .subscriptions()
            .map(|s| (String::from_utf8_lossy(s.name()).into_owned(), s.id));
        match action {
            Action::Drop => Vec::new(),
            Action::Deliver(to) => names
                .filter(|(n, _)| to.contains(n))
                .map(|(n, _)| n)
                .collect(),
            Action::Filters => names
                .filter(|(_, id)| {
                    self.subs
                        .iter()
                        .any(|(_, s)| s.durable == Some(*id) && s.spec.matches(topic, severity))
                })
                .map(|(n, _)| n)
                .collect(),
        }
    }

    fn active_rule(&self, id: u32) -> Result<Rule, String> {
        self.routes
            .versions()
            .find(|(e, _)| e.id == id && e.is_active())
            .map(|(_, r)| r.clone())
            .ok_or_else(|| format!("no rule with id {id}"))
    }

    fn write_rule(
        &mut self,
        write: impl FnOnce(&mut crate::log::Log<M>, &[u8]) -> Result<RuleEntry, crate::log::LogError>,
        rule: &Rule,
    ) -> Result<RuleEntry, String> {
        rule.validate().map_err(|e| e.to_string())?;
        let mut spec = Vec::new();
        rule.encode(&mut spec);
        let entry = write(&mut self.log, &spec).map_err(|e| e.to_string())?;
        self.routes = load_routes(&self.log);
        Ok(entry)
    }

    fn changed(&self, what: &str, entry: &RuleEntry, rule: &Rule) -> Value {
        let mut answer = json!({ what: entry.id, "rule": rule_row(entry, rule) });
        if let Action::Deliver(to) = &rule.action {
            let unknown: Vec<&String> = to
                .iter()
                .filter(|n| self.log.subscription_by_name(n.as_bytes()).is_none())
                .collect();
            if !unknown.is_empty() {
                answer["unknown_subscriptions"] = json!(unknown);
            }
        }
        answer
    }
}

/// A rule as lists and answers show it.
pub(crate) fn rule_row(e: &RuleEntry, r: &Rule) -> Value {
    json!({
        "id": e.id,
        "version": e.version,
        "priority": r.priority,
        "topic": r.topic,
        "source": r.source,
        "most_severe": r.most_severe.name(),
        "least_severe": r.least_severe.name(),
        "action": action_name(&r.action),
        "to": match &r.action { Action::Deliver(to) => json!(to), _ => Value::Null },
        "from_seq": e.first_seq,
        "retired_at": e.retired_at,
    })
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Filters => "filters",
        Action::Drop => "drop",
        Action::Deliver(_) => "deliver",
    }
}

/// `base` with the request's fields applied.
fn apply(mut rule: Rule, r: RuleFields) -> Result<Rule, String> {
    if let Some(p) = r.priority {
        rule.priority = p;
    }
    if let Some(t) = r.topic {
        rule.topic = t;
    }
    if let Some(s) = r.source {
        rule.source = (!s.is_empty()).then_some(s);
    }
    if let Some(s) = r.most_severe {
        rule.most_severe = severity(&s)?;
    }
    if let Some(s) = r.least_severe {
        rule.least_severe = severity(&s)?;
    }
    let to = r.to;
    match r.action.as_deref() {
        None => {
            if let (Some(to), Action::Deliver(_)) = (&to, &rule.action) {
                rule.action = Action::Deliver(to.clone());
            } else if to.is_some() {
                return Err(
                    "to names subscriptions for a deliver rule; give action deliver".into(),
                );
            }
        }
        Some("deliver") => {
            let to = match (to, &rule.action) {
                (Some(to), _) => to,
                (None, Action::Deliver(old)) => old.clone(),
                (None, _) => {
                    return Err("a deliver rule needs to: the subscriptions it delivers to".into())
                }
            };
            rule.action = Action::Deliver(to);
        }
        Some(other @ ("drop" | "filters")) => {
            if to.is_some() {
                return Err(format!("a {other} rule names no subscriptions (to)"));
            }
            rule.action = if other == "drop" {
                Action::Drop
            } else {
                Action::Filters
            };
        }
        Some(other) => {
            return Err(format!(
                "action {other:?}: use deliver (with to), drop or filters"
            ))
        }
    }
    rule.validate().map_err(|e| e.to_string())?;
    Ok(rule)
}

fn severity(text: &str) -> Result<Severity, String> {
    Severity::parse(text).ok_or_else(|| {
        format!(
            "severity {text:?}: use emerg, alert, crit, err, warning, notice, info, debug or 0..7"
        )
    })
}
