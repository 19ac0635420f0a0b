from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from simulator.local_broker import SECURE_USERS, Broker  # noqa: E402


@pytest.fixture
def vtest_avi() -> Path:
    """Debian's pedestrian clip; absent, the test fails with the install hint."""
    from camera_data import require_vtest

    return require_vtest()


def require_tool(name: str, package: str) -> str:
    """A system tool's path, or a failure naming the package (`make test` installs it)."""
    import shutil

    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `make test` (scripts/install-system-deps.sh) "
                    f"or apt-get install -y {package}", pytrace=False)
    return found


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
