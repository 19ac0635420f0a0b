"""Ratings: the repeat filter, the journal (idempotent, one transaction with the beam edges,
the resume point), late presses revising bins and the day summary, the figures, and the
beam component's warning when no keypad is configured."""

from __future__ import annotations

import json
from datetime import date, datetime, time as dtime
from zoneinfo import ZoneInfo

import pytest

from edge.bins import Binner, BinPolicy
from contract.messages import validate
from edge.crossing import Crossing
from contract.day_summary import SiteProfile, summarize_day
from edge.journal import BeamEventRow, Journal
from edge.outbox import Outbox
from contract.ratings import COUNTED, OUT_OF_RANGE, REPEAT, Press, classify, day_block, good_levels, pooled_share, satisfaction_share
from edge.summaries import Summaries
from index_system.week_view import week_view

ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 6, 3)
T0 = datetime.combine(DAY, dtime(10, 0), ZONE).timestamp()


def press(seq: int, s: float, level: int = 3, keypad: int = 0, epoch: int = 1) -> Press:
    return Press(epoch, seq, keypad, level, int(s * 1e6), T0 + s)


def test_the_repeat_filter_slides_counts_the_first_press_and_is_per_keypad():
    presses = [press(1, 0.0, 4), press(2, 0.5, 4), press(3, 1.2, 1), press(4, 3.9, 4),  # one burst (each < 3 s apart)
               press(5, 7.0, 2), press(6, 7.1, 3, keypad=1),  # another person; another keypad at once
               press(7, 20.0, 5), press(8, 30.0, 0)]  # a level above the keypad's 4 buttons; level 0 (never on the wire)
    assert classify({}, presses, repeat_s=3.0, levels=4) == [
        COUNTED, REPEAT, REPEAT, REPEAT, COUNTED, COUNTED, OUT_OF_RANGE, OUT_OF_RANGE]
    # the journal's last press of the keypad continues a burst across calls
    assert classify({0: press(9, 100.0)}, [press(10, 101.0)], repeat_s=3.0, levels=4) == [REPEAT]
    # after a board reset (new epoch, board µs restart from 0) the host's UTC decides
    after_reset = Press(2, 1, 0, 3, 500_000, T0 + 1.0)
    assert classify({0: press(9, 0.5)}, [after_reset], repeat_s=3.0, levels=4) == [REPEAT]
    assert classify({0: press(9, 0.5)}, [after_reset._replace(t_utc=T0 + 9)], repeat_s=3.0, levels=4) == [COUNTED]


def test_good_levels_and_shares():
    assert [good_levels(n) for n in (2, 3, 4, 5)] == [(2,), (3,), (3, 4), (4, 5)]
    assert satisfaction_share({"1": 1, "2": 1, "3": 3, "4": 5}, 4) == 0.8
    assert satisfaction_share({"1": 0, "2": 0, "3": 0}, 3) is None
    bins = [{"ratings": {"levels": 3, "counts": {"1": 1, "2": 0, "3": 2}, "repeats": 4, "out_of_range": 0}},
            {"ratings": {"levels": 3, "counts": {"1": 0, "2": 1, "3": 1}, "repeats": 0, "out_of_range": 1}}, {}]
    d = day_block(bins, visits_out=20)
    assert d == {"levels": 3, "counts": {"1": 1, "2": 1, "3": 3}, "counted": 5, "repeats": 4, "out_of_range": 1,
                 "good_levels": [3], "satisfaction_share": 0.6, "response_rate": 0.25}
    assert day_block([{}], 10) is None and day_block(bins, 0)["response_rate"] is None
    # a week pools ratings (it does not average the daily shares)
    other = {**d, "counts": {"1": 0, "2": 0, "3": 1}, "counted": 1}
    assert pooled_share([d, other, None]) == (round(4 / 6, 4), 6)


