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


PG_SERVER = "postgresql://127.0.0.1:5432/test"  # `make test` machines run PostgreSQL here (trust auth)


@pytest.fixture
def pg_url():
    """A PostgreSQL store URL of this test's own: a fresh schema in the local server's `test`
    database (search_path set by the URL), dropped afterwards. Commits skip the fsync wait
    (durability is not what these tests check; PostgreSQL's own). No server: the test fails
    with the hint, never skips."""
    import uuid

    from index_system.store_sql import PgConnection

    try:
        admin = PgConnection(PG_SERVER)
    except Exception as exc:  # noqa: BLE001 - any connection failure gets the same hint
        pytest.fail(f"PostgreSQL is not reachable at {PG_SERVER} ({type(exc).__name__}: {exc}); install and start it:"
                    " apt-get install -y postgresql && service postgresql start, then"
                    " createdb -h 127.0.0.1 test (trust auth for 127.0.0.1)", pytrace=False)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_SERVER}?options=-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"
    admin.execute(f"DROP SCHEMA {schema} CASCADE")
    admin.close()
