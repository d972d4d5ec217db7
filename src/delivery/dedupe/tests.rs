//! Tests of the idempotency window: lookups, expiry, truncation, a model test per hasher.

use super::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, VecDeque};

type SipFixedKeys = std::hash::BuildHasherDefault<std::hash::DefaultHasher>;

const AGE: Duration = Duration::from_nanos(1_000);
const AGE_NS: u64 = 1_000;

/// Hashes every identity to one of `tags` tags near `u32::MAX`, so records pile up
/// in a few probe runs that wrap around the end of the index.
#[derive(Clone, Copy)]
struct Colliding {
    tags: u64,
}

struct CollidingHasher {
    sum: u64,
    tags: u64,
}

impl BuildHasher for Colliding {
    type Hasher = CollidingHasher;
    fn build_hasher(&self) -> CollidingHasher {
        CollidingHasher {
            sum: 0,
            tags: self.tags,
        }
    }
}

impl Hasher for CollidingHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.sum += bytes.iter().map(|&b| u64::from(b)).sum::<u64>();
    }
    fn finish(&self) -> u64 {
        u64::MAX - self.sum % self.tags
    }
}

fn window(capacity: usize) -> DedupeWindow {
    DedupeWindow::new(capacity, AGE)
}

#[test]
fn a_duplicate_within_the_window_gets_the_original_seq() {
    let mut w = window(4);
    assert_eq!(w.lookup(b"raid0", b"k1", 0), None);
    w.insert(b"raid0", b"k1", Seq(7), 100);
    assert_eq!(w.lookup(b"raid0", b"k1", 100), Some(Seq(7)));
    assert_eq!(w.lookup(b"raid0", b"k1", 100 + AGE_NS), Some(Seq(7)));
    assert_eq!(w.lookup(b"raid0", b"k2", 100), None);
}

#[test]
fn the_oldest_key_is_forgotten_once_the_count_is_reached() {
    let mut w = window(3);
    for (i, key) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
        w.insert(b"s", *key, Seq(i as u64 + 1), 0);
    }
    assert_eq!(w.len(), 3);
    assert_eq!(w.lookup(b"s", b"a", 0), None);
    assert_eq!(w.lookup(b"s", b"b", 0), Some(Seq(2)));
    assert_eq!(w.lookup(b"s", b"d", 0), Some(Seq(4)));
}

#[test]
fn a_key_is_forgotten_once_older_than_max_age() {
    let mut w = window(8);
    w.insert(b"s", b"k", Seq(1), 5_000);
    w.insert(b"s", b"l", Seq(2), 5_500);
    assert_eq!(w.lookup(b"s", b"k", 5_000 + AGE_NS), Some(Seq(1)));
    // A lookup refuses an aged record even before `expire` reclaims it.
    assert_eq!(w.lookup(b"s", b"k", 5_001 + AGE_NS), None);
    assert_eq!(w.len(), 2);
    assert_eq!(w.expire(5_001 + AGE_NS, usize::MAX), 1);
    assert_eq!(w.len(), 1);
    assert_eq!(w.lookup(b"s", b"l", 5_001 + AGE_NS), Some(Seq(2)));
    // A clock that stepped back counts as age zero, not as a huge age.
    assert_eq!(w.lookup(b"s", b"l", 0), Some(Seq(2)));
}

#[test]
fn expire_forgets_at_most_records_max() {
    let mut w = window(8);
    for i in 1..=5 {
        w.insert(b"s", &[i as u8], Seq(i), 0);
    }
    assert_eq!(w.expire(AGE_NS + 1, 2), 2);
    assert_eq!(w.len(), 3);
    assert_eq!(w.expire(AGE_NS + 1, usize::MAX), 3);
    assert!(w.is_empty());
}

#[test]
fn the_same_key_from_another_source_is_not_a_duplicate() {
    let mut w = window(8);
    w.insert(b"raid0", b"k", Seq(1), 0);
    w.insert(b"ab", b"c", Seq(2), 0);
    assert_eq!(w.lookup(b"raid1", b"k", 0), None);
    assert_eq!(w.lookup(b"", b"k", 0), None);
    assert_eq!(w.lookup(b"raid", b"0k", 0), None);
    assert_eq!(w.lookup(b"a", b"bc", 0), None);
    assert_eq!(w.lookup(b"ab", b"c", 0), Some(Seq(2)));
}

#[test]
fn an_empty_key_is_never_deduplicated() {
    let mut w = window(8);
    w.insert(b"s", b"", Seq(1), 0);
    assert_eq!(w.len(), 0);
    assert_eq!(w.lookup(b"s", b"", 0), None);
}

#[test]
fn inserting_a_remembered_key_keeps_the_original() {
    let mut w = window(8);
    w.insert(b"s", b"k", Seq(1), 0);
    w.insert(b"s", b"k", Seq(2), AGE_NS);
    assert_eq!(w.len(), 1);
    assert_eq!(w.lookup(b"s", b"k", AGE_NS), Some(Seq(1)));
}

