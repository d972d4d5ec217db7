//! The access policy in the whole daemon, over the simulated reactor: connections
//! come from whichever uid and gid a test gives them, and every refusal is a
//! `forbidden` answer that leaves the connection open for what it may do.

#[path = "support/sim.rs"]
mod sim;

use herald::delivery::access::{Policy, Rule, Subject};
use herald::delivery::DaemonConfig;
use herald::pmem::sim::SimMedium;
use herald::protocol::{
    ErrorCode, EventBatch, Frame, Pattern, Patterns, Role, Severity, Subscribe,
};
use herald::reactor::PeerCredentials;
use herald::sim::{hello, SimClient, SimNode};
use sim::{turns_until, Got};
use std::sync::Arc;

const FORBIDDEN: u16 = ErrorCode::Forbidden as u16;

/// uid 1001 publishes `fs.>` and subscribes within `fs.*.error` as `alerts-*`; group
/// 3000 may be admin; root (the default simulated peer) may do everything.
fn node() -> SimNode<SimMedium> {
    let rules = vec![
        Rule {
            subject: Subject::Uid(1001),
            label: "uid 1001".into(),
            publish: vec!["fs.>".into()],
            subscribe: vec!["fs.*.error".into()],
            subscriptions: vec!["alerts-*".into()],
            admin: false,
        },
        Rule {
            subject: Subject::Group {
                gid: 3000,
                members: vec![],
            },
            label: "gid 3000".into(),
            publish: vec![],
            subscribe: vec![],
            subscriptions: vec![],
            admin: true,
        },
    ];
    let config = DaemonConfig {
        access: Some(Arc::new(Policy::new(rules, vec![0]).expect("policy"))),
        ..sim::config()
    };
    SimNode::start(
        &sim::net(),
        sim::SOCKET,
        config,
        sim::fresh_log(4 << 20),
        true,
    )
    .expect("start")
}

fn as_uid(uid: u32, gid: u32) -> PeerCredentials {
    PeerCredentials { pid: 50, uid, gid }
}

fn is_forbidden(got: &Got) -> bool {
    matches!(got, Got::Error { code, .. } if *code == FORBIDDEN)
}

fn publish_frame(correlation: u64, topic: &str) -> Frame<'_> {
    Frame::Publish {
        correlation,
        event: sim::event(topic, b"x"),
    }
}

fn subscribe_frame<'a>(name: &'a str, patterns: &'a [Pattern<'a>]) -> Frame<'a> {
    Frame::Subscribe(Subscribe {
        name,
        min_severity: Severity::Debug,
        window_events: 8,
        automatic_recovery: false,
        group: false,
        ack_deadline_ms: 0,
        max_deliveries: 0,
        patterns: Patterns::from_patterns(patterns),
    })
}

/// One answer after sending `frame`.
fn ask(node: &mut SimNode<SimMedium>, client: &mut SimClient, frame: &Frame<'_>) -> Got {
    assert!(client.send(frame));
    let got = turns_until(node, client, 10, |g| !g.is_empty());
    assert_eq!(got.len(), 1, "{got:?}");
    got[0].clone()
}

#[test]
fn a_refused_publish_is_forbidden_and_the_connection_publishes_what_it_may() {
    let mut node = node();
    let mut p = node.connect_as(as_uid(1001, 1001));
    assert_eq!(
        ask(&mut node, &mut p, &hello(Role::Producer, "fsd")),
        Got::HelloOk
    );
    let refused = ask(&mut node, &mut p, &publish_frame(1, "net.link.down"));
    assert!(is_forbidden(&refused), "{refused:?}");
    let stored = ask(&mut node, &mut p, &publish_frame(2, "fs.vol1.error"));
    assert!(
        matches!(stored, Got::Stored { correlation: 2, .. }),
        "{stored:?}"
    );
    // A batch with one forbidden event is refused whole, with its correlation.
    let events = [sim::event("fs.a", b"1"), sim::event("net.b", b"2")];
    let batch = Frame::PublishBatch {
        correlation: 3,
        events: EventBatch::from_events(&events),
    };
    assert!(p.send(&batch));
    let got = turns_until(&mut node, &mut p, 10, |g| !g.is_empty());
    assert!(is_forbidden(&got[0]), "{got:?}");
    assert!(!p.is_closed());
    assert_eq!(node.core().log().tail().0, {
        // Nothing of the batch went in: the tail is where the one stored publish left it.
        let Got::Stored { last, .. } = stored else {
            unreachable!()
        };
        last + 1
    });
    assert_eq!(node.core().access_refusals(), 2);
}

