//! What a region synced to disk has stored and not yet written to its file. Such a
//! region is mapped privately (stores through a shared mapping of an ext4 file made
//! each sync ~16x dearer than the same bytes written with `pwrite`: README, "Measured
//! figures"); its stores are noted here as they happen and written to the file with
//! `pwrite` when they are ordered, before the sync that makes them durable.

use std::fs::File;
use std::ptr::NonNull;

/// How many separate ranges a region synced to disk remembers before it writes them
/// out early: a group commit's records are one range (two across the ring's end), and
/// each cursor, dead letter and superblock word one more.
pub(super) const UNWRITTEN_RANGES: usize = 32;

/// Ranges of a privately mapped region stored but not yet written to its file: a fixed
/// array, so the store path allocates nothing.
#[derive(Default)]
pub(super) struct Unwritten {
    ranges: [(usize, usize); UNWRITTEN_RANGES],
    len: usize,
    /// Bytes of the pages stored to since the private copies were last dropped.
    private_bytes: usize,
}

/// Ranges of a region synced to disk this close are written out as one: a slot's
/// unused tail lies between two records, and one larger `pwrite` costs less than two.
pub(super) const MERGE_GAP_BYTES: usize = 4096;

/// How much of a privately mapped region may be held as private copies (the process's
/// own memory, beside the file's pages) before they are dropped.
pub(super) const PRIVATE_BYTES_MAX: usize = 8 << 20;

impl Unwritten {
    /// Adds `start..end`; merged into the last range when they are less than
    /// [`MERGE_GAP_BYTES`] apart (a record's fields are stored one after the other, and
    /// a group's records in consecutive slots). False when the array is full.
    ///
    /// A merged range also writes the bytes between its parts again: they are what the
    /// file holds already, since every store to the mapping is noted here.
    pub(super) fn add(&mut self, start: usize, end: usize) -> bool {
        if let Some(last) = self.ranges[..self.len].last_mut() {
            if start <= last.1 + MERGE_GAP_BYTES && end + MERGE_GAP_BYTES >= last.0 {
                *last = (last.0.min(start), last.1.max(end));
                return true;
            }
        }
        if self.len == UNWRITTEN_RANGES {
            return false;
        }
        self.ranges[self.len] = (start, end);
        self.len += 1;
        true
    }

    /// Forgets every noted range (the region failed: nothing more reaches the file).
    pub(super) fn clear(&mut self) {
        self.len = 0;
    }

    /// Writes every noted range of the mapping at `ptr` (`len` bytes) to `file`, at
    /// the same offsets. Once the pages stored to since the last time reach
    /// [`PRIVATE_BYTES_MAX`], the mapping's private copies are dropped (they equal the
    /// file's pages, which later reads see), so the process never holds a second copy
    /// of the region; dropping them at every write-out would make every group commit
    /// pay a page copy and a TLB flush.
    ///
    /// # Safety
    /// `ptr` and `len` describe a live private mapping of `file`, every store to which
    /// was noted here.
    pub(super) unsafe fn write_out(
        &mut self,
        file: &File,
        ptr: NonNull<u8>,
        len: usize,
    ) -> Result<(), String> {
        use std::os::unix::fs::FileExt;
        let count = std::mem::take(&mut self.len);
        if count == 0 {
            return Ok(());
        }
        // SAFETY: the caller's contract: a live mapping of len bytes.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) };
        for &(start, end) in &self.ranges[..count] {
            file.write_all_at(&bytes[start..end], start as u64)
                .map_err(|e| format!("writing to the region file: {e}"))?;
        }
        let page = page_size();
        for &(start, end) in &self.ranges[..count] {
            self.private_bytes += end.div_ceil(page) * page - start / page * page;
        }
        if self.private_bytes >= PRIVATE_BYTES_MAX {
            self.private_bytes = 0;
            // SAFETY: the whole mapping is the caller's; every store to it has just
            // been written to the file, so discarding the private copies loses
            // nothing: the pages read back from the file with the same bytes.
            unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_DONTNEED) };
        }
        Ok(())
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pmem::{FileSync, MappedRegion, Medium, RegionOptions};
    use std::path::Path;

    fn disk_region(path: &Path) -> MappedRegion {
        let options = RegionOptions {
            file_sync: FileSync::Disk,
            ..Default::default()
        };
        MappedRegion::create(path, 1 << 20, &options).unwrap()
    }

    #[test]
    fn near_ranges_are_written_out_as_one() {
        let mut unwritten = Unwritten::default();
        assert!(unwritten.add(1000, 1100));
        assert!(unwritten.add(1000, 1008), "a field over the record");
        assert!(unwritten.add(1128, 1228), "the next slot");
        assert!(unwritten.add(900, 950), "just before");
        assert_eq!(unwritten.len, 1);
        assert_eq!(unwritten.ranges[0], (900, 1228));
        assert!(unwritten.add(1228 + MERGE_GAP_BYTES + 1, 1228 + MERGE_GAP_BYTES + 9));
        assert_eq!(unwritten.len, 2, "further away: a range of its own");
    }

    #[test]
    fn stores_are_read_back_at_once_and_reach_the_file_when_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.pmem");
        let mut region = disk_region(&path);
        // More separate ranges than the list holds, so some are written out early,
        // and each read back at once, before and after.
        let mut expected = vec![0u8; 1 << 20];
        for i in 0..(3 * UNWRITTEN_RANGES) {
            let at = 4096 + i * (2 * MERGE_GAP_BYTES + 200);
            let data = [i as u8 + 1; 100];
            region.write(at, &data);
            region.write(at + 100, &data[..7]);
            expected[at..at + 100].copy_from_slice(&data);
            expected[at + 100..at + 107].copy_from_slice(&data[..7]);
            assert!(region.bytes() == &expected[..], "after store {i}");
        }
        region.order().unwrap();
        assert!(region.bytes() == &expected[..], "after ordering");
        assert!(std::fs::read(&path).unwrap() == expected, "the file");
    }

    #[test]
    fn private_copies_are_dropped_without_losing_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.pmem");
        let len = 2 * PRIVATE_BYTES_MAX;
        let options = RegionOptions {
            file_sync: FileSync::Disk,
            ..Default::default()
        };
        let mut region = MappedRegion::create(&path, len as u64, &options).unwrap();
        let mut expected = vec![0u8; len];
        // Records of 1,000 bytes (so pages are shared between group commits), ordered
        // in groups of 10, past the point where the private copies are dropped.
        for i in 0..(len / 1000 - 1) {
            let at = i * 1000;
            let data = [(i % 251) as u8 + 1; 1000];
            region.write(at, &data);
            expected[at..at + 1000].copy_from_slice(&data);
            if i % 10 == 9 {
                region.order().unwrap();
            }
            assert!(region.bytes()[at..at + 1000] == data, "store {i} read back");
        }
        region.order().unwrap();
        assert!(region.bytes() == &expected[..], "after ordering");
        assert!(std::fs::read(&path).unwrap() == expected, "the file");
    }
}
