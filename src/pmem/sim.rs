//! A crash-simulating [`Medium`] for power-cut tests.
//!
//! It models what herald assumes of real persistent memory:
//! - an aligned 8-byte store is atomic: a power cut leaves the old or the new word,
//!   never a mix;
//! - a line that was flushed and then fenced is durable;
//! - any other stored word may or may not have reached the medium, independently of
//!   every other word (the cache may evict any line at any time, in any order).
//!
//! State: `live` (what the CPU sees), `durable` (what certainly survives), `pending`
//! (words flushed but not yet fenced, with the value they had when flushed) and
//! `dirty` (words stored since their last flush). A crash image starts from `durable`
//! and lets each pending or dirty word independently take one of its possible values.
//!
//! To crash *inside* an operation, a test records the operation trace
//! ([`SimMedium::start_recording`]), then replays it onto a copy of the state taken
//! before the operation, stopping at any point ([`SimState::apply`]).

use super::{Durability, Medium};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};

const WORD_BYTES: usize = 8;

/// One recorded operation on the simulated medium.
#[derive(Clone, Debug)]
pub enum SimOp {
    /// A store of `bytes` at `offset`.
    Store {
        /// Byte offset.
        offset: usize,
        /// The bytes stored.
        bytes: Vec<u8>,
    },
    /// A flush of `offset..offset + len`.
    Flush {
        /// Byte offset.
        offset: usize,
        /// Length in bytes.
        len: usize,
    },
    /// A store fence.
    Fence,
}

/// The full simulated persistence state; cheap enough to clone for small regions.
#[derive(Clone, Debug)]
pub struct SimState {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Flushed, not yet fenced: word index -> value at flush time.
    pending: BTreeMap<usize, u64>,
    /// Stored since last flush of that word.
    dirty: BTreeSet<usize>,
}

