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
mod sysfs;

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
    /// Every fence ends in `msync(MS_SYNC)` of the dirty range of an ordinary file:
    /// commits survive a power cut, at the cost of a disk flush per group commit.
    Disk,
}

impl Durability {
    /// One line an operator can read at start-up.
    pub fn describe(self) -> &'static str {
        match self {
            Durability::PowerCut => "commits survive power loss (persistent memory)",
            Durability::ProcessCrash => {
                "commits survive a process crash, NOT a power cut or kernel crash (emulated pmem; use --sync msync for disk durability)"
            }
            Durability::Disk => "commits survive power loss (msync to disk per group commit)",
        }
    }
}

/// The fault-injection seam: everything the log does to persistent bytes goes through it.
///
/// Ordering contract: bytes written with [`Medium::write`] are durable only after a
/// [`Medium::flush`] covering them *and* a later [`Medium::fence`] that returned `Ok`.
/// Until then a power cut may keep or lose each 8-byte word independently.
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
}
