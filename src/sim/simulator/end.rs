//! The end of a simulation: faults stop, everything is settled, and the oracle checks
//! that every acknowledged event was confirmed or is a dead letter, and that memory did
//! not grow.

use super::*;

impl<M: Crashable> World<M> {
    /// Faults stop; subscribers confirm everything; producers stop once every retry
    /// is answered; then the ring must drain.
    pub(super) fn settle(&mut self) -> Result<(), SimulatorFailure> {
        for round in 0..4000u64 {
            self.step = self.config.steps + round;
            for p in 0..self.producers.len() {
                if self.producers[p].client.is_none() {
                    self.connect_producer(p);
                } else if self.producers[p].ready {
                    for n in std::mem::take(&mut self.producers[p].retry) {
                        self.publish_one(p, n);
                    }
                }
            }
            for s in 0..self.subscribers.len() {
                if self.subscribers[s].client.is_none() {
                    self.connect_subscriber(s);
                }
                let held: Vec<u64> = self.subscribers[s]
                    .held
                    .drain(..)
                    .map(|(seq, _)| seq)
                    .collect();
                for seq in held {
                    self.confirm(s, seq);
                }
            }
            // From now on every delivery is confirmed (the oracle's choice is skipped
            // by marking it confirmed before it arrives: see below).
            self.settling_confirms()?;
            let free_dead = self
                .node
                .as_ref()
                .map_or(1, |n| n.core().log().dead_letter_slots().0);
            if free_dead == 0 {
                self.purge_dead()?;
            }
            self.net.advance(Duration::from_millis(5));
            let done = {
                let node = self.node.as_ref().expect("running");
                let log = node.core().log();
                log.used_slots() == 0
                    && self
                        .producers
                        .iter()
                        .all(|p| p.pending.is_empty() && p.retry.is_empty())
            };
            if done {
                self.report.steps = self.step;
                return Ok(());
            }
        }
        let log = self.node.as_ref().expect("running").core().log();
        let cursors: Vec<String> = log
            .subscriptions()
            .map(|s| {
                format!(
                    "{}={} {:?}",
                    String::from_utf8_lossy(s.name()),
                    s.cursor,
                    s.mode
                )
            })
            .collect();
        let status: Vec<String> = self
            .subscribers
            .iter()
            .map(|s| {
                format!(
                    "attached {} subscribed {} held {}",
                    s.client.is_some(),
                    s.subscribed,
                    s.held.len()
                )
            })
            .collect();
        Err(self.fail(format!(
            "the ring did not drain: {} slots still used (head {}, tail {}, cursors {cursors:?}, dead letter slots {:?}); subscribers {status:?}",
            log.used_slots(),
            log.head().0,
            log.tail().0,
            log.dead_letter_slots(),
        )))
    }

    pub(super) fn settling_confirms(&mut self) -> Result<(), SimulatorFailure> {
        for _ in 0..TURNS_PER_STEP {
            if let Err(e) = self.node().turn() {
                return Err(self.fail(format!("the daemon stopped: {e}")));
            }
            self.receive(true)?;
        }
        Ok(())
    }

    /// A delivery while everything settles: checked like any delivery, then confirmed
    /// (a rejected one is left to become a dead letter).
    pub(super) fn settle_delivery(&mut self, s: usize, m: Msg) -> Result<(), SimulatorFailure> {
        match m {
            Msg::Deliver { seq, .. } if !self.subscribers[s].rejected.contains(&seq) => {
                let confirmed_before = self.subscribers[s].confirmed.contains(&seq);
                self.subscriber_msg_checked_only(s, m)?;
                if !confirmed_before {
                    self.confirm(s, seq);
                }
                Ok(())
            }
            other => self.subscriber_msg(s, other),
        }
    }

    /// The checks of a delivery, without the random choice of what to do with it.
    pub(super) fn subscriber_msg_checked_only(
        &mut self,
        s: usize,
        m: Msg,
    ) -> Result<(), SimulatorFailure> {
        let Msg::Deliver { seq, .. } = m else {
            return self.subscriber_msg(s, m);
        };
        // Mark it confirmed first: `subscriber_msg` then only re-confirms it.
        let already = self.subscribers[s].confirmed.insert(seq);
        let result = self.subscriber_msg(s, m);
        if already {
            self.subscribers[s].confirmed.remove(&seq);
        }
        result
    }