def test_journal_keeps_every_press_once_in_one_transaction_with_the_edges(tmp_path):
    j = Journal(tmp_path / "j.db")
    edges = [BeamEventRow(1, 1, 0, 1, 10, T0), BeamEventRow(1, 3, 0, 0, 30, T0)]
    presses = [press(2, 0.0, 4), press(4, 1.0, 4)]
    assert j.add_door_events("d1", edges, presses, repeat_s=3.0, levels=4) == 4
    assert j.add_door_events("d1", edges, presses, repeat_s=3.0, levels=4) == 0  # a resent batch: nothing new
    assert j.last_event_seq("d1", 1) == 4 and j.last_event_seq("d1", 2) is None
    # a press resent after a reconnect is not classified again against itself
    assert j.add_ratings("d1", [press(4, 1.0, 4), press(5, 10.0, 2)], repeat_s=3.0, levels=4) == 1
    assert [(p.seq, st) for _, p, st in j.ratings_between(T0 - 1, T0 + 60)] == [(2, COUNTED), (4, REPEAT), (5, COUNTED)]
    # a commit that fails leaves neither the edges nor the presses: the resume point stays put
    with pytest.raises(Exception):
        j.add_door_events("d1", [BeamEventRow(1, 6, 0, 1, 60, T0)], [press(7, 20.0, 9)._replace(t_utc=None)],
                          repeat_s=3.0, levels=4)
    assert j.last_event_seq("d1", 1) == 5
    j.close()


def _device(tmp_path, levels: int = 4):
    j = Journal(tmp_path / "dev.db")
    outbox = Outbox(j.conn, epoch=1, max_messages=10_000)
    binner = Binner(j.conn, outbox, BinPolicy(15, ZONE, "beam", "never", ("d1",), rating_levels=levels),
                    "footfall/v1/s/d/bins", {"device": "d", "site": "s"})
    start = datetime.combine(DAY, dtime(0), ZONE).timestamp()
    with j.transaction():
        binner.start_at(start)
        j.conn.execute("INSERT INTO meta(key, value) SELECT 'bins_first_start_utc', value FROM meta WHERE key = 'bins_next_start_utc'")
        summaries = Summaries(binner, outbox, SiteProfile(), "footfall/v1/s/d/summary")
    return j, binner, summaries


def _sent(j: Journal, kind: str) -> list[dict]:
    return [json.loads(p) for t, p in j.conn.execute("SELECT topic, payload FROM outbox ORDER BY id") if t.endswith(kind)]


def test_a_late_press_revises_its_bin_and_the_day_summary(tmp_path):
    j, binner, summaries = _device(tmp_path)
    j.add_crossings([Crossing(T0 + k, "d1", "out", "beam", 1.0, f"c{k}") for k in range(10)])
    j.add_ratings("d1", [press(1, 5.0, 4), press(2, 5.5, 4), press(3, 30.0, 1)], repeat_s=3.0, levels=4)
    midnight = datetime.combine(date(2026, 6, 4), dtime(0, 5), ZONE).timestamp()
    with j.transaction():
        binner.tick(midnight)
        summaries.tick(midnight)
    [first] = _sent(j, "summary")
    assert first["ratings"]["counts"] == {"1": 1, "2": 0, "3": 0, "4": 1} and first["ratings"]["repeats"] == 1
    assert first["ratings"]["response_rate"] == 0.2 and first["ratings"]["satisfaction_share"] == 0.5
    # a press delivered late (the board was unplugged): its bin and the summary are sent again
    j.add_ratings("d1", [press(4, 300.0, 3)], repeat_s=3.0, levels=4)
    with j.transaction():
        binner.tick(midnight + 60)
        summaries.tick(midnight + 60)
    revised = [b for b in _sent(j, "bins") if b["bin"]["start_local"].startswith("2026-06-03T10:00")]
    assert [b["revision"] for b in revised] == [0, 1] and revised[1]["ratings"]["counts"]["3"] == 1
    second = _sent(j, "summary")[-1]
    assert second["revision"] == 1 and second["ratings"]["counted"] == 3
    for b in _sent(j, "bins"):
        validate("bins", b)
    validate("summary", second)
    j.close()


def test_no_keypad_no_ratings_in_bins_or_summary(tmp_path):
    j, binner, _ = _device(tmp_path, levels=0)
    j.add_ratings("d1", [press(1, 5.0, 4)], repeat_s=3.0, levels=0)  # stored (flagged), but not binned
    with j.transaction():
        binner.tick(T0 + 3600)
    bins = _sent(j, "bins")
    assert bins and all("ratings" not in b for b in bins)
    assert summarize_day(bins, day=DAY, zone=ZONE, minutes=15, profile=SiteProfile(), source="beam")["ratings"] is None
    assert [st for *_, st in j.ratings_between(T0, T0 + 60)] == [OUT_OF_RANGE]
    j.close()


