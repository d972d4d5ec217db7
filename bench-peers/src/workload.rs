//! The three workloads, written once against the [`Peer`] trait so every system runs
//! exactly the same loop, and the counts each system reports about itself afterwards.

use hdrhistogram::Histogram;
use herald::measure::{histogram, warmup_count, Pacer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Producers in the throughput workload.
pub const PRODUCERS: usize = 4;
/// Events per batch in the throughput workload.
pub const BATCH_EVENTS: usize = 64;
/// Batches a throughput producer sends before it waits for the replies: every system
/// gets the same window of events in flight, as herald's own `herald bench` and a
/// pipelining Redis or JetStream client keep.
pub const BATCHES_IN_FLIGHT: usize = 8;
/// Events one throughput producer has in flight.
pub const WINDOW_EVENTS: usize = BATCH_EVENTS * BATCHES_IN_FLIGHT;
/// The payload sizes every workload runs with.
pub const PAYLOAD_BYTES: [usize; 2] = [64, 1024];
/// How long a consumer may see nothing before a drain or an end-to-end run gives up
/// (and the verification reports what is missing).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The slowest end-to-end load: even a system that takes milliseconds per publish
/// finishes a run in reasonable time.
pub const E2E_RATE_MIN_PER_SECOND: u64 = 50;
/// How long confirmations sent without waiting for a reply (a queued herald confirm,
/// a JetStream ack) may take to show in the system's own counts.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes at the start of every payload: the event's index (publish workloads) or its
/// publish time (end to end).
pub const STAMP_BYTES: usize = 8;

/// Which workload.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One producer, one durable publish at a time.
    PublishLatency,
    /// [`PRODUCERS`] producers, batched or pipelined by [`BATCH_EVENTS`].
    Throughput,
    /// Publish → delivered → confirmed, one subscriber, a steady load.
    EndToEnd,
}

impl Kind {
    /// Every workload, in the order they run and are printed.
    pub const ALL: [Kind; 3] = [Kind::PublishLatency, Kind::Throughput, Kind::EndToEnd];

    /// A short name, safe in topics, stream names and subscription names.
    pub fn short(self) -> &'static str {
        match self {
            Kind::PublishLatency => "latency",
            Kind::Throughput => "throughput",
            Kind::EndToEnd => "e2e",
        }
    }

    /// How the table titles it.
    pub fn title(self) -> String {
        match self {
            Kind::PublishLatency => "1. durable publish latency, 1 producer, one at a time".into(),
            Kind::Throughput => format!(
                "2. publish throughput, {PRODUCERS} producers, {BATCHES_IN_FLIGHT} batches of {BATCH_EVENTS} in flight each"
            ),
            Kind::EndToEnd => "3. publish -> delivered -> confirmed, 1 subscriber".into(),
        }
    }
}

/// One workload with one payload size.
#[derive(Copy, Clone, Debug)]
pub struct Workload {
    /// Which workload.
    pub kind: Kind,
    /// Payload bytes per event.
    pub payload_bytes: usize,
}

impl Workload {
    /// A name unique per workload and payload, made of `[a-z0-9_]` and `sep`: each
    /// system keeps every workload in its own stream or subscription.
    pub fn name(&self, sep: char) -> String {
        format!(
            "bench{sep}{}{sep}p{}",
            self.kind.short(),
            self.payload_bytes
        )
    }
}

/// How much of each workload to run.
#[derive(Copy, Clone, Debug, serde::Serialize)]
pub struct Plan {
    /// Timed publishes in the latency workload (a tenth more are run first, untimed).
    pub latency_events: u64,
    /// Longest duration of a throughput run.
    pub throughput_seconds: f64,
    /// Most bytes of payload one throughput producer publishes (the run stops at this
    /// or at the duration, whichever comes first), so every system's store fits.
    pub throughput_bytes_per_producer: u64,
    /// Events in the end-to-end run.
    pub end_to_end_events: u64,
    /// The end-to-end run's publish rate, at most: each system gets this or a quarter
    /// of the rate its one-at-a-time publishes reached, whichever is lower, so the
    /// load stays well below its saturation.
    pub end_to_end_rate_per_second: u64,
}

impl Plan {
    /// The end-to-end rate for a system whose one-at-a-time publish took `p50_us` at
    /// the median (see [`Plan::end_to_end_rate_per_second`]).
    pub fn end_to_end_rate(&self, p50_us: Option<f64>) -> u64 {
        let quarter_of_capacity = p50_us.map_or(u64::MAX, |us| (0.25e6 / us.max(0.001)) as u64);
        self.end_to_end_rate_per_second
            .min(quarter_of_capacity)
            .max(E2E_RATE_MIN_PER_SECOND)
    }

    /// Events one throughput producer publishes at most, for `payload_bytes`.
    pub fn throughput_events_per_producer(&self, payload_bytes: usize) -> u64 {
        let events = self.throughput_bytes_per_producer / payload_bytes as u64;
        // Whole batches, at least one.
        (events / WINDOW_EVENTS as u64).max(1) * WINDOW_EVENTS as u64
    }
}

