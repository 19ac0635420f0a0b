"""Fuzz the agent's subscribed topics (cmd/replay, cmd/summary) through a real Mosquitto
with the shipped TLS/ACL configuration, against a running agent (issue 11, Deliver 8).

Hypothesis generates each message: random bytes, random JSON, schema-shaped JSON with
extreme values (2**64, negative, dates that do not exist or lie far away), deep nesting,
payloads up to the broker's packet limit; one in ten is retained. Invariants, checked every
`CHECK_EVERY` messages and at the end: every message was taken in exactly once (accepted
or refused, none failed), the agent's threads live and its health is vital, the next bin
is published on time, what the agent keeps per message (in-flight maps, quarantine, log
limiter, pending summary requests) stays within its bounds, the state directory and the
process's memory stay bounded; after a restart the retained poison is refused and cleared,
and after a second restart nothing comes back.

FOOTFALL_FUZZ_N sets the number of messages (CI: 2,000; the documented long run: 100,000,
docs/RELIABILITY.md); FOOTFALL_FUZZ_SEED replays a run (the seed is drawn and printed; batch k uses seed + k).
"""

from __future__ import annotations

import json
import os
import random
import time

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings, strategies as st

from hostile_rig import Rig

N = int(os.environ.get("FOOTFALL_FUZZ_N", "2000"))
SEED = int(os.environ.get("FOOTFALL_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
CHECK_EVERY = 250
BATCH = 1000  # examples per hypothesis run (seeds SEED, SEED + 1, ...)
MAX_PACKET = 65_536  # broker/mosquitto.conf max_packet_size: larger ones cost the sender its connection
EXTREME_INTS = [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63), 10**30]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
ints = st.sampled_from(EXTREME_INTS) | st.integers(min_value=-(2**70), max_value=2**70)
days = st.builds(lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}", st.sampled_from([1, 1970, 2025, 2026, 2027, 9999]) |
                 st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32))


def near_dates(today) -> st.SearchStrategy[str]:
    return st.integers(-3, 3).map(lambda k: (today + __import__("datetime").timedelta(days=k)).isoformat())


