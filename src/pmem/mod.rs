//! Persistent-memory regions: mapping, flush and fence primitives, backend detection.
//!
//! Everything above this module sees a region through one seam, [`Medium`]: read the
//! bytes, store bytes, flush a range, fence. Production uses [`MappedRegion`] (a real
//! mapping of a device-DAX node, a DAX file or an ordinary file); tests use
//! [`sim::SimMedium`], which keeps a live and a durable copy and can produce the image
//! that a power cut at any moment would leave.

mod flush;
mod region;
pub mod sim;
pub mod sim_disk;
mod sysfs;
mod unwritten;

pub use flush::{store_fence, FlushInstruction, CACHE_LINE_BYTES};
pub use region::{FileSync, MappedRegion, RegionError, RegionInfo, RegionKind, RegionOptions};
pub use sysfs::{device_dax_geometry, DeviceDaxGeometry};

/// What a completed fence guarantees on this region.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Flushed and fenced lines are in the persistence domain: they survive a power cut
    /// (device-DAX, or a DAX file mapped `MAP_SYNC`).
    PowerCut,
    /// Flushed lines reach the page cache of an ordinary file: they survive a crash or
    /// kill of the process, but not a power cut or kernel crash ("emulated pmem").
    ProcessCrash,
    /// An ordinary file whose commits are synced to disk (`fdatasync`) before they are
    /// acknowledged: they survive a power cut. The sync of a group commit runs while
    /// the next group accumulates; producers are answered when it completes.
    Disk,
}

impl Durability {
    /// One line an operator can read at start-up.
    pub fn describe(self) -> &'static str {
        match self {
            Durability::PowerCut => "commits survive power loss (persistent memory)",
            Durability::ProcessCrash => {
                "commits survive a process crash, NOT a power cut or kernel crash (emulated pmem; use --sync disk for power-cut durability on an ordinary disk)"
            }
            Durability::Disk => {
                "commits survive power loss (each group commit is synced to disk, fdatasync, before stored)"
            }
        }
    }
}

/// What to sync, for a medium whose durability comes from a sync
/// ([`Medium::deferred`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    /// The file to `fdatasync` (None for a simulated medium, which the simulated
    /// reactor syncs by completing the request).
    pub fd: Option<std::os::fd::RawFd>,
}

/// The fault-injection seam: everything the log does to persistent bytes goes through it.
///
/// Ordering contract: bytes written with [`Medium::write`] are durable only after a
/// [`Medium::flush`] covering them *and* a later [`Medium::fence`] that returned `Ok`.
/// Until then a power cut may keep or lose each 8-byte word independently.
///
/// A **deferred** medium (a file synced to disk) also offers a cheaper path: after
/// [`Medium::order`], writes are durable once a sync begun later
/// ([`Medium::begin_sync`]) has ended ([`Medium::end_sync`] with `Ok`); the caller runs
/// the sync asynchronously and goes on meanwhile. Until then a power cut may keep or
/// lose each unsynced page.
pub trait Medium {
    /// The whole region, as currently visible to this process.
    fn bytes(&self) -> &[u8];
    /// Stores `data` at `offset`. Panics if the range is outside the region: callers
    /// compute offsets from validated geometry, so an out-of-range store is a bug.
    fn write(&mut self, offset: usize, data: &[u8]);
    /// Starts write-back of the cache lines covering `offset..offset + len`.
    fn flush(&mut self, offset: usize, len: usize);
    /// Makes every earlier flush durable. An error means durability of earlier
    /// flushes is unknown; the caller must stop writing (see [`MappedRegion`]).
    fn fence(&mut self) -> std::io::Result<()>;
    /// What a completed fence guarantees.
    fn durability(&self) -> Durability;

    /// Whether durability comes from a sync the caller may run asynchronously
    /// ([`Medium::order`], [`Medium::begin_sync`], [`Medium::end_sync`]).
    fn deferred(&self) -> bool {
        false
    }

    /// Orders earlier flushes before later stores without waiting for durability. On a
    /// medium that is not deferred it is [`Medium::fence`].
    fn order(&mut self) -> std::io::Result<()> {
        self.fence()
    }

    /// Begins a sync of everything written so far (deferred media; one at a time).
    fn begin_sync(&mut self) -> SyncRequest {
        SyncRequest { fd: None }
    }

    /// The sync begun last ended with `result`: on `Ok`, everything written before it
    /// began is durable. An error fails the medium, as a failed fence does.
    fn end_sync(&mut self, result: std::io::Result<()>) -> std::io::Result<()> {
        result
    }
}
