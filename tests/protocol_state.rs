//! The connection state machines do exactly what their tables say, for every state and
//! every frame type byte, and the tables say what the design says.

mod protocol_support;

use herald::protocol::*;
use protocol_support::*;
use std::collections::{BTreeMap, VecDeque};

/// Frames of `frame_type` to try: one sample, and for `Hello` one per role plus one
/// with no version in common.
fn frames_of(frame_type: FrameType) -> Vec<Frame<'static>> {
    let sample = one_of_each()
        .into_iter()
        .find(|frame| frame.frame_type() == frame_type)
        .expect("every type has a sample");
    match sample {
        Frame::Hello(hello) => {
            let mut hellos: Vec<Frame<'static>> = Role::ALL
                .iter()
                .map(|&role| Frame::Hello(Hello { role, ..hello }))
                .collect();
            hellos.push(Frame::Hello(Hello {
                version_min: PROTOCOL_VERSION_MAX + 1,
                version_max: PROTOCOL_VERSION_MAX + 1,
                ..hello
            }));
            hellos
        }
        frame => vec![frame],
    }
}

/// For every state, a machine in it, reached from a new connection by frames the
/// machine accepted (breadth first, so along a shortest path).
fn machines_in_every_state() -> BTreeMap<u8, ServerMachine> {
    let mut reached = BTreeMap::new();
    let start = ServerMachine::new();
    reached.insert(start.state() as u8, start);
    let mut queue = VecDeque::from([start]);
    while let Some(machine) = queue.pop_front() {
        for frame in FrameType::CLIENT.into_iter().flat_map(frames_of) {
            let mut next = machine;
            if next.on_receive(&frame).is_ok() && !reached.contains_key(&(next.state() as u8)) {
                reached.insert(next.state() as u8, next);
                queue.push_back(next);
            }
        }
    }
    reached
}

#[test]
fn every_server_state_is_reachable_from_a_new_connection() {
    let reached = machines_in_every_state();
    for state in ServerState::ALL {
        assert!(
            reached.contains_key(&(state as u8)),
            "{state} is unreachable"
        );
    }
}

#[test]
fn server_rule_reads_the_table_for_every_type_byte() {
    for state in ServerState::ALL {
        for byte in 0..=u8::MAX {
            let expected = match FrameType::from_u8(byte) {
                None => Rule::Reject(ErrorCode::Invalid),
                Some(frame_type) => match frame_type.direction() {
                    Direction::ClientToServer => SERVER_TABLE[state as usize][frame_type.column()],
                    Direction::ServerToClient => Rule::Reject(ErrorCode::Unexpected),
                },
            };
            assert_eq!(server_rule(state, byte), expected, "{state} 0x{byte:02x}");
        }
    }
}

#[test]
fn every_state_and_frame_type_does_what_the_server_table_says() {
    for (_, machine) in machines_in_every_state() {
        let state = machine.state();
        for byte in 0..=u8::MAX {
            let rule = server_rule(state, byte);
            let Some(frame_type) = FrameType::from_u8(byte) else {
                // Undefined types never become frames: the decoder refuses them with the
                // very code the rule names.
                assert_eq!(rule, Rule::Reject(ErrorCode::Invalid));
                assert_eq!(
                    decode(&raw_frame(byte, &[])).unwrap_err().code(),
                    ErrorCode::Invalid
                );
                continue;
            };
            for frame in frames_of(frame_type) {
                check_server_step(machine, &frame, rule);
            }
        }
    }
}

