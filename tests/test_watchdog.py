"""The watchdog contract (systemd/README.md, "The watchdog contract"), checked on a real
sd_notify socket (an AF_UNIX datagram socket in NOTIFY_SOCKET, as systemd gives the unit)
with a running agent on the shipped broker configuration:

- fed while the agent makes progress, and while it waits on something a restart cannot
  cure: a full disk (a real size-limited tmpfs that fills), for ten minutes of the agent's
  clock, with counting going on in memory and nothing lost once space returns;
- stopped when a part is wedged: the binner failing tick after tick, paho's network
  thread gone. systemd then restarts the agent (WatchdogSec=30s).
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from edge.agent import BINNER_FAILURES_BEFORE_STOP
from edge.crossing import Crossing
from harness import wait_for
from hostile_rig import PREFIX, Rig


class NotifySocket:
    """What systemd listens on: datagrams of KEY=VALUE lines."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.path = path

    def drain(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    s = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(s.path))
    yield s
    s.close()


def fed(msgs: list[str]) -> bool:
    return "WATCHDOG=1" in msgs


def test_fed_while_counting_and_stopped_when_the_binner_fails_tick_after_tick(secure_broker, tmp_path, notify_socket):
    rig = Rig(secure_broker, tmp_path)
    try:
        rig.next_bin_on_time()
        assert fed(notify_socket.drain())
        # the binner's mark is corrupted: every tick's binning raises (not a full disk)
        rig.agent.writer.set_meta("bins_next_start_utc", "not a time")
        for i in range(BINNER_FAILURES_BEFORE_STOP - 1):
            rig.clock.advance(1)
            rig.agent.tick()
            assert fed(notify_socket.drain()), f"a failure or two is not a wedge (tick {i})"
        for _ in range(5):
            rig.clock.advance(1)
            rig.agent.tick()
            assert not fed(notify_socket.drain()), "a binner failing tick after tick is wedged: let systemd restart"
        assert "wedged" in rig.agent.health.snapshot()["binner"].detail
    finally:
        rig.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the point of the test
def test_stopped_when_pahos_network_thread_is_gone(secure_broker, tmp_path, notify_socket):
    """If a callback ever raised past the guard (a bug), paho's thread ends and nothing
    reconnects or publishes again: health must say so and the watchdog must stop."""
    rig = Rig(secure_broker, tmp_path)
    try:
        rig.next_bin_on_time()
        assert fed(notify_socket.drain())

        def unguarded(client, userdata, msg):
            raise RuntimeError("a bug nobody foresaw")

        rig.agent.publisher.client.on_message = unguarded
        rig.command("summary", {"date": "2026-01-01"})
        wait_for(lambda: rig.agent.publisher.client._thread is None, timeout=10, what="paho's thread to end")
        rig.agent.tick()
        assert not rig.agent.health.snapshot()["mqtt_loop"].ok
        notify_socket.drain()
        for _ in range(3):
            rig.clock.advance(1)
            rig.agent.tick()
        assert not fed(notify_socket.drain())
        status = json.loads(rig.cfg.storage.status_path.read_text())
        assert status["health"]["mqtt_loop"]["ok"] is False
    finally:
        rig.close()


def mount_small_disk(where: Path, size: str) -> None:
    where.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root): {res.stderr.strip()}")


def fill(path: Path) -> int:
    """Write until the file system says ENOSPC; returns the bytes written."""
    n = 0
    with open(path, "wb", buffering=0) as f:
        chunk = b"\0" * 65536
        while True:
            try:
                n += f.write(chunk)
            except OSError as exc:
                assert exc.errno == 28, exc
                return n


def test_a_full_disk_for_ten_minutes_keeps_the_watchdog_fed_and_loses_no_crossing(secure_broker, tmp_path, notify_socket):
    """A 6 MB tmpfs holds the journal. It is filled to the last byte and stays full for 600
    ticks of one second on the agent's clock (the virtual clock drives the same loop, one
    tick per second as `run_forever` does, so this is the agent's ten minutes), while
    crossings keep arriving every 5 s. Then space returns."""
    disk = tmp_path / "disk"
    mount_small_disk(disk, "6m")
    try:
        rig = Rig(secure_broker, tmp_path, state_dir=disk / "state")
        assert rig.cfg.storage.journal_path.parent == disk / "state"
        try:
            added: list[Crossing] = []

            def arrive(i: int) -> None:
                t = rig.clock.wall()
                c = Crossing(t, "door-1", "in" if i % 3 else "out", "beam", 1.0, f"mcu:9:{i}")
                added.append(c)
                rig.agent.writer.add_crossings([c])

            for i in range(12):  # a minute of normal counting
                arrive(i)
                rig.clock.advance(5)
                rig.agent.tick()
                assert fed(notify_socket.drain())
            filler = disk / "filler"
            fill(filler)
            held_max, fed_ticks, ticks, statuses = 0, 0, 0, []
            for i in range(12, 12 + 600):
                if i % 5 == 0:
                    arrive(i)
                rig.clock.advance(1)
                rig.agent.tick()
                ticks += 1
                msgs = notify_socket.drain()
                fed_ticks += fed(msgs)
                statuses += [m for m in msgs if m.startswith("STATUS=")]
                held_max = max(held_max, rig.agent.writer.held_in_memory)
            assert held_max > 0, "the disk never filled: the test proves nothing"
            assert fed_ticks == ticks, f"watchdog fed on {fed_ticks} of {ticks} ticks of a full disk"
            assert any("disk full" in s for s in statuses)
            assert rig.agent.health.snapshot()["disk"].ok is False
            filler.unlink()
            wait_for(lambda: rig.agent.writer.held_in_memory == 0, step=rig.agent.tick, what="held crossings committed")
            refs = rig.agent.writer.call(lambda j: {r[0] for r in j.conn.execute("SELECT source_ref FROM crossings")})
            assert refs >= {c.source_ref for c in added}, "a crossing was lost"
            assert rig.agent.health.snapshot()["disk"].ok

            # and the index receives bins that count every one of them
            def counted() -> int:
                latest: dict[str, dict] = {}
                for m in list(rig.index.messages):
                    if m.topic == f"{PREFIX}/bins":
                        b = json.loads(m.payload)
                        if b["bin"]["start_utc"] not in latest or b["revision"] >= latest[b["bin"]["start_utc"]]["revision"]:
                            latest[b["bin"]["start_utc"]] = b
                return sum(b["total"]["in"] + b["total"]["out"] for b in latest.values())

            rig.clock.advance(120)
            wait_for(lambda: counted() == len(added), step=rig.agent.tick, timeout=60, what=f"{len(added)} crossings in bins")
        finally:
            (disk / "filler").unlink(missing_ok=True)
            rig.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
