"""The week view of one site: day summaries of its devices folded into weekly figures.

Pure: day summaries in (as `contract.day_summary` makes them), one dict out. A site's visits
are the sum over its devices (one device per entrance). The week is the seven local days
ending on a given date, compared with the seven before it (not ISO calendar weeks, so a
report on any day shows a full week). Definitions: docs/index-figures.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date as Date, timedelta
from typing import Any

from contract.day_summary import per_thousand
from contract.ratings import pooled_share

Summaries = Mapping[Date, Mapping[str, dict[str, Any] | None]]  # day -> device -> summary (None: no bins)


def _visits(day: Mapping[str, dict[str, Any] | None]) -> int | None:
    got = [s["visits"]["in"] for s in day.values() if s is not None]
    return sum(got) if got else None


def residents_of(days: Summaries) -> int | None:
    """The site's residents: the latest any of its devices declared (None: no device declares it)."""
    for d in sorted(days, reverse=True):
        for s in days[d].values():
            if s is not None and s.get("gathering_rate"):
                return int(s["gathering_rate"]["residents"])
    return None


def week_view(site: str, days: Summaries, end: Date) -> dict[str, Any]:
    """Visits per day and week, week-over-week change, peak hours, usage rate, gathering rate,
    satisfaction share."""
    residents = residents_of({d: days.get(d, {}) for d in (end - timedelta(days=i) for i in range(7))})
    this_week = [end - timedelta(days=i) for i in range(6, -1, -1)]
    prev_week = [d - timedelta(days=7) for d in this_week]
    per_day = []
    hours: dict[int, int] = {}
    usage: list[float] = []
    complete: list[float] = []
    rated: list[dict[str, Any] | None] = []
    for d in this_week:
        day = days.get(d, {})
        present = [s for s in day.values() if s is not None]
        for s in present:
            for h in s["hourly"]:
                hour = int(h["start_local"][11:13])
                hours[hour] = hours.get(hour, 0) + h["in"]
            if s["usage_rate"] is not None:
                usage.append(s["usage_rate"]["mean"])
            complete.append(s["completeness"]["share"])
            rated.append(s.get("ratings"))
        visits = _visits(day)
        per_day.append({
            "date": d.isoformat(),
            "visits_in": visits,
            "gathering_rate": None if residents is None or visits is None else per_thousand(visits, residents),
            "peak_hour": max((s["peak_hour"] for s in present if s["peak_hour"]), key=lambda p: p["in"], default=None),
            "completeness": round(sum(s["completeness"]["share"] for s in present) / len(present), 4) if present else None,
        })
    week_total = sum(v for v in (p["visits_in"] for p in per_day) if v is not None)
    prev_days = [_visits(days.get(d, {})) for d in prev_week]
    prev_total = sum(v for v in prev_days if v is not None) if any(v is not None for v in prev_days) else None
    change = None if not prev_total else round((week_total - prev_total) / prev_total, 4)
    share, n_rated = pooled_share(rated)  # None: no device of the site has a keypad, or nobody rated
    peak_hours = sorted(hours.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return {
        "site": site,
        "week_start": this_week[0].isoformat(),
        "week_end": end.isoformat(),
        "days": per_day,
        "visits_week": week_total,
        "visits_previous_week": prev_total,
        "week_over_week": change,
        "peak_hours": [{"hour": h, "in": n} for h, n in peak_hours if n > 0],
        "usage_rate": round(sum(usage) / len(usage), 4) if usage else None,
        "residents": residents,
        "gathering_rate": None if residents is None else per_thousand(week_total, residents),
        "completeness": round(sum(complete) / len(complete), 4) if complete else None,
        "satisfaction_share": share,
        "ratings_counted": n_rated,
    }
