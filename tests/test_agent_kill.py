"""The agent process is SIGKILLed mid-stream and restarted: nothing committed is lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from edge.crossing import Crossing
from edge.journal import Journal
from test_publish_e2e import start_consumer
from harness import agent_toml, wait_for


def spawn_agent(cfg_path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(cfg_path), "run", "--log-level", "WARNING"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_agent_sigkill_mid_stream(broker, tmp_path):
    cfg_path = agent_toml(tmp_path, broker.port, inflight=4)
    journal_file = tmp_path / "state-dev-a" / "journal.db"
    cons = start_consumer(broker.port, tmp_path / "index.db")
    rng = random.Random(7)
    written: list[Crossing] = []
    t0 = time.time() - 6 * 3600
    proc = spawn_agent(cfg_path)
    try:
        wait_for(lambda: journal_file.exists(), what="journal created")
        source = Journal(journal_file)  # stands in for a counting source writing through SQLite
        for round_ in range(4):
            batch = [Crossing(t0 + rng.uniform(0, 5 * 3600), "door-1", rng.choice(["in", "out"]), "beam", 1.0,
                              f"mcu:{round_}:{i}") for i in range(400)]
            for k in range(0, len(batch), 50):
                source.add_crossings(batch[k:k + 50])
            written += batch
            time.sleep(rng.uniform(0.8, 1.5))  # mid-stream: the backlog is still draining
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            # replaying the same source events after the crash must not double anything
            source.add_crossings(batch[-50:])
            proc = spawn_agent(cfg_path)
        n_in = sum(c.direction == "in" for c in written)
        assert source.count_crossings() == len(written)

        def settled() -> bool:
            cons.request_replays()
            t = cons.store.totals()
            return (t["in"], t["out"]) == (n_in, len(written) - n_in) and not cons.store.gaps()

        wait_for(settled, timeout=90, what="consumer totals equal the journal's")
        final = cons.store.totals()  # one snapshot: bins may still be arriving
        assert (final["in"], final["out"]) == (n_in, len(written) - n_in)
        dup = cons.counts.get("duplicate", 0)
        print(f"duplicates received and dropped by the consumer: {dup}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        cons.stop()