fn check_server_step(before: ServerMachine, frame: &Frame<'_>, rule: Rule) {
    let from = before.state();
    let frame_type = frame.frame_type();
    let mut machine = before;
    let result = machine.on_receive(frame);
    let context = format!("{from} + {frame:?} under {rule:?}");
    let accepted = |to: ServerState| Ok(Transition { from, to });
    let rejected = |code| {
        Err(Rejection {
            state: from,
            frame_type,
            code,
        })
    };
    match (rule, frame) {
        (Rule::Stay, _) => assert_eq!(result, accepted(from), "{context}"),
        (Rule::Goto(to), _) => assert_eq!(result, accepted(to), "{context}"),
        (Rule::EnterRole, Frame::Hello(hello)) => match negotiate_version(hello) {
            Ok(version) => {
                assert_eq!(
                    result,
                    accepted(ServerState::after_hello(hello.role)),
                    "{context}"
                );
                assert_eq!(machine.version(), Some(version));
            }
            Err(code) => {
                assert_eq!(code, ErrorCode::UnsupportedVersion);
                assert_eq!(result, rejected(code), "{context}");
            }
        },
        (Rule::EnterRole, _) => panic!("EnterRole outside the Hello column: {context}"),
        (Rule::Reject(code), _) => assert_eq!(result, rejected(code), "{context}"),
    }
    if result.is_err() {
        assert_eq!(machine.state(), ServerState::Closed, "{context}");
    } else {
        assert_eq!(Ok(machine.state()), result.map(|t| t.to), "{context}");
    }
}

fn rule(state: ServerState, frame_type: FrameType) -> Rule {
    server_rule(state, frame_type.as_u8())
}

const OPEN_AFTER_HELLO: [ServerState; 6] = [
    ServerState::Producer,
    ServerState::Subscriber,
    ServerState::Subscribed,
    ServerState::Both,
    ServerState::BothSubscribed,
    ServerState::Control,
];

fn accepted(rule: Rule) -> bool {
    !matches!(rule, Rule::Reject(_))
}

#[test]
fn hello_is_accepted_only_as_the_first_frame() {
    for state in ServerState::ALL {
        assert_eq!(
            rule(state, FrameType::Hello) == Rule::EnterRole,
            state == ServerState::AwaitHello,
            "{state}"
        );
    }
    for frame_type in FrameType::CLIENT {
        if !matches!(frame_type, FrameType::Hello | FrameType::Goodbye) {
            assert_eq!(
                rule(ServerState::AwaitHello, frame_type),
                Rule::Reject(ErrorCode::Unexpected)
            );
        }
    }
}

#[test]
fn goodbye_closes_from_every_open_state() {
    for state in ServerState::ALL {
        let expected = if state == ServerState::Closed {
            Rule::Reject(ErrorCode::Unexpected)
        } else {
            Rule::Goto(ServerState::Closed)
        };
        assert_eq!(rule(state, FrameType::Goodbye), expected, "{state}");
    }
}

#[test]
fn only_producer_roles_may_publish() {
    for state in OPEN_AFTER_HELLO {
        let producer = matches!(
            state,
            ServerState::Producer | ServerState::Both | ServerState::BothSubscribed
        );
        for frame_type in [FrameType::Publish, FrameType::PublishBatch] {
            let expected = if producer {
                Rule::Stay
            } else {
                Rule::Reject(ErrorCode::NotPermitted)
            };
            assert_eq!(rule(state, frame_type), expected, "{state} {frame_type}");
        }
    }
}

#[test]
fn subscription_frames_need_an_active_subscription() {
    let settle = [
        FrameType::Confirm,
        FrameType::Nak,
        FrameType::Working,
        FrameType::Reject,
        FrameType::Recovered,
    ];
    for state in OPEN_AFTER_HELLO {
        let subscribed = matches!(state, ServerState::Subscribed | ServerState::BothSubscribed);
        for frame_type in settle {
            assert_eq!(
                accepted(rule(state, frame_type)),
                subscribed,
                "{state} {frame_type}"
            );
        }
    }
}

#[test]
fn a_connection_subscribes_at_most_once() {
    assert_eq!(
        rule(ServerState::Subscriber, FrameType::Subscribe),
        Rule::Goto(ServerState::Subscribed)
    );
    assert_eq!(
        rule(ServerState::Both, FrameType::Subscribe),
        Rule::Goto(ServerState::BothSubscribed)
    );
    for state in [ServerState::Subscribed, ServerState::BothSubscribed] {
        assert_eq!(
            rule(state, FrameType::Subscribe),
            Rule::Reject(ErrorCode::Unexpected)
        );
    }
    for state in [ServerState::Producer, ServerState::Control] {
        assert_eq!(
            rule(state, FrameType::Subscribe),
            Rule::Reject(ErrorCode::NotPermitted)
        );
    }
}

