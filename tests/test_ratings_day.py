"""A simulated day of raters at the exit keypad, end to end: the virtual board speaks the
real protocol over a real pty, the agent's beam component journals beam edges and presses
(a real SQLite journal), the binner and the day summary run on it, the reference consumer
recomputes from the bins; the figures equal the simulator's truth and repeated presses are
flagged, not counted."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from datetime import date, datetime, time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

from edge.beam_source import BeamSettings, BeamSource, DoorSettings

from edge.journal_writer import JournalWriter
from edge.bins import Binner, BinPolicy
from contract.messages import validate
from contract.day_summary import SiteProfile
from index_system.consumer import IndexStore
from edge.journal import Journal
from edge.outbox import Outbox
from contract.ratings import good_levels
from edge.summaries import Summaries
from simulator import people
from simulator.raters import rate
from simulator.scenario import load
from simulator.virtual_mcu import VirtualMcu

ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 6, 3)
PREFIX = "footfall/v1"
ENVELOPE = ("schema", "device", "site", "epoch", "seq", "historical", "revision", "trigger")


class BoardTime:
    """Wall time follows the virtual board's clock (the door's day runs 500x faster); the
    link's timeouts stay on real monotonic time, as the board's heartbeats do."""

    def __init__(self, start_utc: float, mcu: VirtualMcu) -> None:
        self.start_utc, self.mcu = start_utc, mcu

    def wall(self) -> float:
        return self.start_utc + self.mcu.vt

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def wait(cond, timeout=60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_a_day_of_raters_gives_the_simulators_truth(tmp_path: Path):
    sc = load("raters_day")
    assert sc.raters is not None
    crowd = people.generate(sc.people)
    edges = people.debounce(people.beam_edges(crowd, sc.door), sc.debounce_us / 1e6)
    presses, truth = rate(crowd, sc.raters)
    assert truth.raters > 40 and truth.repeats >= 4 * 5  # some pressed five times

    start = datetime.combine(DAY, dtime(9, 0), ZONE).timestamp()
    port, journal_path = tmp_path / "ttyDoor", tmp_path / "journal.db"
    mcu = VirtualMcu(port, edges, speedup=sc.speedup, presses=presses)
    store = JournalWriter.open(journal_path)
    settings = BeamSettings(doors=[DoorSettings(name="door-1", port=str(port))], rating_levels=4, rating_repeat_s=3.0)
    health: list[tuple] = []
    source = BeamSource(settings, store, lambda *a: health.append(a), BoardTime(start, mcu))
    mcu.start()
    source.start()
    try:
        assert wait(lambda: mcu.done, 90), f"board not drained: vt {mcu.vt:.0f}"
        assert wait(lambda: source.doors[0].decoder.idle, 10)
    finally:
        source.stop()
        mcu.stop()
        store.close()
    assert not [h for h in health if "ratings" in h[0]]  # a keypad is configured: no warning

    # the journal: every press kept, once, with its status
    c = sqlite3.connect(journal_path)
    rows = c.execute("SELECT mcu_epoch, seq, keypad, level, mcu_us, status FROM ratings ORDER BY seq").fetchall()
    c.close()
    sent = [(e.epoch, e.seq, e.keypad, e.level, e.t_us) for e in mcu.record if hasattr(e, "level")]
    assert [r[:5] for r in rows] == sent and len(rows) == truth.presses
    status = Counter(r[5] for r in rows)
    assert status == {"counted": truth.raters, "repeat": truth.repeats}

    # the device: bins and the day summary
    j = Journal(journal_path)
    outbox = Outbox(j.conn, epoch=1, max_messages=100_000)
    policy = BinPolicy(15, ZONE, "beam", "never", ("door-1",), rating_levels=4)
    binner = Binner(j.conn, outbox, policy, f"{PREFIX}/site-1/dev-a/bins", {"device": "dev-a", "site": "site-1"})
    with j.transaction():
        binner.start_at(start)
        j.conn.execute("INSERT INTO meta(key, value) SELECT 'bins_first_start_utc', value FROM meta WHERE key = 'bins_next_start_utc'")
        summaries = Summaries(binner, outbox, SiteProfile(), f"{PREFIX}/site-1/dev-a/summary")
    end_of_day = datetime.combine(date(2026, 6, 4), dtime(0, 10), ZONE).timestamp()
    with j.transaction():
        binner.tick(end_of_day)
        summaries.tick(end_of_day)
    msgs = [(t, json.loads(p)) for t, p in j.conn.execute("SELECT topic, payload FROM outbox ORDER BY id")]
    j.close()
    bins = [b for t, b in msgs if t.endswith("/bins")]
    [summary] = [s for t, s in msgs if t.endswith("/summary")]
    for b in bins:
        validate("bins", b)
    validate("summary", summary)
    assert sum(sum(b["ratings"]["counts"].values()) for b in bins) == truth.raters

    r = summary["ratings"]
    assert summary["visits"]["out"] == truth.leaving  # single file: the beams count every exit
    assert r["counts"] == {str(lv): truth.counts[lv] for lv in range(1, 5)}
    assert r["counted"] == truth.raters and r["repeats"] == truth.repeats and r["out_of_range"] == 0
    assert r["good_levels"] == [3, 4]
    assert r["satisfaction_share"] == truth.satisfaction_share(good_levels(4))
    assert r["response_rate"] == truth.response_rate

    # the reference consumer: the same figures from the bins it received
    index = IndexStore(tmp_path / "index.db")
    for topic, body in msgs:
        assert index.ingest(topic, json.dumps(body).encode(), PREFIX, end_of_day) == "new"
    recomputed = index.recompute_summary("dev-a", DAY)
    assert recomputed == {k: v for k, v in summary.items() if k not in ENVELOPE}
    [week] = index.week(DAY)
    assert week["satisfaction_share"] == truth.satisfaction_share(good_levels(4))
    assert week["ratings_counted"] == truth.raters
