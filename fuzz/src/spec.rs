//! Target `spec`: a subscription's stored spec (the bytes of its entry in the region's
//! subscription table) decoded from arbitrary bytes.
//!
//! The first byte says how many bytes are the spec; the rest are topics (split at
//! zero bytes) and severities to match against it. What decodes re-encodes to bytes
//! that decode to an equal spec, holds 1..=16 patterns of the grammar within the
//! table's field, and `matches` answers for any topic and severity without panicking
//! (as the daemon's fan-out asks it of every stored event).

use herald::event::limits::SUBSCRIPTION_SPEC_BYTES_MAX;
use herald::protocol::{Pattern, Severity, Topic, SUBSCRIPTION_PATTERNS_MAX};
use herald::subscription::SubscriptionSpec;

/// Checks one input.
pub fn run(data: &[u8]) {
    let Some((&spec_len, rest)) = data.split_first() else {
        return;
    };
    let spec_len = usize::from(spec_len).min(rest.len());
    // Stored specs are at most SUBSCRIPTION_SPEC_BYTES_MAX; longer inputs are tried too
    // (the decoder must not care): the first byte 255 means "all of it".
    let (stored, probes) = if spec_len == 255 {
        (rest, &[][..])
    } else {
        rest.split_at(spec_len)
    };
    let Ok(spec) = SubscriptionSpec::decode(stored) else {
        return;
    };
    let mut out = [0u8; SUBSCRIPTION_SPEC_BYTES_MAX];
    let written = spec.encode(&mut out);
    let again = SubscriptionSpec::decode(&out[..written]).expect("an encoded spec decodes");
    assert_eq!(again, spec, "decode(encode(spec)) == spec");
    let mut again_out = [0u8; SUBSCRIPTION_SPEC_BYTES_MAX];
    let again_written = again.encode(&mut again_out);
    assert_eq!(
        &again_out[..again_written],
        &out[..written],
        "encoding is stable"
    );
    let patterns = spec.patterns().count();
    assert!(
        (1..=SUBSCRIPTION_PATTERNS_MAX).contains(&patterns),
        "{patterns} patterns"
    );
    for pattern in spec.patterns() {
        assert!(
            Pattern::parse(pattern).is_ok(),
            "a stored pattern outside the grammar: {pattern:?}"
        );
    }
    assert!(spec.same_filters(&again));
    for probe in probes.split(|&b| b == 0) {
        let severity = Severity::from_u8(probe.first().map_or(0, |b| b % 8)).expect("0..=7");
        let matched = spec.matches(probe, severity);
        if Topic::validate(probe).is_err() {
            continue; // any answer will do for what is not a topic, but no panic
        }
        let topic: Vec<&[u8]> = probe.split(|&b| b == b'.').collect();
        let by_pattern = spec.patterns().any(|p| {
            let pattern: Vec<&[u8]> = p.split(|&b| b == b'.').collect();
            reference_match(&pattern, &topic)
        });
        assert_eq!(
            matched,
            severity <= spec.min_severity && by_pattern,
            "{probe:?} at {severity:?}"
        );
    }
}

/// NATS-style matching, segment by segment: `*` takes one segment, a final `>` takes
/// one or more.
fn reference_match(pattern: &[&[u8]], topic: &[&[u8]]) -> bool {
    match (pattern.split_first(), topic.split_first()) {
        (None, None) => true,
        (Some((&b">", [])), Some(_)) => true,
        (Some((&b"*", p)), Some((_, t))) => reference_match(p, t),
        (Some((literal, p)), Some((segment, t))) => literal == segment && reference_match(p, t),
        _ => false,
    }
}
