"""The day summary: one local day of bins reduced to the figures the index system ranks.

Pure, and the one implementation of these figures: the device summarises the bins it
derived from its journal, the reference consumer the bins it received, and both must
agree. Inputs are bin payloads as in the contract (`footfall.bins/1`: only `bin.start_utc`,
`total`, `occupancy.end`, `flags` and `ratings` are read), so envelope fields (epoch, seq,
historical, revision) cannot make the two differ. Definitions: docs/index-figures.md.

The local day runs from local midnight to the next local midnight, so it has 23, 24 or
25 hours on DST days; the hourly profile lists each real hour once (the repeated autumn
hour appears twice, with its two UTC offsets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date as Date, datetime, time as dtime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from contract.occupancy import OpeningHours, usage_rate
from contract.ratings import day_block
from contract.timebins import bins_between, iso_utc

SCHEMA = "footfall.summary/1"


@dataclass(frozen=True, slots=True)
class SiteProfile:
    """What the figures need besides the bins: capacity, opening hours (local time) and the
    residents the center serves (the gathering rate's denominator)."""

    capacity: int | None = None
    hours: OpeningHours = field(default_factory=OpeningHours)
    residents: int | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"capacity": self.capacity, "opening_hours": self.hours.as_mapping()}
        if self.residents is not None:  # additive: a profile without residents reads as before
            out["residents"] = self.residents
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> SiteProfile:
        if not d:
            return cls()
        return cls(d.get("capacity"), OpeningHours.from_mapping(d.get("opening_hours") or {}), d.get("residents"))


def per_thousand(visits: int, residents: int) -> float:
    """The gathering rate: visits per 1,000 residents, rounded as every ratio (4 decimals)."""
    return round(visits * 1000 / residents, 4)


def day_bounds(day: Date, zone: ZoneInfo) -> tuple[float, float]:
    """UTC instants of the local midnights that open and close the day."""
    start = datetime.combine(day, dtime(0), zone).timestamp()
    end = datetime.combine(day + timedelta(days=1), dtime(0), zone).timestamp()
    return start, end


def summarize_day(bins: Iterable[Mapping[str, Any]], *, day: Date, zone: ZoneInfo, minutes: int,
                  profile: SiteProfile, source: str) -> dict[str, Any]:
    """The day summary's figures (no envelope) from the day's bins; missing bins count as gaps."""
    start, end = day_bounds(day, zone)
    expected = bins_between(start, end, minutes, zone)
    got = {b["bin"]["start_utc"]: b for b in bins}

    hourly: dict[str, dict[str, Any]] = {}
    v_in = v_out = received = healthy = 0
    peak_occ, peak_at = 0, None
    open_occ: list[int] = []
    for b in expected:
        local = datetime.fromtimestamp(b.start_utc, zone)
        hour = hourly.setdefault(local.replace(minute=0).isoformat(), {"start_local": local.replace(minute=0).isoformat(), "in": 0, "out": 0})
        msg = got.get(iso_utc(b.start_utc))
        if msg is None:
            continue
        received += 1
        healthy += not msg["flags"]
        n_in, n_out = int(msg["total"]["in"]), int(msg["total"]["out"])
        hour["in"] += n_in
        hour["out"] += n_out
        v_in += n_in
        v_out += n_out
        occ = int(msg["occupancy"]["end"])
        if occ > peak_occ:
            peak_occ, peak_at = occ, datetime.fromtimestamp(b.end_utc, zone).isoformat()
        if profile.hours.is_open(datetime.fromtimestamp((b.start_utc + b.end_utc) / 2, zone)):
            open_occ.append(occ)

    profile_list = list(hourly.values())
    peak_hour = max(profile_list, key=lambda h: h["in"]) if v_in else None  # first of equals: the earliest
    usage: dict[str, Any] | None = None
    if profile.capacity and open_occ:
        usage = {
            "capacity": profile.capacity,
            "mean": round(usage_rate(sum(open_occ) / len(open_occ), profile.capacity) or 0.0, 4),
            "peak": round(usage_rate(max(open_occ), profile.capacity) or 0.0, 4),
            "open_bins": len(open_occ),
        }
    out: dict[str, Any] = {
        "date": day.isoformat(),
        "timezone": zone.key,
        "start_utc": iso_utc(start),
        "end_utc": iso_utc(end),
        "hours": round((end - start) / 3600),
        "bin_minutes": minutes,
        "source": source,
        "visits": {"in": v_in, "out": v_out},
        "hourly": profile_list,
        "peak_hour": None if peak_hour is None else {"start_local": peak_hour["start_local"], "in": peak_hour["in"]},
        "peak_occupancy": {"value": peak_occ, "at_local": peak_at},
        "usage_rate": usage,
        "completeness": {
            "expected_bins": len(expected),
            "received_bins": received,
            "healthy_bins": healthy,
            "share": round(healthy / len(expected), 4) if expected else 0.0,
        },
        "balance": {"in_minus_out": v_in - v_out, "out_per_in": round(v_out / v_in, 4) if v_in else None},
        "profile": profile.as_json(),
        "ratings": day_block([got[iso_utc(b.start_utc)] for b in expected if iso_utc(b.start_utc) in got], v_out),
    }
    if profile.residents:  # additive: only a site with `[site] residents` has a gathering rate
        out["gathering_rate"] = {"residents": profile.residents, "per_1000": per_thousand(v_in, profile.residents)}
    return out
