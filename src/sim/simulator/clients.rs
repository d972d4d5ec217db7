//! What the simulated producers and subscribers do, and the oracle's checks of
//! every answer and delivery they receive.

use super::*;

impl<M: Crashable> World<M> {
    pub(super) fn connect_producer(&mut self, p: usize) {
        let mut c = self.node().connect();
        c.send(&hello(Role::Producer, &format!("producer-{p}")));
        let producer = &mut self.producers[p];
        producer.client = Some(c);
        producer.ready = false;
        // Answers owed on the old connection are lost: keyed publishes are retried,
        // unkeyed ones stay uncertain.
        for pending in std::mem::take(&mut producer.pending) {
            let numbers = match pending {
                Pending::One { number, .. } => vec![number],
                Pending::Batch { numbers, .. } => numbers,
            };
            for n in numbers {
                if self.events.get(&(p, n)).is_some_and(|e| e.key) {
                    producer.retry.push(n);
                }
            }
        }
    }

    pub(super) fn connect_subscriber(&mut self, s: usize) {
        let (name, pattern, automatic, max_deliveries) = SUBSCRIPTIONS[s];
        let mut c = self.node().connect();
        c.send(&hello(Role::Subscriber, name));
        let patterns = [Pattern::parse(pattern.as_bytes()).expect("a valid pattern")];
        c.send(&Frame::Subscribe(Subscribe {
            name,
            min_severity: Severity::Debug,
            window_events: 16,
            automatic_recovery: automatic,
            group: false,
            ack_deadline_ms: 0,
            max_deliveries,
            patterns: Patterns::from_patterns(&patterns),
        }));
        let sub = &mut self.subscribers[s];
        sub.client = Some(c);
        sub.subscribed = false;
        sub.recovering = false;
        sub.held.clear();
    }

    /// One step of load: producers publish, subscribers settle what is due.
    pub(super) fn load_step(&mut self) -> Result<(), SimulatorFailure> {
        for p in 0..self.producers.len() {
            if self.producers[p].client.is_none() {
                self.connect_producer(p);
                continue;
            }
            if !self.producers[p].ready {
                continue;
            }
            for n in std::mem::take(&mut self.producers[p].retry) {
                self.publish_one(p, n);
            }
            if self.producers[p].pending.len() < 32 && self.rng.gen_bool(0.6) {
                if self.rng.gen_bool(0.25) {
                    self.publish_batch(p);
                } else {
                    let n = self.new_event(p);
                    self.publish_one(p, n);
                }
            }
        }
        let step = self.step;
        for s in 0..self.subscribers.len() {
            let due: Vec<u64> = {
                let sub = &mut self.subscribers[s];
                let (due, later): (Vec<_>, Vec<_>) =
                    sub.held.iter().partition(|(_, at)| *at <= step);
                sub.held = later;
                due.into_iter().map(|(seq, _)| seq).collect()
            };
            for seq in due {
                self.confirm(s, seq);
            }
        }
        self.turns(TURNS_PER_STEP)
    }

    pub(super) fn new_event(&mut self, p: usize) -> u64 {
        let n = self.next_number[p];
        self.next_number[p] += 1;
        let topic = self.rng.gen_range(0..TOPICS.len());
        let key = self.rng.gen_bool(0.5);
        self.events.insert(
            (p, n),
            Known {
                topic,
                key,
                seq: None,
                refused: false,
            },
        );
        self.report.published += 1;
        n
    }

    pub(super) fn publish_one(&mut self, p: usize, n: u64) {
        let known = self.events[&(p, n)].clone();
        let payload = payload_of(p, n);
        let correlation = self.producers[p].next_correlation;
        let event = Event {
            topic: Topic::new(TOPICS[known.topic].as_bytes()).expect("a valid topic"),
            severity: Severity::Error,
            source: "",
            flags: 0,
            // The payload is unique to the event: a fine idempotency key.
            key: if known.key { &payload[..] } else { b"" },
            payload: &payload[..],
        };
        let frame = Frame::Publish { correlation, event };
        let producer = &mut self.producers[p];
        if let Some(c) = producer.client.as_mut() {
            if c.send(&frame) {
                producer.next_correlation += 1;
                producer.pending.push_back(Pending::One {
                    correlation,
                    number: n,
                });
                if let Some(e) = self.events.get_mut(&(p, n)) {
                    e.refused = false;
                }
            }
        }
    }

