"""A running agent on the shipped broker configuration (TLS, passwords, ACL), and the index
user sending it commands: the rig the hostile-input tests and the fuzz suite share."""

from __future__ import annotations

import json
import time
from pathlib import Path

from contract.timebins import iso_utc
from edge import config
from edge.agent import Agent
from edge.clock import VirtualClock
from harness import agent_toml, wait_for
from simulator.local_broker import SECURE_USERS, Broker
from test_broker_security import Peer

PREFIX = "footfall/v1/site-1/dev-a"


def secure_toml(tmp: Path, broker: Broker, *, device: str = "dev-a", username: str = "dev-a", extra: str = "",
                password_inline: bool = False, state_dir: Path | None = None) -> Path:
    """An agent config for `broker` over TLS with the device's own credentials."""
    path = agent_toml(tmp, broker.port, device=device, extra=extra)
    if state_dir is not None:
        path.write_text(path.read_text().replace(f'state_dir = "{tmp / f"state-{device}"}"', f'state_dir = "{state_dir}"'))
    if password_inline:
        secret = f'password = "{SECURE_USERS[username]}"\n'
    else:
        pw = tmp / f"{username}.password"
        pw.write_text(SECURE_USERS[username] + "\n")
        secret = f'password_file = "{pw}"\n'
    tls = f'tls = true\nca_file = "{broker.tls.ca_cert}"\n{secret}username = "{username}"\n'
    path.write_text(path.read_text().replace("tls = false\n", tls))
    return path


class Rig:
    """dev-a's agent on a virtual clock (one-minute bins) and the index user as a peer that
    reads everything and may write dev-a's commands."""

    def __init__(self, broker: Broker, tmp: Path, extra: str = "", start: float | None = None,
                 state_dir: Path | None = None) -> None:
        self.broker, self.tmp = broker, tmp
        self.cfg = config.load(secure_toml(tmp, broker, extra=extra, state_dir=state_dir))
        # whole minutes, an hour back: bins close as the test moves the clock
        self.clock = VirtualClock(start if start is not None else (time.time() // 60) * 60 - 3600)
        self.index = Peer(broker, "index", SECURE_USERS["index"])
        assert not self.index.connect().is_failure
        assert not self.index.subscribe(f"{PREFIX}/+")[0].is_failure  # not cmd/#: what the agent publishes
        self.agent = self._start()

    def _start(self) -> Agent:
        agent = Agent(self.cfg, self.clock)
        agent.open()
        assert agent.publisher is not None
        agent.publisher.start()
        wait_for(lambda: agent.publisher.connected, timeout=15, what="agent connected")
        agent.tick()
        return agent

    def restart(self) -> None:
        self.agent.stop()
        self.agent = self._start()

    def close(self) -> None:
        try:
            self.agent.stop()
        finally:
            self.index.close()

    # -- what goes in ---------------------------------------------------------------

    def command(self, kind: str, payload: bytes | str | dict, retain: bool = False) -> None:
        """The index user publishes to dev-a's cmd/<kind> (QoS 1; returns on the broker's PUBACK)."""
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode()
        rc = self.index.publish(f"{PREFIX}/cmd/{kind}", payload, retain=retain)
        with self.index._cv:
            self.index.pubacks.clear()  # the test's own bookkeeping must not grow with the fuzz run
        assert not rc.is_failure, f"broker refused the command: {rc}"

    def handled(self) -> int:
        """Commands the agent has taken in so far (accepted, refused or failed)."""
        return sum(self.agent.publisher.inputs.counts.values())

    def wait_handled(self, n: int, timeout: float = 15.0) -> None:
        wait_for(lambda: self.handled() >= n, timeout=timeout, what=f"{n} commands handled by the agent")

    # -- what comes out -------------------------------------------------------------

    def bins(self) -> list[dict]:
        with self.index._cv:
            msgs = list(self.index.messages)
        return [json.loads(m.payload) for m in msgs if m.topic == f"{PREFIX}/bins"]

    def next_bin_on_time(self, timeout: float = 15.0) -> dict:
        """Move the clock one bin on; the agent must publish the bin that just closed."""
        self.clock.advance(60)
        now = self.clock.wall()
        end = iso_utc((now // 60) * 60)

        def arrived() -> bool:
            return any(b["bin"]["end_utc"] == end for b in self.bins())

        wait_for(arrived, timeout=timeout, step=self.agent.tick, what=f"bin ending {end} at the index")
        return next(b for b in self.bins() if b["bin"]["end_utc"] == end)

    def assert_alive(self) -> None:
        """The agent's threads run and it still counts its MQTT loop as healthy."""
        pub = self.agent.publisher
        assert pub.client._thread is not None and pub.client._thread.is_alive(), "paho's network thread ended"
        assert pub.loop_alive()
        assert self.agent.writer._thread.is_alive(), "the journal thread ended"
        assert self.agent.health.vital_ok(), self.agent.health.snapshot()
