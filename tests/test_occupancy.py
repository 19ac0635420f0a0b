"""Occupancy: never negative, re-based across DST changes and never in 24-hour mode, drift
snapped only in quiet closed periods, and the binner agreeing with the pure fold."""

from __future__ import annotations

import random
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from day_sim import Device, HOURS, days, local_midnight, visitors
from edge.crossing import Crossing
from contract.occupancy import OccupancyRule, OpeningHours, fold, parse_spans, step, usage_rate
from contract.timebins import bin_of

BERLIN = ZoneInfo("Europe/Berlin")
OFF = OccupancyRule("off")


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30), st.booleans()), max_size=200),
       st.sampled_from(["snap", "off"]), st.integers(1, 120))
@settings(max_examples=300, deadline=None)
def test_fold_never_negative_and_snaps_only_when_closed_and_quiet(counts, drift, quiet):
    rule = OccupancyRule(drift, quiet)
    steps = fold(counts, bin_minutes=15, rule=rule)
    prev, run = 0, float("inf")
    for (n_in, n_out, closed), s in zip(counts, steps):
        assert s.occupancy >= 0
        plain = max(0, prev + n_in - n_out)
        run = run + 15 if n_in == n_out == 0 else 0
        if s.drift_removed:
            assert drift == "snap" and closed and run >= quiet and s.occupancy == 0 and s.drift_removed == plain
        else:
            assert s.occupancy == plain
        prev = s.occupancy


def test_step_rules():
    rule = OccupancyRule("snap", 60)
    assert step(3, 0, 5, quiet_before=0, bin_minutes=15, closed=False, rule=rule).occupancy == 0  # clamp
    assert step(3, 0, 0, quiet_before=45, bin_minutes=15, closed=False, rule=rule).occupancy == 3  # open: untouched
    s = step(3, 0, 0, quiet_before=45, bin_minutes=15, closed=True, rule=rule)
    assert (s.occupancy, s.drift_removed, s.quiet_minutes) == (0, 3, 60)
    assert step(3, 0, 0, quiet_before=30, bin_minutes=15, closed=True, rule=rule).occupancy == 3  # not quiet long enough
    assert step(3, 1, 0, quiet_before=500, bin_minutes=15, closed=True, rule=rule).occupancy == 4  # someone crossed
    assert step(3, 0, 0, quiet_before=500, bin_minutes=15, closed=True, rule=OFF).occupancy == 3
    assert usage_rate(15, 30) == 0.5 and usage_rate(45, 30) == 1.5 and usage_rate(5, None) is None


def test_opening_hours_parsing_and_errors():
    h = OpeningHours.from_mapping({"mon": "09:00-12:00,14:00-18:00", "sun": "closed", "sat": "00:00-24:00"})
    assert h.is_open(datetime(2026, 6, 1, 9, 0)) and not h.is_open(datetime(2026, 6, 1, 13, 0))  # a Monday
    assert not h.is_open(datetime(2026, 6, 7, 12, 0)) and h.is_open(datetime(2026, 6, 6, 23, 59))
    assert h.as_mapping()["mon"] == "09:00-12:00,14:00-18:00" and h.as_mapping()["sun"] == "closed"
    for bad, why in (("9-17", "HH:MM-HH:MM"), ("18:00-09:00", "after the start"), ("09:00-12:00,11:00-13:00", "overlap")):
        with pytest.raises(ValueError, match=why):
            parse_spans(bad)
    with pytest.raises(ValueError, match="weekday"):
        OpeningHours.from_mapping({"monday": "09:00-17:00"})


def occupancy_by_bin(dev: Device) -> dict[float, dict]:
    """start_utc -> latest bin message (highest revision)."""
    out: dict[float, dict] = {}
    for _, m in dev.messages("bins"):
        t = datetime.fromisoformat(m["bin"]["start_utc"].replace("Z", "+00:00")).timestamp()
        if t not in out or m["revision"] >= out[t]["revision"]:
            out[t] = m
    return out


@given(st.lists(st.tuples(st.floats(0, 20 * 3600), st.booleans()), max_size=80))
@settings(max_examples=25, deadline=None)
def test_binner_occupancy_never_negative(tmp_path_factory, events):
    tmp = tmp_path_factory.mktemp("occ")
    start = datetime(2026, 3, 28, 20, 0, tzinfo=BERLIN).timestamp()  # across the spring change
    dev = Device(tmp / "j.db", BERLIN, start)
    dev.journal.add_crossings([Crossing(start + t, "door-1", "in" if is_in else "out", "beam", 1.0, f"e{i}")
                               for i, (t, is_in) in enumerate(events)])
    dev.run_until(start + 21 * 3600, step_s=7 * 3600)
    occ = [m["occupancy"]["end"] for m in occupancy_by_bin(dev).values()]
    assert len(occ) == 21 * 4 and min(occ) >= 0


