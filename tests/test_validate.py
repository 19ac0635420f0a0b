"""`footfall validate` driven through its prompts in a real terminal (a pty), while
crossings are written into the device's real journal as the agent would; the computed
accuracy, the stored audit and the birth message's declared accuracy are checked."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.audit import by_events, by_slots, by_totals, verdict
from edge.clock import VirtualClock
from contract.messages import validate
from edge.crossing import Crossing
from edge.journal import Journal
from harness import agent_config, agent_toml

ROOT = Path(__file__).resolve().parents[1]


class Terminal:
    """A child process on a pseudo-terminal; `expect` reads its screen output."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                     env=dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm"))
        os.close(slave)
        self.screen = ""

    def read(self, timeout: float = 0.05) -> None:
        while select.select([self.master], [], [], timeout)[0]:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            self.screen += data.decode(errors="replace")
            timeout = 0

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.read(0.05)
            found = re.search(pattern, self.screen)
            if found:
                return found
        raise AssertionError(f"timed out waiting for {pattern!r}; screen:\n{self.screen[-2000:]}")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        code = self.proc.wait(20)
        self.read(0.1)
        os.close(self.master)
        return code


def crossing(journal: Journal, n: int, direction: str, t: float | None = None, line: str = "door-1", source: str = "beam") -> None:
    journal.add_crossings([Crossing(time.time() if t is None else t, line, direction, source, 1.0, f"test:{n}")])


def test_validate_live_in_a_terminal_computes_accuracy_and_stores_the_audit(tmp_path):
    cfg_path = agent_toml(tmp_path, 1883)
    cfg = agent_config(tmp_path, 1883)
    journal = Journal(cfg.storage.journal_path)  # the "agent": writes crossings while the technician counts
    journal.conn.execute("PRAGMA synchronous=OFF")
    n = 0
    crossing(journal, n, "out", time.time() - 60)  # before the audit: not in it
    term = Terminal([sys.executable, "-m", "edge.cli", "--config", str(cfg_path), "validate", "--line", "door-1",
                     "--tolerance", "2", "--settle", "0.5"])
    try:
        term.expect("Press Enter to start")
        term.send("\r")
        term.expect(r"hand: in 0 out 0 +device: in 0 out 0")
        # 60 people in and 50 out, each seen by the technician and by the device
        for direction, key, count in (("in", "i", 60), ("out", "o", 50)):
            for _ in range(count):
                term.send(key)
                n += 1
                crossing(journal, n, direction)
                term.read(0)
        term.expect(r"hand: in 60 out 50 +device: in 60 out 50")
        time.sleep(3.0)
        term.send("ii")  # two people in the device missed
        term.send("ou")  # a key pressed by mistake, undone
        term.expect(r"hand: in 62 out 50")
        time.sleep(3.0)
        n += 1
        crossing(journal, n, "in")  # a crossing nobody walked: extra
        n += 1
        crossing(journal, n, "in", line="door-2")  # another door and another source: not audited
        n += 1
        crossing(journal, n, "out", source="camera")
        term.expect(r"device: in 61 out 50")
        term.send("q")
        term.expect(r"result +PASS")
        code = term.close()
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
        journal.close()
    assert code == 0, term.screen[-3000:]
    # in: 62 by hand, 61 by the device, 60 matched -> 2 missed, 1 extra
    assert re.search(r"in +62 +61 +60 +2 +1 +95\.2% +98\.4%", term.screen), term.screen[-1500:]
    assert re.search(r"out +50 +50 +50 +0 +0 +100\.0% +100\.0%", term.screen)

    j = Journal(cfg.storage.journal_path)
    [audit] = j.audits()
    assert audit["passed"] and audit["line"] == "door-1" and audit["source"] == "beam"
    assert audit["results"]["in"] == {"direction": "in", "true": 62, "counted": 61, "matched": 60, "missed": 2, "extra": 1,
                                      "gross": round(1 - 3 / 62, 4), "net": round(1 - 1 / 62, 4)}
    assert audit["results"]["out"]["gross"] == 1.0 and len(audit["hand_events"]) == 112
    j.close()

    # the next birth message declares it, and fits the contract
    agent = Agent(cfg, VirtualClock(time.time()))
    agent.open()
    try:
        births = agent.writer.call(lambda jj: [json.loads(p) for (p,) in jj.conn.execute(
            "SELECT payload FROM outbox WHERE topic LIKE '%/birth'")])
    finally:
        agent.writer.stop()
    declared = births[-1]["declared_accuracy"]
    assert declared["gross"] == {"in": round(1 - 3 / 62, 4), "out": 1.0} and declared["true"] == {"in": 62, "out": 50}
    assert declared["audit_id"] == audit["id"] and declared["line"] == "door-1"
    validate("birth", {**births[-1], "epoch": 1, "seq": 1})