#[test]
fn refused_publishes_answer_in_order_with_their_correlations() {
    let mut node = node();
    let mut p = node.connect_as(as_uid(1001, 1001));
    assert_eq!(
        ask(&mut node, &mut p, &hello(Role::Producer, "fsd")),
        Got::HelloOk
    );
    // Pipelined: stored, refused, stored; answers in the frames' order.
    for (c, topic) in [(1, "fs.a"), (2, "other"), (3, "fs.b")] {
        assert!(p.send(&publish_frame(c, topic)));
    }
    let got = turns_until(&mut node, &mut p, 10, |g| g.len() == 3);
    assert!(
        matches!(got[0], Got::Stored { correlation: 1, .. }),
        "{got:?}"
    );
    assert!(is_forbidden(&got[1]), "{got:?}");
    assert!(
        matches!(got[2], Got::Stored { correlation: 3, .. }),
        "{got:?}"
    );
}

#[test]
fn a_hello_with_a_role_the_policy_does_not_give_is_refused_and_may_be_tried_again() {
    let mut node = node();
    let mut c = node.connect_as(as_uid(1001, 1001));
    let refused = ask(&mut node, &mut c, &hello(Role::Control, "ops"));
    assert!(is_forbidden(&refused), "{refused:?}");
    // Still waiting for a hello: one with a role it has is accepted.
    assert_eq!(
        ask(&mut node, &mut c, &hello(Role::Both, "fsd")),
        Got::HelloOk
    );
    // A stranger has no role at all.
    let mut stranger = node.connect_as(as_uid(4242, 4242));
    for role in Role::ALL {
        let refused = ask(&mut node, &mut stranger, &hello(role, "who"));
        assert!(is_forbidden(&refused), "{role:?}: {refused:?}");
    }
}

#[test]
fn subscribe_patterns_must_lie_within_the_grant_and_a_refused_one_may_be_retried() {
    let mut node = node();
    let mut s = node.connect_as(as_uid(1001, 1001));
    assert_eq!(
        ask(&mut node, &mut s, &hello(Role::Subscriber, "alerts")),
        Got::HelloOk
    );
    let wide = [Pattern::parse(b"fs.>").unwrap()];
    let refused = ask(&mut node, &mut s, &subscribe_frame("", &wide));
    assert!(is_forbidden(&refused), "{refused:?}");
    let within = [Pattern::parse(b"fs.vol1.error").unwrap()];
    let refused = ask(&mut node, &mut s, &subscribe_frame("billing", &within));
    assert!(is_forbidden(&refused), "a name no rule allows: {refused:?}");
    let subscribed = ask(&mut node, &mut s, &subscribe_frame("alerts-disk", &within));
    assert!(
        matches!(subscribed, Got::Subscribed { .. }),
        "{subscribed:?}"
    );
    // And it is delivered what it subscribed to.
    let mut p = node.connect_as(as_uid(1001, 1001));
    assert_eq!(
        ask(&mut node, &mut p, &hello(Role::Producer, "fsd")),
        Got::HelloOk
    );
    assert!(matches!(
        ask(&mut node, &mut p, &publish_frame(1, "fs.vol1.error")),
        Got::Stored { .. }
    ));
    let got = turns_until(&mut node, &mut s, 10, |g| !g.is_empty());
    assert!(matches!(got[0], Got::Deliver { .. }), "{got:?}");
}

#[test]
fn status_needs_admin_and_root_keeps_every_right() {
    let mut node = node();
    let mut admin = node.connect_as(as_uid(2002, 3000));
    assert_eq!(
        ask(&mut node, &mut admin, &hello(Role::Control, "ops")),
        Got::HelloOk
    );
    assert!(matches!(
        ask(&mut node, &mut admin, &Frame::Status),
        Got::Status(_)
    ));
    // The admin may not publish: its hello as a producer is refused.
    let mut c = node.connect_as(as_uid(2002, 3000));
    assert!(is_forbidden(&ask(
        &mut node,
        &mut c,
        &hello(Role::Producer, "x")
    )));
    // Root, the default simulated peer, is unrestricted.
    let mut root = node.connect();
    assert_eq!(
        ask(&mut node, &mut root, &hello(Role::Both, "root")),
        Got::HelloOk
    );
    assert!(matches!(
        ask(&mut node, &mut root, &publish_frame(1, "anything.at.all")),
        Got::Stored { .. }
    ));
}
