from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mqtt_broker import Broker  # noqa: E402


@pytest.fixture
def broker(tmp_path: Path):
    """A real Mosquitto on a free port (plain listener, anonymous allowed)."""
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()
