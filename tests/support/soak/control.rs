//! The soak's operator: asks for status, samples the daemon's resident memory, pages
//! through subscriptions and dead letters, records the dead letters, replays some of
//! `picky`'s and purges the rest (so the dead-letter area never stays full).

use super::clients::{connect, failed};
use super::ledger::Ledger;
use super::memory::{try_rss_of, within_bound};
use super::model::DURABLE;
use super::Lifetime;
use herald::client::{Client, ClientError};
use herald::protocol::Role;
use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Samples the daemon's memory against the bound on its growth over the lifetime.
pub fn sample_rss(l: &Lifetime, ledger: &Ledger) {
    if let (Some(baseline), Some(now)) = (l.baseline, try_rss_of(l.pid)) {
        ledger.rss(l.number, now, within_bound(baseline, now, l.load));
    }
}

fn request(client: &mut Client, ledger: &Ledger, json: &str) -> Result<Value, ClientError> {
    ledger.stat(|s| s.admin_requests += 1);
    let answer = client.admin(json)?;
    Ok(serde_json::from_str(&answer).unwrap_or_else(|e| {
        ledger.violation(format!(
            "admin {json} answered with invalid JSON ({e}): {answer}"
        ));
        Value::Null
    }))
}

/// Asks for `op` (`dead.purge`, `dead.replay`) on dead letters `seqs` of subscription
/// `name`; returns the count the answer gives under `counted`.
fn on_dead_letters(
    client: &mut Client,
    ledger: &Ledger,
    op: &str,
    name: &str,
    seqs: &[u64],
    counted: &str,
) -> Result<u64, ClientError> {
    if seqs.is_empty() {
        return Ok(0);
    }
    let req = format!(r#"{{"op":"{op}","subscription":"{name}","seqs":{seqs:?}}}"#);
    let answer = request(client, ledger, &req)?;
    Ok(answer[counted].as_u64().unwrap_or(0))
}

/// Lists every dead letter (page by page), records each, and purges it or (some of
/// picky's) asks for its replay. Returns how many were listed.
pub fn sweep_dead_letters(
    client: &mut Client,
    ledger: &Ledger,
    rng: &mut SmallRng,
    replay: bool,
) -> Result<u64, ClientError> {
    let mut after: Option<(u64, u64)> = None;
    let mut listed = 0;
    loop {
        let req = match after {
            None => r#"{"op":"dead.list","limit":100}"#.to_owned(),
            Some((seq, sub)) => format!(
                r#"{{"op":"dead.list","limit":100,"after_seq":{seq},"after_subscription":{sub}}}"#
            ),
        };
        let page = request(client, ledger, &req)?;
        let Some(rows) = page["dead_letters"].as_array() else {
            ledger.violation(format!("dead.list answered {page}"));
            return Ok(listed);
        };
        let mut chosen: Vec<(usize, Vec<u64>, Vec<u64>)> = (0..DURABLE.len())
            .map(|i| (i, Vec::new(), Vec::new()))
            .collect();
        for row in rows {
            listed += 1;
            let name = row["subscription"].as_str().unwrap_or("");
            let seq = row["seq"].as_u64().unwrap_or(u64::MAX);
            let Some(sub) = DURABLE.iter().position(|d| d.name == name) else {
                ledger.violation(format!("a dead letter of an unknown subscription: {row}"));
                continue;
            };
            let preview = row["payload_preview"].as_str().unwrap_or("");
            match super::model::counter_in(preview.as_bytes()) {
                Some(counter) => {
                    ledger.dead(sub, counter, seq, row["reason"].as_str().unwrap_or(""))
                }
                None => ledger.violation(format!("dead letter without its counter: {row}")),
            }
            if row["replay_requested"] == true {
                continue;
            }
            if replay && DURABLE[sub].name == "picky" && rng.gen_bool(0.1) {
                ledger.ask_replay(seq);
                chosen[sub].2.push(seq);
            } else {
                chosen[sub].1.push(seq);
            }
        }
        for (sub, purge, replays) in chosen {
            let name = DURABLE[sub].name;
            let purged = on_dead_letters(client, ledger, "dead.purge", name, &purge, "purged")?;
            let asked = on_dead_letters(
                client,
                ledger,
                "dead.replay",
                name,
                &replays,
                "replay_requested",
            )?;
            ledger.stat(|s| {
                s.purged += purged;
                s.replays_requested += asked;
            });
        }
        match (
            page["next"]["after_seq"].as_u64(),
            page["next"]["after_subscription"].as_u64(),
        ) {
            (Some(seq), Some(sub)) => after = Some((seq, sub)),
            _ => return Ok(listed),
        }
    }
}

/// Pages through the subscriptions, three rows a page: each page shows as many rows as
/// it says, in increasing index after the last page's, and every durable subscription
/// is listed exactly once. (Live-only ones come and go meanwhile, so the pages' rows
/// need not add up to any one page's total.)
fn check_subscriptions(client: &mut Client, ledger: &Ledger) -> Result<(), ClientError> {
    let mut after: Option<u64> = None;
    let mut listed = [0u32; DURABLE.len()];
    loop {
        let req = match after {
            None => r#"{"op":"subscriptions","limit":3}"#.to_owned(),
            Some(a) => format!(r#"{{"op":"subscriptions","limit":3,"after_index":{a}}}"#),
        };
        let page = request(client, ledger, &req)?;
        let rows = page["subscriptions"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        if page["shown"].as_u64() != Some(rows.len() as u64) {
            ledger.violation(format!(
                "a subscriptions page of {} rows says {page}",
                rows.len()
            ));
        }
        for row in rows {
            let index = row["index"].as_u64();
            if index.is_none() || after.is_some_and(|a| index <= Some(a)) {
                ledger.violation(format!("subscriptions after {after:?} listed {row}"));
            }
            after = index.or(after);
            if let Some(d) = DURABLE.iter().position(|d| row["name"] == d.name) {
                listed[d] += 1;
            }
        }
        if page["next"]["after_index"].as_u64().is_none() {
            break;
        }
    }
    for (d, count) in listed.iter().enumerate() {
        if *count != 1 {
            let name = DURABLE[d].name;
            ledger.violation(format!("subscriptions listed {name} {count} times"));
        }
    }
    Ok(())
}

/// The status document, checked for the keys PROTOCOL.md 10.7 promises.
pub fn status(client: &mut Client, ledger: &Ledger) -> Result<Value, ClientError> {
    ledger.stat(|s| s.status_requests += 1);
    let text = client.status()?;
    let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    for key in [
        "region",
        "ring",
        "dead_letters",
        "connections",
        "subscriptions",
    ] {
        if doc.get(key).is_none() {
            ledger.violation(format!("status without {key}: {text}"));
            break;
        }
    }
    Ok(doc)
}

/// The operator for one lifetime.
pub fn control(l: &Lifetime, ledger: &Ledger, rng: &mut SmallRng) {
    let mut round = 0u64;
    while !l.dying() && !l.stopped() {
        let Some(mut client) = connect(l, ledger, Role::Control, "soak-operator") else {
            return;
        };
        while !l.dying() && !l.stopped() {
            round += 1;
            let result = status(&mut client, ledger).and_then(|doc| {
                let window = doc["idempotency"]["publishes_answered_from_window"]
                    .as_u64()
                    .unwrap_or(0);
                l.answered_from_window.fetch_max(window, Ordering::Relaxed);
                sample_rss(l, ledger);
                if round.is_multiple_of(5) {
                    sweep_dead_letters(&mut client, ledger, rng, true)?;
                }
                if round.is_multiple_of(25) {
                    check_subscriptions(&mut client, ledger)?;
                }
                Ok(())
            });
            if let Err(e) = result {
                failed(l, ledger, "operator", e, ());
                break;
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(50..250)));
        }
    }
}
