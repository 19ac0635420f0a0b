"""Crossings flow through the agent to a real Mosquitto, a real subscriber and the reference consumer."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from edge.agent import Agent
from edge.clock import VirtualClock
from contract.messages import validate
from edge.crossing import Crossing
from index_system.consumer import ConsumerSettings, IndexConsumer, IndexStore
from harness import agent_config, wait_for

HOUR = 3600.0


def crossings(t0: float, n: int, line: str = "door-1", prefix: str = "mcu:1") -> list[Crossing]:
    # people every 37 s, two in for each out
    return [Crossing(t0 + 37.0 * i, line, "in" if i % 3 else "out", "beam", 1.0, f"{prefix}:{i}") for i in range(n)]


class Recorder:
    """A plain subscriber that keeps every message it sees."""

    def __init__(self, port: int, protocol=mqtt.MQTTv5) -> None:
        self.msgs: list[tuple[str, dict, bool]] = []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"rec-{time.monotonic_ns()}", protocol=protocol)
        self.c.on_message = lambda c, u, m: self.msgs.append((m.topic, json.loads(m.payload), m.retain))
        self.ready = threading.Event()
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.connect("127.0.0.1", port)
        self.c.subscribe("footfall/v1/#", qos=1)
        self.c.loop_start()
        assert self.ready.wait(5)

    def stop(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def start_consumer(port: int, db) -> IndexConsumer:
    cons = IndexConsumer(ConsumerSettings(port=port, replay_after_s=1.0), IndexStore(db))
    cons.start()
    assert cons.connected.wait(10)
    return cons


def journal_totals(agent: Agent) -> dict[str, int]:
    rows = agent.writer.call(lambda j: j.conn.execute("SELECT direction, COUNT(*) FROM crossings GROUP BY 1").fetchall())
    return {"in": 0, "out": 0, **dict(rows)}


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_crossings_reach_subscriber_and_consumer(broker, tmp_path, protocol):
    start = time.time() - 3 * HOUR
    clock = VirtualClock(start)
    cfg = agent_config(tmp_path, broker.port, protocol=protocol)
    rec = Recorder(broker.port)
    cons = start_consumer(broker.port, tmp_path / "index.db")
    agent = Agent(cfg, clock)
    agent.open()
    agent.publisher.start()
    try:
        agent.writer.add_crossings(crossings(start + 5, 190))  # all within the two hours binned
        clock.advance(2 * HOUR)
        wait_for(lambda: agent.writer.call(lambda j: agent.outbox.backlog()) == 0 and agent.publisher.inflight() == 0,
                 step=agent.tick, what="outbox drained")
        n_bins = 120
        wait_for(lambda: cons.store.totals()["bins"] >= n_bins, what="consumer has every bin")
        assert cons.store.totals() == {**journal_totals(agent), "bins": n_bins}
        # what really went over the wire obeys the contract
        wait_for(lambda: sum(1 for t, _, _ in rec.msgs if t.endswith("/bins")) >= n_bins, what="recorder")
        kinds = {t.rsplit("/", 1)[1] for t, _, _ in rec.msgs}
        assert {"bins", "birth", "status"} <= kinds
        for topic_name, body, _ in rec.msgs:
            validate(topic_name.rsplit("/", 1)[1], body)
        bins = [b for t, b, _ in rec.msgs if t.endswith("/bins")]
        assert all(b["historical"] for b in bins[:100])  # two hours old when sent
        assert sum(b["total"]["in"] for b in bins) == journal_totals(agent)["in"]
        zero = [b for b in bins if b["total"]["in"] == 0 and b["total"]["out"] == 0]
        assert zero, "quiet minutes are sent as zero bins too"
        seqs = [(b["epoch"], b["seq"]) for b in bins]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert all(b["occupancy"]["end"] >= 0 for b in bins)
    finally:
        agent.stop()
        cons.stop()
        rec.stop()
    status = [(b, r) for t, b, r in rec.msgs if t.endswith("/status")]
    assert status[0][0]["state"] == "online"


def test_late_crossing_makes_a_revision(broker, tmp_path):
    start = time.time() - 2 * HOUR
    clock = VirtualClock(start)
    agent = Agent(agent_config(tmp_path, broker.port), clock)
    cons = start_consumer(broker.port, tmp_path / "index.db")
    agent.open()
    agent.publisher.start()
    try:
        agent.writer.add_crossings(crossings(start + 5, 50))
        clock.advance(HOUR)
        drained = lambda: agent.writer.call(lambda j: agent.outbox.backlog()) == 0 and agent.publisher.inflight() == 0  # noqa: E731
        wait_for(drained, step=agent.tick, what="drain")
        wait_for(lambda: cons.store.totals()["bins"] == 60, what="consumer has the hour")
        before = cons.store.totals()
        late = Crossing(start + 7 * 60 + 3, "door-1", "in", "camera", 0.9, "cam:late:1")
        late_beam = Crossing(start + 7 * 60 + 4, "door-1", "in", "beam", 1.0, "mcu:late:1")
        agent.writer.add_crossings([late, late_beam])
        agent.tick()
        wait_for(drained, step=agent.tick, what="drain revision")
        wait_for(lambda: cons.store.totals()["in"] == before["in"] + 1, what="revision applied")
        revised = cons.store.conn.execute("SELECT revision, payload FROM bins WHERE start_utc = ?",
                                          (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((start + 7 * 60 + 3) // 60 * 60)),)).fetchone()
        assert revised[0] == 1
        assert json.loads(revised[1])["lines"]["door-1"]["camera"] == {"in": 1, "out": 0}
        assert cons.store.totals()["bins"] == before["bins"]
    finally:
        agent.stop()
        cons.stop()


def test_broker_killed_mid_stream_loses_nothing(broker, tmp_path):
    start = time.time() - 4 * HOUR
    clock = VirtualClock(start)
    agent = Agent(agent_config(tmp_path, broker.port, inflight=5), clock)
    cons = start_consumer(broker.port, tmp_path / "index.db")
    agent.open()
    agent.publisher.start()
    try:
        agent.writer.add_crossings(crossings(start + 1, 300))
        clock.advance(3 * HOUR)
        wait_for(lambda: cons.store.totals()["bins"] > 20, step=agent.tick, what="some bins through")
        broker.stop(kill=True)  # SIGKILL mid-stream
        for _ in range(20):  # counting goes on while the broker is away; minutes pass
            agent.writer.add_crossings(crossings(clock.wall() - 30, 1, prefix=f"mcu:2:{clock.wall()}"))
            clock.advance(60)
            agent.tick()
        assert agent.writer.call(lambda j: agent.outbox.backlog()) > 0
        broker.start()
        assert cons.connected.wait(20)
        drained = lambda: agent.writer.call(lambda j: agent.outbox.backlog()) == 0 and agent.publisher.inflight() == 0  # noqa: E731

        def step() -> None:
            agent.tick()
            cons.request_replays()

        n_bins = agent.writer.call(lambda j: j.conn.execute("SELECT COUNT(*) FROM bin_state").fetchone()[0])
        wait_for(lambda: drained() and cons.store.totals()["bins"] == n_bins and not cons.store.gaps(),
                 timeout=60, step=step, what="every bin at the consumer, no sequence gaps")
        assert cons.store.totals() == {**journal_totals(agent), "bins": n_bins}
    finally:
        agent.stop()
        cons.stop()


def test_the_lost_tail_of_an_epoch_is_asked_for_after_the_next_boot(broker, tmp_path):
    """Messages of a boot epoch that the broker acknowledged but no consumer ever got (here:
    published while none listened, as a broker SIGKILLed after its PUBACK loses them) leave no
    hole in seq when they are the epoch's last; the next boot's birth names the epoch's last
    seq, and the consumer asks for the missing tail."""
    start = time.time() - 2 * HOUR
    clock = VirtualClock(start)
    cfg = agent_config(tmp_path, broker.port)
    first = Agent(cfg, clock)
    first.open()
    first.publisher.start()
    try:
        first.writer.add_crossings(crossings(start + 5, 50))
        clock.advance(HOUR)
        drained = lambda: first.writer.call(lambda j: first.outbox.backlog()) == 0 and first.publisher.inflight() == 0  # noqa: E731
        wait_for(drained, step=first.tick, what="epoch 1 published")
        totals = journal_totals(first)
    finally:
        first.stop()
    cons = start_consumer(broker.port, tmp_path / "index.db")
    second = Agent(cfg, clock)
    second.open()
    second.publisher.start()
    try:
        birth = json.loads(second.writer.call(lambda j: j.conn.execute(
            "SELECT payload FROM outbox WHERE epoch = ? AND topic LIKE '%/birth'", (second.epoch,)).fetchone()[0]))
        assert birth["previous_epoch"]["epoch"] == second.epoch - 1 and birth["previous_epoch"]["last_seq"] > 60
        validate("birth", birth)
        step = lambda: (second.tick(), cons.request_replays())  # noqa: E731 - what run_forever does each round
        wait_for(lambda: cons.store.totals()["bins"] == 60, step=step, what="epoch 1's bins replayed")
        assert {k: cons.store.totals()[k] for k in ("in", "out")} == totals
    finally:
        second.stop()
        cons.stop()
