"""`python -m simulator.door`: the simulated door on its own pty drives a real agent
process (`footfall run`, no broker reachable) the way a technician would use it."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from harness import wait_for
from simulator.processes import terminate

ROOT = Path(__file__).resolve().parent.parent


def test_the_door_command_drives_a_real_agent(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    port = tmp_path / "ttyDoor"
    door = subprocess.Popen([sys.executable, "-m", "simulator.door", "--pty", str(port), "--people", "30", "--gap", "1",
                             "--speedup", "30", "--ratings", "--exit-when-done"], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)
    assert door.stdout is not None
    first = door.stdout.readline()
    assert first.startswith(f"door board on {port} -> /dev/pts/"), first
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[device]\nid = "d1"\nsite = "s1"\n[storage]\nstate_dir = "{tmp_path / "state"}"\n'
                   '[bins]\nminutes = 1\nrequire_clock_sync = false\n[mqtt]\nhost = "127.0.0.1"\nport = 1\ntls = false\n'
                   f'[beams]\nrating_levels = 4\n[[beams.doors]]\nname = "door1"\nport = "{port}"\n')
    agent = subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(cfg), "run"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = door.stdout.read()  # to the end: the door exits once every event is acknowledged
        door.wait(timeout=60)
        text = first + out
        m = re.search(r"(\d+) passers \((\d+) in, (\d+) out\), (\d+) keypad presses", text)
        assert m and "all acknowledged: True" in text, text
        want_in, want_out, presses = int(m[2]), int(m[3]), int(m[4])
        assert want_in > 0 and want_out > 0 and presses > 0
        db = tmp_path / "state" / "journal.db"

        def counted() -> dict[str, int]:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                return dict(c.execute("SELECT direction, COUNT(*) FROM crossings WHERE source = 'beam' GROUP BY 1"))

        wait_for(lambda: counted() == {"in": want_in, "out": want_out}, 30, what="the agent's journal to hold the truth")
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            assert c.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == presses  # every press journaled
    finally:
        terminate(agent)
        if door.poll() is None:
            terminate(door)
