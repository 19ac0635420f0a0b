"""Hostile commands to a running agent through a real Mosquitto with the shipped TLS/ACL
configuration (issue 11): each input that used to end paho's network thread, stop the
binner or come back after a restart, sent as it is. After each the agent must keep its
threads, publish its next bin on time, and count the input as refused or failed."""

from __future__ import annotations

import json
import sqlite3
import logging

import pytest

from harness import wait_for
from hostile_rig import PREFIX, Rig
from test_broker_security import Peer
from simulator.local_broker import SECURE_USERS


@pytest.fixture
def rig(secure_broker, tmp_path):
    r = Rig(secure_broker, tmp_path)
    yield r
    r.close()


HOSTILE = {
    "summary-feb-30": ("summary", {"date": "2026-02-30"}),
    "summary-9999-12-31": ("summary", {"date": "9999-12-31"}),
    "summary-0001-01-01": ("summary", {"date": "0001-01-01"}),
    "replay-to-seq-2**64": ("replay", json.dumps({"epoch": 1, "from_seq": 1, "to_seq": 2**64})),
    "replay-all-2**64": ("replay", json.dumps({"epoch": 2**64, "from_seq": 2**64, "to_seq": 2**64})),
    "replay-nested-60KB": ("replay", b"[" * 60_000),  # 100 KB does not pass the broker: see below
    "summary-nested-object": ("summary", b'{"date":' * 5000 + b'"2026-01-01"' + b"}" * 5000),
    "random-bytes": ("summary", bytes(range(256)) * 4),
    "not-an-object": ("replay", b"[1, 2, 3]"),
    "nan": ("replay", b'{"epoch": NaN, "from_seq": 1, "to_seq": 2}'),
    "huge-number": ("replay", b'{"epoch": 1, "from_seq": 1, "to_seq": 1' + b"0" * 5000 + b"}"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_command_is_refused_and_the_agent_keeps_publishing(rig, name):
    kind, payload = HOSTILE[name]
    rig.next_bin_on_time()
    rig.command(kind, payload)
    rig.wait_handled(1)
    rig.assert_alive()
    rig.next_bin_on_time()
    counts = rig.agent.publisher.inputs.counts
    assert counts["refused"] == 1 and counts["failed"] == 0 and counts["accepted"] == 0, dict(counts)
    shown = json.loads(rig.cfg.storage.status_path.read_text())["commands"]  # a person sees it in `footfall status` data
    assert shown["counts"] == {"refused": 1} and shown["recent"][0]["where"] == f"{PREFIX}/cmd/{kind}"
    # nothing was journaled for a refused summary request
    rows = rig.agent.writer.call(lambda j: j.conn.execute("SELECT COUNT(*) FROM summary_requests").fetchone()[0])
    assert rows == 0


def test_a_bug_in_a_command_handler_stays_with_that_command(rig):
    """Past validation, a handler that raises anything (here OverflowError, as a 2**64 at
    SQLite did) is counted as failed; paho's thread lives on."""
    def broken(req):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    rig.agent.publisher.commands["summary"] = broken
    rig.command("summary", {"date": "2026-01-01"})
    rig.wait_handled(1)
    rig.assert_alive()
    assert rig.agent.publisher.inputs.counts["failed"] == 1
    q = rig.agent.publisher.inputs.quarantine[-1]
    assert q.where.endswith("cmd/summary") and "OverflowError" in q.reason and b"2026-01-01" in q.head
    rig.next_bin_on_time()


def test_retained_poison_is_cleared_and_never_comes_back(rig, secure_broker):
    """A retained command would run on every (re)connect: the agent refuses it, deletes it
    from the broker (its own subtree), and after a restart nothing is delivered again."""
    rig.command("summary", {"date": "2026-02-30"}, retain=True)
    rig.command("replay", b"[" * 50_000, retain=True)  # under the broker's 64 KiB packets
    rig.wait_handled(2)  # the live delivery (not flagged retained) is refused as malformed
    rig.restart()  # a fresh subscription: the broker would hand out what is retained
    rig.next_bin_on_time()
    seen = rig.agent.publisher.inputs.counts
    assert seen.get("refused", 0) == 0 or all("retained" in q.reason for q in rig.agent.publisher.inputs.quarantine)
    # a new subscription to the command topics gets nothing retained (the index user's own
    # connection: with the username as client id a second one would take its session over)
    rig.index.subscribe(f"{PREFIX}/cmd/#")
    rig.next_bin_on_time()
    assert [m for m in list(rig.index.messages) if "/cmd/" in m.topic and m.payload] == []


def test_a_command_larger_than_the_brokers_packets_never_reaches_the_agent(rig, secure_broker):
    """100 KB of nested `[` (the issue's example) is refused by the broker itself
    (max_packet_size 64 KiB, broker/mosquitto.conf): the sender loses its connection, the
    agent sees nothing and goes on publishing."""
    rig.next_bin_on_time()
    with pytest.raises(AssertionError, match="no PUBACK"):
        rig.index.publish(f"{PREFIX}/cmd/replay", b"[" * 100_000)  # the index user's connection is closed
    assert rig.handled() == 0
    rig.assert_alive()
    agent = rig.agent
    before = agent.writer.call(lambda j: j.conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_utc IS NOT NULL").fetchone()[0])
    rig.clock.advance(60)  # the next bin closes and is PUBACKed by the broker
    wait_for(lambda: agent.writer.call(lambda j: j.conn.execute(
        "SELECT COUNT(*) FROM outbox WHERE sent_utc IS NOT NULL").fetchone()[0]) > before and agent.publisher.inflight() == 0,
        step=agent.tick, what="the agent's next bin acknowledged by the broker")


def test_retained_poison_present_at_start_is_refused_and_cleared(secure_broker, tmp_path):
    """The poison is retained before the agent first connects (the old agent died on it at
    every start): refused as retained, cleared, and the agent publishes its bins."""
    index = Peer(secure_broker, "index", SECURE_USERS["index"])
    assert not index.connect().is_failure
    index.publish(f"{PREFIX}/cmd/summary", json.dumps({"date": "2026-02-30"}).encode(), retain=True)
    index.close()
    rig = Rig(secure_broker, tmp_path)
    try:
        rig.wait_handled(1)
        assert rig.agent.publisher.inputs.quarantine[-1].reason.startswith("retained")
        rig.next_bin_on_time()
        rig.assert_alive()
        rig.restart()
        rig.next_bin_on_time()
        assert rig.handled() == 0  # nothing came back after the restart
    finally:
        rig.close()


def test_a_summary_request_that_fails_rolls_back_nothing_and_does_not_return(rig):
    """A request the old agent journaled (9999-12-31: `day + 1` overflowed inside the
    binner's transaction, so no bin was published again, across restarts). Now it fails
    alone, is dropped, bins go on, and after a restart it is not there."""
    def poison(j):
        with j.transaction():
            j.conn.execute("INSERT INTO summary_requests(local_date, requested_utc, origin) VALUES ('9999-12-31', 0, 'cmd/summary')")
    rig.agent.writer.call(poison)
    rig.next_bin_on_time()
    assert rig.agent.summaries.failed == 1
    assert rig.agent.writer.call(lambda j: j.conn.execute("SELECT COUNT(*) FROM summary_requests").fetchone()[0]) == 0
    rig.restart()
    rig.next_bin_on_time()
    assert rig.agent.summaries.failed == 0  # a fresh agent: it did not come back
    rig.assert_alive()


def test_summary_requests_are_deduplicated_bounded_and_served_a_few_per_tick(secure_broker, tmp_path):
    start = (1_767_225_600 // 60) * 60  # 2026-01-01T00:00Z, 08:00 in Shanghai
    rig = Rig(secure_broker, tmp_path, start=start, extra="\n[commands]\nsummary_max_pending = 3\nsummary_per_tick = 2\n")
    try:
        rig.clock.advance(5 * 86400)
        rig.agent.tick()
        rig.agent.tick()  # 5 days of one-minute bins close in slices of 2000 per tick
        rig.agent.tick()
        rig.agent.tick()
        n = 0
        for day in ("2026-01-02", "2026-01-02", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05",
                    "2025-12-31", "2026-01-07"):  # repeats, one over the bound, one before the journal, one in the future
            rig.command("summary", {"date": day})
            n += 1
        rig.wait_handled(n)
        pending = rig.agent.writer.call(lambda j: [r[0] for r in j.conn.execute("SELECT local_date FROM summary_requests ORDER BY id")])
        assert pending == ["2026-01-02", "2026-01-03", "2026-01-04"]
        counts = rig.agent.publisher.inputs.counts
        assert counts["accepted"] == 5 and counts["refused"] == 3, dict(counts)
        reasons = [q.reason for q in rig.agent.publisher.inputs.quarantine]
        assert sum("outside the journal" in r for r in reasons) == 2 and sum("already waiting" in r for r in reasons) == 1
        summaries = lambda: [json.loads(m.payload) for m in list(rig.index.messages) if m.topic == f"{PREFIX}/summary"]
        before = len([s for s in summaries() if s["trigger"] == "request"])
        rig.agent.tick()
        left = rig.agent.writer.call(lambda j: j.conn.execute("SELECT COUNT(*) FROM summary_requests").fetchone()[0])
        assert left == 1, "two per tick"
        rig.agent.tick()
        wait_for(lambda: len([s for s in summaries() if s["trigger"] == "request"]) == before + 3, step=rig.agent.tick, timeout=90,
                 what="three requested summaries")
    finally:
        rig.close()


def test_replay_is_bounded_rate_limited_and_goes_after_fresh_bins(secure_broker, tmp_path):
    rig = Rig(secure_broker, tmp_path, extra="\n[commands]\nreplay_max_messages = 5\nreplay_min_interval_s = 30\n")
    try:
        for _ in range(20):
            rig.next_bin_on_time()
        seqs = lambda: [json.loads(m.payload)["seq"] for m in list(rig.index.messages) if m.topic.rsplit("/", 1)[1] in ("bins", "birth", "alarm", "summary")]
        sent_before = len(seqs())
        rig.command("replay", {"epoch": 1, "from_seq": 1, "to_seq": 2**62})
        rig.wait_handled(1)
        rig.command("replay", {"epoch": 1, "from_seq": 1, "to_seq": 3})  # too soon after the first
        rig.wait_handled(2)
        counts = rig.agent.publisher.inputs.counts
        assert counts["accepted"] == 1 and counts["refused"] == 1, dict(counts)
        requeued = rig.agent.writer.call(lambda j: j.conn.execute("SELECT seq FROM outbox WHERE requeued = 1 ORDER BY seq").fetchall())
        assert [r[0] for r in requeued] == [1, 2, 3, 4, 5], "at most replay_max_messages"
        fresh = rig.next_bin_on_time()
        wait_for(lambda: len(seqs()) >= sent_before + 6, step=rig.agent.tick, what="replayed messages")
        order = seqs()[sent_before:]
        assert order == [fresh["seq"], 1, 2, 3, 4, 5], f"the fresh bin goes first, then the replay: {order}"
        rig.clock.advance(31)
        rig.command("replay", {"epoch": 1, "from_seq": 6, "to_seq": 7})
        rig.wait_handled(3)
        assert rig.agent.publisher.inputs.counts["accepted"] == 2
    finally:
        rig.close()


def test_a_session_taken_over_is_logged_with_its_reason(rig, secure_broker, caplog):
    """Another client with the agent's client id (a second agent with the same device id)
    throws the agent off: it logs why at WARNING (the reason code; Mosquitto 2.0.11 sends
    0x80, newer ones 0x8E), and, when it keeps happening, names the likely cause."""
    caplog.set_level(logging.WARNING, logger="edge.publisher")
    taken = lambda: [r for r in caplog.records if "disconnected us" in r.getMessage()]
    for _ in range(3):
        thief = Peer(secure_broker, "dev-a", SECURE_USERS["dev-a"])
        thief.client._client_id = b"footfall-dev-a"
        try:
            thief.connect()
            wait_for(lambda: not rig.agent.publisher.connected, timeout=10, what="agent thrown off")
        finally:
            thief.close()
        wait_for(lambda: rig.agent.publisher.connected, timeout=20, what="agent reconnected")
    rec = taken()[0]
    assert rec.levelno == logging.WARNING and "reason code 0x" in rec.getMessage()
    assert "another client taking over" in rec.getMessage() or "0x8E" in rec.getMessage()
    assert len(taken()) == 1, "rate limited: one line per reason a minute"
    hint = [r for r in caplog.records if "client id 'footfall-dev-a'" in r.getMessage()]
    assert hint and hint[0].levelno == logging.WARNING
    rig.next_bin_on_time(timeout=30)
