//! A simulated file on a disk, synced by `fdatasync`: the [`Medium`] of the disk-mode
//! simulation.
//!
//! It models what herald assumes of a file in the page cache of an ordinary disk:
//! - the page cache may write any dirty page back at any time, in any order, and a
//!   page is written whole (a power cut leaves each page as it was at some moment,
//!   never a mix of two moments);
//! - a sync makes durable every page as it was when the sync began; a page written
//!   again after that stays uncertain until a later sync;
//! - a fence ([`Medium::fence`]: a sync run to its end) makes everything durable.
//!
//! A crash image starts from the durable pages and lets every uncertain page
//! independently keep its durable content or take one of the newer ones it had.

use super::{Durability, Medium, SyncRequest};
use rand::Rng;
use std::collections::BTreeMap;

/// Bytes of one page.
pub const PAGE_BYTES: usize = 4096;

/// The simulated disk file.
#[derive(Clone, Debug)]
pub struct SimDisk {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Pages written since the last sync began (their live content is newer).
    dirty: BTreeMap<usize, ()>,
    /// The sync under way: the pages it covers, as they were when it began.
    syncing: Option<BTreeMap<usize, Vec<u8>>>,
    syncs: u64,
}

impl SimDisk {
    /// A zeroed file of `len_bytes` (rounded up to whole pages).
    pub fn new(len_bytes: usize) -> SimDisk {
        SimDisk::from_image(vec![0; len_bytes.div_ceil(PAGE_BYTES) * PAGE_BYTES])
    }

    /// A file that starts as `image`, all of it durable.
    pub fn from_image(image: Vec<u8>) -> SimDisk {
        assert!(
            image.len().is_multiple_of(PAGE_BYTES),
            "image length must be whole pages"
        );
        SimDisk {
            durable: image.clone(),
            live: image,
            dirty: BTreeMap::new(),
            syncing: None,
            syncs: 0,
        }
    }

    /// Pages a power cut now would leave to chance.
    pub fn uncertain_pages(&self) -> usize {
        self.dirty.len() + self.syncing.as_ref().map_or(0, BTreeMap::len)
    }

    /// Syncs completed so far.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// What a power cut now could leave: each uncertain page keeps its durable
    /// content, or (each with `keep_probability`) the content it had when the sync
    /// under way began, or its current content.
    pub fn crash_image<R: Rng>(&self, rng: &mut R, keep_probability: f64) -> Vec<u8> {
        let mut image = self.durable.clone();
        if let Some(syncing) = &self.syncing {
            for (&page, content) in syncing {
                if rng.gen_bool(keep_probability) {
                    image[page * PAGE_BYTES..(page + 1) * PAGE_BYTES].copy_from_slice(content);
                }
            }
        }
        for &page in self.dirty.keys() {
            if rng.gen_bool(keep_probability) {
                let range = page * PAGE_BYTES..(page + 1) * PAGE_BYTES;
                image[range.clone()].copy_from_slice(&self.live[range]);
            }
        }
        image
    }

    /// The image if every uncertain page is lost (only what was synced survives).
    pub fn durable_image(&self) -> Vec<u8> {
        self.durable.clone()
    }
}

impl Medium for SimDisk {
    fn bytes(&self) -> &[u8] {
        &self.live
    }

    fn write(&mut self, offset: usize, data: &[u8]) {
        self.live[offset..offset + data.len()].copy_from_slice(data);
        if data.is_empty() {
            return;
        }
        for page in offset / PAGE_BYTES..=(offset + data.len() - 1) / PAGE_BYTES {
            self.dirty.insert(page, ());
        }
    }

    fn flush(&mut self, _offset: usize, _len: usize) {}

    fn fence(&mut self) -> std::io::Result<()> {
        self.durable.copy_from_slice(&self.live);
        self.dirty.clear();
        // The sync under way covers nothing more than what is durable now.
        if let Some(syncing) = &mut self.syncing {
            syncing.clear();
        }
        Ok(())
    }

    fn durability(&self) -> Durability {
        Durability::Disk
    }

    fn deferred(&self) -> bool {
        true
    }

    fn order(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn begin_sync(&mut self) -> SyncRequest {
        let pages = std::mem::take(&mut self.dirty)
            .into_keys()
            .map(|page| {
                (
                    page,
                    self.live[page * PAGE_BYTES..(page + 1) * PAGE_BYTES].to_vec(),
                )
            })
            .collect();
        self.syncing = Some(pages);
        SyncRequest { fd: None }
    }

    fn end_sync(&mut self, result: std::io::Result<()>) -> std::io::Result<()> {
        result?;
        if let Some(pages) = self.syncing.take() {
            for (page, content) in pages {
                self.durable[page * PAGE_BYTES..(page + 1) * PAGE_BYTES].copy_from_slice(&content);
            }
        }
        self.syncs += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_sync_covers_the_pages_as_they_were_when_it_began() {
        let mut d = SimDisk::new(4 * PAGE_BYTES);
        d.write(10, b"first");
        d.order().unwrap();
        d.begin_sync();
        // Written while the sync is under way: not covered by it.
        d.write(PAGE_BYTES + 3, b"later");
        d.write(12, b"XX");
        d.end_sync(Ok(())).unwrap();
        let durable = d.durable_image();
        assert_eq!(&durable[10..15], b"first", "as it was when the sync began");
        assert_eq!(&durable[PAGE_BYTES + 3..PAGE_BYTES + 8], &[0u8; 5]);
        assert_eq!(d.uncertain_pages(), 2);
        d.fence().unwrap();
        assert_eq!(d.uncertain_pages(), 0);
        assert_eq!(&d.durable_image()[10..15], b"fiXXt");
    }

    #[test]
    fn a_crash_image_is_made_of_whole_pages_of_some_moment() {
        let mut d = SimDisk::new(8 * PAGE_BYTES);
        for page in 0..8 {
            d.write(page * PAGE_BYTES, &[page as u8 + 1; PAGE_BYTES]);
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut seen_old = false;
        let mut seen_new = false;
        for _ in 0..50 {
            let image = d.crash_image(&mut rng, 0.5);
            for page in 0..8 {
                let p = &image[page * PAGE_BYTES..(page + 1) * PAGE_BYTES];
                let whole_old = p.iter().all(|&b| b == 0);
                let whole_new = p.iter().all(|&b| b == page as u8 + 1);
                assert!(whole_old || whole_new, "page {page} is a mix");
                seen_old |= whole_old;
                seen_new |= whole_new;
            }
        }
        assert!(seen_old && seen_new);
    }
}
