"""The reference consumer's week view: per site, from the bins it stored, against the simulator's truth."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date, datetime
from zoneinfo import ZoneInfo

from day_sim import Device, fast_store, days, deliver, local_midnight, visitors
from edge.cli import main
from index_system.week_view import week_view

SHANGHAI = ZoneInfo("Asia/Shanghai")
FIRST = date(2026, 6, 1)  # a Monday
END = date(2026, 6, 14)   # two full weeks
RESIDENTS = 12_500        # declared by one of the site's two devices: the site's population


def test_week_view_from_two_devices_of_one_site(tmp_path, capsys):
    rng = random.Random(4)
    store = fast_store(tmp_path / "index.db")
    truth_days: Counter = Counter()
    truth_hours: Counter = Counter()
    for name, scale in (("door-a", 1.0), ("door-b", 0.5)):
        dev = Device(tmp_path / f"{name}.db", SHANGHAI, local_midnight(FIRST, SHANGHAI), device=name,
                     capacity=60 if name == "door-a" else None, residents=RESIDENTS if name == "door-a" else None)
        for i, d in enumerate(days(FIRST, 14)):
            n = int((100 + 10 * i) * scale)  # the second week busier than the first
            dev.journal.add_crossings(visitors(d, SHANGHAI, rng, n, tag=name))
        dev.run_until(local_midnight(date(2026, 6, 15), SHANGHAI) + 5 * 3600, step_s=6 * 3600)
        assert deliver(dev, store).get("rejected", 0) == 0
        for (t,) in dev.journal.conn.execute("SELECT t_utc FROM crossings WHERE direction = 'in'"):
            local = datetime.fromtimestamp(t, SHANGHAI)
            truth_days[local.date()] += 1
            if local.date() >= date(2026, 6, 8):
                truth_hours[local.hour] += 1

    [v] = store.week()  # default end: the last day with bins (the 15th holds the bins up to 05:00)
    assert v["week_end"] == "2026-06-15"
    [v] = store.week(END)
    assert v["site"] == "site-1" and v["week_start"] == "2026-06-08" and v["week_end"] == "2026-06-14"
    assert [d["visits_in"] for d in v["days"]] == [truth_days[d] for d in days(date(2026, 6, 8), 7)]
    this_week = sum(truth_days[d] for d in days(date(2026, 6, 8), 7))
    prev_week = sum(truth_days[d] for d in days(FIRST, 7))
    assert v["visits_week"] == this_week and v["visits_previous_week"] == prev_week
    assert v["week_over_week"] == round((this_week - prev_week) / prev_week, 4) and v["week_over_week"] > 0
    top = sorted(truth_hours.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert v["peak_hours"] == [{"hour": h, "in": n} for h, n in top]
    assert 0 < v["usage_rate"] < 3  # only door-a has a capacity
    assert v["completeness"] == 1.0
    assert v["satisfaction_share"] is None  # ratings are not implemented yet
    # the gathering rate: the simulator's entries (both doors) per 1,000 residents, day and week
    assert v["residents"] == RESIDENTS
    assert [d["gathering_rate"] for d in v["days"]] == [round(truth_days[d] * 1000 / RESIDENTS, 4)
                                                         for d in days(date(2026, 6, 8), 7)]
    assert v["gathering_rate"] == round(this_week * 1000 / RESIDENTS, 4) > 0
    # each day's summary from door-a carries its own (door-a's visits only) gathering rate
    for d in days(date(2026, 6, 8), 7):
        s = store.recompute_summary("door-a", d)
        assert s["gathering_rate"] == {"residents": RESIDENTS, "per_1000": round(s["visits"]["in"] * 1000 / RESIDENTS, 4)}
        assert "gathering_rate" not in store.recompute_summary("door-b", d)  # no residents declared: no figure

    assert main(["index", "report", "--db", str(tmp_path / "index.db"), "--week", "--end", END.isoformat(), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [v]
    assert main(["index", "report", "--db", str(tmp_path / "index.db"), "--week", "--end", END.isoformat()]) == 0
    text = capsys.readouterr().out
    assert f"visits this week {this_week}, previous week {prev_week}" in text and "satisfaction share: -" in text
    assert f"gathering rate: {v['gathering_rate']:.1f} visits per 1,000 residents ({RESIDENTS} residents)" in text


def test_week_view_with_missing_days_and_no_previous_week():
    day = {"visits": {"in": 10}, "hourly": [{"start_local": "2026-06-14T10:00:00+08:00", "in": 10, "out": 9}],
           "usage_rate": None, "completeness": {"share": 0.5}, "peak_hour": {"start_local": "2026-06-14T10:00:00+08:00", "in": 10}}
    v = week_view("s", {END: {"dev": day}, date(2026, 6, 13): {"dev": None}}, END)
    assert [d["visits_in"] for d in v["days"]] == [None] * 6 + [10]
    assert v["visits_week"] == 10 and v["visits_previous_week"] is None and v["week_over_week"] is None
    assert v["usage_rate"] is None and v["completeness"] == 0.5 and v["peak_hours"] == [{"hour": 10, "in": 10}]
    assert v["residents"] is None and v["gathering_rate"] is None
    assert [d["gathering_rate"] for d in v["days"]] == [None] * 7
