"""Stopping the processes a simulation started (agent, tools), politely first."""

from __future__ import annotations

import signal
import subprocess


def terminate(proc: subprocess.Popen, timeout_s: float = 15.0) -> int:
    """SIGTERM, wait, then SIGKILL if it will not go; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
