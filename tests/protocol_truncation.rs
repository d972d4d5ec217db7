//! A frame that has not fully arrived is never mistaken for a frame.

mod protocol_support;

use herald::protocol::*;
use protocol_support::*;

#[test]
fn every_prefix_of_every_valid_frame_asks_for_more_bytes() {
    for frame in all_samples() {
        let bytes = encoded(&frame);
        for end in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..end]),
                Ok(None),
                "{:?} cut to {end} of {} bytes",
                frame.frame_type(),
                bytes.len()
            );
        }
    }
}

#[test]
fn a_body_cut_short_by_its_length_field_is_refused() {
    for frame in one_of_each() {
        let bytes = encoded(&frame);
        for length in FRAME_TYPE_BYTES..bytes.len() - FRAME_LENGTH_BYTES {
            let mut cut = bytes[..FRAME_LENGTH_BYTES + length].to_vec();
            cut[..FRAME_LENGTH_BYTES].copy_from_slice(&(length as u32).to_le_bytes());
            match decode(&cut) {
                Err(_) => {}
                // Only a StatusReply or Admin, whose JSON is simply the rest of the
                // body, stays a frame when shortened, and then it is exactly the frame
                // those bytes say.
                Ok(Some((shorter, consumed))) => {
                    assert!(
                        matches!(
                            shorter.frame_type(),
                            FrameType::StatusReply | FrameType::Admin
                        ),
                        "{frame:?}"
                    );
                    assert_eq!(consumed, cut.len());
                    assert_eq!(encoded(&shorter), cut);
                }
                Ok(None) => panic!("{frame:?} with length {length}: asks for more bytes"),
            }
        }
    }
}

#[test]
fn a_body_padded_past_its_last_field_is_refused() {
    for frame in one_of_each() {
        if matches!(
            frame.frame_type(),
            FrameType::StatusReply | FrameType::Admin
        ) {
            continue; // its JSON is the whole body; padding only lengthens the text
        }
        let mut bytes = encoded(&frame);
        bytes.push(0);
        let length = (bytes.len() - FRAME_LENGTH_BYTES) as u32;
        bytes[..FRAME_LENGTH_BYTES].copy_from_slice(&length.to_le_bytes());
        let error = decode(&bytes).expect_err("padded frame decodes");
        assert!(
            matches!(error, DecodeError::TrailingBytes { bytes: 1, .. }),
            "{frame:?}: {error:?}"
        );
        assert_eq!(error.code(), ErrorCode::Invalid);
    }
}
