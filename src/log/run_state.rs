//! The run-state word: did the previous run stop cleanly?
//!
//! One aligned 8-byte word in the superblock page, outside every checksummed structure
//! (`RUN_STATE_OFFSET`), so that it changes with a single atomic store:
//! - `format` leaves it `CLEAN`;
//! - a writable `Log::open` reads it (that is the report's `previous_stop`) and stores
//!   `RUNNING` in the same fence as its repairs;
//! - `Log::close_clean` stores `CLEAN` after everything else is durable.
//!
//! Any other value (zero in regions formatted before the word existed, or damage) reads
//! as `Unknown`, which callers treat like an unclean stop.

use super::layout::{RUN_STATE_CLEAN, RUN_STATE_OFFSET, RUN_STATE_RUNNING};
use crate::pmem::Medium;

/// How the previous run on a region ended, as its run-state word tells.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviousStop {
    /// `close_clean` completed (or the region was just formatted).
    Clean,
    /// A writable open marked the region running and no `close_clean` followed: a
    /// crash, a kill, or a daemon still running (when read by `analyze`).
    Unclean,
    /// The word was never written (a region from before the word existed) or holds
    /// something else. Treat it like `Unclean`.
    #[default]
    Unknown,
}

/// Reads the run-state word.
pub fn read(bytes: &[u8]) -> PreviousStop {
    let Some(word) = bytes
        .get(RUN_STATE_OFFSET..)
        .and_then(|b| b.first_chunk::<8>())
    else {
        return PreviousStop::Unknown;
    };
    match u64::from_le_bytes(*word) {
        RUN_STATE_CLEAN => PreviousStop::Clean,
        RUN_STATE_RUNNING => PreviousStop::Unclean,
        _ => PreviousStop::Unknown,
    }
}

/// Stores and flushes the word (durable after the caller's next fence).
pub fn stage<M: Medium>(medium: &mut M, clean: bool) {
    let word = if clean {
        RUN_STATE_CLEAN
    } else {
        RUN_STATE_RUNNING
    };
    medium.write(RUN_STATE_OFFSET, &word.to_le_bytes());
    medium.flush(RUN_STATE_OFFSET, 8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_too_short_for_the_word_reads_as_unknown() {
        let mut image = vec![0u8; RUN_STATE_OFFSET + 8];
        image[RUN_STATE_OFFSET..].copy_from_slice(&RUN_STATE_CLEAN.to_le_bytes());
        assert_eq!(read(&image), PreviousStop::Clean);
        for cut in [0, RUN_STATE_OFFSET, RUN_STATE_OFFSET + 7] {
            assert_eq!(read(&image[..cut]), PreviousStop::Unknown, "{cut} bytes");
        }
    }
}