#[test]
fn status_is_for_control_and_ping_for_everyone_after_hello() {
    for state in OPEN_AFTER_HELLO {
        assert_eq!(
            accepted(rule(state, FrameType::Status)),
            state == ServerState::Control
        );
        assert_eq!(rule(state, FrameType::Ping), Rule::Stay);
    }
}

#[test]
fn server_frames_sent_to_the_server_are_unexpected_everywhere() {
    for state in ServerState::ALL {
        for frame_type in FrameType::SERVER {
            assert_eq!(rule(state, frame_type), Rule::Reject(ErrorCode::Unexpected));
        }
    }
}

#[test]
fn version_negotiation_picks_the_highest_common_version() {
    let hello = |version_min, version_max| Hello {
        version_min,
        version_max,
        role: Role::Producer,
        client_name: "",
    };
    assert_eq!(negotiate_version(&hello(1, 1)), Ok(1));
    assert_eq!(negotiate_version(&hello(1, 9)), Ok(PROTOCOL_VERSION_MAX));
    assert_eq!(
        negotiate_version(&hello(PROTOCOL_VERSION_MAX + 1, 9)),
        Err(ErrorCode::UnsupportedVersion)
    );
}

// ---- client side ----

fn client_rule_of(state: ClientState, frame_type: FrameType) -> ClientRule {
    client_rule(state, frame_type.as_u8())
}

#[test]
fn every_client_state_and_frame_type_does_what_the_client_table_says() {
    for state in ClientState::ALL {
        for byte in 0..=u8::MAX {
            let rule = client_rule(state, byte);
            let Some(frame_type) = FrameType::from_u8(byte) else {
                assert_eq!(rule, ClientRule::Reject);
                continue;
            };
            if frame_type.direction() == Direction::ClientToServer {
                assert_eq!(rule, ClientRule::Reject, "{state:?} {frame_type}");
            } else {
                assert_eq!(rule, CLIENT_TABLE[state as usize][frame_type.column()]);
            }
            let mut frames = frames_of(frame_type);
            if frame_type == FrameType::Error {
                frames.push(Frame::Error {
                    correlation: 0,
                    code: ErrorCode::Invalid,
                    message: "",
                });
            }
            for frame in frames {
                check_client_step(client_in(state), &frame, rule);
            }
        }
    }
}

/// A client machine in `state`, reached through its own transitions.
fn client_in(state: ClientState) -> ClientMachine {
    let frames = one_of_each();
    let (hello_ok, subscribed) = (frames[13], frames[16]);
    let mut machine = ClientMachine::new();
    if state == ClientState::Closed {
        machine.on_send(FrameType::Goodbye);
    } else if state != ClientState::AwaitHelloOk {
        machine.on_receive(&hello_ok).unwrap();
        if state != ClientState::Ready {
            machine.on_send(FrameType::Subscribe);
            if state == ClientState::Subscribed {
                machine.on_receive(&subscribed).unwrap();
            }
        }
    }
    assert_eq!(machine.state(), state);
    machine
}

fn check_client_step(before: ClientMachine, frame: &Frame<'_>, rule: ClientRule) {
    let from = before.state();
    let mut machine = before;
    let result = machine.on_receive(frame);
    let expected = match (rule, frame) {
        (ClientRule::Stay, _) => Ok(from),
        (ClientRule::Goto(to), _) => Ok(to),
        (ClientRule::OnError, Frame::Error { code, .. }) if !code.closes_connection() => Ok(from),
        (ClientRule::OnError, _) => Ok(ClientState::Closed),
        (ClientRule::Reject, _) => Err(ClientRejection {
            state: from,
            frame_type: frame.frame_type(),
        }),
    };
    assert_eq!(result, expected, "{from:?} + {frame:?}");
    let after = result.unwrap_or(ClientState::Closed);
    assert_eq!(machine.state(), after);
}

#[test]
fn a_client_accepts_deliveries_only_once_subscribed() {
    for state in ClientState::ALL {
        assert_eq!(
            client_rule_of(state, FrameType::Deliver) == ClientRule::Stay,
            state == ClientState::Subscribed
        );
    }
}
