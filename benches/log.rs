//! Log benchmarks, each beside a baseline measured in the same run.
//!
//! - `commit_latency`: one 64-byte event per commit vs. a raw 64-byte store + flush +
//!   fence on the same mapping (the floor). Per-operation percentiles are printed from
//!   an HDR histogram because criterion reports means; criterion then reports both.
//! - `group_commit`: events/s for 64-byte events at batch sizes 1, 16 and 256.
//! - `recovery_scan`: GB/s of the recovery scanner over a full 1 GiB region.
//!
//! `cargo bench --bench log`; `HERALD_BENCH_SCAN_GIB=N` changes the scan region size.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use herald::log::{EventRef, Log, Severity, StoreOptions, SubscriptionId};
use herald::pmem::{MappedRegion, Medium};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PAYLOAD: [u8; 64] = [0x5a; 64];

fn event(ts: u64) -> EventRef<'static> {
    EventRef {
        topic: b"bench.e",
        severity: Severity::Info,
        source: b"bench",
        flags: 0,
        key: b"",
        payload: &PAYLOAD,
        timestamp_ns: ts,
        route: 0,
    }
}

fn bench_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Fixture {
    log: Log<MappedRegion>,
    sub: SubscriptionId,
    appended: u64,
    _dir: PathBuf,
}

impl Fixture {
    fn new(region_bytes: u64) -> Fixture {
        let dir = bench_dir();
        let path = dir.join(format!("region-{}.pmem", rand::random::<u32>()));
        let mut log =
            herald::log::create_file(&path, region_bytes, &StoreOptions::default(), 1).unwrap();
        let _ = std::fs::remove_file(&path); // the mapping keeps it alive
        let sub = log.create_subscription(b"bench", b"").unwrap();
        Fixture {
            log,
            sub,
            appended: 0,
            _dir: dir,
        }
    }

    /// Releases everything now and then so the ring never fills; amortised to one
    /// extra fence per 4096 events.
    #[inline]
    fn maybe_release(&mut self) {
        self.appended += 1;
        if self.appended.is_multiple_of(4096) {
            let tail = self.log.tail();
            self.log.release(&[(self.sub, tail)]).unwrap();
        }
    }

    fn append_one(&mut self) {
        black_box(self.log.append(&event(self.appended)).unwrap());
        self.maybe_release();
    }
}

/// The floor: store 64 bytes, flush the line, fence, walking the same mapping the
/// log uses, one slot (128 B) further each time like the log does.
struct RawFloor {
    fixture: Fixture,
    offset: usize,
    start: usize,
    end: usize,
}

impl RawFloor {
    fn new() -> RawFloor {
        let fixture = Fixture::new(64 << 20);
        let g = *fixture.log.geometry();
        let start = g.ring_data_offset as usize;
        RawFloor {
            start,
            offset: start,
            end: start + (g.ring.slot_count * g.ring.slot_bytes) as usize,
            fixture,
        }
    }

    /// `bytes` of the 128-byte record image: 64 is the floor; 128 is the two
    /// lines a 64-byte event's record (40 B header + topic + source + payload) covers.
    #[inline]
    fn store_flush_fence(&mut self, bytes: usize) {
        const RECORD: [u8; 128] = [0x5a; 128];
        let medium = self.fixture.log.medium_mut();
        medium.write(self.offset, &RECORD[..bytes]);
        medium.flush(self.offset, bytes);
        medium.fence().unwrap();
        self.offset += 128;
        if self.offset >= self.end {
            self.offset = self.start;
        }
    }
}

