//! The connection state machine, written as one table per side.
//!
//! [`SERVER_TABLE`] says, for each server-side state and each client-to-server frame
//! type, what happens when the server receives that frame. The machine only looks rows
//! up in it; PROTOCOL.md prints the same table, and a test checks that they agree.
//! A rejection means: send an `Error` with the rejection's code, then close.

use super::frame::{Frame, FrameType, Hello, Role, CLIENT_FRAME_TYPES, SERVER_FRAME_TYPES};
use super::version::{PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN};
use super::ErrorCode;
use thiserror::Error;

/// Where a connection stands, as the server sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ServerState {
    /// Connected; nothing but `Hello` (or `Goodbye`) is accepted.
    AwaitHello = 0,
    /// Hello done with role producer.
    Producer = 1,
    /// Hello done with role subscriber; not subscribed yet.
    Subscriber = 2,
    /// Subscriber with its subscription active.
    Subscribed = 3,
    /// Hello done with role both; not subscribed yet.
    Both = 4,
    /// Role both with its subscription active.
    BothSubscribed = 5,
    /// Hello done with role control.
    Control = 6,
    /// Finished: after `Goodbye` or any rejection. Nothing more is read or sent.
    Closed = 7,
}

/// How many server-side states there are.
pub const SERVER_STATES: usize = 8;

impl ServerState {
    /// Every state, in table row order: `ALL[i] as usize == i`.
    pub const ALL: [ServerState; SERVER_STATES] = [
        ServerState::AwaitHello,
        ServerState::Producer,
        ServerState::Subscriber,
        ServerState::Subscribed,
        ServerState::Both,
        ServerState::BothSubscribed,
        ServerState::Control,
        ServerState::Closed,
    ];

    /// The state a successful hello with `role` leads to.
    pub const fn after_hello(role: Role) -> ServerState {
        match role {
            Role::Producer => ServerState::Producer,
            Role::Subscriber => ServerState::Subscriber,
            Role::Both => ServerState::Both,
            Role::Control => ServerState::Control,
        }
    }

    /// The state's name as PROTOCOL.md spells it.
    pub const fn name(self) -> &'static str {
        match self {
            ServerState::AwaitHello => "AwaitHello",
            ServerState::Producer => "Producer",
            ServerState::Subscriber => "Subscriber",
            ServerState::Subscribed => "Subscribed",
            ServerState::Both => "Both",
            ServerState::BothSubscribed => "BothSubscribed",
            ServerState::Control => "Control",
            ServerState::Closed => "Closed",
        }
    }
}

impl core::fmt::Display for ServerState {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// What receiving a frame in a state does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Accepted; the state does not change.
    Stay,
    /// Accepted; the connection moves to this state.
    Goto(ServerState),
    /// Accepted if the version ranges overlap (else `unsupported_version`); the
    /// connection moves to [`ServerState::after_hello`] of the hello's role.
    EnterRole,
    /// Refused: send an `Error` with this code, then close.
    Reject(ErrorCode),
}

const S: Rule = Rule::Stay;
const H: Rule = Rule::EnterRole;
const C: Rule = Rule::Goto(ServerState::Closed);
const SUB: Rule = Rule::Goto(ServerState::Subscribed);
const BSUB: Rule = Rule::Goto(ServerState::BothSubscribed);
const U: Rule = Rule::Reject(ErrorCode::Unexpected);
const P: Rule = Rule::Reject(ErrorCode::NotPermitted);

/// The server's state table: `SERVER_TABLE[state as usize][frame_type.column()]` for
/// every client-to-server frame type. Server-to-client types received by the server are
/// always `unexpected`, unknown types always `invalid` (see [`server_rule`]).
///
/// `unexpected` = not valid at this point of the conversation; `not_permitted` = the
/// role chosen in the hello does not allow it.
#[rustfmt::skip]
pub const SERVER_TABLE: [[Rule; CLIENT_FRAME_TYPES]; SERVER_STATES] = [
    //                Hello Publish Batch Subscribe Confirm Nak Working Reject Recovered Status Ping Goodbye Admin
    /* AwaitHello */     [H, U, U, U,    U, U, U, U, U,  U, U, C, U],
    /* Producer */       [U, S, S, P,    P, P, P, P, P,  P, S, C, P],
    /* Subscriber */     [U, P, P, SUB,  U, U, U, U, U,  P, S, C, P],
    /* Subscribed */     [U, P, P, U,    S, S, S, S, S,  P, S, C, P],
    /* Both */           [U, S, S, BSUB, U, U, U, U, U,  P, S, C, P],
    /* BothSubscribed */ [U, S, S, U,    S, S, S, S, S,  P, S, C, P],
    /* Control */        [U, P, P, P,    P, P, P, P, P,  S, S, C, S],
    /* Closed */         [U, U, U, U,    U, U, U, U, U,  U, U, U, U],
];

