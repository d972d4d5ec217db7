"""The blocking client against a real daemon: every operation, and the failures."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Daemon, start_daemon
from support import DELIVERY_TIMEOUT_S, receive, receive_until_recovery_done

from herald_client import (
    AdminError,
    Client,
    ConnectFailed,
    ConnectionClosed,
    EncodeError,
    ErrorCode,
    Event,
    FullError,
    LimitExceeded,
    Role,
    ServerError,
    Severity,
    UsageError,
    codec,
    limits,
)
from herald_client.codec import FrameReader

Connect = Callable[..., Client]


def marker(producer: Client, topic: str = "fs.marker") -> int:
    """Publish an event that ends a test's expectations.

    Deliveries come in seq order, so a subscriber whose next delivery is the marker has
    received nothing else in between: absence proved without waiting for a timeout.
    """
    return producer.publish(topic, b"marker")


def test_publish_subscribe_confirm_round_trip(connect: Connect) -> None:
    subscriber = connect(Role.SUBSCRIBER, "ops")
    subscribed = subscriber.subscribe("ops", ["fs.>"])
    assert not subscribed.recovering and subscribed.pending_events == 0
    producer = connect(Role.PRODUCER, "fsd")
    assert producer.hello_ok is not None and producer.hello_ok.version == 1

    seq = producer.publish(
        "fs.vol1.error", b"disk full", severity=Severity.ERR, flags=0xBEEF, key=b"evt-1"
    )
    (delivery,) = receive(subscriber, 1)
    assert delivery.seq == seq
    assert (delivery.topic, delivery.payload, delivery.severity) == ("fs.vol1.error", b"disk full", 3)
    assert (delivery.source, delivery.flags, delivery.key) == ("fsd", 0xBEEF, b"evt-1")
    assert not delivery.redelivered and delivery.delivery_count == 1
    assert abs(delivery.timestamp_ns - time.time_ns()) < 60 * 10**9
    subscriber.confirm(delivery.seq)
    subscriber.goodbye()
    assert subscriber.closed

    again = connect(Role.SUBSCRIBER, "ops")
    assert again.subscribe("ops", ["fs.>"]).pending_events == 0
    end = marker(producer)
    assert [d.seq for d in receive(again, 1)] == [end]


def test_an_explicit_source_is_delivered_instead_of_the_client_name(connect: Connect) -> None:
    subscriber = connect(Role.SUBSCRIBER)
    subscriber.subscribe("", ["app.>"])
    producer = connect(Role.PRODUCER, "gateway")
    producer.publish("app.login", b"", source="auth-service")
    producer.publish("app.login", b"")
    assert [d.source for d in receive(subscriber, 2)] == ["auth-service", "gateway"]


def test_a_batch_is_stored_whole_and_delivered_in_order(connect: Connect) -> None:
    subscriber = connect(Role.SUBSCRIBER, "batch")
    subscriber.subscribe("batch", ["jobs.>"])
    producer = connect(Role.PRODUCER, "scheduler")
    events = [Event(f"jobs.n{i}", f"job {i}".encode(), severity=Severity.NOTICE) for i in range(5)]
    stored = producer.publish_batch(events)
    assert stored.count == 5 and stored.first_seq < stored.last_seq

    deliveries = receive(subscriber, 5)
    assert [d.topic for d in deliveries] == [e.topic for e in events]
    seqs = [d.seq for d in deliveries]
    assert seqs == sorted(seqs) and seqs[0] == stored.first_seq and seqs[-1] == stored.last_seq
    subscriber.confirm_range(stored.first_seq, stored.last_seq)
    subscriber.close()

    again = connect(Role.SUBSCRIBER, "batch")
    again.subscribe("batch", ["jobs.>"])
    end = marker(producer, "jobs.marker")
    assert [d.seq for d in receive(again, 1)] == [end]


def test_an_idempotent_retry_gets_the_same_seq_and_stores_nothing(connect: Connect) -> None:
    subscriber = connect(Role.SUBSCRIBER)
    subscriber.subscribe("", ["pay.>"])
    producer = connect(Role.PRODUCER, "billing")
    first = producer.publish("pay.charge", b"42 EUR", key="charge-7")
    retry = producer.publish("pay.charge", b"42 EUR", key="charge-7")
    assert retry == first
    other_source = producer.publish("pay.charge", b"42 EUR", key="charge-7", source="refunds")
    assert other_source != first

    # From another connection with the same client name (the source), too.
    reconnected = connect(Role.PRODUCER, "billing")
    assert reconnected.publish("pay.charge", b"42 EUR", key="charge-7") == first

    end = marker(producer, "pay.marker")
    assert [d.seq for d in receive(subscriber, 3)] == [first, other_source, end]


def test_a_batch_repeating_a_key_stores_that_event_once(connect: Connect) -> None:
    producer = connect(Role.PRODUCER, "billing")
    earlier = producer.publish("pay.charge", b"a", key="k-earlier")
    stored = producer.publish_batch(
        [Event("pay.charge", b"b", key="k-batch"), Event("pay.charge", b"b", key="k-batch")]
    )
    assert stored.count == 1 and stored.first_seq == stored.last_seq
    mixed = producer.publish_batch([Event("pay.charge", b"a", key="k-earlier"), Event("pay.new")])
    assert mixed.first_seq == earlier and mixed.count == 2


def test_a_durable_subscription_gets_unconfirmed_events_again_after_a_disconnect(connect: Connect) -> None:
    subscriber = connect(Role.SUBSCRIBER, "worker")
    subscriber.subscribe("orders", ["orders.>"])
    producer = connect(Role.PRODUCER, "shop")
    seqs = [producer.publish("orders.new", f"order {i}".encode()) for i in range(3)]
    deliveries = receive(subscriber, 3)
    subscriber.confirm(deliveries[1].seq)
    subscriber.close()  # gone without goodbye, two events unsettled

    again = connect(Role.SUBSCRIBER, "worker")
    subscribed = again.subscribe("orders", ["orders.>"])
    assert not subscribed.recovering and subscribed.pending_events >= 2
    redelivered = receive(again, 2)
    assert [d.seq for d in redelivered] == [seqs[0], seqs[2]]
    assert all(d.redelivered and d.delivery_count == 2 for d in redelivered)
    assert [d.payload for d in redelivered] == [b"order 0", b"order 2"]


def test_a_live_only_subscription_sees_only_events_stored_while_attached(connect: Connect) -> None:
    producer = connect(Role.PRODUCER, "fsd")
    before = producer.publish("fs.early", b"")
    live = connect(Role.SUBSCRIBER)
    subscribed = live.subscribe("", ["fs.>"])
    assert subscribed.pending_events == 0 and not subscribed.recovering
    during = producer.publish("fs.during", b"")
    (delivery,) = receive(live, 1)
    assert delivery.seq == during != before
    live.close()  # unconfirmed, but a live-only subscription is forgotten

    later = connect(Role.SUBSCRIBER)
    later.subscribe("", ["fs.>"])
    end = marker(producer)
    assert [d.seq for d in receive(later, 1)] == [end]


def test_patterns_and_min_severity_choose_what_is_delivered(connect: Connect) -> None:
    subscriber = connect(Role.SUBSCRIBER)
    subscriber.subscribe("", ["fs.*.error", "net.>"], min_severity=Severity.WARNING)
    producer = connect(Role.PRODUCER, "mixed")
    published = [
        ("fs.vol1.error", Severity.ERR, True),
        ("fs.vol1.error", Severity.INFO, False),  # too mild
        ("fs.error", Severity.CRIT, False),  # * needs exactly one segment
        ("fs.a.b.error", Severity.CRIT, False),
        ("net.eth0", Severity.WARNING, True),  # severity == min_severity passes
        ("net.eth0.link.down", Severity.EMERG, True),
        ("net", Severity.EMERG, False),  # > needs one or more segments
        ("disk.full", Severity.EMERG, False),
    ]
    expected = []
    for topic, severity, wanted in published:
        seq = producer.publish(topic, b"", severity=severity)
        if wanted:
            expected.append(seq)
    end = producer.publish("net.marker", b"", severity=Severity.EMERG)
    assert [d.seq for d in receive(subscriber, len(expected) + 1)] == expected + [end]


@pytest.mark.daemon_args("--redelivery-backoff", "50ms", "--redelivery-backoff-max", "100ms")
def test_nak_redelivers_after_its_delay_and_a_missed_deadline_redelivers_too(connect: Connect) -> None:
    # A deadline no step here comes near (a failure detector): only the nak brings it back.
    subscriber = connect(Role.SUBSCRIBER, "retrying")
    subscriber.subscribe("retry", ["jobs.>"], ack_deadline_ms=60_000)
    producer = connect(Role.PRODUCER, "scheduler")
    seq = producer.publish("jobs.resize", b"img-1")

    (first,) = receive(subscriber, 1)
    naked_at = time.monotonic()
    subscriber.nak(first.seq, delay_ms=200)
    (second,) = receive(subscriber, 1)
    assert time.monotonic() - naked_at >= 0.2
    assert (second.seq, second.redelivered, second.delivery_count) == (seq, True, 2)

    # Attached again with a short deadline and room for two more deliveries: the event
    # owed since the goodbye comes first, then, not settled within ack_deadline_ms
    # (300 ms), once more. That is its last delivery (a deadline missed after it makes a
    # dead letter, never a fifth), so settling it races no redelivery.
    subscriber.goodbye()
    again = connect(Role.SUBSCRIBER, "retrying")
    again.subscribe("retry", ["jobs.>"], ack_deadline_ms=300, max_deliveries=4)
    (third,) = receive(again, 1)
    assert (third.seq, third.redelivered, third.delivery_count) == (seq, True, 3)
    (fourth,) = receive(again, 1)
    assert (fourth.seq, fourth.redelivered, fourth.delivery_count) == (seq, True, 4)
    again.working(fourth.seq)  # accepted, restarts the deadline
    again.confirm(fourth.seq)
    end = marker(producer, "jobs.marker")
    assert [d.seq for d in receive(again, 1)] == [end]


def test_a_rejected_event_becomes_a_dead_letter_listed_by_admin(connect: Connect) -> None:
    subscriber = connect(Role.SUBSCRIBER, "mailer")
    subscriber.subscribe("mail", ["mail.>"])
    producer = connect(Role.PRODUCER, "web")
    seq = producer.publish("mail.send", b"poison message", severity=Severity.CRIT)
    (delivery,) = receive(subscriber, 1)
    subscriber.reject(delivery.seq)
    subscriber.ping()  # the reject is applied before the ping is answered

    control = connect(Role.CONTROL, "operator")
    answer = control.admin({"op": "dead.list", "subscription": "mail"})
    assert (answer["total"], answer["shown"]) == (1, 1)
    (dead,) = answer["dead_letters"]
    assert dead["subscription"] == "mail" and dead["seq"] == seq
    assert dead["reason"] == "rejected" and dead["deliveries"] == 1
    assert (dead["topic"], dead["source"], dead["severity"]) == ("mail.send", "web", "crit")
    assert dead["payload_bytes"] == len(b"poison message")
    assert dead["payload_preview"] == "poison message"

    # The rejected event is settled: not redelivered to the subscription.
    end = marker(producer, "mail.marker")
    assert [d.seq for d in receive(subscriber, 1)] == [end]


def test_max_deliveries_makes_a_dead_letter_and_replay_delivers_it_again(connect: Connect) -> None:
    subscriber = connect(Role.SUBSCRIBER, "picky")
    subscriber.subscribe("picky", ["x.>"], max_deliveries=2)
    producer = connect(Role.PRODUCER, "p")
    seq = producer.publish("x.y", b"twice")
    for count in (1, 2):
        (delivery,) = receive(subscriber, 1)
        assert delivery.delivery_count == count
        subscriber.nak(delivery.seq)
    subscriber.ping()

    control = connect(Role.CONTROL)
    (dead,) = control.admin({"op": "dead.list"})["dead_letters"]
    assert (dead["seq"], dead["reason"], dead["deliveries"]) == (seq, "max_deliveries", 2)

    replay = control.admin({"op": "dead.replay", "subscription": "picky", "seqs": [seq, 999_999]})
    assert replay["replay_requested"] == 1 and replay["not_found"] == [999_999]
    (replayed,) = receive(subscriber, 1)
    assert replayed.seq == seq and replayed.redelivered
    subscriber.confirm(replayed.seq)
    subscriber.ping()
    assert control.admin({"op": "dead.list"})["total"] == 0


def test_an_admin_request_the_daemon_cannot_carry_out_raises_and_keeps_the_connection(connect: Connect) -> None:
    control = connect(Role.CONTROL)
    with pytest.raises(AdminError, match="unknown op") as raised:
        control.admin({"op": "no.such.op"})
    assert "error" in raised.value.answer
    assert control.ping() >= 0 and not control.closed


def test_status_describes_ring_connections_and_subscriptions(connect: Connect, daemon: Daemon) -> None:
    subscriber = connect(Role.SUBSCRIBER, "ops")
    subscriber.subscribe("ops-status", ["fs.>"], ack_deadline_ms=1234, max_deliveries=3)
    control = connect(Role.CONTROL, "operator")
    status = control.status()
    for section in ("connections", "region", "ring", "subscriptions", "idempotency", "redelivery_defaults"):
        assert section in status, f"status has no {section!r}: {sorted(status)}"
    assert status["connections"]["open"] == 2
    assert status["region"]["path"] == str(daemon.data_dir / "region.pmem")
    ring = status["ring"]
    assert isinstance(ring, dict) and ring["slot_count"] > 0 and ring["head"] <= ring["tail"]
    (subscription,) = status["subscriptions"]
    assert subscription["name"] == "ops-status" and subscription["durable"] is True
    assert subscription["connected"] is True and subscription["mode"] == "normal"
    assert (subscription["ack_deadline_ms"], subscription["max_deliveries"]) == (1234, 3)


def test_pipelined_publishes_are_answered_in_order(connect: Connect) -> None:
    producer = connect(Role.PRODUCER, "bulk")
    correlations = [producer.send_publish("bulk.item", str(i).encode()) for i in range(20)]
    single = producer.publish("bulk.single", b"")  # its own answer, the others kept
    batch = producer.send_publish_batch([Event("bulk.batch"), Event("bulk.batch")])
    assert producer.unread_publishes == 21
    answers = [producer.read_stored() for _ in range(21)]
    assert [a.correlation for a in answers] == [*correlations, batch]
    seqs = [a.seq for a in answers[:20]]
    assert seqs == sorted(seqs) and single > seqs[-1] and answers[20].first_seq > single
    with pytest.raises(UsageError):
        producer.read_stored()


def test_more_pipelined_publishes_than_the_daemon_buffers_answers_for_do_not_deadlock(connect: Connect) -> None:
    producer = connect(Role.PRODUCER, "flood")
    sent = 3 * limits.PIPELINED_REQUESTS_MAX
    for i in range(sent):
        producer.send_publish("flood.x", i.to_bytes(4, "little"))
    seqs = [producer.read_stored().seq for _ in range(sent)]
    assert len(set(seqs)) == sent and seqs == sorted(seqs)


def test_goodbye_still_delivers_answers_to_earlier_publishes(connect: Connect) -> None:
    producer = connect(Role.PRODUCER, "leaving")
    for i in range(5):
        producer.send_publish("leave.x", bytes([i]))
    producer.goodbye()
    assert producer.closed
    seqs = [producer.read_stored().seq for _ in range(5)]
    assert seqs == sorted(seqs)


def test_a_both_connection_publishes_and_receives_its_own_events(connect: Connect) -> None:
    both = connect(Role.BOTH, "loop")
    both.subscribe("", ["loop.>"])
    seqs = [both.publish("loop.x", bytes([i])) for i in range(3)]
    assert [d.seq for d in receive(both, 3)] == seqs
    both.confirm_range(seqs[0], seqs[-1])
    assert both.ping() >= 0


def test_full_is_a_distinct_error_that_keeps_the_connection(tmp_path: Path) -> None:
    small = start_daemon(tmp_path, ["--region-size", "1M"])
    try:
        holder = Client.connect(small.socket_path, role=Role.SUBSCRIBER, client_name="slow")
        holder.subscribe("slow", [">"], window_events=1)  # durable, never confirms
        producer = Client.connect(small.socket_path, role=Role.PRODUCER, client_name="p")
        stored = 0
        with pytest.raises(FullError) as raised:
            for _ in range(1000):
                producer.publish("big.x", b"x" * 60_000, severity=Severity.INFO)
                stored += 1
        full = raised.value
        assert stored > 0 and (full.code, full.code_name) == (5, "full") and not full.closes
        assert full.correlation != 0 and "full" in full.message
        assert not producer.closed and producer.ping() >= 0
        # The reserve still takes the most severe events.
        assert producer.publish("big.alarm", b"!", severity=Severity.EMERG) > 0
        holder.close()
        producer.close()
    finally:
        small.stop()


@pytest.mark.parametrize(
    ("role", "act"),
    [
        (Role.SUBSCRIBER, lambda c: c.publish("fs.a", b"")),
        (Role.PRODUCER, lambda c: c.subscribe("", [">"])),
        (Role.PRODUCER, lambda c: c.status()),
        (Role.SUBSCRIBER, lambda c: c.admin({"op": "dead.list"})),
        (Role.CONTROL, lambda c: c.publish("fs.a", b"")),
    ],
)
def test_a_frame_the_role_does_not_permit_gets_not_permitted_and_closes(
    connect: Connect, role: Role, act: Callable[[Client], object]
) -> None:
    client = connect(role, "wrong-role")
    with pytest.raises(ServerError) as raised:
        act(client)
    error = raised.value
    assert (error.code, error.code_name, error.closes) == (ErrorCode.NOT_PERMITTED, "not_permitted", True)
    assert "not permitted" in error.message
    assert client.closed
    with pytest.raises(ServerError):
        client.ping()


def test_settling_before_subscribing_is_unexpected_and_the_reason_survives_the_broken_pipe(connect: Connect) -> None:
    client = connect(Role.SUBSCRIBER, "early")
    client.confirm(1)  # no answer: the daemon sends Error(unexpected) and closes
    with pytest.raises(ServerError) as raised:
        client.ping()
    assert raised.value.code_name == "unexpected" and client.closed


def test_a_work_queue_group_gives_each_event_to_one_member(connect: Connect) -> None:
    # A window of one each: a member holds one event until it confirms, so both must
    # take part and no event can reach both.
    members = [connect(Role.SUBSCRIBER, f"worker-{i}") for i in range(2)]
    for member in members:
        member.subscribe("jobs", ["jobs.>"], window_events=1, group=True)
    with pytest.raises(ServerError) as raised:
        connect(Role.SUBSCRIBER, "outsider").subscribe("jobs", ["jobs.>"])
    assert raised.value.code_name == "name_in_use"
    producer = connect(Role.PRODUCER, "boss")
    seqs = [producer.publish("jobs.build", f"job {i}".encode()) for i in range(6)]
    taken: list[int] = []
    # Each round both members are full before either confirms, so each takes exactly
    # one of the next two events, whichever the daemon picks.
    for _ in range(len(seqs) // 2):
        held = [receive(member, 1)[0].seq for member in members]
        for member, seq in zip(members, held):
            member.confirm(seq)
        taken += held
    assert sorted(taken) == seqs


def test_a_durable_name_held_by_another_connection_is_name_in_use(connect: Connect) -> None:
    connect(Role.SUBSCRIBER, "a").subscribe("shared", [">"])
    with pytest.raises(ServerError) as raised:
        connect(Role.SUBSCRIBER, "b").subscribe("shared", [">"])
    assert raised.value.code_name == "name_in_use" and raised.value.code == 6


def test_a_durable_name_resubscribed_with_other_filters_is_invalid(connect: Connect) -> None:
    # Found by experiment; PROTOCOL.md does not say this.
    first = connect(Role.SUBSCRIBER, "a")
    first.subscribe("fixed", ["a.>", "b.>"], min_severity=5)
    first.goodbye()
    for patterns, min_severity in ((["b.>", "a.>"], 5), (["a.>", "b.>"], 6)):
        with pytest.raises(ServerError) as raised:
            connect(Role.SUBSCRIBER, "a").subscribe("fixed", patterns, min_severity=min_severity)
        assert raised.value.code_name == "invalid" and "filters" in raised.value.message
    # Window, deadline, max deliveries and recovery flag may change between connections.
    connect(Role.SUBSCRIBER, "a").subscribe(
        "fixed", ["a.>", "b.>"], min_severity=5, window_events=7, ack_deadline_ms=99, max_deliveries=9
    )


def test_a_second_subscribe_is_refused_before_sending(connect: Connect) -> None:
    client = connect(Role.SUBSCRIBER)
    client.subscribe("", [">"])
    with pytest.raises(UsageError, match="at most one subscription"):
        client.subscribe("", [">"])
    assert client.ping() >= 0


def test_a_limit_breach_raises_before_sending_and_keeps_the_connection(connect: Connect) -> None:
    producer = connect(Role.PRODUCER)
    with pytest.raises(LimitExceeded, match="payload is 65537 bytes"):
        producer.publish("fs.a", b"x" * (limits.EVENT_PAYLOAD_BYTES_MAX + 1))
    with pytest.raises(EncodeError, match="topic"):
        producer.publish("not a topic", b"")
    assert producer.publish("fs.a", b"x" * limits.EVENT_PAYLOAD_BYTES_MAX) > 0


def test_no_version_in_common_is_unsupported_version(daemon: Daemon) -> None:
    # Far beyond any version the daemon will speak, so a protocol bump cannot make the
    # range overlap (versions 3..4 did once the daemon reached version 3).
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(10)
        raw.connect(daemon.socket_path)
        raw.sendall(codec.encode_hello(Role.PRODUCER, "future", version_min=60000, version_max=60001))
        reader = FrameReader()
        while (data := raw.recv(4096)) != b"":
            reader.feed(data)
        frame = reader.next_frame()
    assert frame is not None
    error = codec.decode_server_frame(*frame)
    assert isinstance(error, codec.ErrorFrame) and error.code == ErrorCode.UNSUPPORTED_VERSION


def test_the_default_socket_is_herald_data_under_the_current_directory(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(daemon.data_dir.parent)
    with Client.connect(role=Role.CONTROL) as client:
        assert client.socket_path == str(daemon.data_dir / "herald.sock")
        assert client.ping() >= 0


def test_connecting_to_a_missing_socket_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConnectFailed, match=r"herald serve.*--data-dir"):
        Client.connect(tmp_path / "nowhere.sock")


def test_next_delivery_returns_none_when_nothing_comes_in_time(connect: Connect) -> None:
    subscriber = connect(Role.SUBSCRIBER)
    subscriber.subscribe("", ["quiet.>"])
    assert subscriber.next_delivery(timeout=0.05) is None
    with pytest.raises(UsageError):
        connect(Role.SUBSCRIBER).next_delivery(0)


def test_a_kill_9_leaves_unconfirmed_events_to_be_redelivered_in_recovery(
    connect: Connect, daemon: Daemon
) -> None:
    subscriber = connect(Role.SUBSCRIBER, "ledger")
    subscriber.subscribe("ledger", ["ledger.>"])
    auto = connect(Role.SUBSCRIBER, "ledger-auto")
    auto.subscribe("ledger-auto", ["ledger.>"], automatic_recovery=True)
    producer = connect(Role.PRODUCER, "bank")
    seqs = [producer.publish("ledger.entry", f"entry {i}".encode(), key=f"entry-{i}") for i in range(4)]
    received = receive(subscriber, 4)
    subscriber.confirm(received[0].seq)
    subscriber.ping()  # the confirm is applied before the crash

    daemon.restart_after_kill()
    assert "4 unconfirmed events recovered" in daemon.ready_line

    producer = connect(Role.PRODUCER, "bank")
    # Idempotency keys survive the restart: the retry gets its original number.
    assert producer.publish("ledger.entry", b"entry 3", key="entry-3") == seqs[3]
    new = producer.publish("ledger.entry", b"after the crash")

    again = connect(Role.SUBSCRIBER, "ledger")
    subscribed = again.subscribe("ledger", ["ledger.>"])
    assert subscribed.recovering
    replayed = receive_until_recovery_done(again)
    assert [d.seq for d in replayed] == seqs[1:]
    assert all(d.redelivered and d.delivery_count >= 2 for d in replayed)
    again.confirm_range(seqs[1], seqs[3])
    again.recovered()  # only now do new events come
    (fresh,) = receive(again, 1)
    assert (fresh.seq, fresh.redelivered, fresh.payload) == (new, False, b"after the crash")

    auto_again = connect(Role.SUBSCRIBER, "ledger-auto")
    assert auto_again.subscribe("ledger-auto", ["ledger.>"], automatic_recovery=True).recovering
    replayed = receive_until_recovery_done(auto_again)
    assert [d.seq for d in replayed] == seqs
    auto_again.confirm_range(seqs[0], seqs[-1])  # settling every replay ends recovery
    assert [d.seq for d in receive(auto_again, 1)] == [new]


def test_a_client_connected_during_a_kill_9_sees_the_connection_close(connect: Connect, daemon: Daemon) -> None:
    subscriber = connect(Role.SUBSCRIBER, "watcher")
    subscriber.subscribe("", [">"])
    daemon.kill()
    with pytest.raises(ConnectionClosed, match="closed the connection"):
        subscriber.next_delivery(timeout=DELIVERY_TIMEOUT_S)
    assert subscriber.closed
