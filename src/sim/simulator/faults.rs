//! The faults the seed injects: cut connections, stalls, time jumps, a full
//! dead-letter area, process crashes and power cuts, and the check of every power-cut
//! image.

use super::*;

impl<M: Crashable> World<M> {
    /// Faults, from the seed: cut connections, stalls, crashes, power cuts, probes.
    pub(super) fn faults(&mut self) -> Result<(), SimulatorFailure> {
        if self.rng.gen_bool(0.01) {
            let p = self.rng.gen_range(0..self.producers.len());
            if let Some(mut c) = self.producers[p].client.take() {
                c.close();
                self.connect_producer(p);
            }
        }
        if self.rng.gen_bool(0.01) {
            let s = self.rng.gen_range(0..self.subscribers.len());
            if let Some(mut c) = self.subscribers[s].client.take() {
                c.close();
            }
        }
        for s in 0..self.subscribers.len() {
            if self.subscribers[s].client.is_none() && self.rng.gen_bool(0.2) {
                self.connect_subscriber(s);
            }
        }
        if self.rng.gen_bool(0.003) {
            // A consumer stalls: it settles nothing for a while, and the ring fills.
            let s = self.rng.gen_range(0..self.subscribers.len());
            self.subscribers[s].stalled_until = self.step + self.rng.gen_range(50..400);
        }
        if self.rng.gen_bool(0.05) {
            // Time passes with nobody acting: deadlines and backoffs come due.
            self.net
                .advance(Duration::from_millis(self.rng.gen_range(1..30)));
        }
        let free_dead = self
            .node
            .as_ref()
            .map_or(1, |n| n.core().log().dead_letter_slots().0);
        if free_dead == 0 && self.rng.gen_bool(0.05) {
            // The area full for a while (events wait for room), then an operator.
            self.purge_dead()?;
        }
        if self.rng.gen_bool(0.004) {
            self.crash(false)?;
        } else if self.rng.gen_bool(0.004) {
            self.crash(true)?;
        }
        Ok(())
    }

    /// A power cut now, without a restart: the image must open with no problem and
    /// hold every acknowledged event that is not settled everywhere it is meant to be.
    pub(super) fn probe_power_cut(&mut self) -> Result<(), SimulatorFailure> {
        let image = {
            let medium = self.node.as_ref().expect("running").core().log().medium();
            medium.power_cut_image(&mut self.rng)
        };
        self.check_image(image)?;
        self.report.crash_states += 1;
        Ok(())
    }

    pub(super) fn check_image(&self, image: Vec<u8>) -> Result<(), SimulatorFailure> {
        let (log, report) = Log::open(M::restored(image), &mut |_, _| {})
            .map_err(|e| self.fail(format!("a power-cut image does not open: {e}")))?;
        let findings = crate::subscription::check::check(&report, log.subscriptions());
        if let Some(f) = findings
            .iter()
            .find(|f| f.severity == crate::subscription::check::Severity::Problem)
        {
            return Err(self.fail(format!("a power-cut image has a problem: {f:?}")));
        }
        let kept: BTreeSet<u64> = log
            .events_since(Seq(0), u64::MAX)
            .map(|e| e.seq.0)
            .collect();
        for (&seq, &(p, n)) in &self.seqs {
            let topic = TOPICS[self.events[&(p, n)].topic];
            let owed = SUBSCRIPTIONS
                .iter()
                .enumerate()
                .any(|(i, (name, pattern, _, _))| {
                    let meant = Pattern::parse(pattern.as_bytes())
                        .map(|pat| pat.matches(topic.as_bytes()))
                        .unwrap_or(false);
                    let cursor = log
                        .subscription_by_name(name.as_bytes())
                        .map_or(0, |s| s.cursor);
                    meant && seq >= cursor && !self.subscribers[i].confirmed.contains(&seq)
                });
            if owed && !kept.contains(&seq) {
                return Err(self.fail(format!(
                    "a power-cut image lost seq {seq} (event ({p}, {n})), acknowledged and unsettled"
                )));
            }
        }
        Ok(())
    }

    /// The daemon dies: everything written survives (a process crash) or only what was
    /// made durable (a power cut). It restarts from that image; every client
    /// reconnects.
    pub(super) fn crash(&mut self, power: bool) -> Result<(), SimulatorFailure> {
        let node = self.node.take().expect("running");
        let medium = node.crash().into_medium();
        let image = if power {
            self.report.power_cuts += 1;
            medium.power_cut_image(&mut self.rng)
        } else {
            self.report.process_crashes += 1;
            medium.process_crash_image()
        };
        self.check_image(image.clone())?;
        self.report.crash_states += 1;
        let (log, report) = Log::open(M::restored(image), &mut |_, _| {})
            .map_err(|e| self.fail(format!("restart: {e}")))?;
        let clean = report.previous_stop == crate::log::PreviousStop::Clean;
        self.start(log, clean)?;
        for p in 0..self.producers.len() {
            self.producers[p].client = None;
            self.connect_producer(p);
        }
        for s in 0..self.subscribers.len() {
            self.subscribers[s].client = None;
            self.connect_subscriber(s);
        }
        Ok(())
    }
}
