from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from simulator.local_broker import SECURE_USERS, Broker  # noqa: E402


@pytest.fixture
def broker(tmp_path: Path):
    """A real Mosquitto on a free port (plain listener, anonymous allowed)."""
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def secure_broker(tmp_path: Path):
    """A real Mosquitto running the shipped broker/mosquitto.conf and broker/acl: TLS
    (throwaway CA at `b.tls.ca_cert`), no anonymous access, users from SECURE_USERS."""
    b = Broker(tmp_path / "secure-broker", secure=True, users=dict(SECURE_USERS))
    b.start()
    yield b
    b.stop()
