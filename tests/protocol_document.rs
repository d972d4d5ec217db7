//! PROTOCOL.md and the code agree: the state tables, error codes and frame type bytes it
//! prints are rendered from the code here and must appear in it verbatim, and its
//! byte-level example transcript decodes to the frames it describes.

mod protocol_support;

use herald::protocol::*;
use protocol_support::*;

fn all_types() -> impl Iterator<Item = FrameType> {
    FrameType::CLIENT.into_iter().chain(FrameType::SERVER)
}

fn rule(state: ServerState, frame_type: FrameType) -> Rule {
    server_rule(state, frame_type.as_u8())
}

fn client_rule_of(state: ClientState, frame_type: FrameType) -> ClientRule {
    client_rule(state, frame_type.as_u8())
}

fn protocol_md() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md"))
        .expect("PROTOCOL.md at the repository root")
}

fn server_cell(rule: Rule) -> String {
    match rule {
        Rule::Stay => "ok".to_string(),
        Rule::Goto(state) => format!("→ {state}"),
        Rule::EnterRole => "→ by role".to_string(),
        Rule::Reject(code) => code.name().to_string(),
    }
}

/// SERVER_TABLE as the markdown table PROTOCOL.md must contain.
fn server_table_markdown() -> String {
    let mut text = String::from("| state |");
    for frame_type in FrameType::CLIENT {
        text += &format!(" {frame_type} |");
    }
    text += "\n|---|";
    text += &"---|".repeat(FrameType::CLIENT.len());
    for state in ServerState::ALL {
        text += &format!("\n| {state} |");
        for frame_type in FrameType::CLIENT {
            text += &format!(" {} |", server_cell(rule(state, frame_type)));
        }
    }
    text
}

fn client_table_markdown() -> String {
    let mut text = String::from("| client state |");
    for frame_type in FrameType::SERVER {
        text += &format!(" {frame_type} |");
    }
    text += "\n|---|";
    text += &"---|".repeat(FrameType::SERVER.len());
    for state in ClientState::ALL {
        text += &format!("\n| {state:?} |");
        for frame_type in FrameType::SERVER {
            let cell = match client_rule_of(state, frame_type) {
                ClientRule::Stay => "ok".to_string(),
                ClientRule::Goto(to) => format!("→ {to:?}"),
                ClientRule::OnError => "see code".to_string(),
                ClientRule::Reject => "close".to_string(),
            };
            text += &format!(" {cell} |");
        }
    }
    text
}

#[test]
fn protocol_md_prints_the_server_state_table() {
    let table = server_table_markdown();
    assert!(
        protocol_md().contains(&table),
        "PROTOCOL.md lacks the server state table; it should read:\n{table}"
    );
}

#[test]
fn protocol_md_prints_the_client_state_table() {
    let table = client_table_markdown();
    assert!(
        protocol_md().contains(&table),
        "PROTOCOL.md lacks the client state table; it should read:\n{table}"
    );
}

#[test]
fn protocol_md_lists_every_error_code() {
    let text = protocol_md();
    for code in ErrorCode::ALL {
        let closes = if code.closes_connection() {
            "yes"
        } else {
            "no"
        };
        let row = format!("| {} | `{}` | {closes} |", code.as_u16(), code.name());
        assert!(
            text.contains(&row),
            "PROTOCOL.md lacks the row starting {row}"
        );
    }
}

#[test]
fn protocol_md_lists_every_frame_type_byte() {
    let text = protocol_md();
    for frame_type in all_types() {
        let row = format!("| 0x{:02X} | {frame_type} |", frame_type.as_u8());
        assert!(
            text.contains(&row),
            "PROTOCOL.md lacks the row starting {row}"
        );
    }
}

