//! Decoding survives any input: seeded random buffers and mutated valid frames never
//! panic, and whatever decodes re-encodes to exactly the bytes it came from.
//!
//! Each case derives everything from one seed. A failure names it; rerun just that case
//! with `HERALD_PROTOCOL_SEED=<seed> cargo test --test protocol_robustness`.

mod protocol_support;

use herald::protocol::*;
use protocol_support::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

const CASES: u64 = 20_000;
const SEED_BASE: u64 = 0x4845_5241_4C44_0000;

/// Whether a full run (not a single rerun seed) is under way.
fn full_run() -> bool {
    std::env::var("HERALD_PROTOCOL_SEED").is_err()
}

/// Runs `case` for every seed (or only `HERALD_PROTOCOL_SEED`), naming the seed of a
/// failure.
fn for_each_seed(name: &str, case: impl Fn(u64)) {
    let seeds: Vec<u64> = match std::env::var("HERALD_PROTOCOL_SEED") {
        Ok(seed) => vec![seed.parse().expect("HERALD_PROTOCOL_SEED is a u64")],
        Err(_) => (SEED_BASE..SEED_BASE + CASES).collect(),
    };
    eprintln!(
        "{name}: seeds {}..={} (rerun one: HERALD_PROTOCOL_SEED=<seed> cargo test --test protocol_robustness)",
        seeds[0],
        seeds[seeds.len() - 1]
    );
    for seed in seeds {
        if catch_unwind(AssertUnwindSafe(|| case(seed))).is_err() {
            panic!("{name} failed with seed {seed}; rerun with HERALD_PROTOCOL_SEED={seed}");
        }
    }
}

/// How often each kind of answer came back, so a test can show it reached them all.
#[derive(Default)]
struct Outcomes {
    frames: Cell<u64>,
    incomplete: Cell<u64>,
    errors: Cell<u64>,
}

impl Outcomes {
    fn assert_all_reached(&self) {
        if full_run() {
            let counts = (self.frames.get(), self.incomplete.get(), self.errors.get());
            assert!(
                counts.0 > 0 && counts.1 > 0 && counts.2 > 0,
                "(frames, incomplete, errors) = {counts:?}"
            );
        }
    }
}

/// Decodes `bytes` and checks everything that must hold of the answer.
fn check_decode(bytes: &[u8], outcomes: &Outcomes) {
    let count = match decode(bytes) {
        Ok(Some((frame, consumed))) => {
            assert!(consumed <= bytes.len());
            touch_every_field(&frame);
            assert_eq!(
                encoded(&frame),
                &bytes[..consumed],
                "not canonical: {frame:?}"
            );
            &outcomes.frames
        }
        Ok(None) => {
            let complete = match decode_header(bytes) {
                Ok(Some(header)) => bytes.len() >= header.frame_bytes,
                Ok(None) => false,
                Err(_) => true,
            };
            assert!(!complete, "asked for more bytes with a whole frame present");
            &outcomes.incomplete
        }
        Err(error) => {
            let _ = (error.code(), error.to_string());
            &outcomes.errors
        }
    };
    count.set(count.get() + 1);
}

fn touch_every_field(frame: &Frame<'_>) {
    match frame {
        Frame::PublishBatch { events, .. } => {
            assert_eq!(events.iter().count(), events.len());
            for event in events.iter() {
                Topic::validate(event.topic.as_bytes()).unwrap();
            }
        }
        Frame::Subscribe(subscribe) => {
            assert_eq!(subscribe.patterns.iter().count(), subscribe.patterns.len());
            let _ = subscribe.patterns.any_matches(b"fs.vol1.error");
        }
        _ => {}
    }
}

fn random_bytes(rng: &mut SmallRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.gen()).collect()
}

#[test]
fn random_bytes_never_panic_the_decoder() {
    let outcomes = Outcomes::default();
    for_each_seed("random_bytes", |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let len = rng.gen_range(0..96);
        let mut bytes = random_bytes(&mut rng, len);
        // Uniform bytes almost always announce a huge frame; keep some lengths small.
        if rng.gen_bool(0.5) && bytes.len() >= FRAME_LENGTH_BYTES {
            bytes[1..FRAME_LENGTH_BYTES].fill(0);
        }
        check_decode(&bytes, &outcomes);
    });
    // Random bytes rarely form a frame; incomplete and refused inputs are what matter.
    if full_run() {
        assert!(outcomes.incomplete.get() > 0 && outcomes.errors.get() > 0);
    }
}

