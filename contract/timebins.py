"""Bin boundaries aligned to local midnight, computed from UTC with the site's IANA zone.

Every UTC offset in use is a multiple of 15 minutes, so bins of 1, 5 or 15 minutes that
start on local-midnight boundaries also tile UTC without gaps or overlaps across DST
changes (the repeated autumn hour gives two bins with the same local label and
different offsets; the UTC start is the bin's identity).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time as dtime, timedelta, timezone
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Bin:
    start_utc: float
    end_utc: float
    utc_offset_min: int  # offset in force at the bin's start

    def local_start(self, zone: ZoneInfo) -> datetime:
        return datetime.fromtimestamp(self.start_utc, zone)


def _offset_s(t_utc: float, zone: ZoneInfo) -> int:
    off = datetime.fromtimestamp(t_utc, zone).utcoffset()
    return int(off.total_seconds()) if off else 0


def bin_of(t_utc: float, minutes: int, zone: ZoneInfo) -> Bin:
    """The bin containing t_utc."""
    size = minutes * 60
    off = _offset_s(t_utc, zone)
    local = t_utc + off
    start = (local // size) * size - off
    return Bin(float(start), float(start + size), off // 60)


def bins_between(start_utc: float, end_utc: float, minutes: int, zone: ZoneInfo) -> list[Bin]:
    """All bins whose start lies in [bin_of(start).start, end_utc) and that end by end_utc."""
    out: list[Bin] = []
    b = bin_of(start_utc, minutes, zone)
    while b.end_utc <= end_utc:
        out.append(b)
        b = bin_of(b.end_utc, minutes, zone)
    return out


def iso_utc(t_utc: float) -> str:
    return datetime.fromtimestamp(t_utc, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def last_local_time_before(t_utc: float, hhmm: str, zone: ZoneInfo) -> float:
    """UTC instant of the latest local HH:MM at or before t_utc (the occupancy re-base)."""
    hh, mm = (int(x) for x in hhmm.split(":"))
    local = datetime.fromtimestamp(t_utc, zone)
    for days_back in range(0, 3):
        day = (local - timedelta(days=days_back)).date()
        cand = datetime.combine(day, dtime(hh, mm), zone)
        cand_utc = cand.timestamp()
        if cand_utc <= t_utc:
            return cand_utc
    raise AssertionError("unreachable: a local time recurs every day")