fn percentiles(mut op: impl FnMut(), iterations: u64) -> hdrhistogram::Histogram<u64> {
    let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for _ in 0..iterations / 10 {
        op(); // warm the mapping and caches
    }
    for _ in 0..iterations {
        let t = Instant::now();
        op();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    h
}

fn commit_latency(c: &mut Criterion) {
    let mut floor = RawFloor::new();
    let mut log = Fixture::new(64 << 20);
    // Interleave rounds so that drift in machine load hits all alike.
    let new = || hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let (mut floor_h, mut floor2_h, mut log_h) = (new(), new(), new());
    for _ in 0..20 {
        floor_h
            .add(percentiles(|| floor.store_flush_fence(64), 25_000))
            .unwrap();
        floor2_h
            .add(percentiles(|| floor.store_flush_fence(128), 25_000))
            .unwrap();
        log_h.add(percentiles(|| log.append_one(), 25_000)).unwrap();
    }
    let q = |h: &hdrhistogram::Histogram<u64>, p: f64| h.value_at_quantile(p);
    println!("commit latency per operation (ns, includes ~20 ns of clock reads in each):");
    for (name, h) in [
        ("raw 64 B store+flush+fence (floor)", &floor_h),
        ("raw 128 B store+2 flushes+fence", &floor2_h),
        ("log append 64 B payload (1 fence)", &log_h),
    ] {
        println!(
            "  {name:<36} p50 {:>6}  p99 {:>6}  p99.9 {:>6}",
            q(h, 0.5),
            q(h, 0.99),
            q(h, 0.999)
        );
    }
    println!(
        "  ratio log/floor p50 {:.2}x p99 {:.2}x; log/two-line floor p50 {:.2}x",
        q(&log_h, 0.5) as f64 / q(&floor_h, 0.5) as f64,
        q(&log_h, 0.99) as f64 / q(&floor_h, 0.99) as f64,
        q(&log_h, 0.5) as f64 / q(&floor2_h, 0.5) as f64
    );

    let mut group = c.benchmark_group("commit_latency");
    group.bench_function("raw_store_flush_fence_64B", |b| {
        b.iter(|| floor.store_flush_fence(64))
    });
    group.bench_function("raw_store_flush_fence_128B", |b| {
        b.iter(|| floor.store_flush_fence(128))
    });
    group.bench_function("log_append_64B", |b| b.iter(|| log.append_one()));
    group.finish();
}

fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_commit_64B");
    for batch_size in [1u64, 16, 256] {
        let mut f = Fixture::new(64 << 20);
        group.throughput(Throughput::Elements(batch_size));
        group.bench_with_input(
            BenchmarkId::from_parameter(batch_size),
            &batch_size,
            |b, &n| {
                b.iter(|| {
                    let mut batch = f.log.batch();
                    for i in 0..n {
                        batch.push(&event(i)).unwrap();
                    }
                    black_box(batch.commit().unwrap());
                    for _ in 0..n {
                        f.maybe_release();
                    }
                })
            },
        );
    }
    group.finish();
}

fn recovery_scan(c: &mut Criterion) {
    let gib: u64 = std::env::var("HERALD_BENCH_SCAN_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let region_bytes = gib << 30;
    let mut f = Fixture::new(region_bytes);
    // Fill the ring with live (unreleased) 64-byte events, as a crash with a stuck
    // subscriber would leave it: the scanner must verify every one.
    let started = Instant::now();
    loop {
        let mut batch = f.log.batch();
        let mut full = false;
        for i in 0..256 {
            if batch.push(&event(i)).is_err() {
                full = true;
                break;
            }
        }
        batch.commit().unwrap();
        if full {
            break;
        }
    }
    let g = *f.log.geometry();
    println!(
        "recovery scan: filled {} slots in {:.1} s",
        f.log.used_slots(),
        started.elapsed().as_secs_f64()
    );
    let bytes = f.log.medium().bytes();
    let scanned = g.ring.slot_count * g.ring.slot_bytes;
    let t = Instant::now();
    let analysis = herald::log::analyze(bytes, &mut |_, _| {}).unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "recovery scan: {} live events, {:.2} GiB of ring in {:.3} s = {:.2} GB/s",
        analysis.report.live_events,
        scanned as f64 / (1u64 << 30) as f64,
        secs,
        scanned as f64 / secs / 1e9
    );
    let mut group = c.benchmark_group("recovery_scan");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(scanned));
    group.bench_function(format!("{gib}GiB_full_ring_64B_events"), |b| {
        b.iter(|| {
            black_box(
                herald::log::analyze(bytes, &mut |_, _| {})
                    .unwrap()
                    .report
                    .live_events,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, commit_latency, group_commit, recovery_scan);
criterion_main!(benches);