#[test]
fn a_key_published_again_after_aging_out_answers_with_the_new_seq() {
    let mut w = window(8);
    w.insert(b"s", b"k", Seq(1), 0);
    w.insert(b"s", b"k", Seq(2), AGE_NS + 1);
    assert_eq!(w.lookup(b"s", b"k", AGE_NS + 1), Some(Seq(2)));
    // The replaced record still holds its place until it leaves the ring, and
    // leaving does not take the new record's index entry with it.
    assert_eq!(w.len(), 2);
    assert_eq!(w.expire(AGE_NS + 1, usize::MAX), 1);
    assert_eq!(w.lookup(b"s", b"k", AGE_NS + 1), Some(Seq(2)));
}

#[test]
fn truncate_from_forgets_exactly_the_records_at_or_after_seq() {
    let mut w = window(16);
    for seq in [2, 4, 6, 8, 10] {
        w.insert(b"s", &[seq as u8], Seq(seq), 0);
    }
    w.truncate_from(Seq(7));
    assert_eq!(w.len(), 3);
    for seq in [2, 4, 6] {
        assert_eq!(w.lookup(b"s", &[seq as u8], 0), Some(Seq(seq)));
    }
    for seq in [8, 10] {
        assert_eq!(w.lookup(b"s", &[seq as u8], 0), None);
    }
    w.truncate_from(Seq(6));
    assert_eq!(w.len(), 2);
    assert_eq!(w.lookup(b"s", &[6], 0), None);
    assert_eq!(w.lookup(b"s", &[4], 0), Some(Seq(4)));
}

#[test]
fn truncated_seqs_may_be_inserted_again() {
    let mut w = window(16);
    w.insert(b"s", b"a", Seq(1), 0);
    w.insert(b"s", b"b", Seq(2), 0);
    w.insert(b"s", b"c", Seq(3), 0);
    w.truncate_from(Seq(2));
    w.insert(b"s", b"c", Seq(2), 0);
    assert_eq!(w.lookup(b"s", b"c", 0), Some(Seq(2)));
    assert_eq!(w.lookup(b"s", b"b", 0), None);
}

#[test]
#[should_panic(expected = "inserted after")]
fn inserting_a_seq_out_of_order_is_a_bug() {
    let mut w = window(16);
    w.insert(b"s", b"a", Seq(5), 0);
    w.insert(b"s", b"b", Seq(5), 0);
}

#[test]
fn identical_hashes_never_make_a_false_duplicate() {
    let mut w = DedupeWindow::with_hasher(64, AGE, Colliding { tags: 1 });
    for i in 0..64u64 {
        w.insert(b"s", &i.to_le_bytes(), Seq(i + 1), 0);
    }
    for i in 0..64u64 {
        assert_eq!(w.lookup(b"s", &i.to_le_bytes(), 0), Some(Seq(i + 1)));
    }
    assert_eq!(w.lookup(b"s", &64u64.to_le_bytes(), 0), None);
    assert_eq!(w.lookup(b"t", &0u64.to_le_bytes(), 0), None);
}

#[test]
fn memory_figures_match_the_module_documentation() {
    assert_eq!(RECORD_BYTES + 2 * SLOT_BYTES, 360);
    assert_eq!(memory_bytes_for(WINDOW_RECORDS_DEFAULT), 23_592_960);
    assert_eq!(memory_bytes_for(DEDUPE_WINDOW_RECORDS_MAX), 1_509_949_440);
    assert_eq!(window(1000).memory_bytes(), 1000 * RECORD_BYTES + 2048 * 8);
    let w = window(3);
    assert_eq!((w.capacity(), w.max_age()), (3, AGE));
}

/// The reference: the window's meaning, written the obvious way.
struct Model {
    capacity: usize,
    /// (source, key, seq, stored_ns) in insertion order.
    records: VecDeque<(Vec<u8>, Vec<u8>, u64, u64)>,
    /// (source, key) → (seq, stored_ns) of its newest record.
    newest: HashMap<(Vec<u8>, Vec<u8>), (u64, u64)>,
}

impl Model {
    fn fresh(stored_ns: u64, now_ns: u64) -> bool {
        now_ns.saturating_sub(stored_ns) <= AGE_NS
    }

    fn lookup(&self, source: &[u8], key: &[u8], now_ns: u64) -> Option<u64> {
        let &(seq, stored_ns) = self.newest.get(&(source.to_vec(), key.to_vec()))?;
        (!key.is_empty() && Self::fresh(stored_ns, now_ns)).then_some(seq)
    }

