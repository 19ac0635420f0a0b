"""Bins: alignment to local midnight across DST, zero bins, revisions, flags, occupancy."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from edge.bins import Binner, BinPolicy
from edge.crossing import Crossing
from edge.journal import Journal
from edge.outbox import Outbox
from contract.timebins import bin_of, bins_between

BERLIN = ZoneInfo("Europe/Berlin")


def setup(tmp_path, zone=BERLIN, minutes=15, rebase="04:00", primary="beam", start=None):
    j = Journal(tmp_path / "j.db")
    outbox = Outbox(j.conn, epoch=1, max_messages=100_000)
    b = Binner(j.conn, outbox, BinPolicy(minutes, zone, primary, rebase, ("door-1",)), "t/bins", {"device": "d", "site": "s"})
    with j.transaction():
        b.start_at(start)
        j.conn.execute("INSERT INTO meta(key, value) SELECT 'bins_first_start_utc', value FROM meta WHERE key = 'bins_next_start_utc'")
    return j, outbox, b


def tick(j, b, now):
    with j.transaction():
        return b.tick(now)


def queued(j):
    return [json.loads(p) for (p,) in j.conn.execute("SELECT payload FROM outbox ORDER BY id")]


def test_dst_day_bins_tile_and_align_to_local_midnight():
    day = datetime(2026, 3, 29, tzinfo=BERLIN).timestamp()  # spring forward: a 23-hour day
    bins = bins_between(day, datetime(2026, 3, 30, tzinfo=BERLIN).timestamp(), 15, BERLIN)
    assert len(bins) == 92
    assert all(a.end_utc == b.start_utc for a, b in zip(bins, bins[1:]))
    assert bins[0].local_start(BERLIN).strftime("%H:%M") == "00:00"
    assert {b.utc_offset_min for b in bins} == {60, 120}
    autumn = bins_between(datetime(2026, 10, 25, tzinfo=BERLIN).timestamp(), datetime(2026, 10, 26, tzinfo=BERLIN).timestamp(), 15, BERLIN)
    assert len(autumn) == 100  # a 25-hour day


@given(t=st.floats(1.6e9, 2.0e9), minutes=st.sampled_from([1, 5, 15]),
       zone=st.sampled_from(["Europe/Berlin", "Asia/Shanghai", "America/New_York", "Asia/Kathmandu", "Australia/Sydney"]))
@settings(max_examples=300, deadline=None)
def test_every_instant_falls_in_exactly_one_aligned_bin(t, minutes, zone):
    z = ZoneInfo(zone)
    b = bin_of(t, minutes, z)
    assert b.start_utc <= t < b.end_utc and b.end_utc - b.start_utc == minutes * 60
    local = b.local_start(z)
    assert (local.hour * 60 + local.minute) % minutes == 0 and local.second == 0


def test_zero_bins_sent_and_counts_per_line_and_source(tmp_path):
    start = datetime(2026, 6, 1, 9, 0, tzinfo=BERLIN).timestamp()
    j, _, b = setup(tmp_path, start=start)
    j.add_crossings([
        Crossing(start + 60, "door-1", "in", "beam", 1.0, "mcu:1:1"),
        Crossing(start + 61, "door-1", "in", "camera", 0.9, "cam:1"),
        Crossing(start + 120, "door-2", "out", "beam", 1.0, "mcu:1:2"),
    ])
    assert tick(j, b, start + 3600) == 4
    msgs = queued(j)
    assert msgs[0]["lines"] == {"door-1": {"beam": {"in": 1, "out": 0}, "camera": {"in": 1, "out": 0}},
                                "door-2": {"beam": {"in": 0, "out": 1}}}
    assert msgs[0]["total"] == {"in": 1, "out": 1, "source": "beam"}
    assert msgs[1]["total"] == {"in": 0, "out": 0, "source": "beam"} and msgs[1]["lines"] == {"door-1": {}}
    assert msgs[0]["bin"]["start_local"] == "2026-06-01T09:00:00+02:00" and msgs[0]["bin"]["utc_offset_min"] == 120
    assert tick(j, b, start + 3600) == 0  # nothing new: nothing queued


def test_late_crossing_revises_bin_and_later_occupancy(tmp_path):
    start = datetime(2026, 6, 1, 9, 0, tzinfo=BERLIN).timestamp()
    j, _, b = setup(tmp_path, start=start)
    tick(j, b, start + 3600)
    j.add_crossings([Crossing(start + 100, "door-1", "in", "beam", 1.0, "mcu:1:9")])
    n = tick(j, b, start + 3600)
    msgs = queued(j)[4:]
    assert n == 4  # the bin itself, then its successors whose occupancy moved by one
    assert [m["revision"] for m in msgs] == [1, 1, 1, 1]
    assert msgs[0]["total"]["in"] == 1 and all(m["occupancy"]["end"] == 1 for m in msgs)


def test_occupancy_never_negative_and_rebases(tmp_path):
    start = datetime(2026, 6, 1, 2, 0, tzinfo=BERLIN).timestamp()
    j, _, b = setup(tmp_path, start=start, rebase="04:00")
    j.add_crossings([Crossing(start + 60 + i, "door-1", "out", "beam", 1.0, f"o{i}") for i in range(5)]
                    + [Crossing(start + 1000 + i, "door-1", "in", "beam", 1.0, f"i{i}") for i in range(3)])
    tick(j, b, start + 4 * 3600)
    occ = [m["occupancy"]["end"] for m in queued(j)]
    assert min(occ) >= 0
    assert occ[1] == 3  # 5 out before anyone came in cannot make it negative
    assert occ[7] == 3 and occ[8] == 0  # 04:00 local: re-based to zero


def test_never_rebase_for_24_hour_sites(tmp_path):
    start = datetime(2026, 6, 1, 2, 0, tzinfo=BERLIN).timestamp()
    j, _, b = setup(tmp_path, start=start, rebase="never")
    j.add_crossings([Crossing(start + 60, "door-1", "in", "beam", 1.0, "i")])
    tick(j, b, start + 30 * 3600)
    assert {m["occupancy"]["end"] for m in queued(j)} == {1}


def test_flags_from_health(tmp_path):
    start = datetime(2026, 6, 1, 9, 0, tzinfo=BERLIN).timestamp()
    j, _, b = setup(tmp_path, start=start)
    j.log_health(start + 100, "beam:door-1", False, "link down")
    j.log_health(start + 1000, "beam:door-1", True, "")
    j.log_health(start + 1900, "agent", False, "stopped")
    j.log_health(start + 2800, "agent", True, "start")
    tick(j, b, start + 3600)
    flags = [m["flags"] for m in queued(j)]
    assert flags[0] == ["source_down:beam:door-1"] and flags[1] == ["source_down:beam:door-1"]
    assert flags[2] == ["agent_down"] and flags[3] == ["agent_down", "partial"]


def test_outbox_full_stops_binning_and_resumes_without_loss(tmp_path):
    start = datetime(2026, 6, 1, 9, 0, tzinfo=BERLIN).timestamp()
    j, outbox, b = setup(tmp_path, start=start, minutes=1)
    outbox.max_messages = 1000
    j.add_crossings([Crossing(start + 30 * i, "door-1", "in", "beam", 1.0, f"c{i}") for i in range(3000)])
    tick(j, b, start + 1500 * 60)
    assert outbox.backlog() == 1000 and outbox.is_full()
    assert tick(j, b, start + 1500 * 60) == 0  # full: waits, counts stay in the journal
    with j.transaction():
        outbox.mark_sent([i for (i,) in j.conn.execute("SELECT id FROM outbox")], start)
    while tick(j, b, start + 1500 * 60):
        with j.transaction():
            outbox.mark_sent([i for (i,) in j.conn.execute("SELECT id FROM outbox WHERE sent_utc IS NULL")], start)
    msgs = queued(j)
    assert len(msgs) == 1500 and sum(m["total"]["in"] for m in msgs) == 3000
    assert len({m["bin"]["start_utc"] for m in msgs}) == 1500