/// The frames of the example transcript, in order.
fn transcript_frames() -> Vec<Frame<'static>> {
    vec![
        Frame::Hello(Hello {
            version_min: 1,
            version_max: 1,
            role: Role::Producer,
            client_name: "fsd",
        }),
        Frame::HelloOk(HelloOk {
            version: 1,
            node_id: 7,
            frame_bytes_max: FRAME_BYTES_MAX as u32,
            event_payload_bytes_max: EVENT_PAYLOAD_BYTES_MAX as u32,
        }),
        Frame::Publish {
            correlation: 1,
            event: Event {
                topic: topic("fs.vol1.error"),
                severity: Severity::Error,
                source: "",
                flags: 0,
                key: b"",
                payload: b"disk full",
            },
        },
        Frame::Stored {
            correlation: 1,
            first_seq: Seq(42),
            last_seq: Seq(42),
            count: 1,
        },
    ]
}

/// The transcript's frames as PROTOCOL.md writes them: each starts at a line beginning
/// `C→S` or `S→C`; every other line starts with hex byte pairs, then two spaces and a
/// comment.
fn transcript_in_protocol_md() -> Vec<Vec<u8>> {
    let text = protocol_md();
    let start = text
        .find("<!-- transcript -->")
        .expect("PROTOCOL.md marks its transcript with <!-- transcript -->");
    let block = text[start..]
        .split("```")
        .nth(1)
        .expect("a code block follows the transcript marker");
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for line in block.lines() {
        if line.starts_with("C→S") || line.starts_with("S→C") {
            frames.push(Vec::new());
            continue;
        }
        let hex = line.split("  ").next().unwrap_or("");
        for pair in hex.split_whitespace() {
            let byte = u8::from_str_radix(pair, 16)
                .unwrap_or_else(|_| panic!("transcript line {line:?}: {pair:?} is not hex"));
            frames
                .last_mut()
                .expect("bytes before the first C→S/S→C line")
                .push(byte);
        }
    }
    frames
}

#[test]
fn protocol_md_transcript_is_what_the_encoder_writes() {
    let expected: Vec<Vec<u8>> = transcript_frames().iter().map(encoded).collect();
    let documented = transcript_in_protocol_md();
    assert_eq!(documented.len(), expected.len());
    for (documented, (expected, frame)) in documented
        .iter()
        .zip(expected.iter().zip(transcript_frames()))
    {
        assert_eq!(documented, expected, "transcript bytes of {frame:?}");
        assert_eq!(decode(documented).unwrap().unwrap().0, frame);
    }
}

/// `value` as PROTOCOL.md writes numbers: a space between thousands from five digits on.
fn grouped(value: u64) -> String {
    let digits = value.to_string();
    if digits.len() <= 4 {
        return digits;
    }
    let mut text = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(' ');
        }
        text.push(digit);
    }
    text
}

#[test]
fn protocol_md_limits_table_matches_the_constants() {
    let text = protocol_md();
    let limits: [(&str, u64); 15] = [
        ("FRAME_BYTES_MAX", FRAME_BYTES_MAX as u64),
        ("FRAME_HEADER_BYTES", FRAME_HEADER_BYTES as u64),
        ("EVENT_PAYLOAD_BYTES_MAX", EVENT_PAYLOAD_BYTES_MAX as u64),
        ("TOPIC_BYTES_MAX", TOPIC_BYTES_MAX as u64),
        ("SOURCE_BYTES_MAX", SOURCE_BYTES_MAX as u64),
        ("CLIENT_NAME_BYTES_MAX", CLIENT_NAME_BYTES_MAX as u64),
        ("KEY_BYTES_MAX", KEY_BYTES_MAX as u64),
        ("BATCH_EVENTS_MAX", BATCH_EVENTS_MAX as u64),
        (
            "SUBSCRIPTION_NAME_BYTES_MAX",
            SUBSCRIPTION_NAME_BYTES_MAX as u64,
        ),
        (
            "SUBSCRIPTION_PATTERNS_MAX",
            SUBSCRIPTION_PATTERNS_MAX as u64,
        ),
        ("PATTERN_BYTES_MAX", PATTERN_BYTES_MAX as u64),
        (
            "SUBSCRIPTION_PATTERN_LIST_BYTES_MAX",
            SUBSCRIPTION_PATTERN_LIST_BYTES_MAX as u64,
        ),
        ("WINDOW_EVENTS_MAX", u64::from(WINDOW_EVENTS_MAX)),
        ("NAK_DELAY_MS_MAX", u64::from(NAK_DELAY_MS_MAX)),
        ("ERROR_MESSAGE_BYTES_MAX", ERROR_MESSAGE_BYTES_MAX as u64),
    ];
    for (name, value) in limits
        .into_iter()
        .chain([("STATUS_JSON_BYTES_MAX", STATUS_JSON_BYTES_MAX as u64)])
    {
        let row = text
            .lines()
            .find(|line| line.ends_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("PROTOCOL.md has no limits row for {name}"));
        assert!(row.contains(&grouped(value)), "{row} should say {value}");
    }
}

