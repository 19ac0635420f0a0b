"""Bad conditions: a full disk, an unreachable broker. Counting goes on; nothing is lost."""

from __future__ import annotations

import json
import time

from edge.agent import Agent
from edge.cli import main
from edge.clock import VirtualClock
from edge.crossing import Crossing
from edge.journal_writer import JournalWriter
from harness import agent_config, agent_toml, wait_for
from simulator.local_broker import Broker, free_port
from test_publish_e2e import start_consumer


def test_full_disk_keeps_counting_in_memory_and_resumes(tmp_path):
    port = free_port()  # no broker: this test is about the disk
    clock = VirtualClock(time.time() - 3600)
    agent = Agent(agent_config(tmp_path, port), clock)
    agent.writer = JournalWriter(agent.cfg.storage.journal_path, on_health=lambda c, ok, d: agent.health.set(c, ok, d), max_pages=40)
    agent.open()
    total = 0
    try:
        for k in range(60):
            batch = [Crossing(clock.wall(), "door-1", "in", "beam", 1.0, f"mcu:1:{k}:{i}:" + "x" * 100) for i in range(20)]
            agent.writer.add_crossings(batch)
            total += len(batch)
            clock.advance(5)
            if agent.writer.held_in_memory:
                break
        assert agent.writer.held_in_memory > 0, "the cap should have been reached"
        assert not agent.health.snapshot()["disk"].ok
        more = [Crossing(clock.wall(), "door-1", "out", "beam", 1.0, f"mcu:2:{i}") for i in range(10)]
        agent.writer.add_crossings(more)  # still accepted while the disk is full
        total += len(more)
        agent.tick()
        status = json.loads(agent.cfg.storage.status_path.read_text()) if agent.cfg.storage.status_path.exists() else None
        assert status is None or status["held_in_memory"] > 0
        agent.writer.call(lambda j: j.conn.execute("PRAGMA max_page_count=100000"))  # space freed
        agent.tick()
        assert agent.writer.held_in_memory == 0
        assert agent.health.snapshot()["disk"].ok
        assert agent.writer.call(lambda j: j.count_crossings()) == total
    finally:
        agent.stop()


def test_unreachable_broker_backlog_grows_is_shown_then_drains(tmp_path, capsys):
    port = free_port()
    cfg_path = agent_toml(tmp_path, port)
    clock = VirtualClock(time.time() - 2 * 3600)
    from edge import config

    agent = Agent(config.load(cfg_path), clock)
    agent.open()
    agent.publisher.start()
    try:
        for i in range(30):
            agent.writer.add_crossings([Crossing(clock.wall(), "door-1", "in", "beam", 1.0, f"mcu:1:{i}")])
            clock.advance(60)
            agent.tick()
        backlog = agent.writer.call(lambda j: agent.outbox.backlog())
        assert backlog >= 30
        agent.tick()
        # `footfall status` shows the backlog and the broken link (the status file is fresh: real wall time)
        status_file = agent.cfg.storage.status_path
        st = json.loads(status_file.read_text())
        st["updated_utc"] = time.time()
        status_file.write_text(json.dumps(st))
        assert main(["--config", str(cfg_path), "status", "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["outbox_backlog"] == backlog and shown["mqtt_connected"] is False
        assert shown["total_today"]["in"] >= 0 and shown["health"]["mqtt"]["ok"] is False
        assert main(["--config", str(cfg_path), "status"]) == 0
        assert "Outbox backlog" in capsys.readouterr().out
        broker = Broker(tmp_path / "late-broker", port=port)
        broker.start()
        try:
            cons = start_consumer(port, tmp_path / "index.db")
            wait_for(lambda: agent.writer.call(lambda j: agent.outbox.backlog()) == 0, timeout=60, step=agent.tick, what="drain")
            wait_for(lambda: cons.store.totals()["in"] == 30, step=cons.request_replays, what="all counts at the consumer")
            cons.stop()
        finally:
            broker.stop()
    finally:
        agent.stop()
