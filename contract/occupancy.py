"""Occupancy: people inside, from in minus out, and the usage rate it gives.

Pure: counts and local times in, numbers out; no I/O, no clock. Three rules, each with a
reason:

- **Never negative.** A missed entry followed by its exit would drive a plain running sum
  below zero and every later figure with it; the sum is clamped at zero after each bin.
- **Re-base.** Missed exits make the sum creep upwards day after day, so it restarts from
  zero at a configured local time when the center is surely empty (`bins.rebase_local_time`),
  or never, for 24-hour sites (they rely on the drift rule below).
- **Drift correction in quiet periods** (`[occupancy]`): when the center is closed (outside
  `[site.opening_hours]`) and no one has crossed for `quiet_minutes`, whoever the count
  still holds is a counting error, so occupancy snaps to zero (`drift = "snap"`). The number
  of people removed this way is reported beside the occupancy so the error stays visible.
  During opening hours occupancy is never altered: a quiet reading room is not an error.

The usage rate is occupancy over the configured capacity (it may exceed 1: a room over
capacity is a fact worth reporting, not a value to clip).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS = "00:00-24:00"
_SPAN = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")

Span = tuple[int, int]  # minutes of the local day, [start, end)


def parse_spans(text: str) -> tuple[Span, ...]:
    """'09:00-12:00,14:00-18:00' -> ((540, 720), (840, 1080)); 'closed' -> ().

    Raises ValueError with the fix when the text is not of that form.
    """
    text = text.strip().lower()
    if text == "closed":
        return ()
    spans: list[Span] = []
    for part in text.split(","):
        m = _SPAN.match(part.strip())
        if not m:
            raise ValueError(f"{part.strip()!r} is not HH:MM-HH:MM (e.g. '09:00-18:00'; several joined by ','; or 'closed')")
        a = int(m[1]) * 60 + int(m[2])
        b = int(m[3]) * 60 + int(m[4])
        if a >= b or b > 24 * 60:
            raise ValueError(f"{part.strip()!r}: the end must come after the start, at 24:00 at the latest")
        spans.append((a, b))
    spans.sort()
    for (_, e1), (s2, _) in zip(spans, spans[1:]):
        if s2 < e1:
            raise ValueError(f"{text!r}: the periods overlap")
    return tuple(spans)


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """Opening periods per weekday (Monday first), in local wall-clock time."""

    week: tuple[tuple[Span, ...], ...] = (((0, 1440),),) * 7

    @classmethod
    def from_mapping(cls, days: Mapping[str, str]) -> OpeningHours:
        """From {'mon': '09:00-18:00', ..., 'sun': 'closed'}; days not given are open all day."""
        unknown = set(days) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown weekday(s) {sorted(unknown)}; use {', '.join(WEEKDAYS)}")
        return cls(tuple(parse_spans(days.get(d, ALWAYS)) for d in WEEKDAYS))

    def is_open(self, local: datetime) -> bool:
        """Open at this local wall-clock instant (a naive or aware local datetime)."""
        minute = local.hour * 60 + local.minute + local.second / 60
        return any(a <= minute < b for a, b in self.week[local.weekday()])

    def as_mapping(self) -> dict[str, str]:
        def fmt(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"

        return {d: (",".join(f"{fmt(a)}-{fmt(b)}" for a, b in spans) or "closed") for d, spans in zip(WEEKDAYS, self.week)}


@dataclass(frozen=True, slots=True)
class OccupancyRule:
    """How occupancy is corrected: drift snap after quiet_minutes while closed, or off."""

    drift: str = "snap"  # "snap" | "off"
    quiet_minutes: int = 60
    hours: OpeningHours = field(default_factory=OpeningHours)


@dataclass(frozen=True, slots=True)
class Step:
    occupancy: int  # at the bin's end
    quiet_minutes: float  # minutes without any crossing, up to the bin's end
    drift_removed: int  # people removed by the drift rule at this bin's end


def step(prev: int, n_in: int, n_out: int, *, quiet_before: float, bin_minutes: float, closed: bool,
         rule: OccupancyRule) -> Step:
    """Occupancy at the end of one bin, from the occupancy at its start."""
    occ = max(0, prev + n_in - n_out)
    quiet = quiet_before + bin_minutes if n_in == 0 and n_out == 0 else 0.0
    removed = 0
    if rule.drift == "snap" and closed and occ > 0 and quiet >= rule.quiet_minutes:
        removed, occ = occ, 0
    return Step(occ, quiet, removed)


def fold(counts: Iterable[tuple[int, int, bool]], *, bin_minutes: float, rule: OccupancyRule,
         start: int = 0, quiet_before: float = float("inf")) -> list[Step]:
    """Occupancy after each bin of a period: counts are (in, out, closed) per bin in order.

    `start` is the occupancy at the period's start (0 right after a re-base); `quiet_before`
    the quiet minutes before it (infinite: nothing known, the first crossing resets it).
    """
    out: list[Step] = []
    occ, quiet = start, quiet_before
    for n_in, n_out, closed in counts:
        s = step(occ, n_in, n_out, quiet_before=quiet, bin_minutes=bin_minutes, closed=closed, rule=rule)
        out.append(s)
        occ, quiet = s.occupancy, s.quiet_minutes
    return out


def usage_rate(occupancy: float, capacity: int | None) -> float | None:
    """Occupancy as a share of capacity, or None when no capacity is configured."""
    if not capacity:
        return None
    return occupancy / capacity
