"""What a technician reads: the agent's log at its default level (INFO) says it started, that
a serial port is missing, that the broker went away and came back, each once per change
(rate-limited), and a boot publishes no `ok` alarms (alarms are for changes)."""

from __future__ import annotations

import json
import logging
import sqlite3

from edge import config
from edge.agent import Agent
from contract.log_limit import LogLimiter
from edge.sources import build_sources
from harness import agent_toml, wait_for


def _lines(caplog, needle: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if needle in r.getMessage()]


def test_start_missing_port_broker_loss_and_reconnect_are_logged_once(broker, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cfg = config.load(agent_toml(tmp_path, broker.port, extra=f'\n[[beams.doors]]\nname = "door-1"\nport = "{tmp_path / "no-such-tty"}"\n'))
    agent = Agent(cfg, make_sources=build_sources)
    agent.start()
    try:
        wait_for(lambda: agent.publisher.connected, 20, step=agent.tick, what="the broker connection")
        wait_for(lambda: _lines(caplog, "cannot open"), 20, step=agent.tick, what="the missing port logged")
        [started] = _lines(caplog, "started: device dev-a")
        assert started.levelno == logging.INFO
        [missing] = _lines(caplog, "cannot open")
        assert missing.levelno == logging.WARNING and "no-such-tty" in missing.getMessage()
        broker.stop()
        wait_for(lambda: _lines(caplog, "mqtt down"), 20, step=agent.tick, what="the broker loss logged")
        broker.start()
        wait_for(lambda: agent.publisher.connected, 30, step=agent.tick, what="the reconnect")
        agent.tick()
        [down] = _lines(caplog, "mqtt down")
        assert down.levelno == logging.WARNING
        ups = _lines(caplog, "mqtt ok: connected")
        assert len(ups) == 2 and all(r.levelno == logging.INFO for r in ups)  # first connect and the reconnect
        assert len(_lines(caplog, "cannot open")) == 1  # the port retries with backoff: logged once
    finally:
        agent.stopping.set()
        agent.stop()
    rows = sqlite3.connect(cfg.storage.journal_path).execute(
        "SELECT payload FROM outbox WHERE topic LIKE '%/alarm' ORDER BY id").fetchall()
    sent = [json.loads(p) for (p,) in rows]
    assert [a for a in sent if a["ok"]] == []  # no part went down and came back except the broker (not alarmed)
    assert any(not a["ok"] and a["component"].endswith(":link") for a in sent)  # the missing port is alarmed


def test_the_limiter_holds_repeats_and_counts_them(caplog):
    caplog.set_level(logging.INFO)
    now = [0.0]
    lim = LogLimiter(logging.getLogger("t"), lambda: now[0], every_s=60, burst=2)
    assert lim.log("k", logging.WARNING, "down")
    now[0] = 1
    assert lim.log("k", logging.WARNING, "down")
    assert not lim.log("k", logging.WARNING, "down")
    assert lim.log("other", logging.INFO, "other part")
    now[0] = 61
    assert lim.log("k", logging.WARNING, "down again")
    assert [r.getMessage() for r in caplog.records] == [
        "down", "down", "other part", "down again (1 more like this not logged in the last 60 s)"]