/// A field's body offset and the bytes expected there.
type Field = (usize, Vec<u8>);

/// Little-endian bytes of `value`, `width` of them.
fn le(value: u64, width: usize) -> Vec<u8> {
    value.to_le_bytes()[..width].to_vec()
}

#[test]
fn protocol_md_field_offsets_are_where_the_encoder_puts_fields() {
    // (sample index in one_of_each, [(body offset, expected bytes)]) per PROTOCOL.md
    // section 4; the samples are in tests/protocol_support.
    let event_at = |base: usize| {
        vec![
            (base, vec![3u8, 13, 0, 0]),
            (base + 4, le(0, 2)),
            (base + 6, le(9, 4)),
            (base + 10, b"fs.vol1.error".to_vec()),
            (base + 23, b"disk full".to_vec()),
        ]
    };
    let layouts: Vec<(usize, Vec<Field>)> = vec![
        (
            0,
            vec![
                (0, b"HRLD".to_vec()),
                (4, le(1, 2)),
                (6, le(1, 2)),
                (8, vec![1, 3]),
                (10, b"fsd".to_vec()),
            ],
        ),
        (1, [vec![(0, le(7, 8))], event_at(8)].concat()),
        (
            2,
            vec![(0, le(u64::MAX, 8)), (8, le(3, 2)), (10, vec![3, 13])],
        ),
        (
            3,
            vec![
                (0, le(1, 4)),
                (4, le(64, 4)),
                (8, le(30_000, 4)),
                (12, le(5, 2)),
                (14, vec![4, 10, 2]),
                (17, b"audit.main".to_vec()),
                (27, [&[10u8][..], b"fs.*.error", &[5], b"net.>"].concat()),
            ],
        ),
        (4, vec![(0, le(10, 8)), (8, le(20, 8))]),
        (5, vec![(0, le(11, 8)), (8, le(250, 4))]),
        (10, vec![(0, le(0xDEAD_BEEF, 8))]),
        (
            13,
            vec![
                (0, le(1, 2)),
                (2, le(0x0102_0304_0506_0708, 8)),
                (10, le(FRAME_BYTES_MAX as u64, 4)),
                (14, le(EVENT_PAYLOAD_BYTES_MAX as u64, 4)),
            ],
        ),
        (
            14,
            vec![
                (0, le(7, 8)),
                (8, le(100, 8)),
                (16, le(104, 8)),
                (24, le(3, 2)),
            ],
        ),
        (15, vec![(0, le(7, 8)), (8, le(5, 2)), (10, le(46, 2))]),
        (16, vec![(0, vec![1]), (1, le(42, 8))]),
        (
            17,
            vec![
                (0, le(100, 8)),
                (8, le(1_700_000_000_000_000_000, 8)),
                (16, le(1, 2)),
                (18, le(2, 2)),
                (20, vec![3, 13, 3, 0]),
                (43, b"fsd".to_vec()),
            ],
        ),
    ];
    let frames = one_of_each();
    for (index, fields) in layouts {
        let bytes = encoded(&frames[index]);
        let body = &bytes[FRAME_HEADER_BYTES..];
        for (offset, expected) in fields {
            assert_eq!(
                &body[offset..offset + expected.len()],
                &expected[..],
                "{} body offset {offset}",
                frames[index].frame_type()
            );
        }
    }
}