/// One connection (or handle) publishing to a workload's destination.
pub trait Producer: Send {
    /// Publishes one event and returns once the system says it is stored.
    fn publish(&mut self, payload: &[u8]) -> anyhow::Result<()>;
    /// Publishes [`WINDOW_EVENTS`] `payloads` the way the system is meant to be driven
    /// for throughput: in batches of [`BATCH_EVENTS`] where it has batches, all sent
    /// (pipelined) before waiting for the first reply; returns once all are
    /// acknowledged.
    fn publish_many(&mut self, payloads: &[Vec<u8>]) -> anyhow::Result<()>;
}

/// One subscriber (or consumer) of a workload's destination.
pub trait Consumer: Send {
    /// Waits up to `timeout` for deliveries; hands each payload to `on_event`, then
    /// confirms (acknowledges) it. Returns how many were received, 0 on timeout.
    fn receive(
        &mut self,
        timeout: Duration,
        on_event: &mut dyn FnMut(&[u8]),
    ) -> anyhow::Result<u64>;
}

/// A system under comparison, already started.
pub trait Peer {
    /// Creates the workload's destination (a stream, a subscription, a log file).
    fn prepare(&mut self, w: &Workload) -> anyhow::Result<()>;
    /// A new producer for the workload; the throughput workload asks for several and
    /// runs each on its own thread.
    fn producer(&mut self, w: &Workload, index: usize) -> anyhow::Result<Box<dyn Producer>>;
    /// A consumer for the workload, or `None` for a system that stores without
    /// delivering (an in-process log, a floor): it then has no end-to-end row.
    fn consumer(&mut self, w: &Workload) -> anyhow::Result<Option<Box<dyn Consumer>>>;
    /// How many of the workload's events the system itself says it holds, read back
    /// from it (not counted by the driver); `None` where nothing is stored.
    fn stored(&mut self, w: &Workload) -> anyhow::Result<Option<u64>>;
    /// How many of the workload's events the system itself says were delivered and
    /// confirmed, once `published` were published; `None` where nothing is delivered.
    fn delivered_confirmed(&mut self, w: &Workload, published: u64) -> anyhow::Result<Option<u64>>;
    /// Frees what the workload left behind (called last).
    fn finish(&mut self, _w: &Workload) -> anyhow::Result<()> {
        Ok(())
    }
}

/// What one workload measured on one system.
pub struct Outcome {
    /// Latency in nanoseconds (latency and end-to-end workloads).
    pub latency: Option<Histogram<u64>>,
    /// Events per second: measured (throughput workload), or offered (end to end).
    pub events_per_second: Option<f64>,
    /// Events the driver published and saw acknowledged.
    pub published: u64,
    /// Events the system says it stored ([`Peer::stored`]).
    pub stored: Option<u64>,
    /// Events the system says were delivered and confirmed.
    pub delivered_confirmed: Option<u64>,
}

/// Runs workload `w` on `peer`: prepare, measure, read the stored count back, deliver
/// everything (timed in the end-to-end workload, a drain otherwise), read the
/// delivered count back, finish. `None` when the system has no such workload.
/// `e2e_rate_per_second` is the end-to-end workload's steady load.
pub fn run(
    peer: &mut dyn Peer,
    w: &Workload,
    plan: &Plan,
    e2e_rate_per_second: u64,
) -> anyhow::Result<Option<Outcome>> {
    peer.prepare(w)?;
    let (latency, events_per_second, published, stored) = match w.kind {
        Kind::PublishLatency => {
            let (h, published) = publish_latency(peer, w, plan.latency_events)?;
            let stored = peer.stored(w)?;
            drain(peer, w, published)?;
            (Some(h), None, published, stored)
        }
        Kind::Throughput => {
            let (eps, published) = throughput(peer, w, plan)?;
            let stored = peer.stored(w)?;
            drain(peer, w, published)?;
            (None, Some(eps), published, stored)
        }
        Kind::EndToEnd => {
            let Some(consumer) = peer.consumer(w)? else {
                peer.finish(w)?;
                return Ok(None);
            };
            let (h, published) = end_to_end(peer, w, plan, e2e_rate_per_second, consumer)?;
            (
                Some(h),
                Some(e2e_rate_per_second as f64),
                published,
                peer.stored(w)?,
            )
        }
    };
    let delivered_confirmed = peer.delivered_confirmed(w, published)?;
    peer.finish(w)?;
    Ok(Some(Outcome {
        latency,
        events_per_second,
        published,
        stored,
        delivered_confirmed,
    }))
}

/// A payload of `bytes` (at least [`STAMP_BYTES`]) carrying `stamp` first.
fn payload(bytes: usize, stamp: u64) -> Vec<u8> {
    let mut p = vec![0x5au8; bytes.max(STAMP_BYTES)];
    p[..STAMP_BYTES].copy_from_slice(&stamp.to_le_bytes());
    p
}