    pub(super) fn publish_batch(&mut self, p: usize) {
        let count = self.rng.gen_range(2..6);
        let numbers: Vec<u64> = (0..count).map(|_| self.new_event(p)).collect();
        let payloads: Vec<[u8; 16]> = numbers.iter().map(|&n| payload_of(p, n)).collect();
        let events: Vec<Event<'_>> = numbers
            .iter()
            .zip(&payloads)
            .map(|(&n, payload)| {
                let known = &self.events[&(p, n)];
                Event {
                    topic: Topic::new(TOPICS[known.topic].as_bytes()).expect("a valid topic"),
                    severity: Severity::Error,
                    source: "",
                    flags: 0,
                    key: if known.key { &payload[..] } else { b"" },
                    payload: &payload[..],
                }
            })
            .collect();
        let correlation = self.producers[p].next_correlation;
        let frame = Frame::PublishBatch {
            correlation,
            events: EventBatch::from_events(&events),
        };
        let producer = &mut self.producers[p];
        if let Some(c) = producer.client.as_mut() {
            if c.send(&frame) {
                producer.next_correlation += 1;
                producer.pending.push_back(Pending::Batch {
                    correlation,
                    numbers,
                });
            }
        }
    }

    pub(super) fn confirm(&mut self, s: usize, seq: u64) {
        let sub = &mut self.subscribers[s];
        let Some(c) = sub.client.as_mut() else {
            return;
        };
        if c.send(&Frame::Confirm {
            first_seq: Seq(seq),
            last_seq: Seq(seq),
        }) {
            sub.confirmed.insert(seq);
        }
    }

    /// Reads every client's messages and checks them.
    pub(super) fn receive_all(&mut self) -> Result<(), SimulatorFailure> {
        self.receive(false)
    }

    /// Reads every client's messages and checks them; while `settling`, every
    /// delivery is confirmed ([`World::settle_delivery`]) instead of treated at random.
    pub(super) fn receive(&mut self, settling: bool) -> Result<(), SimulatorFailure> {
        let mut msgs = std::mem::take(&mut self.msgs);
        for p in 0..self.producers.len() {
            msgs.clear();
            let closed = self.producers[p]
                .client
                .as_mut()
                .is_some_and(|c| drain(c, &mut msgs));
            for m in msgs.drain(..) {
                self.producer_msg(p, m)?;
            }
            if closed {
                self.producers[p].client = None;
            }
        }
        for s in 0..self.subscribers.len() {
            msgs.clear();
            let closed = self.subscribers[s]
                .client
                .as_mut()
                .is_some_and(|c| drain(c, &mut msgs));
            for m in msgs.drain(..) {
                if settling {
                    self.settle_delivery(s, m)?;
                } else {
                    self.subscriber_msg(s, m)?;
                }
            }
            if closed {
                self.subscribers[s].client = None;
                self.subscribers[s].subscribed = false;
            }
        }
        self.msgs = msgs;
        Ok(())
    }

