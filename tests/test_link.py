"""The host link over real pseudo-terminals against the virtual microcontroller, with a
real journal file: acks after commit, resume, resync, unplug, reset reconciliation."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from edge.beam_source import BeamSettings, BeamSource, DoorSettings
from edge.journal_writer import JournalWriter
from simulator import people
from simulator.faults import WireFaults
from simulator.virtual_mcu import VirtualMcu


def wait(cond, timeout=30.0, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return False


def crowd_edges(n=60, seed=1):
    crowd = people.generate(people.CrowdSpec(count=n, mix={"single": 1}, seed=seed, mean_gap_s=2.0))
    return crowd, people.debounce(people.beam_edges(crowd, people.BeamSpec(glitch_per_hour=0)), 0.003)


def journal_rows(path: Path, door: str = "d1") -> set[tuple]:
    c = sqlite3.connect(path)
    rows = set(c.execute("SELECT mcu_epoch, seq, beam, edge, mcu_us FROM beam_events WHERE door=?", (door,)))
    c.close()
    return rows


def record(mcu: VirtualMcu, exclude_reset_losses=True) -> set[tuple]:
    lost = {(e.epoch, e.seq) for e in mcu.lost_in_reset} if exclude_reset_losses else set()
    return {(e.epoch, e.seq, e.beam, e.edge, e.t_us) for e in mcu.record if (e.epoch, e.seq) not in lost}


class Rig:
    def __init__(self, tmp: Path, edges, faults=None, speedup=500.0, store=None, **door_kw):
        self.port = tmp / "ttyDoor"
        self.mcu = VirtualMcu(self.port, edges, speedup=speedup, faults=faults)
        self.journal_path = tmp / "journal.db"
        self.store = store or JournalWriter.open(self.journal_path)
        self.health: list[tuple[str, bool, str]] = []
        self.settings = BeamSettings(doors=[DoorSettings(name="d1", port=str(self.port), **door_kw)])
        self.source = BeamSource(self.settings, self.store, lambda *a: self.health.append(a))

    def start(self):
        self.mcu.start()
        self.source.start()
        return self

    def stop(self):
        self.source.stop()
        self.mcu.stop()
        if isinstance(self.store, JournalWriter):
            self.store.close()

    @property
    def link(self):
        return self.source.doors[0].link


def test_clean_link_delivers_every_event_once_and_counts(tmp_path):
    crowd, edges = crowd_edges()
    rig = Rig(tmp_path, edges).start()
    try:
        assert wait(lambda: rig.mcu.done, 30)
        assert wait(lambda: rig.source.doors[0].decoder.idle, 5)
    finally:
        rig.stop()
    assert journal_rows(rig.journal_path) == record(rig.mcu)
    assert len(rig.mcu.record) == len(edges)
    c = sqlite3.connect(rig.journal_path)
    n_in, n_out = (c.execute("SELECT COUNT(*) FROM crossings WHERE direction=?", (d,)).fetchone()[0] for d in ("in", "out"))
    truth = crowd.truth()
    assert (n_in, n_out) == (sum(d == "in" for _, d, _ in truth), sum(d == "out" for _, d, _ in truth))
    assert ("beams:d1:link", True) in [(c, ok) for c, ok, _ in rig.health]


def test_corruption_drops_and_truncation_lose_nothing(tmp_path):
    _, edges = crowd_edges(120, seed=2)
    rig = Rig(tmp_path, edges, faults=WireFaults(0.02, 0.01, 0.01, seed=4)).start()
    try:
        assert wait(lambda: rig.mcu.done, 60)
    finally:
        rig.stop()
    assert rig.mcu.faults.stats.bytes_corrupted > 100
    assert rig.link.stats.gaps > 0 and rig.link.stats.resumes_sent > 1
    assert journal_rows(rig.journal_path) == record(rig.mcu)


class GatedStore:
    """A real journal whose beam-event commits wait for a gate: shows acks follow commits."""

    def __init__(self, path):
        self.inner = JournalWriter.open(path)
        self.gate = threading.Event()
        self.calls = 0

    def add_beam_events(self, door, rows):
        self.calls += 1
        self.gate.wait()
        return self.inner.add_beam_events(door, rows)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def close(self):
        self.inner.close()


def test_no_ack_before_commit(tmp_path):
    _, edges = crowd_edges(10)
    store = GatedStore(tmp_path / "journal.db")
    rig = Rig(tmp_path, edges, store=store).start()
    try:
        assert wait(lambda: store.calls > 0 and rig.mcu.state.last_seq > 0, 10)
        time.sleep(0.5)
        assert rig.mcu.state.acked_seq == 0  # the commit is pending: nothing acknowledged
        store.gate.set()
        assert wait(lambda: rig.mcu.done, 20)
    finally:
        rig.stop()
        store.close()
    assert journal_rows(tmp_path / "journal.db") == record(rig.mcu)


def test_unplug_replug_and_agent_restart_resume_from_the_journal(tmp_path):
    _, edges = crowd_edges(150, seed=3)
    rig = Rig(tmp_path, edges, speedup=300).start()
    try:
        assert wait(lambda: rig.mcu.state.acked_seq > 50, 20)
        rig.mcu.unplug()
        assert wait(lambda: any(c == "beams:d1:link" and not ok for c, ok, _ in rig.health), 5)
        time.sleep(0.5)
        rig.mcu.plug()
        assert wait(lambda: rig.link.stats.opens >= 2, 15)
        # agent restart: a new BeamSource on the same journal resumes from its last seq
        rig.source.stop()
        rig.source = BeamSource(rig.settings, rig.store, lambda *a: rig.health.append(a))
        rig.source.start()
        assert wait(lambda: rig.mcu.done, 60)
    finally:
        rig.stop()
    assert rig.mcu.unplugs == 1
    assert journal_rows(rig.journal_path) == record(rig.mcu)


def test_mcu_reset_is_detected_and_its_loss_reported(tmp_path):
    _, edges = crowd_edges(40, seed=4)
    store = GatedStore(tmp_path / "journal.db")
    store.gate.set()
    rig = Rig(tmp_path, edges, store=store, speedup=200).start()
    try:
        assert wait(lambda: rig.mcu.state.acked_seq > 10, 20)
        store.gate.clear()  # the journal stalls: events pile up unacked on the board
        assert wait(lambda: rig.mcu.backlog >= 6, 20)
        time.sleep(0.3)  # a heartbeat reports them
        rig.mcu.reset()  # power cycle: those events die with the board's RAM
        store.gate.set()
        assert wait(lambda: rig.mcu.done and rig.mcu.state.epoch == 2, 30)
        time.sleep(0.3)
    finally:
        rig.stop()
        store.close()
    journal = journal_rows(tmp_path / "journal.db")
    everything = record(rig.mcu, exclude_reset_losses=False)
    lost = everything - journal
    # what the journal lacks is exactly what died unacknowledged in the board's RAM
    # (the batch the host held in its stalled commit was not lost: it is journaled)
    assert journal <= everything
    assert {(e, s) for e, s, *_ in lost} <= {(e.epoch, e.seq) for e in rig.mcu.lost_in_reset}
    destroyed = len(lost)
    assert destroyed >= 1
    c = sqlite3.connect(tmp_path / "journal.db")
    reported = int(c.execute("SELECT value FROM meta WHERE key='beams.d1.lost_events'").fetchone()[0])
    # the agent knows the loss from the last heartbeat of the old epoch: never more than
    # the truth, short of it only by events emitted after that heartbeat
    assert 0 < reported <= destroyed
    restarted = [d for comp, ok, d in rig.health if comp == "beams:d1:mcu" and not ok and "restarted" in d]
    assert restarted
    # reconciled per beam through the board's cumulative counters
    assert re.search(r"\(beam \d: \d+", restarted[0]), restarted[0]


def test_heartbeat_timeout_reports_link_down(tmp_path):
    _, edges = crowd_edges(5)
    rig = Rig(tmp_path, edges, heartbeat_timeout_s=0.5).start()
    try:
        assert wait(lambda: rig.mcu.done, 20)
        rig.mcu._stop.set()  # the board hangs: the port stays open, nothing arrives
        assert wait(lambda: any(c == "beams:d1:link" and not ok and "no valid frame" in d
                                for c, ok, d in rig.health), 5)
    finally:
        rig.stop()


def test_wrong_port_gives_actionable_health_and_keeps_retrying(tmp_path):
    store = JournalWriter.open(tmp_path / "j.db")
    health = []
    src = BeamSource(BeamSettings(doors=[DoorSettings(name="d1", port=str(tmp_path / "nope"))]), store,
                     lambda *a: health.append(a))
    src.start()
    try:
        assert wait(lambda: src.doors[0].link.stats.open_failures >= 2, 5)
    finally:
        src.stop()
        store.close()
    assert health[0][0] == "beams:d1:link" and not health[0][1] and "cannot open" in health[0][2]


def test_settings_reject_unknown_keys_and_same_beams():
    with pytest.raises(ValueError):
        DoorSettings(name="d", port="/dev/x", colour="red")
    with pytest.raises(ValueError):
        DoorSettings(name="d", port="/dev/x", a_beam=1, b_beam=1)
    with pytest.raises(ValueError):
        BeamSettings(doors=[DoorSettings(name="d", port="/a"), DoorSettings(name="d", port="/b")])


class FlakyStore(GatedStore):
    """Refuses commits (as a full disk would) until told otherwise."""

    def __init__(self, path):
        super().__init__(path)
        self.gate.set()
        self.full = True

    def add_beam_events(self, door, rows):
        if self.full:
            from edge.journal import JournalFullError

            raise JournalFullError("database or disk is full")
        return self.inner.add_beam_events(door, rows)


def test_failed_commit_is_not_acked_and_recovers(tmp_path):
    _, edges = crowd_edges(30, seed=6)
    store = FlakyStore(tmp_path / "journal.db")
    rig = Rig(tmp_path, edges, store=store).start()
    try:
        assert wait(lambda: rig.link.stats.commit_failures >= 2, 10)
        assert rig.mcu.state.acked_seq == 0 and rig.mcu.state.last_seq > 0
        assert any(c == "beams:d1:link" and not ok and "cannot commit" in d for c, ok, d in rig.health)
        store.full = False  # space freed
        assert wait(lambda: rig.mcu.done, 30)
    finally:
        rig.stop()
        store.close()
    assert journal_rows(tmp_path / "journal.db") == record(rig.mcu)


def test_late_events_keep_the_board_time_not_the_receipt_time(tmp_path):
    from edge.beam_source import DoorPipeline
    from edge.clock import VirtualClock
    from firmware_bridge import messages as m

    store = JournalWriter.open(tmp_path / "j.db")
    clock = VirtualClock(start_utc=1_800_000_000.0)
    pipe = DoorPipeline(DoorSettings(name="d1", port="/dev/null"), store, lambda *a: None, clock)
    try:
        pipe.on_hello(m.Hello(1, 0, 0, 5, 96, ()))
        pipe.on_heartbeat(m.Heartbeat(5, 100_000_000, 0, 0, 0, 0, (0, 0)), 0)  # board at 100 s
        clock.advance(600)  # ten minutes unplugged; the board queued events meanwhile
        pipe.commit(5, [m.BeamEvent(5, 1, 0, 1, 160_000_000), m.BeamEvent(5, 2, 0, 0, 160_300_000)])
        rows = [r for _, r in store.beam_events_after("d1", 0)]
        assert [r.t_utc for r in rows] == [1_800_000_060.0, 1_800_000_060.3]
        # another epoch (a reset) has no anchor yet: receipt time
        pipe.commit(6, [m.BeamEvent(6, 1, 0, 1, 1_000)])
        assert store.beam_events_after("d1", 0)[-1][1].t_utc == 1_800_000_600.0
        # a new process on the same journal keeps the anchor (persisted heartbeat)
        again = DoorPipeline(DoorSettings(name="d1", port="/dev/null"), store, lambda *a: None, clock)
        assert again.event_utc(5, 170_000_000, clock.wall()) == 1_800_000_070.0
    finally:
        store.close()


def test_crossings_a_full_disk_refused_are_stored_on_the_next_commit(tmp_path):
    from edge.beam_source import DoorPipeline
    from edge.clock import VirtualClock
    from edge.journal import JournalFullError
    from firmware_bridge import messages as m

    class Store(GatedStore):
        fail = True

        def add_crossings(self, crossings):
            if self.fail:
                raise JournalFullError("database or disk is full")
            return self.inner.add_crossings(crossings)

    store = Store(tmp_path / "j.db")
    store.gate.set()
    pipe = DoorPipeline(DoorSettings(name="d1", port="/dev/null"), store, lambda *a: None, VirtualClock())
    walk = [(1.0, 0, 1), (1.06, 1, 1), (1.3, 0, 0), (1.36, 1, 0), (5.0, 0, 1)]  # the last edge settles the pass
    events = [m.BeamEvent(1, i + 1, b, e, int(t * 1e6)) for i, (t, b, e) in enumerate(walk)]
    try:
        with pytest.raises(JournalFullError):
            pipe.commit(1, events)
        store.fail = False
        pipe.commit(1, [m.BeamEvent(1, 6, 0, 0, 5_300_000)])
        c = sqlite3.connect(tmp_path / "j.db")
        assert c.execute("SELECT direction, source_ref FROM crossings").fetchall() == [("in", "mcu:d1:1:4")]
    finally:
        store.close()


def test_reset_that_keeps_ram_loses_nothing_and_keeps_the_epoch(tmp_path):
    """A DTR or watchdog reset with the ring in .noinit RAM (firmware ff_door_recover)."""
    _, edges = crowd_edges(40, seed=7)
    store = GatedStore(tmp_path / "journal.db")
    store.gate.set()
    rig = Rig(tmp_path, edges, store=store, speedup=200).start()
    try:
        assert wait(lambda: rig.mcu.state.acked_seq > 10, 20)
        store.gate.clear()
        assert wait(lambda: rig.mcu.backlog >= 6, 20)
        rig.mcu.reset(keep_ram=True)
        store.gate.set()
        assert wait(lambda: rig.mcu.done, 30)
    finally:
        rig.stop()
        store.close()
    assert rig.mcu.state.epoch == 1 and rig.mcu.lost_in_reset == []
    assert journal_rows(tmp_path / "journal.db") == record(rig.mcu, exclude_reset_losses=False)
    assert not any(comp == "beams:d1:mcu" for comp, _, _ in rig.health)


def test_works_with_the_agents_journal_writer(tmp_path):
    """The store the agent will pass (edge.journal_writer.JournalWriter), end to end."""
    from edge.journal_writer import JournalWriter

    crowd, edges = crowd_edges(30, seed=8)
    writer = JournalWriter(tmp_path / "journal.db")
    writer.start()
    rig = Rig(tmp_path, edges, store=writer)
    rig.start()
    try:
        assert wait(lambda: rig.mcu.done, 30)
        assert wait(lambda: rig.source.doors[0].decoder.idle, 5)
    finally:
        rig.stop()
        writer.stop()
    assert journal_rows(rig.journal_path) == record(rig.mcu)
    c = sqlite3.connect(rig.journal_path)
    assert c.execute("SELECT COUNT(*) FROM crossings").fetchone()[0] == len(crowd.truth())
