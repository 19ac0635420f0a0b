"""Shared test helpers: an agent config for a test broker, and waiting on conditions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from edge import config

BASE_TOML = """
[device]
id = "{device}"
site = "{site}"
timezone = "{tz}"

[storage]
state_dir = "{state}"

[bins]
minutes = {minutes}
require_clock_sync = false
lines = ["door-1"]

[mqtt]
host = "127.0.0.1"
port = {port}
tls = false
protocol = "{protocol}"
max_inflight = {inflight}
"""


def agent_toml(tmp: Path, port: int, *, device: str = "dev-a", site: str = "site-1", tz: str = "Asia/Shanghai",
               minutes: int = 1, protocol: str = "auto", inflight: int = 20, extra: str = "") -> Path:
    path = tmp / f"{device}.toml"
    path.write_text(BASE_TOML.format(device=device, site=site, tz=tz, state=tmp / f"state-{device}", minutes=minutes,
                                     port=port, protocol=protocol, inflight=inflight) + extra)
    return path


def agent_config(tmp: Path, port: int, **kw) -> config.AgentConfig:
    return config.load(agent_toml(tmp, port, **kw))


def wait_for(pred: Callable[[], bool], timeout: float = 30.0, step: Callable[[], None] | None = None, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