fn publish_latency(
    peer: &mut dyn Peer,
    w: &Workload,
    n: u64,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let mut producer = peer.producer(w, 0)?;
    let mut h = histogram();
    let warmup = warmup_count(n);
    let mut data = payload(w.payload_bytes, 0);
    for i in 0..n + warmup {
        data[..STAMP_BYTES].copy_from_slice(&i.to_le_bytes());
        let t = Instant::now();
        producer.publish(&data)?;
        if i >= warmup {
            h.record(t.elapsed().as_nanos() as u64)?;
        }
    }
    Ok((h, n + warmup))
}

/// [`PRODUCERS`] threads publish batches until the plan's byte budget or duration is
/// used up; the rate is every acknowledged event over the time until the last
/// producer finished.
fn throughput(peer: &mut dyn Peer, w: &Workload, plan: &Plan) -> anyhow::Result<(f64, u64)> {
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|i| peer.producer(w, i))
        .collect::<anyhow::Result<_>>()?;
    let events_max = plan.throughput_events_per_producer(w.payload_bytes);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = producers
        .into_iter()
        .enumerate()
        .map(|(p, mut producer)| {
            let stop = stop.clone();
            let bytes = w.payload_bytes;
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut done = 0u64;
                let mut batch: Vec<Vec<u8>> =
                    (0..WINDOW_EVENTS).map(|_| payload(bytes, 0)).collect();
                // Relaxed: the flag carries no data, and a batch more or less is fine.
                while done < events_max && !stop.load(Ordering::Relaxed) {
                    for (i, event) in batch.iter_mut().enumerate() {
                        let stamp = ((p as u64) << 48) | (done + i as u64);
                        event[..STAMP_BYTES].copy_from_slice(&stamp.to_le_bytes());
                    }
                    producer.publish_many(&batch)?;
                    done += WINDOW_EVENTS as u64;
                }
                Ok(done)
            })
        })
        .collect();
    let deadline = started + Duration::from_secs_f64(plan.throughput_seconds);
    while Instant::now() < deadline && !threads.iter().all(|t| t.is_finished()) {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let mut published = 0;
    for t in threads {
        published += t.join().expect("producer thread")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok((published as f64 / seconds, published))
}

/// Receives until `expected` events came or nothing came for [`IDLE_TIMEOUT`]
/// (the verification then shows what is missing). Untimed.
fn drain(peer: &mut dyn Peer, w: &Workload, expected: u64) -> anyhow::Result<()> {
    let Some(mut consumer) = peer.consumer(w)? else {
        return Ok(());
    };
    let mut received = 0;
    while received < expected {
        let got = consumer.receive(IDLE_TIMEOUT, &mut |_| {})?;
        if got == 0 {
            break;
        }
        received += got;
    }
    Ok(())
}

/// A paced producer on this thread; the consumer on its own thread records, for each
/// event, the time from just before its publish call to its receipt, then confirms it.
fn end_to_end(
    peer: &mut dyn Peer,
    w: &Workload,
    plan: &Plan,
    rate_per_second: u64,
    mut consumer: Box<dyn Consumer>,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let n = plan.end_to_end_events;
    let base = Instant::now();
    let receiver = std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
        let mut h = histogram();
        let mut failed = None;
        while h.len() < n {
            let got = consumer.receive(IDLE_TIMEOUT, &mut |p| {
                let sent = u64::from_le_bytes(p[..STAMP_BYTES].try_into().expect("8 bytes"));
                let now = base.elapsed().as_nanos() as u64;
                if let Err(e) = h.record(now.saturating_sub(sent)) {
                    failed = Some(e);
                }
            })?;
            if let Some(e) = failed.take() {
                return Err(e.into());
            }
            if got == 0 {
                break; // the verification reports what is missing
            }
        }
        Ok(h)
    });
    let mut producer = peer.producer(w, 0)?;
    let mut pacer = Pacer::new(rate_per_second);
    let mut data = payload(w.payload_bytes, 0);
    for _ in 0..n {
        pacer.wait();
        let sent = base.elapsed().as_nanos() as u64;
        data[..STAMP_BYTES].copy_from_slice(&sent.to_le_bytes());
        producer.publish(&data)?;
    }
    let h = receiver.join().expect("consumer thread")?;
    Ok((h, n))
}

/// Reads a system's count with `read` until it reaches `target` or [`SETTLE_TIMEOUT`]
/// passes, and returns the last count read: confirmations that were sent without
/// waiting for an answer are counted once the system has processed them.
pub fn settle(target: u64, mut read: impl FnMut() -> anyhow::Result<u64>) -> anyhow::Result<u64> {
    let started = Instant::now();
    loop {
        let count = read()?;
        if count >= target || started.elapsed() > SETTLE_TIMEOUT {
            return Ok(count);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
