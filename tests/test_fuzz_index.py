"""Fuzz the index consumer's subscription through a real Mosquitto with the shipped TLS/ACL
configuration (issue 11, Deliver 8).

A hostile device (dev-b, its own credentials, so the ACL lets it write anything under its
own id, at any site) sends hypothesis-generated messages: random bytes, random JSON,
schema-valid JSON with extreme values, deep nesting, huge payloads, some retained, on
every topic kind. Meanwhile a well-behaved device (dev-a) sends one valid bin per batch.
The consumer is `footfall index run`, a program of its own. Invariants: it keeps storing
every one of dev-a's bins (so paho's thread is alive), every hostile message is consumed
(a restart on the same session gets none back), the rejects table and the consumer's
memory stay bounded, and a fresh consumer survives the retained leftovers.

CI runs FOOTFALL_FUZZ_N=2000 messages (the default); the documented long run is
`FOOTFALL_FUZZ_N=100000 python -m pytest -q -s tests/test_fuzz_index.py` (docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings, strategies as st

from harness import wait_for
from index_peers import bin_body, forget_session, topic
from index_system.quarantine import QuarantineLimits
from simulator.local_broker import REPO_ROOT, SECURE_USERS
from test_broker_security import Peer

N = int(os.environ.get("FOOTFALL_FUZZ_N", "2000"))
BATCH = 100
NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=40)
EXTREMES = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -2**63 - 1, 10**15, 10**400, 1e308, -1e308, 0.5,
            "", "x" * 2000, "x", "9999-12-31T23:59:00Z", "0000-01-01T00:00:00Z", "2026-13-40T25:61:00+08:00",
            None, True, [], {}, [[[[[]]]]]]
BIN_PATHS = [("seq",), ("epoch",), ("revision",), ("device",), ("site",), ("bin", "start_utc"), ("bin", "end_utc"),
             ("bin", "start_local"), ("bin", "minutes"), ("bin", "utc_offset_min"), ("total", "in"), ("total", "out"),
             ("occupancy", "end"), ("lines", "door-1", "beam", "in"), ("flags",), ("historical",), ("extra",)]


@st.composite
def extreme_bin(draw: st.DrawFn) -> bytes:
    """A bin of dev-b with extreme but valid numbers, and zero to three fields replaced by an extreme value."""
    body = bin_body("dev-b", "site-2", draw(st.integers(1, 2**63 - 1)), NOW - timedelta(minutes=draw(st.integers(0, 10**6))),
                    n_in=draw(st.integers(0, 200)), epoch=draw(st.integers(1, 2**63 - 1)))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(BIN_PATHS))
        target = body
        for key in path[:-1]:
            target = target.setdefault(key, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            target[path[-1]] = draw(st.sampled_from(EXTREMES))
    return json.dumps(body).encode()


def nested(depth: int, kind: str) -> bytes:
    """Deep nesting, kept under the broker's 64 KiB packets (a larger one only gets the
    sender disconnected: tests/test_index_hostile.py)."""
    if kind == "list":
        return b"[" * depth + b"]" * depth
    depth //= 3
    return b'{"a":' * depth + b"1" + b"}" * depth


payloads = st.one_of(
    st.binary(max_size=2048),
    json_values.map(lambda v: json.dumps(v).encode()),
    extreme_bin(),
    st.builds(nested, st.integers(10, 30_000), st.sampled_from(["list", "dict"])),
    st.integers(20_000, 60_000).map(lambda n: b'{"pad":"' + b"x" * n + b'"}'),  # under the broker's 64 KiB packets
)
kinds = st.sampled_from(["bins", "summary", "birth", "alarm", "status", "rating", "cmd/replay", "bins/extra", "x"])
sites = st.sampled_from(["site-2", "site-1", "bad site", "ü", "-x"])
messages = st.tuples(sites, kinds, payloads, st.integers(0, 9).map(lambda r: r == 0))  # one in ten retained


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class ConsumerProcess:
    """`footfall index run` as a separate program, as it runs at the index system."""

    def __init__(self, broker, tmp_path: Path, db: Path) -> None:
        pw = tmp_path / "index.password"
        pw.write_text(SECURE_USERS["index"] + "\n")
        self.db = db
        self.log = open(tmp_path / f"{db.stem}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "index", "run", "--db", str(db), "--host", "localhost",
             "--port", str(broker.port), "--username", "index", "--password-file", str(pw),
             "--ca-file", str(broker.tls.ca_cert)], stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        wait_for(lambda: self.db.exists() and self.proc.poll() is None, timeout=20, what="consumer started")
        time.sleep(1.0)  # connect + SUBACK

    def query(self, sql: str, *args):
        with sqlite3.connect(self.db, timeout=30) as conn:
            return conn.execute(sql, args).fetchall()

    def stored_bins(self, device: str) -> int:
        return self.query("SELECT COUNT(*) FROM bins WHERE device = ?", device)[0][0]

    def refused(self) -> dict[str, int]:
        return dict(self.query("SELECT reason, SUM(n) FROM reject_counts GROUP BY reason"))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


def good_bin(seq: int) -> bytes:
    return json.dumps(bin_body("dev-a", "site-1", seq, NOW - timedelta(minutes=seq), n_in=seq % 7)).encode()


def test_consumer_keeps_storing_the_good_device_under_generated_hostile_messages(secure_broker, tmp_path):
    cons = ConsumerProcess(secure_broker, tmp_path, tmp_path / "index.db")
    good = Peer(secure_broker, "dev-a", SECURE_USERS["dev-a"])
    bad = Peer(secure_broker, "dev-b", SECURE_USERS["dev-b"])
    assert not good.connect().is_failure and not bad.connect().is_failure
    sent = Counter()
    good_bins = 0
    t0, rss0 = time.monotonic(), rss_bytes(cons.proc.pid)
    drawn = int(os.environ.get("FOOTFALL_FUZZ_SEED", random.randrange(2**32)))
    print(f"\nfuzz seed {drawn} (FOOTFALL_FUZZ_SEED={drawn} repeats this run)")

    @seed(drawn)
    @settings(max_examples=max(1, N // BATCH), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(messages, min_size=BATCH, max_size=BATCH))
    def batch(msgs: list) -> None:
        nonlocal good_bins
        infos = []
        for site, kind, payload, retain in msgs:
            infos.append(bad.client.publish(topic(site, "dev-b", kind), payload, qos=1, retain=retain))
            sent["retained" if retain else "live"] += 1
        good_bins += 1
        good.publish(topic("site-1", "dev-a", "bins"), good_bin(good_bins))
        for info in infos:
            info.wait_for_publish(30)
        assert cons.proc.poll() is None, "the consumer exited"

    try:
        batch()
        # The broker delivers to the consumer in the order it took the messages: once this
        # last bin is stored, every hostile message before it was handled.
        good_bins += 1
        good.publish(topic("site-1", "dev-a", "bins"), good_bin(good_bins))
        wait_for(lambda: cons.stored_bins("dev-a") == good_bins, timeout=300, what="every good bin stored")
        elapsed = time.monotonic() - t0
        refused = cons.refused()
        accepted = cons.query("SELECT device, COUNT(*) FROM messages GROUP BY device")
        rows, biggest = cons.query("SELECT COUNT(*), COALESCE(MAX(LENGTH(payload)), 0) FROM rejects")[0]
        assert rows <= QuarantineLimits().max_rows and biggest <= QuarantineLimits().head_bytes
        grown = rss_bytes(cons.proc.pid) - rss0
        assert grown < 64 * 2**20, f"the consumer's memory grew by {grown / 2**20:.0f} MiB"
        db_size = sum(p.stat().st_size for p in tmp_path.glob("index.db*"))
        hostile = sent["live"] + sent["retained"]
        print(f"fuzz: {hostile} hostile messages ({sent['retained']} retained) and {good_bins} good bins in {elapsed:.1f} s;"
              f" refused by reason {refused}; accepted per device {dict(accepted)}; rejects rows {rows};"
              f" consumer rss {rss0 / 2**20:.0f} -> {(rss0 + grown) / 2**20:.0f} MiB; store {db_size / 2**20:.1f} MiB")
    finally:
        cons.stop()
    # Restarted on the same store and session: nothing refused comes back (all were acknowledged).
    before = sum(refused.values())
    again = ConsumerProcess(secure_broker, tmp_path, tmp_path / "index.db")
    try:
        good_bins += 1
        good.publish(topic("site-1", "dev-a", "bins"), good_bin(good_bins))
        wait_for(lambda: again.stored_bins("dev-a") == good_bins, timeout=60, what="good bin after restart")
        assert sum(again.refused().values()) == before, "refused messages were redelivered"
    finally:
        again.stop()
    # A fresh consumer (new session, new database) gets every retained leftover first.
    forget_session(secure_broker)
    fresh = ConsumerProcess(secure_broker, tmp_path, tmp_path / "fresh.db")
    try:
        good.publish(topic("site-1", "dev-a", "bins"), good_bin(good_bins + 1))
        wait_for(lambda: fresh.stored_bins("dev-a") == 1, timeout=60, what="good bin behind the retained leftovers")
        assert fresh.proc.poll() is None
        assert sent["retained"] == 0 or sum(fresh.refused().values()) > 0, "the retained leftovers never came"
    finally:
        fresh.stop()
        good.close()
        bad.close()