    pub(super) fn producer_msg(&mut self, p: usize, m: Msg) -> Result<(), SimulatorFailure> {
        match m {
            Msg::HelloOk => self.producers[p].ready = true,
            Msg::Stored {
                correlation,
                first,
                last,
                count,
            } => {
                let Some(pending) = self.producers[p].pending.pop_front() else {
                    return Err(self.fail(format!("producer {p}: a Stored nothing asked for")));
                };
                match pending {
                    Pending::One {
                        correlation: c,
                        number,
                    } => {
                        if c != correlation || first != last || count != 1 {
                            return Err(self.fail(format!(
                                "producer {p}: Stored {correlation} {first}..{last}x{count} for publish {c}"
                            )));
                        }
                        self.acknowledge(p, number, first)?;
                    }
                    Pending::Batch {
                        correlation: c,
                        numbers,
                    } => {
                        if c != correlation || last < first || count as usize > numbers.len() {
                            return Err(self.fail(format!(
                                "producer {p}: Stored {correlation} {first}..{last}x{count} for batch {c} of {}",
                                numbers.len()
                            )));
                        }
                        // Each event's own seq is learnt from its delivery; here only
                        // that it is stored (within first..=last).
                        for n in numbers {
                            if let Some(e) = self.events.get_mut(&(p, n)) {
                                e.refused = false;
                                if e.seq.is_none() {
                                    e.seq = Some(u64::MAX); // stored; seq not yet known
                                }
                            }
                        }
                        self.report.stored += u64::from(count);
                    }
                }
            }
            Msg::Error {
                correlation,
                code,
                message,
            } => {
                if code != 5 {
                    // Only `full` is expected of a publish.
                    return Err(self.fail(format!("producer {p}: error {code}: {message}")));
                }
                self.report.full += 1;
                let Some(pending) = self.producers[p].pending.pop_front() else {
                    return Err(self.fail(format!("producer {p}: an error nothing asked for")));
                };
                let (c, numbers) = match pending {
                    Pending::One {
                        correlation,
                        number,
                    } => (correlation, vec![number]),
                    Pending::Batch {
                        correlation,
                        numbers,
                    } => (correlation, numbers),
                };
                if c != correlation {
                    return Err(self.fail(format!(
                        "producer {p}: full for {correlation}, expected {c}"
                    )));
                }
                for n in numbers {
                    if let Some(e) = self.events.get_mut(&(p, n)) {
                        if e.seq.is_none() {
                            e.refused = true;
                        }
                    }
                }
            }
            other => return Err(self.fail(format!("producer {p}: unexpected {other:?}"))),
        }
        Ok(())
    }

    pub(super) fn acknowledge(
        &mut self,
        p: usize,
        n: u64,
        seq: u64,
    ) -> Result<(), SimulatorFailure> {
        let known = self
            .events
            .get_mut(&(p, n))
            .ok_or_else(|| SimulatorFailure {
                seed: self.config.seed,
                disk: self.config.disk,
                step: self.step,
                message: format!("producer {p}: Stored for unknown event {n}"),
            })?;
        match known.seq {
            Some(s) if s != u64::MAX && s != seq => {
                return Err(self.fail(format!(
                    "producer {p} event {n}: stored as {seq}, earlier as {s} (a retry must get the original)"
                )));
            }
            Some(s) if s == seq => self.report.deduplicated += 1,
            _ => self.report.stored += 1,
        }
        known.seq = Some(seq);
        known.refused = false;
        if let Some(other) = self.seqs.insert(seq, (p, n)) {
            if other != (p, n) {
                return Err(self.fail(format!(
                    "seq {seq} acknowledged for {other:?} and ({p}, {n})"
                )));
            }
        }
        Ok(())
    }

