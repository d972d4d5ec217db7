//! Target `frame`: frame decoding on arbitrary bytes, and the client's state machine
//! fed the server frames found in them.
//!
//! The input is cut into frames as a receiver would cut its buffer. For each frame:
//! - `decode_header` agrees with `decode` (same error, same type, same size);
//! - every shorter prefix of a frame is "need more bytes", never an error;
//! - what decodes re-encodes to exactly the bytes it came from, and decodes again to
//!   the same frame;
//! - a server-to-client frame goes through a `ClientMachine`, which moves as
//!   `CLIENT_TABLE` says and stays `Closed` once closed; a client-to-server frame is
//!   noted as sent (`on_send`).

use herald::protocol::{
    client_rule, decode, decode_header, encode, encoded_len, ClientMachine, ClientRule,
    ClientState, Direction, ErrorCode, Frame, FRAME_BYTES_MAX, FRAME_HEADER_BYTES,
    FRAME_LENGTH_BYTES,
};
use std::cell::RefCell;

thread_local! {
    /// One encode buffer for every run (allocating a frame's worth per input would
    /// dominate the run time).
    static OUT: RefCell<Vec<u8>> = RefCell::new(vec![0; FRAME_BYTES_MAX]);
}

/// Checks every frame in `data`, in order, until one does not decode.
pub fn run(data: &[u8]) {
    let mut machine = ClientMachine::new();
    let mut at = 0;
    while at < data.len() {
        let Some(frame_bytes) = check_one(&data[at..], &mut machine) else {
            return;
        };
        at += frame_bytes;
    }
}

/// Checks the frame at the start of `buf`; returns its size if it decoded.
fn check_one(buf: &[u8], machine: &mut ClientMachine) -> Option<usize> {
    let header = decode_header(buf);
    let decoded = decode(buf);
    let (frame, frame_bytes) = match (&header, decoded) {
        (Err(header_error), decoded) => {
            assert_eq!(
                decoded.as_ref().err(),
                Some(header_error),
                "decode must fail as decode_header did"
            );
            return None;
        }
        (Ok(None), decoded) => {
            assert!(
                matches!(decoded, Ok(None)),
                "no header yet, but decode said {decoded:?}"
            );
            assert!(buf.len() < FRAME_HEADER_BYTES);
            return None;
        }
        (Ok(Some(h)), Ok(None)) => {
            assert!(
                buf.len() < h.frame_bytes,
                "decode wants more bytes though the whole frame ({} bytes) is there",
                h.frame_bytes
            );
            return None;
        }
        (Ok(Some(_)), Err(_)) => return None,
        (Ok(Some(h)), Ok(Some((frame, frame_bytes)))) => {
            assert_eq!(frame_bytes, h.frame_bytes, "decode and decode_header sizes");
            assert_eq!(
                frame.frame_type(),
                h.frame_type,
                "decode and decode_header types"
            );
            (frame, frame_bytes)
        }
    };
    let bytes = &buf[..frame_bytes];
    for cut in [0, FRAME_LENGTH_BYTES, FRAME_HEADER_BYTES, frame_bytes - 1] {
        if cut < frame_bytes {
            assert!(
                matches!(decode(&bytes[..cut]), Ok(None)),
                "a prefix of {cut} bytes of a valid {frame_bytes}-byte frame must ask for more"
            );
        }
    }
    assert_eq!(
        encoded_len(&frame),
        Ok(frame_bytes),
        "encoded_len of {frame:?}"
    );
    OUT.with_borrow_mut(|out| {
        let written = encode(&frame, out).expect("a decoded frame encodes");
        assert_eq!(&out[..written], bytes, "re-encoding {frame:?}");
        let again = decode(&out[..written]);
        assert_eq!(
            again,
            Ok(Some((frame, frame_bytes))),
            "decoding the re-encoding"
        );
    });
    drive_client(machine, &frame);
    Some(frame_bytes)
}

/// Feeds `frame` to the client's machine and checks the move against the table.
fn drive_client(machine: &mut ClientMachine, frame: &Frame<'_>) {
    let frame_type = frame.frame_type();
    if frame_type.direction() == Direction::ClientToServer {
        let before = machine.state();
        machine.on_send(frame_type);
        if before == ClientState::Closed {
            assert_eq!(machine.state(), ClientState::Closed, "Closed is final");
        }
        return;
    }
    let before = machine.state();
    let rule = client_rule(before, frame_type.as_u8());
    let result = machine.on_receive(frame);
    let expected = match rule {
        ClientRule::Stay => Ok(before),
        ClientRule::Goto(to) => Ok(to),
        ClientRule::OnError => match frame {
            // A `Subscribe` refused by access control (`forbidden`, no correlation):
            // the connection is as it was before the `Subscribe` (PROTOCOL.md).
            Frame::Error {
                code: ErrorCode::Forbidden,
                correlation: 0,
                ..
            } if before == ClientState::AwaitSubscribed => Ok(ClientState::Ready),
            Frame::Error { code, .. } if !code.closes_connection() => Ok(before),
            _ => Ok(ClientState::Closed),
        },
        ClientRule::Reject => Err(()),
    };
    match (result, expected) {
        (Ok(state), Ok(want)) => assert_eq!(state, want, "{frame_type} in {before:?}"),
        (Err(rejection), Err(())) => {
            assert_eq!(rejection.state, before);
            assert_eq!(rejection.frame_type, frame_type);
        }
        (got, want) => panic!("{frame_type} in {before:?}: got {got:?}, table says {want:?}"),
    }
    if before == ClientState::Closed {
        assert_eq!(machine.state(), ClientState::Closed, "Closed is final");
    }
    if result.is_err() {
        assert_eq!(machine.state(), ClientState::Closed, "a rejection closes");
    }
}
