//! Tests of the dead-letter area: its decision table, ids, first-fit placement.

use super::*;

#[test]
fn every_combination_of_dead_slot_facts_matches_exactly_one_rule() {
    for bits in 0..16u8 {
        let f = DeadSlotFacts {
            status_zero: bits & 1 != 0,
            binds_stored: bits & 2 != 0,
            static_valid: bits & 4 != 0,
            binds_computed: bits & 8 != 0,
        };
        let matching: Vec<_> = DEAD_RULES.iter().filter(|r| r.matches(f)).collect();
        assert_eq!(matching.len(), 1, "facts {f:?} match {matching:?}");
    }
}

#[test]
fn the_table_says_what_the_scan_promises() {
    let f = |status_zero, binds_stored, static_valid, binds_computed| {
        classify(DeadSlotFacts {
            status_zero,
            binds_stored,
            static_valid,
            binds_computed,
        })
    };
    // A zero status word is free whatever the rest holds (purged, or never made).
    assert_eq!(f(true, false, true, false), DeadSlotOutcome::Free);
    assert_eq!(f(false, true, true, true), DeadSlotOutcome::Record);
    assert!(matches!(
        f(false, true, false, false),
        DeadSlotOutcome::Damaged(_)
    ));
    assert!(matches!(
        f(false, false, true, false),
        DeadSlotOutcome::Damaged(_)
    ));
    assert!(matches!(
        f(false, false, false, true),
        DeadSlotOutcome::Damaged(_)
    ));
    // Leftover bytes of older records in free space are not damage.
    assert_eq!(f(false, false, false, false), DeadSlotOutcome::Free);
}

#[test]
fn a_status_word_binds_to_its_static_checksum_only() {
    let s = Status {
        replay_requested: true,
        delivery_count: 7,
    };
    let word = encode_status(0x1234, 0xdead_beef, s);
    assert_eq!(decode_status(0x1234, word, 0xdead_beef), Some(s));
    assert_eq!(decode_status(0x1234, word, 0xdead_beee), None);
    assert_eq!(decode_status(0x1235, word, 0xdead_beef), None, "other seed");
    for bit in 0..64 {
        assert_eq!(
            decode_status(0x1234, word ^ (1 << bit), 0xdead_beef),
            None,
            "a flip of bit {bit} goes unnoticed"
        );
    }
    assert_eq!(decode_status(0x1234, 0, 0), None, "zero is free");
}

#[test]
fn ids_round_trip_through_their_text() {
    let id = DeadLetterId::new(12, 0xabcd_0123);
    assert_eq!(id.slot(), 12);
    assert_eq!(id.to_string(), "0000000cabcd0123");
    assert_eq!(id.to_string().parse::<DeadLetterId>().unwrap(), id);
}