def messages(today) -> st.SearchStrategy[tuple[str, bytes, bool]]:
    replay = st.fixed_dictionaries({"epoch": ints, "from_seq": ints, "to_seq": ints}, optional={"extra": json_values})
    summary = st.fixed_dictionaries({"date": days | near_dates(today) | st.text(max_size=12)}, optional={"x": json_values})
    depth = st.integers(2, MAX_PACKET // 2 - 1_000)  # every payload fits the broker's packets
    payload = st.one_of(
        st.binary(min_size=1, max_size=2048),                                       # random bytes
        json_values.map(json.dumps).map(str.encode),                                # random JSON
        replay.map(json.dumps).map(str.encode),                                     # schema-shaped, extreme values
        summary.map(json.dumps).map(str.encode),
        depth.map(lambda n: b"[" * n + b"]" * (n % 2 * n)),                        # deep nesting, closed or not
        depth.map(lambda n: b'{"date":' * min(n, 7_000) + b"1" + b"}" * min(n, 7_000)),
        st.integers(2_000, MAX_PACKET - 1_000).map(lambda n: b'{"date": "' + b"9" * n + b'"}'),  # huge
    )
    return st.tuples(st.sampled_from(["replay", "summary"]), payload, st.integers(0, 9).map(lambda k: k == 0))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def disk_mb(rig: Rig) -> float:
    return sum(p.stat().st_size for p in rig.cfg.storage.state_dir.iterdir()) / 2**20


@pytest.mark.timeout(max(300, N // 40))  # the long run: about 1,000 messages per 10 s
def test_fuzzed_commands_never_stop_the_agent(secure_broker, tmp_path):
    from datetime import datetime

    print(f"\nfuzz: {N} messages, seed {SEED} (FOOTFALL_FUZZ_SEED={SEED} replays it)")
    rig = Rig(secure_broker, tmp_path)
    try:
        today = datetime.fromtimestamp(rig.clock.wall(), rig.cfg.zone).date()
        rig.next_bin_on_time()
        rss0, t0 = rss_mb(), time.monotonic()
        sent = {"n": 0, "retained": 0, "bytes": 0, "kinds": {}}
        worst = {"rss_mb": rss0, "disk_mb": disk_mb(rig)}
        trend: list[float] = []  # the process's RSS growth at each check

        def check() -> None:
            rig.wait_handled(sent["n"], timeout=60)
            rig.assert_alive()
            rig.next_bin_on_time()
            worst["rss_mb"], worst["disk_mb"] = max(worst["rss_mb"], rss_mb()), max(worst["disk_mb"], disk_mb(rig))
            trend.append(round(rss_mb() - rss0, 1))
            inputs = rig.agent.publisher.inputs
            assert inputs.counts["failed"] == 0, inputs.snapshot()
            assert len(inputs.quarantine) <= 50
            # everything the agent keeps per message or per request is bounded
            pub = rig.agent.publisher
            assert len(pub._inflight) <= rig.cfg.mqtt.max_inflight and len(pub._early) <= rig.cfg.mqtt.max_inflight
            assert len(pub._acked) <= rig.cfg.mqtt.max_inflight and len(inputs.log._times) <= 8
            pending = rig.agent.writer.call(lambda j: j.conn.execute("SELECT COUNT(*) FROM summary_requests").fetchone()[0])
            assert pending <= rig.cfg.commands.summary_max_pending

        def batch(k: int, n: int) -> None:
            @seed(SEED + k)
            @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(msg=messages(today))
            def one(msg: tuple[str, bytes, bool]) -> None:
                kind, payload, retain = msg
                rig.command(kind, payload, retain=retain)
                sent["n"] += 1
                sent["retained"] += retain
                sent["bytes"] += len(payload)
                if sent["n"] % 50 == 0:
                    rig.agent.tick()  # serve summary requests as the loop would
                if sent["n"] % CHECK_EVERY == 0:
                    check()

            one()

        # batches: hypothesis remembers every example of a run (to avoid repeats), which
        # would grow with N; the invariant is about the agent's memory, not the fuzzer's
        for k in range(-(-N // BATCH)):
            batch(k, min(BATCH, N - k * BATCH))
        check()
        assert sent["n"] >= N, f"hypothesis ran {sent['n']} examples"
        counts = dict(rig.agent.publisher.inputs.counts)
        assert sum(counts.values()) == sent["n"], (counts, sent)
        elapsed = time.monotonic() - t0
        # restart: whatever is retained on the command topics is refused as retained and cleared
        rig.restart()
        rig.next_bin_on_time()
        after_first = dict(rig.agent.publisher.inputs.counts)
        assert after_first.get("failed", 0) == 0 and after_first.get("accepted", 0) == 0
        rig.restart()
        rig.next_bin_on_time()
        assert rig.handled() == 0, "nothing retained came back after the second restart"
        rig.assert_alive()
        growth = worst["rss_mb"] - rss0
        report = {"seed": SEED, "messages": sent["n"], "retained": sent["retained"], "payload_mb": round(sent["bytes"] / 2**20, 1),
                  "accepted": counts.get("accepted", 0), "refused": counts.get("refused", 0), "failed": counts.get("failed", 0),
                  "retained_refused_after_restart": after_first.get("refused", 0), "seconds": round(elapsed, 1),
                  "rss_start_mb": round(rss0, 1), "rss_growth_mb": round(growth, 1),
                  "rss_growth_trend_mb": trend[:: max(1, len(trend) // 10)], "state_dir_max_mb": round(worst["disk_mb"], 2)}
        print("fuzz report:", json.dumps(report))
        if os.environ.get("FOOTFALL_FUZZ_REPORT"):
            with open(os.environ["FOOTFALL_FUZZ_REPORT"], "w") as f:
                json.dump(report, f, indent=1)
        # the process holds the fuzzer too (hypothesis's caches grow slowly with a run): a loose
        # bound that a per-message leak of the payloads (1 GB in the long run) would break
        assert growth < 256, f"the process grew {growth:.0f} MB"
        assert worst["disk_mb"] < 50, f"state dir reached {worst['disk_mb']:.1f} MB"
    finally:
        rig.close()
