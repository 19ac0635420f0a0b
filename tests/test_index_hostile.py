"""The index consumer against hostile and malformed messages, through a real Mosquitto
running the shipped TLS/ACL configuration (issue 11). Each case is the very input that
stopped the old consumer (or that it stored although it must not): the consumer refuses
it, counts and quarantines it, acknowledges it (no redelivery), and goes on storing the
good device's bins."""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.cli import main
from index_peers import alive, bin_at, bin_body, forget_session, refused, secure_consumer, stored_bins, topic
from simulator.local_broker import SECURE_USERS
from test_broker_security import Peer
from harness import wait_for


def hostile_cases() -> list[tuple[str, str, bytes, str]]:
    """(name, topic kind, payload, expected reason): dev-b publishes each under its own id."""
    seed = random.randrange(2**32)
    print(f"random-bytes seed {seed}")
    rng = random.Random(seed)

    def bin_(**kw) -> bytes:
        return bin_at("dev-b", "site-2", 1, **kw)

    def bin_with(path: tuple[str, ...], value) -> bytes:
        body = json.loads(bin_())
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return json.dumps(body).encode()

    return [
        ("rating kind without a schema", "rating", b"{}", "unknown_kind"),
        ("nested [ past the parser's recursion", "bins", b"[" * 30_000, "too_deep"),
        ("nested objects within the parser, past the depth bound", "summary", b'{"a":' * 200 + b"1" + b"}" * 200, "too_deep"),
        ("seq = 2**64", "bins", bin_with(("seq",), 2**64), "integer_range"),
        ("start_local = x", "bins", bin_with(("bin", "start_local"), "x"), "implausible"),
        ("random bytes", "bins", bytes(rng.randrange(128, 256) for _ in range(2000)), "not_utf8"),
        ("non-UTF-8", "alarm", b'{"detail": "\xff\xfe"}', "not_utf8"),
        ("not JSON", "birth", b"online", "not_json"),
        ("NaN", "alarm", b'{"t_utc": NaN}', "not_json"),
        ("huge payload", "bins", b'{"pad": "' + b"x" * 40_000 + b'"}', "too_large"),
        ("a list, not an object", "bins", b"[1, 2]", "not_object"),
        ("empty status", "status", b"{}", "schema"),
        ("body names another site", "bins", bin_with(("site",), "site-1"), "topic_mismatch"),
        ("body names another device", "bins", bin_with(("device",), "dev-a"), "topic_mismatch"),
        ("in = 10**15", "bins", bin_with(("total", "in"), 10**15), "implausible"),
        ("a timezone that is no zone", "bins", bin_with(("bin", "timezone"), "../../etc/passwd"), "implausible"),
        ("local hour 99", "bins", bin_with(("bin", "start_local"), "2026-11-26T99:00:00+08:00"), "implausible"),
        ("a date before any device", "bins",
         json.dumps(bin_body("dev-b", "site-2", 1, datetime(1999, 1, 1, tzinfo=timezone.utc))).encode(), "implausible"),
        ("a date in 9999", "bins",
         json.dumps(bin_body("dev-b", "site-2", 1, datetime(9999, 12, 30, tzinfo=timezone.utc))).encode(), "implausible"),
        ("empty payload", "bins", b"", "not_json"),
    ]


