"""What a person reads from the command line: a closed pipe ends quietly, long site names
are shown whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from day_sim import Device, deliver, fast_store, local_midnight, visitors

ROOT = Path(__file__).resolve().parent.parent


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """`footfall config show | head`: the reader closes the pipe before the command writes."""
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[device]\nid = "d1"\nsite = "s1"\n[storage]\nstate_dir = "' + str(tmp_path) + '"\n')
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first line is written
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "--config", str(cfg), "config", "show"], stdout=w,
                          stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=60)
    os.close(w)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 141  # 128 + SIGPIPE, what a shell reports for a piped command cut short


def test_index_report_shows_a_long_site_name_whole_at_80_columns(tmp_path: Path) -> None:
    import random
    from datetime import date
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Shanghai")
    day = date(2026, 6, 1)
    site = "baoan-xixiang-street-party-mass-service-center-micro-station-042"  # 63 characters
    dev = Device(tmp_path / "dev.db", zone, local_midnight(day, zone), site=site)
    dev.journal.add_crossings(visitors(day, zone, random.Random(1), 20))
    dev.run_until(local_midnight(day, zone) + 30 * 3600)
    assert deliver(dev, fast_store(tmp_path / "index.db")).get("rejected", 0) == 0
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "index", "report", "--db", str(tmp_path / "index.db")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "2026-06-01" in line and "│" in line)
    assert site in row and "…" not in proc.stdout, proc.stdout
    assert json.loads(subprocess.run([sys.executable, "-m", "edge.cli", "index", "report", "--db",
                                      str(tmp_path / "index.db"), "--json"], capture_output=True, text=True,
                                     cwd=ROOT, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout)[0]["site"] == site