    pub(super) fn subscriber_msg(&mut self, s: usize, m: Msg) -> Result<(), SimulatorFailure> {
        let (name, pattern, automatic, max_deliveries) = SUBSCRIPTIONS[s];
        match m {
            Msg::HelloOk => {}
            Msg::Subscribed { recovering } => {
                let sub = &mut self.subscribers[s];
                sub.subscribed = true;
                sub.recovering = recovering;
            }
            Msg::RecoveryDone => {
                if !automatic {
                    if let Some(c) = self.subscribers[s].client.as_mut() {
                        c.send(&Frame::Recovered);
                    }
                }
                self.subscribers[s].recovering = false;
            }
            Msg::Deliver {
                seq,
                redelivered,
                count,
                topic,
                payload,
            } => {
                self.report.delivered += 1;
                if redelivered {
                    self.report.redelivered += 1;
                }
                let Some((p, n)) = identity_of(&payload) else {
                    return Err(
                        self.fail(format!("{name}: seq {seq} with a payload nobody published"))
                    );
                };
                let Some(known) = self.events.get(&(p, n)).cloned() else {
                    return Err(self.fail(format!(
                        "{name}: seq {seq} is event ({p}, {n}), never published"
                    )));
                };
                if known.refused {
                    return Err(self.fail(format!(
                        "{name}: seq {seq} is event ({p}, {n}), whose producer was told it was not stored"
                    )));
                }
                if TOPICS[known.topic] != topic {
                    return Err(self.fail(format!("{name}: seq {seq} arrived with topic {topic}")));
                }
                let matches = Pattern::parse(pattern.as_bytes())
                    .map(|p| p.matches(topic.as_bytes()))
                    .unwrap_or(false);
                if !matches {
                    return Err(self.fail(format!(
                        "{name}: seq {seq} ({topic}) does not match {pattern}"
                    )));
                }
                match known.seq {
                    Some(s) if s != u64::MAX && s != seq => {
                        return Err(self.fail(format!(
                            "{name}: event ({p}, {n}) delivered as {seq}, stored as {s}"
                        )));
                    }
                    _ => {}
                }
                // Learn a batch event's seq (or an event whose answer was lost).
                if let Some(e) = self.events.get_mut(&(p, n)) {
                    if e.seq.is_none() || e.seq == Some(u64::MAX) {
                        e.seq = Some(seq);
                        self.seqs.insert(seq, (p, n));
                    }
                }
                let step = self.step;
                let sub = &mut self.subscribers[s];
                if sub.recovering && !redelivered {
                    return Err(self.fail(format!("{name}: a new event ({seq}) during its replay")));
                }
                if !redelivered && seq <= sub.max_delivered {
                    let max = sub.max_delivered;
                    return Err(self.fail(format!(
                        "{name}: seq {seq} not flagged redelivered, after {max} was delivered"
                    )));
                }
                sub.max_delivered = sub.max_delivered.max(seq);
                let seen = sub.delivered.entry(seq).or_insert(0);
                *seen = (*seen).max(count);
                if sub.confirmed.contains(&seq) || sub.rejected.contains(&seq) {
                    // Settled already (a confirm that crossed a redelivery, or one
                    // lost with a crash): settle again, it is idempotent.
                    if sub.confirmed.contains(&seq) {
                        self.confirm(s, seq);
                    }
                    return Ok(());
                }
                let roll: f64 = self.rng.gen();
                let _ = max_deliveries;
                if self.subscribers[s].stalled_until > step {
                    // Stalled: keep it, settle it when the stall ends.
                    let at = self.subscribers[s].stalled_until;
                    self.subscribers[s].held.push((seq, at));
                } else if roll < 0.70 {
                    self.confirm(s, seq);
                } else if roll < 0.78 {
                    let later = step + self.rng.gen_range(1..20);
                    self.subscribers[s].held.push((seq, later));
                } else if roll < 0.82 {
                    if let Some(c) = self.subscribers[s].client.as_mut() {
                        c.send(&Frame::Nak {
                            seq: Seq(seq),
                            delay_ms: self.rng.gen_range(0..5),
                        });
                    }
                } else if roll < 0.85 {
                    if let Some(c) = self.subscribers[s].client.as_mut() {
                        c.send(&Frame::Working { seq: Seq(seq) });
                    }
                    let later = step + self.rng.gen_range(1..5);
                    self.subscribers[s].held.push((seq, later));
                } else if roll < 0.88 {
                    let sub = &mut self.subscribers[s];
                    if let Some(c) = sub.client.as_mut() {
                        if c.send(&Frame::Reject { seq: Seq(seq) }) {
                            sub.rejected.insert(seq);
                        }
                    }
                }
                // Else: ignored; its deadline brings it back.
            }
            Msg::Error { code, message, .. } => {
                // A name still attached to the connection a crash or cut just ended:
                // try again.
                if code != 6 {
                    return Err(self.fail(format!("{name}: error {code}: {message}")));
                }
            }
            other => return Err(self.fail(format!("{name}: unexpected {other:?}"))),
        }
        Ok(())
    }
}
