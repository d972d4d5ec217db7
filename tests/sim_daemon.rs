//! The whole daemon in one process, over the simulated reactor and medium: the seam
//! the daemon's core runs over (no kernel sockets, no real time, no file).

#[path = "support/sim.rs"]
mod sim;

use herald::log::Log;
use herald::pmem::sim::SimMedium;
use herald::sim::SimNode;
use sim::{confirm, producer, publish, subscriber, turns_until, Got};

fn reopen(log: Log<SimMedium>) -> (Log<SimMedium>, bool) {
    // Only what was fenced survives: the image a power cut at this moment leaves when
    // every unfenced word is lost.
    let image = log.into_medium().state().durable_image();
    let (log, report) = Log::open(SimMedium::from_image(image), &mut |_, _| {}).expect("reopen");
    let clean = report.previous_stop == herald::log::PreviousStop::Clean;
    (log, clean)
}

#[test]
fn publish_deliver_confirm_release_runs_in_one_process_and_survives_a_power_cut() {
    let net = sim::net();
    let mut node = SimNode::start(
        &net,
        sim::SOCKET,
        sim::config(),
        sim::fresh_log(4 << 20),
        true,
    )
    .expect("start");
    let (mut sub, subscribed, _) = subscriber(&mut node, "ops", 16);
    assert_eq!(
        subscribed,
        Got::Subscribed {
            recovering: false,
            pending: 0
        }
    );
    let mut p = producer(&mut node, "fsd");
    let first = publish(&mut node, &mut p, 1, b"disk full");
    // Delivered, confirmed, released.
    let got = turns_until(&mut node, &mut sub, 10, |g| !g.is_empty());
    assert_eq!(
        got,
        [Got::Deliver {
            seq: first,
            redelivered: false,
            count: 1,
            payload: b"disk full".to_vec()
        }]
    );
    confirm(&mut sub, first);
    for _ in 0..3 {
        node.turn().expect("turn");
    }
    let log = node.core().log();
    assert_eq!(log.head(), log.tail(), "released once confirmed");
    let id = log.subscription_by_name(b"ops").expect("durable").id;
    assert_eq!(
        log.subscription(id).map(|s| s.cursor),
        Some(log.tail().0),
        "the cursor is persisted"
    );

    // A second event is stored and delivered but never confirmed; then power is cut.
    let second = publish(&mut node, &mut p, 2, b"raid degraded");
    turns_until(&mut node, &mut sub, 10, |g| !g.is_empty());
    let (log, clean) = reopen(node.crash());
    assert!(!clean, "a power cut is not a clean stop");
    let net = sim::net();
    let mut node = SimNode::start(&net, sim::SOCKET, sim::config(), log, clean).expect("restart");
    let (mut sub, subscribed, mut got) = subscriber(&mut node, "ops", 16);
    assert_eq!(
        subscribed,
        Got::Subscribed {
            recovering: true,
            pending: 1
        },
        "the unconfirmed event waits, in recovery mode"
    );
    while got.len() < 2 {
        got.extend(turns_until(&mut node, &mut sub, 10, |g| !g.is_empty()));
    }
    assert_eq!(
        got,
        [
            Got::Deliver {
                seq: second,
                redelivered: true,
                count: 2,
                payload: b"raid degraded".to_vec()
            },
            Got::RecoveryDone
        ],
        "the first event, confirmed before the cut, is not replayed"
    );
}

#[test]
fn a_batch_repeating_a_key_is_answered_with_distinct_events_in_the_simulation_too() {
    use herald::protocol::{EventBatch, Frame};
    let net = sim::net();
    let mut node = SimNode::start(
        &net,
        sim::SOCKET,
        sim::config(),
        sim::fresh_log(4 << 20),
        true,
    )
    .expect("start");
    let mut p = producer(&mut node, "fsd");
    let mut a = sim::event("fs.a", b"one");
    a.key = b"k";
    let b = a;
    p.send(&Frame::PublishBatch {
        correlation: 9,
        events: EventBatch::from_events(&[a, b]),
    });
    let got = turns_until(&mut node, &mut p, 10, |g| !g.is_empty());
    match got[0] {
        Got::Stored {
            correlation: 9,
            first,
            last,
            count: 1,
        } => assert_eq!(first, last),
        ref other => panic!("{other:?}"),
    }
}
