//! The floors under every row: a bare Unix-socket echo (what any request/reply over a
//! Unix socket pays here), a raw store + cache-line flush + fence on an emulated-pmem
//! file through `herald::pmem` (what any durable store on this medium pays), and one
//! `fdatasync` after writing a record into a preallocated file (what anything that
//! survives a power cut on this disk pays). None is a system anyone would deploy; they
//! show how much of each row is the machine.

use super::workload::{
    Consumer, Peer, Plan, Producer, Workload, BATCH_EVENTS, PRODUCERS, STAMP_BYTES,
};
use herald::measure::EchoServer;
use herald::pmem::{FileSync, MappedRegion, Medium, RegionOptions, CACHE_LINE_BYTES};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Echo servers on Unix sockets in a throwaway directory, one per workload.
pub struct EchoPeer {
    dir: tempfile::TempDir,
    server: Option<EchoServer>,
}

impl EchoPeer {
    /// A directory for the sockets under `scratch`.
    pub fn new(scratch: &Path) -> anyhow::Result<EchoPeer> {
        let dir = tempfile::Builder::new()
            .prefix("echo-")
            .tempdir_in(scratch)?;
        Ok(EchoPeer { dir, server: None })
    }
}

impl Peer for EchoPeer {
    fn prepare(&mut self, w: &Workload) -> anyhow::Result<()> {
        let path = self.dir.path().join(format!("{}.sock", w.name('-')));
        self.server = Some(EchoServer::start(path, w.payload_bytes)?);
        Ok(())
    }

    fn producer(&mut self, _w: &Workload, _index: usize) -> anyhow::Result<Box<dyn Producer>> {
        let server = self.server.as_ref().expect("prepared");
        Ok(Box::new(EchoProducer {
            stream: UnixStream::connect(&server.path)?,
            buffer: Vec::new(),
        }))
    }

    fn consumer(&mut self, _w: &Workload) -> anyhow::Result<Option<Box<dyn Consumer>>> {
        Ok(None) // a round trip, not a delivery to someone else
    }

    fn stored(&mut self, _w: &Workload) -> anyhow::Result<Option<u64>> {
        Ok(None)
    }

    fn delivered_confirmed(
        &mut self,
        _w: &Workload,
        _published: u64,
    ) -> anyhow::Result<Option<u64>> {
        // Messages the server returned (its own count): the echo's "delivered".
        let server = self.server.as_ref().expect("prepared");
        Ok(Some(server.echoed_messages()))
    }

    fn finish(&mut self, _w: &Workload) -> anyhow::Result<()> {
        self.server = None;
        Ok(())
    }
}

struct EchoProducer {
    stream: UnixStream,
    buffer: Vec<u8>,
}

impl Producer for EchoProducer {
    fn publish(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(payload)?;
        self.buffer.resize(payload.len(), 0);
        self.stream.read_exact(&mut self.buffer)?;
        anyhow::ensure!(self.buffer == payload, "the echo returned other bytes");
        Ok(())
    }

    fn publish_many(&mut self, payloads: &[Vec<u8>]) -> anyhow::Result<()> {
        // Pipelined: every message written in one go while the echoes are read (a
        // writer thread: written first and read after, a window larger than the
        // socket buffers would block both ends).
        let all = payloads.concat();
        let mut writer = self.stream.try_clone()?;
        self.buffer.resize(all.len(), 0);
        let (buffer, stream) = (&mut self.buffer, &mut self.stream);
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let written = scope.spawn(|| writer.write_all(&all));
            stream.read_exact(buffer)?;
            written.join().expect("echo writer thread")?;
            Ok(())
        })?;
        anyhow::ensure!(self.buffer == all, "the echo returned other bytes");
        Ok(())
    }
}

/// Raw records on emulated-pmem files: each producer stores into its own file, flushes
/// the record's cache lines and fences (once per record, or once per batch).
///
/// As the fdatasync floor ([`RawFlushPeer::fdatasync`]) each flush is followed by an
/// `fdatasync` of the file, on the medium herald's disk mode uses: a region file
/// created as `--sync disk` creates one (written with zeros and synced, so that a sync
/// writes back data pages only, never converts extents), mapped privately, its stores
/// written to the file with `pwrite` when ordered. A 64-byte record dirties one
/// 4 KiB page; a 1 KiB one, one or two. `tools/sync_primitives.rs` compares this with
/// `msync`, `sync_file_range`, `O_DSYNC` and `pwrite` + `fdatasync`.
pub struct RawFlushPeer {
    plan: Plan,
    dir: tempfile::TempDir,
    fdatasync: bool,
}

impl RawFlushPeer {
    /// The store + flush + fence floor, its files under `scratch`.
    pub fn new(scratch: &Path, plan: Plan) -> anyhow::Result<RawFlushPeer> {
        Self::with(scratch, plan, false)
    }

    /// The store + flush + fdatasync floor, its files under `scratch`.
    pub fn fdatasync(scratch: &Path, plan: Plan) -> anyhow::Result<RawFlushPeer> {
        Self::with(scratch, plan, true)
    }

    fn with(scratch: &Path, plan: Plan, fdatasync: bool) -> anyhow::Result<RawFlushPeer> {
        let prefix = if fdatasync {
            "fdatasync-"
        } else {
            "raw-flush-"
        };
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(scratch)?;
        Ok(RawFlushPeer {
            plan,
            dir,
            fdatasync,
        })
    }

