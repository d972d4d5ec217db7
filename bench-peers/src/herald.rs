//! herald itself, as users run it: the daemon binary on a throwaway data directory,
//! driven through the normal client library.
//!
//! Counts are read back from the daemon's own state: events stored from a read-only
//! scan of its region (the medium itself), events confirmed from its status reply
//! (the subscription's cursor). Every workload has a durable subscription, so events
//! stay in the log until its consumer confirms them, as Redis and JetStream keep theirs.

use super::workload::{settle, Consumer, Peer, Plan, Producer, Workload, BATCH_EVENTS};
use anyhow::Context;
use herald::client::Client;
use herald::log::{self, LiveEvents};
use herald::measure::{event, DaemonProcess};
use herald::pmem::{MappedRegion, Medium, RegionOptions};
use herald::protocol::{Event, Role, Severity};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The region of the benchmark's daemon, in MiB: room for the largest throughput run,
/// kept until drained. A 64-byte event's record (40-byte header, topic, source,
/// payload) is 135 bytes, two 128-byte slots: 4 producers x 64 MiB of them (the full
/// run) need 8 Mi slots, 1 GiB; twice that leaves room for what the other workloads
/// still hold. So 32 bytes of region per byte a producer publishes, at least 64 MiB
/// (a quick run's region stays small: in disk mode it is written with zeros first).
fn region_size(plan: &Plan) -> String {
    let mib = (32 * plan.throughput_bytes_per_producer)
        .div_ceil(1 << 20)
        .max(64);
    format!("{mib}M")
}
/// The subscription window: enough that a draining consumer is never starved.
const WINDOW_EVENTS: u32 = 1024;
/// Name of every benchmark connection (the events' `source`).
const CLIENT_NAME: &str = "bench-peers";

/// The variable naming the `herald` binary to measure; `herald bench peers` sets it
/// to itself, so the herald compared is the one the user ran.
const HERALD_BIN_VARIABLE: &str = "HERALD_BIN";

/// The `herald` binary to measure: `$HERALD_BIN`, else the `herald` beside this
/// program (cargo builds both members into the same target directory), else `herald`
/// on PATH.
fn herald_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(HERALD_BIN_VARIABLE) {
        let path = PathBuf::from(path);
        anyhow::ensure!(
            path.is_file(),
            "{HERALD_BIN_VARIABLE}={} is not a file",
            path.display()
        );
        return Ok(path);
    }
    let exe = std::env::current_exe().context("finding this program's own path")?;
    let beside = exe.with_file_name("herald");
    if beside.is_file() {
        return Ok(beside);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("herald"))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "no herald binary: {HERALD_BIN_VARIABLE} is not set, there is none beside {} and none on PATH; build it with `cargo build --release -p herald` (into the same target directory as this program)",
                exe.display()
            )
        })
}

/// A running herald daemon for the comparison.
pub struct HeraldPeer {
    daemon: DaemonProcess,
    /// Events of the current workload found in the region after publishing.
    stored: u64,
}

impl HeraldPeer {
    /// Starts the daemon, with its defaults, under `scratch`; with `disk`, `stored`
    /// waits for an fdatasync (`--sync disk`: what survives a power cut on an
    /// ordinary file, like Redis with `appendfsync always`).
    pub fn start(scratch: &Path, disk: bool, plan: &Plan) -> anyhow::Result<HeraldPeer> {
        // Busy poll 0 is the daemon's default: the comparison runs herald as shipped.
        let extra: &[&str] = if disk { &["--sync", "disk"] } else { &[] };
        let size = region_size(plan);
        let daemon = DaemonProcess::start_with(&herald_binary()?, 0, &size, Some(scratch), extra)?;
        Ok(HeraldPeer { daemon, stored: 0 })
    }