    /// One admin request through a control connection of its own; its JSON answer.
    pub(super) fn admin(&mut self, request: &str) -> Result<serde_json::Value, SimulatorFailure> {
        let mut control = self.node().connect();
        control.send(&hello(Role::Control, "oracle"));
        control.send(&Frame::Admin { json: request });
        for _ in 0..20 {
            self.node()
                .turn()
                .map_err(|e| self.fail(format!("the daemon stopped: {e}")))?;
            let mut msgs = Vec::new();
            drain(&mut control, &mut msgs);
            if let Some(json) = msgs.into_iter().find_map(|m| match m {
                Msg::Status(json) => Some(json),
                _ => None,
            }) {
                control.close();
                return serde_json::from_str(&json)
                    .map_err(|e| self.fail(format!("answer to {request}: {e}")));
            }
        }
        Err(self.fail(format!("no answer to {request}")))
    }

    /// Every dead letter now, by subscription, through `dead.list` page by page.
    pub(super) fn list_dead(
        &mut self,
    ) -> Result<BTreeMap<String, BTreeSet<u64>>, SimulatorFailure> {
        let mut dead: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        let mut after: Option<(u64, u64)> = None;
        for _ in 0..1000 {
            let request = match after {
                None => r#"{"op":"dead.list"}"#.to_string(),
                Some((seq, sub)) => {
                    format!(r#"{{"op":"dead.list","after_seq":{seq},"after_subscription":{sub}}}"#)
                }
            };
            let v = self.admin(&request)?;
            for row in v["dead_letters"].as_array().into_iter().flatten() {
                let name = row["subscription"].as_str().unwrap_or("?").to_string();
                dead.entry(name)
                    .or_default()
                    .insert(row["seq"].as_u64().unwrap_or(0));
            }
            match v.get("next") {
                Some(next) => {
                    after = Some((
                        next["after_seq"].as_u64().unwrap_or(0),
                        next["after_subscription"].as_u64().unwrap_or(0),
                    ))
                }
                None => break,
            }
        }
        for (name, seqs) in &dead {
            self.dead_seen
                .entry(name.clone())
                .or_default()
                .extend(seqs.iter().copied());
        }
        Ok(dead)
    }

    /// An operator empties the dead-letter area: what is listed is remembered, then
    /// purged by seq (letters made meanwhile stay).
    pub(super) fn purge_dead(&mut self) -> Result<(), SimulatorFailure> {
        for (name, seqs) in self.list_dead()? {
            let seqs: Vec<String> = seqs.iter().map(u64::to_string).collect();
            let v = self.admin(&format!(
                r#"{{"op":"dead.purge","subscription":"{name}","seqs":[{}]}}"#,
                seqs.join(",")
            ))?;
            if v.get("error").is_some() {
                return Err(self.fail(format!("dead.purge {name}: {v}")));
            }
        }
        self.report.purges += 1;
        Ok(())
    }

    pub(super) fn final_checks(&mut self) -> Result<(), SimulatorFailure> {
        self.list_dead()?;
        let dead = self.dead_seen.clone();
        self.report.dead_letters = dead.values().map(|d| d.len() as u64).sum();
        for ((p, n), known) in &self.events {
            if known.seq == Some(u64::MAX) {
                return Err(self.fail(format!(
                    "event ({p}, {n}) was acknowledged in a batch and never delivered to \"all\""
                )));
            }
        }
        for (i, (name, pattern, _, max_deliveries)) in SUBSCRIPTIONS.iter().enumerate() {
            let sub = &self.subscribers[i];
            let letters = dead.get(*name).cloned().unwrap_or_default();
            for seq in &letters {
                let rejected = sub.rejected.contains(seq);
                let exhausted = sub
                    .delivered
                    .get(seq)
                    .is_some_and(|&c| c + 1 >= *max_deliveries);
                if !rejected && !exhausted {
                    return Err(self.fail(format!(
                        "{name}: seq {seq} is a dead letter, but was neither rejected nor delivered {max_deliveries} times"
                    )));
                }
            }
            for seq in &sub.rejected {
                if !letters.contains(seq) && !sub.confirmed.contains(seq) {
                    return Err(
                        self.fail(format!("{name}: rejected seq {seq} is not a dead letter"))
                    );
                }
            }
            for (&seq, &(p, n)) in &self.seqs {
                let topic = TOPICS[self.events[&(p, n)].topic];
                let meant = Pattern::parse(pattern.as_bytes())
                    .map(|pat| pat.matches(topic.as_bytes()))
                    .unwrap_or(false);
                if meant && !sub.confirmed.contains(&seq) && !letters.contains(&seq) {
                    return Err(self.fail(format!(
                        "{name}: acknowledged seq {seq} (event ({p}, {n})) was neither confirmed nor a dead letter"
                    )));
                }
            }
        }
        if let (Some(before), Some(node)) = (self.footprint, self.node.as_ref()) {
            let after = node.core().footprint_bytes();
            if after != before {
                return Err(self.fail(format!(
                    "the daemon's memory grew: {before} -> {after} bytes"
                )));
            }
        }
        Ok(())
    }
}