impl SimState {
    /// A state whose live and durable copies are both `image`.
    pub fn from_image(image: Vec<u8>) -> SimState {
        assert!(
            image.len().is_multiple_of(WORD_BYTES),
            "image length must be whole words"
        );
        SimState {
            durable: image.clone(),
            live: image,
            pending: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// What the CPU currently sees.
    pub fn live(&self) -> &[u8] {
        &self.live
    }

    /// Applies one recorded operation.
    pub fn apply(&mut self, op: &SimOp) {
        match op {
            SimOp::Store { offset, bytes } => self.store(*offset, bytes),
            SimOp::Flush { offset, len } => self.flush(*offset, *len),
            SimOp::Fence => self.fence(),
        }
    }

    fn store(&mut self, offset: usize, bytes: &[u8]) {
        self.live[offset..offset + bytes.len()].copy_from_slice(bytes);
        if bytes.is_empty() {
            return;
        }
        let first = offset / WORD_BYTES;
        let last = (offset + bytes.len() - 1) / WORD_BYTES;
        self.dirty.extend(first..=last);
    }

    fn flush(&mut self, offset: usize, len: usize) {
        if len == 0 {
            return;
        }
        // Flushes act on whole cache lines.
        let line = super::CACHE_LINE_BYTES;
        let start = (offset / line * line) / WORD_BYTES;
        let end = (offset + len).div_ceil(line) * line / WORD_BYTES;
        let words: Vec<usize> = self.dirty.range(start..end).copied().collect();
        for w in words {
            self.dirty.remove(&w);
            self.pending.insert(w, self.word(&self.live, w));
        }
    }

    fn fence(&mut self) {
        for (w, v) in std::mem::take(&mut self.pending) {
            self.durable[w * WORD_BYTES..(w + 1) * WORD_BYTES].copy_from_slice(&v.to_le_bytes());
        }
    }

    fn word(&self, bytes: &[u8], w: usize) -> u64 {
        u64::from_le_bytes(
            bytes[w * WORD_BYTES..(w + 1) * WORD_BYTES]
                .try_into()
                .expect("word slice is 8 bytes"),
        )
    }

    /// Number of words whose durability a crash now would leave to chance.
    pub fn uncertain_words(&self) -> usize {
        self.pending.len() + self.dirty.len()
    }

    /// The image a power cut now could leave: each uncertain word independently keeps
    /// its durable value or takes a newer one. `keep_probability` is the chance that a
    /// newer value survives.
    pub fn crash_image<R: Rng>(&self, rng: &mut R, keep_probability: f64) -> Vec<u8> {
        let mut image = self.durable.clone();
        for (&w, &v) in &self.pending {
            if rng.gen_bool(keep_probability) {
                image[w * WORD_BYTES..(w + 1) * WORD_BYTES].copy_from_slice(&v.to_le_bytes());
            }
        }
        for &w in &self.dirty {
            if rng.gen_bool(keep_probability) {
                let range = w * WORD_BYTES..(w + 1) * WORD_BYTES;
                image[range.clone()].copy_from_slice(&self.live[range]);
            }
        }
        image
    }

    /// The image if every uncertain word is lost (only fenced data survives).
    pub fn durable_image(&self) -> Vec<u8> {
        self.durable.clone()
    }
}

/// A [`Medium`] backed by a [`SimState`], optionally recording its operations.
#[derive(Clone, Debug)]
pub struct SimMedium {
    state: SimState,
    recording: Option<Vec<SimOp>>,
    fence_count: u64,
}

impl SimMedium {
    /// A zeroed medium of `len_bytes` (rounded up to whole words).
    pub fn new(len_bytes: usize) -> SimMedium {
        Self::from_image(vec![0; len_bytes.div_ceil(WORD_BYTES) * WORD_BYTES])
    }

    /// A medium that starts from a recovered image (live == durable == image).
    pub fn from_image(image: Vec<u8>) -> SimMedium {
        SimMedium {
            state: SimState::from_image(image),
            recording: None,
            fence_count: 0,
        }
    }

    /// The current state (clone it to branch a crash exploration).
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Starts recording every operation from now on.
    pub fn start_recording(&mut self) {
        self.recording = Some(Vec::new());
    }

    /// Stops recording and returns the operations recorded since `start_recording`.
    pub fn take_recording(&mut self) -> Vec<SimOp> {
        self.recording.take().unwrap_or_default()
    }

    /// Fences completed so far.
    pub fn fence_count(&self) -> u64 {
        self.fence_count
    }

    fn record(&mut self, op: SimOp) {
        if let Some(ops) = &mut self.recording {
            ops.push(op);
        }
    }
}

impl Medium for SimMedium {
    fn bytes(&self) -> &[u8] {
        &self.state.live
    }

    fn write(&mut self, offset: usize, data: &[u8]) {
        self.state.store(offset, data);
        if self.recording.is_some() {
            self.record(SimOp::Store {
                offset,
                bytes: data.to_vec(),
            });
        }
    }

    fn flush(&mut self, offset: usize, len: usize) {
        self.state.flush(offset, len);
        self.record(SimOp::Flush { offset, len });
    }

    fn fence(&mut self) -> std::io::Result<()> {
        self.state.fence();
        self.fence_count += 1;
        self.record(SimOp::Fence);
        Ok(())
    }

    fn durability(&self) -> Durability {
        Durability::PowerCut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn only_flushed_and_fenced_words_are_certain_to_survive() {
        let mut m = SimMedium::new(256);
        m.write(0, &[1u8; 16]); // words 0,1: stored, never flushed
        m.write(64, &[2u8; 8]); // word 8: flushed, not fenced
        m.flush(64, 8);
        assert_eq!(
            &m.state().durable_image()[64..72],
            &[0u8; 8],
            "flushed, not fenced"
        );
        m.write(128, &[3u8; 8]); // word 16: flushed and fenced, with word 8
        m.flush(128, 8);
        m.fence().unwrap();
        let durable = m.state().durable_image();
        assert_eq!(&durable[128..136], &[3u8; 8]);
        assert_eq!(&durable[64..72], &[2u8; 8]);
        assert_eq!(&durable[0..16], &[0u8; 16], "never flushed");
        assert_eq!(m.state().uncertain_words(), 2);
    }

    #[test]
    fn crash_images_choose_each_uncertain_word_independently() {
        let mut m = SimMedium::new(64);
        m.write(0, &[7u8; 64]);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut seen_mixed = false;
        for _ in 0..64 {
            let img = m.state().crash_image(&mut rng, 0.5);
            for w in img.chunks(8) {
                assert!(w == [0u8; 8] || w == [7u8; 8], "a word was torn: {w:?}");
            }
            seen_mixed |= img.chunks(8).any(|w| w[0] == 0) && img.chunks(8).any(|w| w[0] == 7);
        }
        assert!(seen_mixed);
    }

    #[test]
    fn a_store_after_flush_needs_its_own_flush() {
        let mut m = SimMedium::new(64);
        m.write(0, &[1u8; 8]);
        m.flush(0, 8);
        m.write(0, &[2u8; 8]);
        m.fence().unwrap();
        assert_eq!(&m.state().durable_image()[0..8], &[1u8; 8]);
        assert_eq!(m.state().uncertain_words(), 1);
    }

    #[test]
    fn replaying_a_recording_reproduces_the_state() {
        let mut m = SimMedium::new(128);
        let before = m.state().clone();
        m.start_recording();
        m.write(8, b"abcdefgh");
        m.flush(0, 64);
        m.fence().unwrap();
        m.write(70, b"xy");
        let ops = m.take_recording();
        let mut replay = before;
        for op in &ops {
            replay.apply(op);
        }
        assert_eq!(replay.live(), m.state().live());
        assert_eq!(replay.durable_image(), m.state().durable_image());
    }
}