    /// The guarantee the daemon says it gives, from its status.
    pub fn guarantee(&self) -> anyhow::Result<String> {
        let status = self.status()?;
        Ok(status["region"]["guarantee"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned())
    }

    fn region_path(&self) -> PathBuf {
        self.daemon.data_dir().join("region.pmem")
    }

    fn status(&self) -> anyhow::Result<serde_json::Value> {
        let mut c = Client::connect(&self.daemon.socket, Role::Control, CLIENT_NAME)?;
        let json = c.status()?;
        c.goodbye()?;
        Ok(serde_json::from_str(&json)?)
    }

    fn subscribe(&self, name: &str, topic: &str) -> anyhow::Result<Client> {
        let mut c = Client::connect(&self.daemon.socket, Role::Subscriber, CLIENT_NAME)?;
        c.subscribe(name, &[topic], Severity::Debug, WINDOW_EVENTS, true)?;
        Ok(c)
    }

    /// Sequence numbers of the live events on `topic`, read from the region (read-only,
    /// no lock: safe beside the running daemon, which is idle between phases).
    fn live_seqs(&self, topic: &str) -> anyhow::Result<Vec<u64>> {
        let path = self.region_path();
        let options = RegionOptions {
            read_only: true,
            ..Default::default()
        };
        let region = MappedRegion::open(&path, &options)?;
        let analysis = log::analyze(region.bytes(), &mut |_, _| {})
            .with_context(|| format!("scanning {}", path.display()))?;
        let (head, tail) = (analysis.report.head, analysis.report.tail);
        Ok(
            LiveEvents::new(region.bytes(), &analysis.geometry, head, tail)
                .filter(|e| e.topic == topic.as_bytes())
                .map(|e| e.seq.0)
                .collect(),
        )
    }

    /// The in-memory cursor of subscription `name`: every event below it is settled.
    fn cursor(&self, name: &str) -> anyhow::Result<u64> {
        let status = self.status()?;
        status["subscriptions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .and_then(|s| s["cursor"].as_u64())
            .with_context(|| format!("herald's status has no subscription {name:?}: {status}"))
    }

    /// Consumes everything on subscription `name` until it stays idle for `idle`.
    fn drain(&self, name: &str, topic: &str, idle: Duration) -> anyhow::Result<()> {
        let mut c = HeraldConsumer {
            client: self.subscribe(name, topic)?,
        };
        while c.receive(idle, &mut |_| {})? > 0 {}
        Ok(())
    }
}

/// The subscription that delivers a workload's events to its consumer.
fn consumer_name(w: &Workload) -> String {
    w.name('_')
}

/// A second, never-connected subscription in the end-to-end workload: it keeps the
/// events in the log after the consumer confirmed them, so they can still be counted
/// on the medium (Redis and JetStream keep acknowledged entries too).
fn holder_name(w: &Workload) -> String {
    format!("{}_hold", w.name('_'))
}

impl Peer for HeraldPeer {
    fn prepare(&mut self, w: &Workload) -> anyhow::Result<()> {
        let topic = w.name('.');
        // Durable subscriptions exist before the first publish, so the log keeps every
        // event until they confirm it; connecting and leaving creates them.
        self.subscribe(&consumer_name(w), &topic)?.goodbye()?;
        if w.kind == super::workload::Kind::EndToEnd {
            self.subscribe(&holder_name(w), &topic)?.goodbye()?;
        }
        self.stored = 0;
        Ok(())
    }

    fn producer(&mut self, w: &Workload, _index: usize) -> anyhow::Result<Box<dyn Producer>> {
        let client = Client::connect(&self.daemon.socket, Role::Producer, CLIENT_NAME)?;
        Ok(Box::new(HeraldProducer {
            client,
            topic: w.name('.'),
        }))
    }

    fn consumer(&mut self, w: &Workload) -> anyhow::Result<Option<Box<dyn Consumer>>> {
        let client = self.subscribe(&consumer_name(w), &w.name('.'))?;
        Ok(Some(Box::new(HeraldConsumer { client })))
    }

    fn stored(&mut self, w: &Workload) -> anyhow::Result<Option<u64>> {
        self.stored = self.live_seqs(&w.name('.'))?.len() as u64;
        Ok(Some(self.stored))
    }

    fn delivered_confirmed(
        &mut self,
        w: &Workload,
        _published: u64,
    ) -> anyhow::Result<Option<u64>> {
        // Events stay live until every durable subscription settles them; those the
        // consumer's subscription has not settled are live at or above its cursor.
        // The last confirm is written when the consumer closes: let it land.
        let stored = self.stored;
        let settled = settle(stored, || {
            let cursor = self.cursor(&consumer_name(w))?;
            let unsettled = self
                .live_seqs(&w.name('.'))?
                .into_iter()
                .filter(|&seq| seq >= cursor)
                .count() as u64;
            Ok(stored.saturating_sub(unsettled))
        })?;
        Ok(Some(settled))
    }

    fn finish(&mut self, w: &Workload) -> anyhow::Result<()> {
        if w.kind == super::workload::Kind::EndToEnd {
            // Release the ring for the next workload: settle what the holder kept.
            self.drain(&holder_name(w), &w.name('.'), Duration::from_millis(500))?;
        }
        Ok(())
    }
}

struct HeraldProducer {
    client: Client,
    topic: String,
}

impl Producer for HeraldProducer {
    fn publish(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        self.client.publish(&event(&self.topic, payload))?;
        Ok(())
    }

    fn publish_many(&mut self, payloads: &[Vec<u8>]) -> anyhow::Result<()> {
        // Batches pipelined: every PublishBatch queued, then every Stored read.
        for batch in payloads.chunks(BATCH_EVENTS) {
            let events: Vec<Event<'_>> = batch.iter().map(|p| event(&self.topic, p)).collect();
            self.client.send_publish_batch(&events)?;
        }
        self.client.flush()?;
        let mut stored = 0;
        while self.client.outstanding() > 0 {
            stored += self.client.recv_stored()?.count as usize;
        }
        anyhow::ensure!(
            stored == payloads.len(),
            "herald stored {stored} of {} events",
            payloads.len()
        );
        Ok(())
    }
}

struct HeraldConsumer {
    client: Client,
}

impl Consumer for HeraldConsumer {
    fn receive(
        &mut self,
        timeout: Duration,
        on_event: &mut dyn FnMut(&[u8]),
    ) -> anyhow::Result<u64> {
        let Some(d) = self.client.next_delivery(Some(timeout))? else {
            return Ok(0);
        };
        on_event(d.event.payload);
        let seq = d.seq;
        // Queued; written before the next wait, as a subscriber normally confirms.
        self.client.confirm(seq, seq)?;
        Ok(1)
    }
}
