"""`footfall demo` (what `make demo` runs) works end to end and says so."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_and_everything_arrives(tmp_path):
    out = subprocess.run([sys.executable, "-m", "edge.cli", "demo", "--minutes", "0.25", "--gap", "2",
                          "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "every journaled crossing reached the index system exactly once" in out.stdout
    assert (tmp_path / "state" / "journal.db").exists() and (tmp_path / "index.db").exists()