    fn file(&self, w: &Workload, index: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}-{index}.pmem", w.name('-')))
    }

    fn files(&self, w: &Workload) -> impl Iterator<Item = PathBuf> + '_ {
        let w = *w;
        (0..PRODUCERS)
            .map(move |i| self.file(&w, i))
            .filter(|p| p.exists())
    }
}

/// Smallest file the raw floor creates (herald's regions are at least 64 KiB too).
const REGION_BYTES_MIN: usize = 1 << 20;

/// A record's place in the file: whole cache lines, as a log slot would be.
fn record_stride(payload_bytes: usize) -> usize {
    payload_bytes.div_ceil(CACHE_LINE_BYTES) * CACHE_LINE_BYTES
}

/// Records at the start of `bytes`, one per `stride`: a record is there if its filler
/// is (the files start as zeros).
fn records_in(bytes: &[u8], stride: usize, payload_bytes: usize) -> u64 {
    bytes
        .chunks_exact(stride)
        .take_while(|r| r[STAMP_BYTES..payload_bytes].iter().all(|&b| b == 0x5a))
        .count() as u64
}

/// Records a workload's producer writes, so that its file is allocated up front.
fn events_per_producer(plan: &Plan, w: &Workload) -> u64 {
    match w.kind {
        super::workload::Kind::Throughput => plan.throughput_events_per_producer(w.payload_bytes),
        _ => plan.latency_events * 2,
    }
}

impl Peer for RawFlushPeer {
    fn prepare(&mut self, _w: &Workload) -> anyhow::Result<()> {
        Ok(()) // each producer creates its file
    }

    fn producer(&mut self, w: &Workload, index: usize) -> anyhow::Result<Box<dyn Producer>> {
        let events = events_per_producer(&self.plan, w);
        let stride = record_stride(w.payload_bytes);
        let bytes = (events as usize * stride).max(REGION_BYTES_MIN);
        let options = RegionOptions {
            file_sync: if self.fdatasync {
                FileSync::Disk
            } else {
                FileSync::CacheFlush
            },
            ..Default::default()
        };
        let region = MappedRegion::create(&self.file(w, index), bytes as u64, &options)?;
        let raw = RawFlushProducer {
            region,
            stride,
            offset: 0,
        };
        Ok(if self.fdatasync {
            Box::new(FdatasyncProducer(raw))
        } else {
            Box::new(raw)
        })
    }

    fn consumer(&mut self, _w: &Workload) -> anyhow::Result<Option<Box<dyn Consumer>>> {
        Ok(None)
    }

    fn stored(&mut self, w: &Workload) -> anyhow::Result<Option<u64>> {
        // Read the files back: a record is there if its filler is (the files start
        // as zeros).
        let stride = record_stride(w.payload_bytes);
        let mut records = 0;
        for path in self.files(w) {
            let options = RegionOptions {
                read_only: true,
                ..Default::default()
            };
            let region = MappedRegion::open(&path, &options)?;
            records += records_in(region.bytes(), stride, w.payload_bytes);
        }
        Ok(Some(records))
    }

    fn delivered_confirmed(
        &mut self,
        _w: &Workload,
        _published: u64,
    ) -> anyhow::Result<Option<u64>> {
        Ok(None)
    }

    fn finish(&mut self, w: &Workload) -> anyhow::Result<()> {
        for path in self.files(w).collect::<Vec<_>>() {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }
}

struct RawFlushProducer {
    region: MappedRegion,
    stride: usize,
    offset: usize,
}

impl RawFlushProducer {
    fn store(&mut self, payload: &[u8]) -> anyhow::Result<usize> {
        let at = self.offset;
        anyhow::ensure!(
            at + self.stride <= self.region.bytes().len(),
            "raw floor: file full"
        );
        self.region.write(at, payload);
        self.offset += self.stride;
        Ok(at)
    }
}

impl Producer for RawFlushProducer {
    fn publish(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        let at = self.store(payload)?;
        self.region.flush(at, payload.len());
        self.region.fence()?;
        Ok(())
    }

    fn publish_many(&mut self, payloads: &[Vec<u8>]) -> anyhow::Result<()> {
        // Group commits: store and flush a batch's records, one fence per batch.
        for batch in payloads.chunks(BATCH_EVENTS) {
            let start = self.offset;
            for p in batch {
                self.store(p)?;
            }
            self.region.flush(start, self.offset - start);
            self.region.fence()?;
        }
        Ok(())
    }
}

/// The raw floor's stores, each flush followed by an `fdatasync` of the file.
struct FdatasyncProducer(RawFlushProducer);

impl FdatasyncProducer {
    fn sync(&mut self) -> anyhow::Result<()> {
        // As herald's log does: order (the medium writes the stores to the file),
        // then sync what the file holds.
        self.0.region.order()?;
        let fd = self
            .0
            .region
            .begin_sync()
            .fd
            .ok_or_else(|| anyhow::anyhow!("fdatasync floor: the region has no file"))?;
        // SAFETY: a plain syscall on the region's own open descriptor.
        if unsafe { libc::fdatasync(fd) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }
}

impl Producer for FdatasyncProducer {
    fn publish(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        let at = self.0.store(payload)?;
        self.0.region.flush(at, payload.len());
        self.sync()
    }

    fn publish_many(&mut self, payloads: &[Vec<u8>]) -> anyhow::Result<()> {
        for batch in payloads.chunks(BATCH_EVENTS) {
            let start = self.0.offset;
            for p in batch {
                self.0.store(p)?;
            }
            self.0.region.flush(start, self.0.offset - start);
            self.sync()?;
        }
        Ok(())
    }
}