    fn insert(&mut self, source: &[u8], key: &[u8], seq: u64, stored_ns: u64) {
        if key.is_empty() || self.lookup(source, key, stored_ns).is_some() {
            return;
        }
        if self.records.len() == self.capacity {
            let oldest = self.records.pop_front().unwrap();
            self.forget(oldest);
        }
        self.records
            .push_back((source.to_vec(), key.to_vec(), seq, stored_ns));
        self.newest
            .insert((source.to_vec(), key.to_vec()), (seq, stored_ns));
    }

    fn forget(&mut self, (source, key, seq, _): (Vec<u8>, Vec<u8>, u64, u64)) {
        let id = (source, key);
        if self.newest.get(&id).map(|&(s, _)| s) == Some(seq) {
            self.newest.remove(&id);
        }
    }

    fn expire(&mut self, now_ns: u64, records_max: usize) -> usize {
        let mut forgotten = 0;
        while forgotten < records_max
            && self
                .records
                .front()
                .is_some_and(|r| !Self::fresh(r.3, now_ns))
        {
            let oldest = self.records.pop_front().unwrap();
            self.forget(oldest);
            forgotten += 1;
        }
        forgotten
    }

    fn truncate_from(&mut self, seq: u64) {
        while self.records.back().is_some_and(|r| r.2 >= seq) {
            let newest = self.records.pop_back().unwrap();
            self.forget(newest);
        }
    }
}

/// Runs `operations` random operations on a window and the model side by side.
fn run_model<S: BuildHasher>(
    seed: u64,
    capacity: usize,
    hasher: S,
    operations: usize,
) -> Result<(), String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut window = DedupeWindow::with_hasher(capacity, AGE, hasher);
    let mut model = Model {
        capacity,
        records: VecDeque::new(),
        newest: HashMap::new(),
    };
    let sources: [&[u8]; 6] = [b"", b"a", b"ab", b"raid0", b"b", &[b'x'; SOURCE_BYTES_MAX]];
    let key_count = 2 * capacity as u64 + 4;
    let identity = |rng: &mut SmallRng| -> (&[u8], Vec<u8>) {
        let source = sources[rng.gen_range(0..sources.len())];
        let key = match rng.gen_range(0..20) {
            0 => Vec::new(),
            1 => vec![b'k'; KEY_BYTES_MAX],
            2 => b"bc".to_vec(),
            3 => b"c".to_vec(),
            _ => rng.gen_range(0..key_count).to_string().into_bytes(),
        };
        (source, key)
    };
    let mut now_ns = 10 * AGE_NS;
    let mut seq_next = 1u64;
    for step in 0..operations {
        let at = |what: String| format!("seed {seed}, capacity {capacity}, step {step}: {what}");
        match rng.gen_range(0..100) {
            0..=39 => {
                let (source, key) = identity(&mut rng);
                window.insert(source, &key, Seq(seq_next), now_ns);
                model.insert(source, &key, seq_next, now_ns);
                seq_next += rng.gen_range(1..=3);
            }
            40..=74 => {
                let (source, key) = identity(&mut rng);
                let got = window.lookup(source, &key, now_ns).map(|s| s.0);
                let want = model.lookup(source, &key, now_ns);
                if got != want {
                    return Err(at(format!(
                        "lookup({source:?}, {key:?}) = {got:?}, model says {want:?}"
                    )));
                }
            }
            75..=84 => now_ns += rng.gen_range(0..AGE_NS / 4),
            85..=86 => now_ns += rng.gen_range(AGE_NS..3 * AGE_NS),
            87..=88 => now_ns = now_ns.saturating_sub(rng.gen_range(0..AGE_NS)),
            89..=93 => {
                let records_max = rng.gen_range(0..4);
                let got = window.expire(now_ns, records_max);
                let want = model.expire(now_ns, records_max);
                if got != want {
                    return Err(at(format!("expire forgot {got}, model {want}")));
                }
            }
            _ => {
                let seq = rng.gen_range(seq_next.saturating_sub(12).max(1)..=seq_next);
                window.truncate_from(Seq(seq));
                model.truncate_from(seq);
                seq_next = seq;
            }
        }
        if window.len() != model.records.len() {
            return Err(at(format!(
                "len {} but model holds {}",
                window.len(),
                model.records.len()
            )));
        }
    }
    Ok(())
}

#[test]
fn the_window_agrees_with_a_simple_model_under_random_operations() {
    let base: u64 = std::env::var("HERALD_DEDUPE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut configurations = 0;
    for capacity in [1, 2, 3, 5, 64, 1000] {
        for tags in [None, Some(1), Some(3)] {
            let seed = base + configurations;
            configurations += 1;
            let result = match tags {
                // SipHash with fixed keys, so that a seed reproduces the index layout too.
                None => run_model(seed, capacity, SipFixedKeys::default(), 100_000),
                Some(tags) => run_model(seed, capacity, Colliding { tags }, 100_000),
            };
            if let Err(message) = result {
                panic!("{message}\nreproduce: HERALD_DEDUPE_SEED={base} cargo test --lib delivery::dedupe");
            }
        }
    }
}
