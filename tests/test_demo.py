"""`footfall demo` (what `make demo` runs): a short compressed day, end to end, and says so."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from contract.day_summary import per_thousand

ROOT = Path(__file__).resolve().parent.parent


def test_a_short_demo_day_reaches_the_index_with_every_figure(tmp_path):
    out = subprocess.run([sys.executable, "-m", "edge.cli", "demo", "--passers", "6", "--seed", "5",
                          "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=280,
                         cwd=ROOT, env={**os.environ, "COLUMNS": "140", "PYTHONPATH": str(ROOT)})
    text = out.stdout
    assert out.returncode == 0, text[-4000:] + out.stderr[-3000:]
    for label in ("visits in / out", "peak hour", "peak occupancy", "usage rate", "gathering rate",
                  "satisfaction share", "bad-rating share", "response rate", "completeness"):
        assert label in text, label
    assert "device and consumer agree" in text and "reached the index system exactly once" in text
    png = tmp_path / "report-demo-door-2026-06-01.png"
    assert f"day report: {png}" in text.replace("\n", "") and png.stat().st_size > 10_000
    # the live view showed every source and the fused count
    assert re.search(r"beams \(decoder.*\n.*camera \(detector.*\n.*fused", text)
    # the consumer's summary is the device's, and its gathering rate is the visits per 1,000 residents
    with sqlite3.connect(tmp_path / "index.db") as c:
        [(payload,)] = c.execute("SELECT payload FROM summaries WHERE device = 'demo-door'").fetchall()
    s = json.loads(payload)
    assert s["gathering_rate"] == {"residents": 12_000, "per_1000": per_thousand(s["visits"]["in"], 12_000)}
    assert s["source"] == "fused" and s["completeness"]["share"] == 1.0 and s["ratings"]["levels"] == 4
    # the truth line and the summary's visits: the fused count is within one passer of it here
    m = re.search(r"truth \(simulator\)\s*│\s*(\d+)\s*│\s*(\d+)", text)
    assert m and abs(int(m[1]) - s["visits"]["in"]) <= 1 and abs(int(m[2]) - s["visits"]["out"]) <= 1