@pytest.mark.parametrize("day, rebase, local_rebase", [
    (date(2026, 3, 29), "04:00", "04:00"),   # spring forward: 23-hour day
    (date(2026, 10, 25), "04:00", "04:00"),  # fall back: 25-hour day
    (date(2026, 3, 29), "02:30", "03:30"),   # 02:30 does not exist that day: the re-base falls at 03:30 CEST
    (date(2026, 10, 25), "02:30", "02:30"),  # 02:30 happens twice: re-based once, at the first
])
def test_rebase_across_dst(tmp_path, day, rebase, local_rebase):
    eve = date.fromordinal(day.toordinal() - 1)
    start = local_midnight(eve, BERLIN)  # from the day before
    dev = Device(tmp_path / "j.db", BERLIN, start, rebase=rebase, rule=OFF)
    # three people come in every evening at 22:00 local and never leave (missed exits)
    dev.journal.add_crossings([Crossing(local_midnight(d, BERLIN) + 22 * 3600, "door-1", "in", "beam", 1.0, f"{d}:{k}")
                               for d in days(eve, 3) for k in range(3)])
    dev.run_until(start + 3 * 86400)
    bins = occupancy_by_bin(dev)
    periods = sorted({m["occupancy"]["period_start_utc"] for m in bins.values()})
    day_bins = [(t, m) for t, m in sorted(bins.items()) if datetime.fromtimestamp(t, BERLIN).date() == day]
    starts = [t for t, m in day_bins if m["occupancy"]["period_start_utc"] == datetime.fromtimestamp(t, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert len(starts) == 1, "exactly one re-base on the DST day"
    local = datetime.fromtimestamp(starts[0], BERLIN)
    assert local.strftime("%H:%M") == local_rebase
    if day.month == 10 and rebase == "02:30":
        assert local.utcoffset().total_seconds() == 7200  # the first 02:30 (CEST)
    before = bins[starts[0] - 15 * 60]["occupancy"]["end"]
    assert before == 3 and bins[starts[0]]["occupancy"]["end"] == 0  # the evening's three, then re-based
    assert len(periods) >= 3


def test_24_hour_site_never_rebases_across_midnight_and_dst(tmp_path):
    start = local_midnight(date(2026, 10, 24), BERLIN)
    always = OccupancyRule("snap", 60, OpeningHours())  # open all day: the drift rule never acts
    dev = Device(tmp_path / "j.db", BERLIN, start, rebase="never", rule=always)
    dev.journal.add_crossings([Crossing(start + 3600 * h, "door-1", "in", "beam", 1.0, f"i{h}") for h in (1, 20, 30, 50)]
                              + [Crossing(start + 3600 * 40, "door-1", "out", "beam", 1.0, "o")])
    dev.run_until(local_midnight(date(2026, 10, 27), BERLIN))
    bins = occupancy_by_bin(dev)
    assert len({m["occupancy"]["period_start_utc"] for m in bins.values()}) == 1
    occ = [m["occupancy"]["end"] for _, m in sorted(bins.items())]
    assert occ[-1] == 3 and max(occ) == 3 and sum(m["occupancy"]["drift_removed"] for m in bins.values()) == 0
    assert len(bins) == 24 * 4 + 25 * 4 + 24 * 4  # the 25-hour day included, no bin lost


def test_drift_snaps_after_quiet_closed_minutes_only(tmp_path):
    day = date(2026, 6, 3)  # Wednesday, open 08:00-20:00
    start = local_midnight(day, BERLIN)
    dev = Device(tmp_path / "j.db", BERLIN, start, rebase="never")  # 24-hour counting, drift rule on
    t = lambda hh, mm=0: start + hh * 3600 + mm * 60  # noqa: E731
    dev.journal.add_crossings(
        [Crossing(t(9), "door-1", "in", "beam", 1.0, f"a{k}") for k in range(5)]        # 5 in at 09:00
        + [Crossing(t(19, 50), "door-1", "out", "beam", 1.0, f"b{k}") for k in range(3)]  # 3 out at 19:50: 2 exits missed
    )
    dev.run_until(start + 86400)
    bins = sorted(occupancy_by_bin(dev).items())
    occ = {datetime.fromtimestamp(s, BERLIN).strftime("%H:%M"): m["occupancy"] for s, m in bins}
    assert occ["12:00"]["end"] == 5  # quiet for hours, but open: untouched
    assert occ["19:45"]["end"] == 2 and occ["20:00"]["end"] == 2
    # the last crossing's bin ends 20:00; 60 quiet minutes later (the 20:45 bin's end) it snaps
    assert occ["20:30"]["end"] == 2 and occ["20:45"] == {**occ["20:45"], "end": 0, "drift_removed": 2}
    assert occ["23:45"]["end"] == 0 and sum(m["occupancy"]["drift_removed"] for _, m in bins) == 2


def test_binner_agrees_with_the_pure_fold_and_with_itself_after_a_gap(tmp_path):
    first = date(2026, 3, 28)
    rule = OccupancyRule("snap", 45, OpeningHours.from_mapping(HOURS))
    dev = Device(tmp_path / "j.db", BERLIN, local_midnight(first, BERLIN), rebase="never", rule=rule)
    rng = random.Random(11)
    for d in days(first, 2):
        dev.journal.add_crossings(visitors(d, BERLIN, rng, 200, missed_exits=0.1))
    dev.run_until(local_midnight(first, BERLIN) + 2 * 86400 - 3600)  # 47 hours, DST included
    bins = sorted(occupancy_by_bin(dev).items())
    closed = [not rule.hours.is_open(datetime.fromtimestamp(s + 450, BERLIN)) for s, _ in bins]
    steps = fold([(m["total"]["in"], m["total"]["out"], c) for (_, m), c in zip(bins, closed)], bin_minutes=15, rule=rule)
    assert [s.occupancy for s in steps] == [m["occupancy"]["end"] for _, m in bins]
    assert sum(s.drift_removed for s in steps) > 0  # missed exits were snapped overnight
    # the same bin computed with no previous bin on record (after a gap) folds the journal to the same value
    last_start, last = bins[-1]
    with dev.journal.transaction():
        dev.journal.conn.execute("DELETE FROM bin_state")
        again = dev.binner.compute(bin_of(last_start, 15, BERLIN))
    assert again["occupancy"] == last["occupancy"]
