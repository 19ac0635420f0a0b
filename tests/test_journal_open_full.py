"""A device that boots on a full disk waits for space instead of exiting (a restart frees no
space: under systemd it would only loop). Real SQLite on a real size-limited tmpfs."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from edge.journal_writer import JournalWriter

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI and this machine run as root)")


@needs_root
def test_opening_the_journal_on_a_full_disk_waits_for_space(tmp_path: Path) -> None:
    disk = tmp_path / "state"
    disk.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True, text=True)
    assert res.returncode == 0, f"cannot mount a tmpfs: {res.stderr}"
    try:
        ballast = disk / "ballast"
        with open(ballast, "wb") as f:  # fill to the last byte
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        waits: list[str] = []
        health: list[tuple[str, bool]] = []
        writer = JournalWriter(disk / "journal.db", on_health=lambda c, ok, d: health.append((c, ok)),
                               on_wait=waits.append, open_retry_s=0.05)
        started = threading.Thread(target=writer.start, daemon=True)
        started.start()
        deadline = time.monotonic() + 30
        while len(waits) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(waits) >= 3 and started.is_alive(), "the open neither waited nor stayed alive"
        assert ("disk", False) in health
        ballast.unlink()  # space returns
        started.join(30)
        assert not started.is_alive() and writer.journal is not None
        assert health[-1] == ("disk", True)
        assert writer.call(lambda j: j.conn.execute("SELECT 1").fetchone()[0]) == 1
        writer.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