def test_validate_totals_typed_at_the_end_and_a_failed_audit_is_not_declared(tmp_path):
    cfg_path = agent_toml(tmp_path, 1883)
    cfg = agent_config(tmp_path, 1883)
    journal = Journal(cfg.storage.journal_path)
    journal.conn.execute("PRAGMA synchronous=OFF")
    term = Terminal([sys.executable, "-m", "edge.cli", "--config", str(cfg_path), "validate", "--totals", "--settle", "0.2"])
    try:
        term.expect("Press Enter to start")
        term.send("\n")
        term.expect("Press Enter when the period ends")
        for k in range(90):
            crossing(journal, k, "in" if k < 60 else "out")
        term.expect(r"device: in 60 out 30")
        term.send("\r")
        term.expect("IN counted by hand: ")
        term.send("6x\x7f5\r")  # a typo, corrected with backspace
        term.expect("OUT counted by hand: ")
        term.send("many\r")
        term.expect("not a number")
        term.send("30\r")
        term.expect(r"result +FAIL")
        code = term.close()
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
        journal.close()
    assert code == 1
    assert "only 95 crossings counted by hand; an audit needs at least 100" in term.screen
    j = Journal(cfg.storage.journal_path)
    [audit] = j.audits()
    assert audit["method"] == "totals" and audit["results"]["in"]["missed"] == 5 and audit["results"]["in"]["gross"] == round(1 - 5 / 65, 4)
    assert j.last_passing_audit() is None
    j.close()


def test_validate_refuses_bad_input_with_a_clear_message(tmp_path, capsys):
    from edge.cli import main

    cfg_path = agent_toml(tmp_path, 1883)
    assert main(["--config", str(cfg_path), "validate", "--in", "3", "--out", "4"]) == 2
    assert "does not exist" in capsys.readouterr().err  # no journal yet: the agent never ran
    Journal(agent_config(tmp_path, 1883).storage.journal_path).close()
    assert main(["--config", str(cfg_path), "validate", "--in", "3", "--out", "4"]) == 2
    assert "--start TIME --end TIME" in capsys.readouterr().err
    assert main(["--config", str(cfg_path), "validate", "--match", "minute"]) == 2
    assert "'events' or a slot length" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--config", str(cfg_path), "validate", "--in", "1", "--out", "1", "--start", "2026-11-24T09:00:00", "--end", "x"])
    assert "no UTC offset" in capsys.readouterr().err
    # a past period, non-interactive (e.g. counted from a recording)
    start = time.time() - 3600
    j = Journal(agent_config(tmp_path, 1883).storage.journal_path)
    j.add_crossings([Crossing(start + 10 + k, "door-1", "in" if k % 2 else "out", "beam", 1.0, f"p:{k}") for k in range(120)])
    j.close()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))  # noqa: E731
    assert main(["--config", str(cfg_path), "validate", "--in", "60", "--out", "61", "--start", iso(start), "--end", iso(start + 600),
                 "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["passed"] and rec["results"]["out"]["extra"] == 0 and rec["results"]["out"]["missed"] == 1
    assert main(["--config", str(cfg_path), "validate", "--history"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_matching_methods_on_hand_made_events():
    hand = [(10.0, "in"), (11.0, "in"), (59.5, "in"), (100.0, "out")]
    device = [(10.4, "in"), (12.0, "in"), (60.5, "in"), (130.0, "out")]
    ev = by_events(hand, device, tolerance_s=2.0)
    assert (ev["in"].matched, ev["in"].missed, ev["in"].extra) == (3, 0, 0)
    assert (ev["out"].missed, ev["out"].extra, ev["out"].gross, ev["out"].net) == (1, 1, -1.0, 1.0)
    # per minute: the crossing at 59.5 s (hand) / 60.5 s (device) straddles a slot boundary
    sl = by_slots(hand, device, start_utc=0.0, slot_s=60)
    assert (sl["in"].missed, sl["in"].extra, sl["in"].gross) == (1, 1, round(1 - 2 / 3, 4))
    tot = by_totals({"in": 100, "out": 0}, {"in": 97, "out": 0})
    assert tot["in"].gross == tot["in"].net == 0.97 and tot["out"].gross is None
    assert verdict(tot, min_crossings=100, pass_at=0.95).passed
    assert not verdict(by_totals({"in": 100, "out": 0}, {"in": 97, "out": 2}), min_crossings=100, pass_at=0.95).passed
    assert not verdict(tot, min_crossings=100, pass_at=0.98).passed