#[test]
fn random_bodies_behind_valid_headers_never_panic_the_decoder() {
    let types: Vec<u8> = FrameType::CLIENT
        .iter()
        .chain(FrameType::SERVER.iter())
        .map(|frame_type| frame_type.as_u8())
        .collect();
    let outcomes = Outcomes::default();
    for_each_seed("random_bodies", |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let body_len = rng.gen_range(0..160);
        // Small values in length fields reach deeper than uniform bytes would.
        let body: Vec<u8> = (0..body_len)
            .map(|_| {
                if rng.gen_bool(0.5) {
                    rng.gen_range(0..8)
                } else {
                    rng.gen()
                }
            })
            .collect();
        let mut bytes = raw_frame(types[rng.gen_range(0..types.len())], &body);
        if rng.gen_bool(0.2) {
            bytes.truncate(rng.gen_range(0..bytes.len()));
        }
        check_decode(&bytes, &outcomes);
    });
    outcomes.assert_all_reached();
}

#[test]
fn mutated_valid_frames_never_panic_the_decoder() {
    let samples: Vec<Vec<u8>> = one_of_each().iter().map(encoded).collect();
    let outcomes = Outcomes::default();
    for_each_seed("mutated_frames", |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut bytes = samples[rng.gen_range(0..samples.len())].clone();
        for _ in 0..rng.gen_range(1..=4) {
            mutate(&mut rng, &mut bytes);
        }
        check_decode(&bytes, &outcomes);
    });
    outcomes.assert_all_reached();
}

fn mutate(rng: &mut SmallRng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        bytes.push(rng.gen());
        return;
    }
    let at = rng.gen_range(0..bytes.len());
    match rng.gen_range(0..6) {
        0 => bytes[at] ^= 1 << rng.gen_range(0..8),
        1 => bytes[at] = rng.gen(),
        2 => bytes[at] = if rng.gen() { 0 } else { 0xFF },
        3 => bytes.truncate(at),
        4 => bytes.insert(at, rng.gen()),
        _ => {
            // Keep the length field consistent so the body itself gets parsed.
            if bytes.len() >= FRAME_HEADER_BYTES {
                let length = (bytes.len() - FRAME_LENGTH_BYTES) as u32;
                bytes[..FRAME_LENGTH_BYTES].copy_from_slice(&length.to_le_bytes());
            }
        }
    }
}

#[test]
fn random_topics_and_patterns_never_panic_and_topics_are_literal_patterns() {
    const ALPHABET: &[u8] = b"ab.*>-_\x00\xff";
    for_each_seed("random_topics", |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let len = rng.gen_range(0..12);
        let bytes: Vec<u8> = (0..len)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
            .collect();
        let topic_ok = Topic::validate(&bytes).is_ok();
        let pattern = Pattern::parse(&bytes);
        if topic_ok {
            let pattern = pattern.expect("a topic is a valid literal pattern");
            assert!(pattern.matches(&bytes));
        } else if let Ok(pattern) = pattern {
            let _ = pattern.matches(&bytes);
        }
    });
}

/// The obvious recursive matcher over segment lists, to check the streaming one against.
fn reference_matches(pattern: &[&str], topic: &[&str]) -> bool {
    match (pattern.first(), topic.first()) {
        (None, None) => true,
        (Some(&">"), _) => pattern.len() == 1 && !topic.is_empty(),
        (Some(&"*"), Some(_)) => reference_matches(&pattern[1..], &topic[1..]),
        (Some(literal), Some(segment)) => {
            literal == segment && reference_matches(&pattern[1..], &topic[1..])
        }
        _ => false,
    }
}

#[test]
fn pattern_matching_agrees_with_a_reference_matcher() {
    for_each_seed("pattern_matching", |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let topic: Vec<&str> = (0..rng.gen_range(1..=5))
            .map(|_| ["a", "b", "ab"][rng.gen_range(0..3)])
            .collect();
        let mut pattern: Vec<&str> = (0..rng.gen_range(1..=5))
            .map(|_| ["a", "b", "*"][rng.gen_range(0..3)])
            .collect();
        if rng.gen_bool(0.3) {
            *pattern.last_mut().unwrap() = ">";
        }
        let (topic_text, pattern_text) = (topic.join("."), pattern.join("."));
        let parsed = Pattern::parse(pattern_text.as_bytes()).expect("generated pattern is valid");
        assert_eq!(
            parsed.matches(topic_text.as_bytes()),
            reference_matches(&pattern, &topic),
            "pattern {pattern_text} topic {topic_text}"
        );
    });
}