// The table's shape, checked at compile time: the hello is the only way out of
// AwaitHello and happens nowhere else, Goodbye closes from everywhere, Closed is final,
// and nothing leads back to AwaitHello.
const _: () = {
    let goodbye = FrameType::Goodbye.column();
    let hello = FrameType::Hello.column();
    let mut row = 0;
    while row < SERVER_STATES {
        assert!(ServerState::ALL[row] as usize == row);
        let is_closed = row == ServerState::Closed as usize;
        let mut column = 0;
        while column < CLIENT_FRAME_TYPES {
            let rule = SERVER_TABLE[row][column];
            let is_hello_cell = row == ServerState::AwaitHello as usize && column == hello;
            assert!(matches!(rule, Rule::EnterRole) == is_hello_cell);
            assert!(!matches!(rule, Rule::Goto(ServerState::AwaitHello)));
            if is_closed {
                assert!(matches!(rule, Rule::Reject(_)));
            } else if column == goodbye {
                assert!(matches!(rule, Rule::Goto(ServerState::Closed)));
            } else if row == ServerState::AwaitHello as usize && column != hello {
                assert!(matches!(rule, Rule::Reject(_)));
            }
            column += 1;
        }
        row += 1;
    }
};

/// What receiving a frame with type byte `frame_type` in `state` does, for any byte.
pub const fn server_rule(state: ServerState, frame_type: u8) -> Rule {
    match FrameType::from_u8(frame_type) {
        None => Rule::Reject(ErrorCode::Invalid),
        Some(frame_type) => match frame_type.direction() {
            super::Direction::ClientToServer => SERVER_TABLE[state as usize][frame_type.column()],
            super::Direction::ServerToClient => Rule::Reject(ErrorCode::Unexpected),
        },
    }
}

/// The version a hello leads to: the highest both sides speak.
pub const fn negotiate_version(hello: &Hello<'_>) -> Result<u16, ErrorCode> {
    let low = if hello.version_min > PROTOCOL_VERSION_MIN {
        hello.version_min
    } else {
        PROTOCOL_VERSION_MIN
    };
    let high = if hello.version_max < PROTOCOL_VERSION_MAX {
        hello.version_max
    } else {
        PROTOCOL_VERSION_MAX
    };
    if low <= high {
        Ok(high)
    } else {
        Err(ErrorCode::UnsupportedVersion)
    }
}

/// An accepted frame's effect on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before the frame.
    pub from: ServerState,
    /// The state after it; [`ServerState::Closed`] after `Goodbye`.
    pub to: ServerState,
}

/// A refused frame: send an `Error` with `code`, then close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{frame_type} frame refused in state {state}: {code}")]
pub struct Rejection {
    /// The state the frame arrived in.
    pub state: ServerState,
    /// The refused frame's type.
    pub frame_type: FrameType,
    /// The code to send.
    pub code: ErrorCode,
}

/// The server side of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerMachine {
    state: ServerState,
    version: Option<u16>,
}

impl Default for ServerMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerMachine {
    /// A connection just accepted.
    pub const fn new() -> Self {
        ServerMachine {
            state: ServerState::AwaitHello,
            version: None,
        }
    }

    /// The current state.
    pub const fn state(&self) -> ServerState {
        self.state
    }

    /// The version negotiated by the hello, once there was one.
    pub const fn version(&self) -> Option<u16> {
        self.version
    }

    /// Applies [`SERVER_TABLE`] to a frame just decoded. On `Err` the machine is
    /// [`ServerState::Closed`]; the caller sends the error and closes.
    pub fn on_receive(&mut self, frame: &Frame<'_>) -> Result<Transition, Rejection> {
        let from = self.state;
        let frame_type = frame.frame_type();
        let to = match server_rule(from, frame_type.as_u8()) {
            Rule::Stay => from,
            Rule::Goto(to) => to,
            Rule::EnterRole => {
                // The compile-time check above keeps EnterRole in the Hello column.
                let Frame::Hello(hello) = frame else {
                    return Err(self.reject(frame_type, ErrorCode::Internal));
                };
                match negotiate_version(hello) {
                    Ok(version) => {
                        self.version = Some(version);
                        ServerState::after_hello(hello.role)
                    }
                    Err(code) => return Err(self.reject(frame_type, code)),
                }
            }
            Rule::Reject(code) => return Err(self.reject(frame_type, code)),
        };
        self.state = to;
        Ok(Transition { from, to })
    }

    /// Closes the connection for a reason of the daemon's own (for example after
    /// sending `name_in_use` or `shutting_down`).
    pub fn close(&mut self) {
        self.state = ServerState::Closed;
    }

    fn reject(&mut self, frame_type: FrameType, code: ErrorCode) -> Rejection {
        let rejection = Rejection {
            state: self.state,
            frame_type,
            code,
        };
        self.state = ServerState::Closed;
        rejection
    }
}

/// Where a connection stands, as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ClientState {
    /// Hello sent, waiting for `HelloOk`.
    AwaitHelloOk = 0,
    /// Hello accepted; not subscribed.
    Ready = 1,
    /// `Subscribe` sent, waiting for `Subscribed`.
    AwaitSubscribed = 2,
    /// Subscription active.
    Subscribed = 3,
    /// Finished.
    Closed = 4,
}