def test_each_hostile_message_is_refused_acknowledged_and_the_good_device_goes_on(secure_broker, tmp_path, caplog):
    cons = secure_consumer(secure_broker, tmp_path / "index.db")
    good = Peer(secure_broker, "dev-a", SECURE_USERS["dev-a"])
    bad = Peer(secure_broker, "dev-b", SECURE_USERS["dev-b"])
    assert not good.connect().is_failure and not bad.connect().is_failure
    cases = hostile_cases()
    try:
        for i, (name, kind, payload, reason) in enumerate(cases, start=1):
            before = refused(cons).get(reason, 0)
            assert not bad.publish(topic("site-2", "dev-b", kind), payload).is_failure, name
            good.publish(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", i, minutes_ago=len(cases) - i))
            wait_for(lambda: stored_bins(cons, "dev-a") == i, timeout=10, what=f"good bin after {name!r}")
            assert alive(cons), f"paho's thread ended on {name!r}"
            assert refused(cons).get(reason, 0) == before + 1, f"{name!r}: {refused(cons)}"
        assert stored_bins(cons, "dev-b") == 0
        with cons.store.lock:
            n_rows, biggest = cons.store.conn.execute("SELECT COUNT(*), MAX(LENGTH(payload)) FROM rejects").fetchone()
        assert n_rows == len(cases) and biggest <= 512, "quarantine rows are cut to 512 bytes"
        # the log says why, once per reason and device (rate limited), at WARNING
        warned = [r for r in caplog.records if r.levelno == logging.WARNING and "refused message" in r.getMessage()]
        assert 1 <= len(warned) <= len(cases)
    finally:
        cons.stop()
    # Acknowledged, so nothing comes back: the same consumer (same persistent session)
    # restarted gets the next good bin and no redelivered poison.
    again = secure_consumer(secure_broker, tmp_path / "index.db")
    try:
        good.publish(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", len(cases) + 1, minutes_ago=len(cases) + 1))
        wait_for(lambda: stored_bins(again, "dev-a") == len(cases) + 1, timeout=10, what="good bin after restart")
        time.sleep(0.3)
        assert again.counts.get("rejected", 0) == 0, "a refused message was redelivered"
    finally:
        again.stop()
        good.close()
        bad.close()


def test_a_packet_over_the_broker_limit_never_reaches_the_consumer(secure_broker, tmp_path):
    """100 KB of nested `[`: the shipped max_packet_size disconnects the sender."""
    cons = secure_consumer(secure_broker, tmp_path / "index.db")
    good = Peer(secure_broker, "dev-a", SECURE_USERS["dev-a"])
    bad = Peer(secure_broker, "dev-b", SECURE_USERS["dev-b"])
    assert not good.connect().is_failure and not bad.connect().is_failure
    try:
        bad.client.publish(topic("site-2", "dev-b", "bins"), b"[" * 100_000, qos=1)
        assert bad.disconnected.wait(10), "the broker kept a client that sent a 100 KB packet"
        good.publish(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", 1))
        wait_for(lambda: stored_bins(cons, "dev-a") == 1, timeout=10, what="good bin")
        assert alive(cons) and cons.counts.get("rejected", 0) == 0
    finally:
        cons.stop()
        good.close()
        bad.close()


def test_retained_poison_does_not_kill_a_fresh_consumer(secure_broker, tmp_path):
    bad = Peer(secure_broker, "dev-b", SECURE_USERS["dev-b"])
    good = Peer(secure_broker, "dev-a", SECURE_USERS["dev-a"])
    assert not bad.connect().is_failure and not good.connect().is_failure
    poison = {"status": b"[" * 30_000, "bins": bin_at("dev-b", "site-2", 1).replace(b'"seq": 1', b'"seq": 18446744073709551616'),
              "rating": b"{}"}
    for kind, payload in poison.items():
        assert not bad.publish(topic("site-2", "dev-b", kind), payload, retain=True).is_failure
    try:
        for n in (1, 2):  # two fresh consumers, each with a new database and session
            if n == 2:
                forget_session(secure_broker)
            cons = secure_consumer(secure_broker, tmp_path / f"index-{n}.db")
            try:
                good.publish(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", n))
                wait_for(lambda: stored_bins(cons, "dev-a") == 1, timeout=10, what="good bin behind retained poison")
                wait_for(lambda: sum(refused(cons).values()) == 3, timeout=5, what="3 retained refusals")
                assert alive(cons)
                assert refused(cons) == {"too_deep": 1, "integer_range": 1, "unknown_kind": 1}
            finally:
                cons.stop()
        # the second consumer restarted on its store and session: the retained poison was
        # handled once and does not come back with the reconnect
        again = secure_consumer(secure_broker, tmp_path / "index-2.db")
        try:
            good.publish(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", 3, minutes_ago=3))
            wait_for(lambda: stored_bins(again, "dev-a") == 2, timeout=10, what="good bin after restart")
            time.sleep(0.3)
            assert refused(again) == {"too_deep": 1, "integer_range": 1, "unknown_kind": 1}
        finally:
            again.stop()
    finally:
        good.close()
        bad.close()


def test_report_survives_odd_rows_stored_before_the_checks(tmp_path, capsys):
    """Rows an older consumer stored (hour 99, in = 10**15 twice: SUM overflows, a local
    date that is no date) break no site's report, the odd site's included."""
    from index_system.consumer import IndexStore

    store = IndexStore(tmp_path / "index.db")
    assert store.ingest(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", 1, n_in=7), "footfall/v1", time.time()) == "new"
    body = json.loads(bin_at("dev-a", "site-1", 1))
    for i, (date_, hour, n_in) in enumerate([("2026-11-25", 99, 5), ("2026-11-25", 3, 10**15 * 9000), ("2026-11-25", 4, 10**15 * 9000),
                                             ("x", 5, 1)]):
        store.conn.execute("INSERT INTO bins VALUES ('dev-x', 'site-x', ?, 0, ?, ?, 1, ?, 0, 0, '[]', ?)",
                           (f"2026-11-25T0{i}:00:00Z", date_, hour, n_in, "not json"))
    assert main(["index", "report", "--db", str(tmp_path / "index.db"), "--json"]) == 0
    days = json.loads(capsys.readouterr().out)
    assert [d["visits_in"] for d in days if d["site"] == "site-1"] == [7]
    assert main(["index", "report", "--db", str(tmp_path / "index.db")]) == 0
    assert main(["index", "report", "--db", str(tmp_path / "index.db"), "--week"]) == 0
    assert "site-1" in capsys.readouterr().out


def test_client_ids_cannot_be_taken_over(secure_broker, tmp_path):
    """use_username_as_clientid: dev-a asking for dev-b's client id does not disconnect
    dev-b; asking for the consumer's id does not take over (and discard) its session."""
    dev_b = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dev-b", protocol=mqtt.MQTTv5)
    dev_b.username_pw_set("dev-b", SECURE_USERS["dev-b"])
    dev_b.tls_set(ca_certs=str(secure_broker.tls.ca_cert))
    b_down = []
    dev_b.on_disconnect = lambda *a: b_down.append(a)
    dev_b.connect("127.0.0.1", secure_broker.port)
    dev_b.loop_start()
    cons = secure_consumer(secure_broker, tmp_path / "index.db")
    cons.stop()  # offline, with a persistent session that queues for it
    good = Peer(secure_broker, "dev-a", SECURE_USERS["dev-a"])
    assert not good.connect().is_failure
    for seq in (1, 2, 3):
        good.publish(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", seq, minutes_ago=3 - seq))
    try:
        for stolen in ("dev-b", "footfall-index", "index"):
            thief = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=stolen, protocol=mqtt.MQTTv5)
            thief.username_pw_set("dev-a", SECURE_USERS["dev-a"])
            thief.tls_set(ca_certs=str(secure_broker.tls.ca_cert))
            thief.connect("127.0.0.1", secure_broker.port, clean_start=True)
            thief.loop_start()
            time.sleep(0.5)
            thief.disconnect()
            thief.loop_stop()
        time.sleep(0.3)
        assert b_down == [], "dev-b was disconnected by a client asking for its id"
        again = secure_consumer(secure_broker, tmp_path / "index.db")
        try:
            wait_for(lambda: stored_bins(again, "dev-a") == 3, timeout=10, what="the queued bins survive")
        finally:
            again.stop()
    finally:
        dev_b.disconnect()
        dev_b.loop_stop()
        good.close()


def test_one_identity_with_two_contents_is_raised_not_dropped(secure_broker, tmp_path, caplog, capsys):
    cons = secure_consumer(secure_broker, tmp_path / "index.db")
    dev = Peer(secure_broker, "dev-a", SECURE_USERS["dev-a"])
    assert not dev.connect().is_failure
    first, second = bin_at("dev-a", "site-1", 1, n_in=3), bin_at("dev-a", "site-1", 1, minutes_ago=5, n_in=4)
    replayed = json.loads(first)
    replayed["historical"] = True  # the same message re-sent from a backlog is a plain duplicate
    try:
        for payload in (first, json.dumps(replayed).encode(), second):
            dev.publish(topic("site-1", "dev-a", "bins"), payload)
        wait_for(lambda: cons.counts.get("conflict", 0) == 1, timeout=10, what="the clash seen")
        assert cons.counts.get("duplicate", 0) == 1
        with cons.store.lock:
            kept = cons.store.conn.execute("SELECT payload FROM rejects WHERE reason = 'duplicate_identity'").fetchone()
        assert kept[0] == second, "the second content is kept whole for a person to look at"
        assert any(r.levelno == logging.ERROR and "duplicate_identity" in r.getMessage() for r in caplog.records)
    finally:
        cons.stop()
        dev.close()
    assert main(["index", "report", "--db", str(tmp_path / "index.db"), "--devices", "--json"]) == 0
    health = json.loads(capsys.readouterr().out)
    assert [(d["device"], d["duplicate_identity"]) for d in health] == [("dev-a", 1)]


def test_a_device_is_offline_when_its_bins_stop_whatever_its_retained_status_says(secure_broker, tmp_path, capsys):
    cons = secure_consumer(secure_broker, tmp_path / "index.db", offline_grace_s=30)
    dev = Peer(secure_broker, "dev-a", SECURE_USERS["dev-a"])
    assert not dev.connect().is_failure
    status = json.dumps({"schema": "footfall.status/1", "device": "dev-a", "site": "site-1", "state": "online",
                         "epoch": 1}).encode()
    try:
        dev.publish(topic("site-1", "dev-a", "status"), status, retain=True)
        dev.publish(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", 1, minutes_ago=1))
        wait_for(lambda: stored_bins(cons, "dev-a") == 1, timeout=10, what="first bin")
        t_bin = time.time()
        assert cons.check_availability(t_bin + 60) == {"dev-a": "online"}
        # the broker is killed (so no will goes out) and comes back: the status the consumer
        # holds still says online
        secure_broker.stop(kill=True)
        dev.client.loop_stop()  # the device dies meanwhile (no will, no goodbye)
        secure_broker.start()
        wait_for(lambda: cons.connected.is_set(), timeout=20, what="consumer reconnected")
        time.sleep(0.5)
        with cons.store.lock:
            (state,) = cons.store.conn.execute("SELECT state FROM devices WHERE device = 'dev-a'").fetchone()
        assert state == "online"
        assert cons.check_availability(t_bin + 60 + 31) == {"dev-a": "offline"}
        assert alive(cons)
    finally:
        cons.stop()
    assert main(["index", "report", "--db", str(tmp_path / "index.db"), "--devices", "--json",
                 "--offline-grace-s", "0", "--now", str(t_bin + 61)]) == 0
    health = json.loads(capsys.readouterr().out)
    assert [(d["device"], d["status"], d["heard"]) for d in health] == [("dev-a", "online", "offline")]
    # a device that comes back is online again with its next bin
    again = secure_consumer(secure_broker, tmp_path / "index.db", offline_grace_s=30)
    dev2 = Peer(secure_broker, "dev-a", SECURE_USERS["dev-a"])
    assert not dev2.connect().is_failure
    try:
        dev2.publish(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", 2))
        wait_for(lambda: stored_bins(again, "dev-a") == 2, timeout=10, what="second bin")
        assert again.check_availability(time.time()) == {"dev-a": "online"}
    finally:
        again.stop()
        dev2.close()


def test_replay_requests_are_bounded_and_rate_limited(secure_broker, tmp_path):
    """A device whose first message has seq 10**6 leaves a hole of 999 999: the consumer
    asks for at most replay_max_messages of it, once per replay_every_s."""
    cons = secure_consumer(secure_broker, tmp_path / "index.db", replay_after_s=0.0, replay_every_s=60.0)
    dev = Peer(secure_broker, "dev-a", SECURE_USERS["dev-a"])
    assert not dev.connect().is_failure
    dev.subscribe("footfall/v1/site-1/dev-a/cmd/#")
    try:
        dev.publish(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", 10**6))
        wait_for(lambda: stored_bins(cons, "dev-a") == 1, timeout=10, what="bin")
        assert cons.store.gaps() == [("dev-a", 1, 1, 10**6 - 1)]
        now = time.time()
        assert cons.request_replays(now) == 1
        assert cons.request_replays(now + 1) == 0, "asked again within replay_every_s"
        got = dev.wait_message(json.dumps({"epoch": 1, "from_seq": 1, "to_seq": 500}).encode())
        assert len(got) == 1
        assert cons.request_replays(now + 61) == 1
    finally:
        cons.stop()
        dev.close()


@pytest.mark.parametrize("n", [2000])
def test_gap_tracking_matches_a_full_scan(tmp_path, n):
    """The incremental tracker gives the holes a scan of every stored message gives."""
    from index_system.consumer import IndexStore

    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    store = IndexStore(tmp_path / "index.db")
    store.conn.execute("PRAGMA synchronous=OFF")
    seqs = rng.sample(range(1, n + n // 4), n)  # at most n/4 holes: within the tracker's bound
    for i, seq in enumerate(seqs):
        minutes_ago = rng.randrange(0, 60 * 24 * 30)
        store.ingest(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", seq, minutes_ago=minutes_ago),
                     "footfall/v1", time.time())
    rows = store.conn.execute("SELECT seq FROM messages ORDER BY seq").fetchall()
    expect, nxt = [], 1
    for (seq,) in rows:
        if seq > nxt:
            expect.append(("dev-a", 1, nxt, seq - 1))
        nxt = seq + 1
    assert store.gaps() == expect
    store.rescan()
    assert store.gaps() == expect


def test_gap_tracking_is_bounded_against_scattered_numbers():
    """A device sending every other number of a huge range: the tracker keeps at most
    max_ranges ranges (the oldest holes are given up and counted) and max_epochs epochs."""
    from index_system.sequences import SequenceTracker

    t = SequenceTracker(max_epochs=4, max_ranges=1024)
    for seq in range(1, 200_000, 2):
        t.add("dev-a", 1, seq)
    for epoch in range(2, 50):
        t.add("dev-a", epoch, 5)
    assert {h[1] for h in t.holes()} == {46, 47, 48, 49}  # the newest four epochs are kept
    assert t.dropped > 0
    t2 = SequenceTracker(max_ranges=1024)
    for seq in range(1, 200_000, 2):
        t2.add("dev-b", 1, seq)
    assert len(t2.holes()) <= 1024 and t2.holes()[-1] == ("dev-b", 1, 199_998, 199_998)


def test_door_throughput_bounds_a_bin(tmp_path):
    """`index run --door-per-minute`: a bin at the limit is stored, one person more is refused."""
    from index_system.consumer import IndexStore
    from index_system.intake import IntakeLimits

    store = IndexStore(tmp_path / "index.db", IntakeLimits(door_per_minute=40))
    t = topic("site-1", "dev-a", "bins")
    assert store.ingest(t, bin_at("dev-a", "site-1", 1, n_in=40), "footfall/v1", time.time()) == "new"
    assert store.ingest(t, bin_at("dev-a", "site-1", 2, minutes_ago=1, n_in=41), "footfall/v1", time.time()) == "rejected"
    assert dict(store.conn.execute("SELECT reason, n FROM reject_counts")) == {"implausible": 1}


def test_refusals_are_logged_once_per_reason_and_device_per_minute(caplog):
    from contract.log_limit import LogLimiter

    now = [0.0]
    limited = LogLimiter(logging.getLogger("test.limited"), lambda: now[0], every_s=60, burst=1)
    with caplog.at_level(logging.WARNING, logger="test.limited"):
        for _ in range(100):
            limited.log("schema:dev-b", logging.WARNING, "refused %s", "x")
        limited.log("schema:dev-c", logging.WARNING, "refused %s", "y")
        now[0] = 61.0
        limited.log("schema:dev-b", logging.WARNING, "refused %s", "x")
    assert [r.getMessage() for r in caplog.records] == ["refused x", "refused y", "refused x (99 more like this not logged in the last 60 s)"]


def test_a_callback_that_fails_does_not_end_the_network_thread(secure_broker, tmp_path, caplog):
    """A fault inside handling (here: the store raises once, as a bug would) is logged and
    counted, the message is kept whole in quarantine; paho's thread goes on and the next
    message is stored."""
    cons = secure_consumer(secure_broker, tmp_path / "index.db")
    real_ingest = cons.store.ingest
    failures = [RuntimeError("injected fault")]

    def ingest_once_failing(*args):
        if failures:
            raise failures.pop()
        return real_ingest(*args)

    cons.store.ingest = ingest_once_failing
    dev = Peer(secure_broker, "dev-a", SECURE_USERS["dev-a"])
    assert not dev.connect().is_failure
    try:
        first = bin_at("dev-a", "site-1", 1, minutes_ago=1)
        dev.publish(topic("site-1", "dev-a", "bins"), first)
        dev.publish(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", 2))
        wait_for(lambda: stored_bins(cons, "dev-a") == 1, timeout=10, what="the message after the fault")
        assert alive(cons) and cons.counts["callback_error"] == 1
        with cons.store.lock:
            kept = cons.store.conn.execute("SELECT reason, payload FROM rejects").fetchall()
        assert kept == [("handling_error", first)]
        assert any(r.levelno == logging.ERROR and "injected fault" in r.getMessage() for r in caplog.records)
    finally:
        cons.stop()
        dev.close()


def test_the_tail_of_an_epoch_named_by_the_next_birth_is_a_hole() -> None:
    """A broker that PUBACKed an epoch's last messages and then died leaves no gap in seq;
    the device's next birth names that epoch's last seq, and the missing tail is asked for."""
    from index_system.sequences import SequenceTracker

    t = SequenceTracker()
    for seq in range(1, 8):
        t.add("dev-a", 3, seq)
    assert t.holes() == []
    t.add("dev-a", 4, 1)
    t.expect_end("dev-a", 3, 10)  # the birth of epoch 4: epoch 3 ended at 10
    assert t.holes() == [("dev-a", 3, 8, 10)]
    for seq in (8, 9, 10):
        t.add("dev-a", 3, seq)
    assert t.holes() == []
    t.expect_end("dev-a", 2, 5)  # an epoch never heard of: all of it, within the epochs kept
    assert t.holes() == [("dev-a", 2, 1, 5)]
