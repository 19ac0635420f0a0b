"""The publisher's re-send race (issue 11), made deterministic: a PUBACK that lands while
`Publisher.pump()` commits the acknowledged rows must not make it send that row again.

Real Mosquitto with the shipped TLS/ACL configuration; the only thing the test controls is
*when* paho's network thread hands the second PUBACK to the publisher (it holds that
callback until the pump is inside its commit)."""

from __future__ import annotations

import json
import threading

from harness import wait_for
from hostile_rig import PREFIX, Rig


class HookedWriter:
    """The journal writer, with a hook run once before the next call (the pump's commit)."""

    def __init__(self, writer, hook) -> None:
        self._writer, self._hook = writer, hook

    def call(self, fn, timeout=60):
        hook, self._hook = self._hook, None
        if hook is not None:
            hook()
        return self._writer.call(fn, timeout)


def test_a_puback_during_the_commit_does_not_resend_its_row(secure_broker, tmp_path):
    rig = Rig(secure_broker, tmp_path)
    try:
        agent, pub = rig.agent, rig.agent.publisher
        rig.next_bin_on_time()
        wait_for(lambda: pub.inflight() == 0 and not pub._acked, step=pub.pump, what="quiet publisher")

        release, done = threading.Event(), threading.Event()
        original = pub.client.on_publish
        mid_b = pub.client._last_mid + 2  # paho numbers messages in order: A, then B

        def on_publish(client, userdata, mid, rc, props):
            if mid == mid_b:  # B's PUBACK: held until the pump is inside its commit
                assert release.wait(10)
                original(client, userdata, mid, rc, props)
                done.set()
                return
            original(client, userdata, mid, rc, props)

        pub.client.on_publish = on_publish

        def enqueue(n: int) -> list[int]:
            def write(j):
                with j.transaction():
                    return [agent.outbox.enqueue(f"{PREFIX}/alarm", {"schema": "footfall.alarm/1", "device": "dev-a",
                            "site": "site-1", "t_utc": agent.clock.wall(), "component": "test", "ok": True,
                            "detail": f"race {i}"}, agent.clock.wall()) for i in range(n)]
            return agent.writer.call(write)

        seq_a, seq_b = enqueue(2)
        assert pub.pump() == 2  # A and B in flight
        wait_for(lambda: len(pub._acked) == 1, what="A's PUBACK")  # A acked, B's PUBACK held

        def puback_lands() -> None:  # between taking the acked rows and the in-flight snapshot
            release.set()
            assert done.wait(10)

        pub.writer = HookedWriter(agent.writer, puback_lands)
        pub.pump()  # commits A; B's PUBACK lands meanwhile
        pub.writer = agent.writer
        pub.client.on_publish = original
        (seq_c,) = enqueue(1)  # a marker: anything re-sent before it arrives before it
        wait_for(lambda: any(json.loads(m.payload).get("seq") == seq_c for m in list(rig.index.messages)
                             if m.topic.endswith("/alarm")), step=pub.pump, what="marker C")
        seqs = [json.loads(m.payload)["seq"] for m in list(rig.index.messages) if m.topic.endswith("/alarm")]
        assert seqs.count(seq_a) == 1 and seqs.count(seq_c) == 1
        assert seqs.count(seq_b) == 1, f"B (seq {seq_b}) was sent {seqs.count(seq_b)} times"
        sent = lambda: agent.writer.call(lambda j: j.conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE seq IN (?, ?, ?) AND sent_utc IS NOT NULL", (seq_a, seq_b, seq_c)).fetchone()[0])
        wait_for(lambda: sent() == 3, step=pub.pump, what="A, B and C marked sent")  # C's ack may still be on its way
    finally:
        rig.close()