/// How many client-side states there are.
pub const CLIENT_STATES: usize = 5;

impl ClientState {
    /// Every state, in table row order: `ALL[i] as usize == i`.
    pub const ALL: [ClientState; CLIENT_STATES] = [
        ClientState::AwaitHelloOk,
        ClientState::Ready,
        ClientState::AwaitSubscribed,
        ClientState::Subscribed,
        ClientState::Closed,
    ];
}

/// What receiving a server frame in a client state does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientRule {
    /// Accepted; the state does not change.
    Stay,
    /// Accepted; the connection moves to this state.
    Goto(ClientState),
    /// An `Error`: closed if its code closes the connection, else unchanged.
    OnError,
    /// The server broke the protocol; the client closes.
    Reject,
}

const CS: ClientRule = ClientRule::Stay;
const CE: ClientRule = ClientRule::OnError;
const CR: ClientRule = ClientRule::Reject;
const READY: ClientRule = ClientRule::Goto(ClientState::Ready);
const CSUB: ClientRule = ClientRule::Goto(ClientState::Subscribed);

/// The client's state table: `CLIENT_TABLE[state as usize][frame_type.column()]` for
/// every server-to-client frame type. Role details (a producer never gets `Deliver`) are
/// left to the server's table; this one catches frames out of order.
#[rustfmt::skip]
pub const CLIENT_TABLE: [[ClientRule; SERVER_FRAME_TYPES]; CLIENT_STATES] = [
    //                 HelloOk Stored Error Subscribed Deliver RecoveryDone StatusReply Pong
    /* AwaitHelloOk */    [READY, CR, CE, CR,   CR, CR, CR, CR],
    /* Ready */           [CR,    CS, CE, CR,   CR, CR, CS, CS],
    /* AwaitSubscribed */ [CR,    CS, CE, CSUB, CR, CR, CR, CS],
    /* Subscribed */      [CR,    CS, CE, CR,   CS, CS, CR, CS],
    /* Closed */          [CR,    CR, CR, CR,   CR, CR, CR, CR],
];

const _: () = {
    let mut row = 0;
    while row < CLIENT_STATES {
        assert!(ClientState::ALL[row] as usize == row);
        row += 1;
    }
};

/// What receiving a frame with type byte `frame_type` in client `state` does.
pub const fn client_rule(state: ClientState, frame_type: u8) -> ClientRule {
    match FrameType::from_u8(frame_type) {
        Some(frame_type) if matches!(frame_type.direction(), super::Direction::ServerToClient) => {
            CLIENT_TABLE[state as usize][frame_type.column()]
        }
        _ => ClientRule::Reject,
    }
}

/// The server sent a frame the client cannot accept now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("server sent a {frame_type} frame in client state {state:?}")]
pub struct ClientRejection {
    /// The client's state when the frame arrived.
    pub state: ClientState,
    /// The frame's type.
    pub frame_type: FrameType,
}

/// The client side of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientMachine {
    state: ClientState,
}

impl Default for ClientMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientMachine {
    /// A connection whose `Hello` has just been sent.
    pub const fn new() -> Self {
        ClientMachine {
            state: ClientState::AwaitHelloOk,
        }
    }

    /// The current state.
    pub const fn state(&self) -> ClientState {
        self.state
    }

    /// Notes a frame the client sent: `Subscribe` awaits `Subscribed`, `Goodbye` closes.
    pub fn on_send(&mut self, frame_type: FrameType) {
        match (self.state, frame_type) {
            (ClientState::Ready, FrameType::Subscribe) => self.state = ClientState::AwaitSubscribed,
            (_, FrameType::Goodbye) => self.state = ClientState::Closed,
            _ => {}
        }
    }

    /// Applies [`CLIENT_TABLE`] to a frame just decoded; returns the new state. On `Err`
    /// the machine is [`ClientState::Closed`].
    pub fn on_receive(&mut self, frame: &Frame<'_>) -> Result<ClientState, ClientRejection> {
        let frame_type = frame.frame_type();
        self.state = match client_rule(self.state, frame_type.as_u8()) {
            ClientRule::Stay => self.state,
            ClientRule::Goto(to) => to,
            ClientRule::OnError => match frame {
                // A refused `Subscribe` leaves the connection as it was before it; the
                // refusal of a publish sent earlier carries that publish's correlation.
                Frame::Error {
                    code: ErrorCode::Forbidden,
                    correlation: 0,
                    ..
                } if self.state == ClientState::AwaitSubscribed => ClientState::Ready,
                Frame::Error { code, .. } if !code.closes_connection() => self.state,
                _ => ClientState::Closed,
            },
            ClientRule::Reject => {
                let rejection = ClientRejection {
                    state: self.state,
                    frame_type,
                };
                self.state = ClientState::Closed;
                return Err(rejection);
            }
        };
        Ok(self.state)
    }
}
