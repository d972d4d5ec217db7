//! Fixed-bucket histograms the loop fills once per group commit or per sync, never per
//! event: recording is a search over at most [`BUCKETS_MAX`] bounds and three additions,
//! with no allocation.

/// Most bounds a histogram has (its counts have one more slot, above every bound).
pub const BUCKETS_MAX: usize = 16;

/// Events per group commit: powers of two up to the largest batch, and beyond for the
/// groups that gather many producers' publishes.
pub const GROUP_EVENTS_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

/// A group commit's duration, ns: a pmem fence takes well under a microsecond; a file's
/// page cache a few; a large group many.
pub const COMMIT_NS_BOUNDS: &[u64] = &[
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
];

/// A sync to disk, ns: tens of microseconds on NVMe with a volatile cache off, tens of
/// milliseconds on a rotating disk.
pub const SYNC_NS_BOUNDS: &[u64] = &[
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
];

const _: () = assert!(GROUP_EVENTS_BOUNDS.len() <= BUCKETS_MAX);
const _: () = assert!(COMMIT_NS_BOUNDS.len() <= BUCKETS_MAX);
const _: () = assert!(SYNC_NS_BOUNDS.len() <= BUCKETS_MAX);

/// Counts of observations at or below each bound (not cumulative), their sum and
/// their number.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    bounds: &'static [u64],
    counts: [u64; BUCKETS_MAX + 1],
    sum: u64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (increasing; at most [`BUCKETS_MAX`]).
    pub const fn new(bounds: &'static [u64]) -> Histogram {
        assert!(bounds.len() <= BUCKETS_MAX);
        Histogram {
            bounds,
            counts: [0; BUCKETS_MAX + 1],
            sum: 0,
            count: 0,
        }
    }

    /// Counts one observation.
    pub fn record(&mut self, value: u64) {
        // The first bound at or above the value: Prometheus buckets are `le`.
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        self.counts[bucket] += 1;
        self.sum = self.sum.saturating_add(value);
        self.count += 1;
    }

    /// Each bound with the observations above the previous bound and at or below it;
    /// those above every bound are `count() - ` the sum of these.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.bounds.iter().copied().zip(self.counts.iter().copied())
    }

    /// The sum of every observation (saturating).
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_on_a_bound_counts_in_that_bound_and_above_all_counts_only_in_the_total() {
        let mut h = Histogram::new(&[10, 100]);
        for v in [0, 10, 11, 100, 101, 5000] {
            h.record(v);
        }
        assert_eq!(h.buckets().collect::<Vec<_>>(), vec![(10, 2), (100, 2)]);
        assert_eq!(h.count(), 6);
        assert_eq!(h.sum(), 5222);
    }
}