def test_week_view_satisfaction_share_pools_the_devices_ratings():
    def day(counts: dict[str, int]) -> dict:
        return {"visits": {"in": 5}, "hourly": [], "usage_rate": None, "completeness": {"share": 1.0}, "peak_hour": None,
                "ratings": day_block([{"ratings": {"levels": 4, "counts": counts, "repeats": 0, "out_of_range": 0}}], 10)}

    v = week_view("s", {DAY: {"a": day({"1": 1, "2": 0, "3": 0, "4": 3}), "b": day({"1": 0, "2": 1, "3": 0, "4": 0})}}, DAY)
    assert v["satisfaction_share"] == 0.6 and v["ratings_counted"] == 5
    assert week_view("s", {DAY: {"a": {**day({}), "ratings": None}}}, DAY)["satisfaction_share"] is None


def test_presses_without_a_configured_keypad_are_kept_flagged_and_reported(tmp_path):
    import sqlite3
    import time

    from edge.beam_source import BeamSettings, BeamSource, DoorSettings

    from edge.journal_writer import JournalWriter
    from simulator.virtual_mcu import VirtualMcu

    mcu = VirtualMcu(tmp_path / "tty", [(1.0, 0, 1), (1.2, 1, 1), (1.4, 0, 0), (1.6, 1, 0)], speedup=50,
                     presses=[(1.3, 0, 2), (5.0, 0, 4)])
    store = JournalWriter.open(tmp_path / "j.db")
    health: list[tuple] = []
    src = BeamSource(BeamSettings(doors=[DoorSettings(name="d1", port=str(tmp_path / "tty"))]), store, lambda *a: health.append(a))
    mcu.start()
    src.start()
    try:
        end = time.monotonic() + 20
        while not mcu.done and time.monotonic() < end:
            time.sleep(0.02)
        assert mcu.done
    finally:
        src.stop()
        mcu.stop()
        store.close()
    c = sqlite3.connect(tmp_path / "j.db")
    assert c.execute("SELECT seq, level, status FROM ratings ORDER BY seq").fetchall() == [(3, 2, "out_of_range"), (6, 4, "out_of_range")]
    assert c.execute("SELECT COUNT(*) FROM beam_events").fetchone()[0] == 4
    c.close()
    assert any(comp == "beams:d1:ratings" and not ok and "rating_levels" in detail for comp, ok, detail in health)


def test_the_agent_bins_ratings_when_the_config_names_a_keypad(tmp_path, capsys):
    from edge.agent import Agent
    from edge.cli import main
    from edge.clock import VirtualClock
    from edge.summaries import offline_binner
    from harness import agent_config, agent_toml

    extra = '\n[beams]\nrating_levels = 3\nrating_repeat_s = 2.0\n[[beams.doors]]\nname = "door-1"\nport = "/dev/null"\n'
    cfg = agent_config(tmp_path, 1883, minutes=15, extra=extra)
    cfg_path = agent_toml(tmp_path, 1883, minutes=15, extra=extra)
    assert cfg.beams.keypad_levels() == 3
    start = datetime.combine(DAY, dtime(0), ZoneInfo("Asia/Shanghai")).timestamp()
    agent = Agent(cfg, VirtualClock(start))
    agent.open()
    try:
        agent.writer.add_crossings([Crossing(T0 + k, "door-1", "out", "beam", 1.0, f"c{k}") for k in range(4)])
        agent.writer.add_door_events("door-1", [], [press(1, 1.0, 3), press(2, 1.5, 3), press(3, 9.0, 1)],
                                     repeat_s=cfg.beams.rating_repeat_s, levels=3)
        agent.clock.advance(25 * 3600)
        agent.writer.call(lambda j: agent.binner.tick(agent.clock.wall()))
        bins = agent.writer.call(lambda j: [json.loads(p) for t, p in j.conn.execute("SELECT topic, payload FROM outbox") if t.endswith("/bins")])
    finally:
        agent.writer.stop()
    [b] = [b for b in bins if b["bin"]["start_local"].startswith("2026-06-03T10:00")]
    assert b["ratings"] == {"levels": 3, "counts": {"1": 1, "2": 0, "3": 1}, "repeats": 1, "out_of_range": 0}
    j = Journal(cfg.storage.journal_path)
    assert offline_binner(cfg, j.conn).policy.rating_levels == 3
    j.close()
    assert main(["--config", str(cfg_path), "summary", "--day", DAY.isoformat()]) == 0
    assert "ratings 2 (level 1: 1, level 2: 0, level 3: 1); satisfaction 50.0%, response rate 50.0%; 1 repeated" in capsys.readouterr().out
