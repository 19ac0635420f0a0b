"""Service ratings from the door keypad: the repeat filter and the index's figures.

Pure: presses and bin payloads in, statuses and figures out. The journal runs `classify`
when it stores presses (so a press's status never changes afterwards); the binner, the day
summary (device and reference consumer alike) and the week view use the rest, so the
device and the index system compute the same numbers. Definitions: docs/index-figures.md
and docs/ratings.md.

A keypad has `levels` buttons, 1 = worst ... `levels` = best (3 or 4 on the reference
board; the wire allows 1..5). A press within `repeat_s` of the previous press on the same
keypad is one person pressing again: kept, flagged `repeat`, not counted. The window
slides (each press restarts it), so a child hammering a button for a minute is one rating;
the first press of a burst is the one counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

COUNTED = "counted"
REPEAT = "repeat"
OUT_OF_RANGE = "out_of_range"  # a level above the configured number of buttons
STATUSES = (COUNTED, REPEAT, OUT_OF_RANGE)
MAX_LEVELS = 5


class Press(NamedTuple):
    """One keypad press as the board reported it, with the host's UTC."""

    mcu_epoch: int
    seq: int
    keypad: int
    level: int
    mcu_us: int
    t_utc: float


def seconds_between(earlier: Press, later: Press) -> float:
    """Board time within one boot (exact, and immune to host clock steps); UTC across boots."""
    if earlier.mcu_epoch == later.mcu_epoch:
        return (later.mcu_us - earlier.mcu_us) / 1e6
    return later.t_utc - earlier.t_utc


def classify(previous: Mapping[int, Press], presses: Sequence[Press], *, repeat_s: float, levels: int) -> list[str]:
    """Status of each press (in sequence order); `previous`: the last press before them per keypad."""
    last = dict(previous)
    out: list[str] = []
    for p in presses:
        before = last.get(p.keypad)
        if before is not None and seconds_between(before, p) < repeat_s:
            out.append(REPEAT)
        elif not 1 <= p.level <= levels:
            out.append(OUT_OF_RANGE)
        else:
            out.append(COUNTED)
        last[p.keypad] = p
    return out


def good_levels(levels: int) -> tuple[int, ...]:
    """The levels above the middle of the scale: 3 of 3, 3-4 of 4, 4-5 of 5, 2 of 2."""
    return tuple(lv for lv in range(1, levels + 1) if lv > (levels + 1) / 2)


def bin_block(levels: int, counts: Mapping[int, int], repeats: int, out_of_range: int) -> dict[str, Any]:
    """The `ratings` object of a bin: counted ratings per level (zeros too) and the flagged presses."""
    return {
        "levels": levels,
        "counts": {str(lv): int(counts.get(lv, 0)) for lv in range(1, levels + 1)},
        "repeats": int(repeats),
        "out_of_range": int(out_of_range),
    }


def satisfaction_share(counts: Mapping[str, int], levels: int) -> float | None:
    """Counted ratings at the good levels / all counted ratings; None without any."""
    total = sum(counts.values())
    if not total:
        return None
    good = sum(counts.get(str(lv), 0) for lv in good_levels(levels))
    return round(good / total, 4)


def bad_share(counts: Mapping[str, int], levels: int) -> float | None:
    """Counted ratings at the levels below the middle / all counted ratings (the index's "bad
    rating rate", docs/index-figures.md); None without any. Derived from `counts`, so it is
    not a field of the summary."""
    total = sum(counts.values())
    if not total:
        return None
    bad = sum(counts.get(str(lv), 0) for lv in range(1, levels + 1) if lv < (levels + 1) / 2)
    return round(bad / total, 4)


def response_rate(counted: int, visits_out: int) -> float | None:
    """Counted ratings per visitor leaving; None on a day without exits."""
    return round(counted / visits_out, 4) if visits_out else None


def day_block(bins: Iterable[Mapping[str, Any]], visits_out: int) -> dict[str, Any] | None:
    """The day summary's `ratings` from the day's bins; None when no bin carries ratings (no keypad)."""
    blocks = [b["ratings"] for b in bins if b.get("ratings") is not None]
    if not blocks:
        return None
    levels = max(int(b["levels"]) for b in blocks)
    counts = {str(lv): 0 for lv in range(1, levels + 1)}
    repeats = out_of_range = 0
    for b in blocks:
        for lv, n in b["counts"].items():
            counts[lv] = counts.get(lv, 0) + int(n)
        repeats += int(b["repeats"])
        out_of_range += int(b["out_of_range"])
    counted = sum(counts.values())
    return {
        "levels": levels,
        "counts": counts,
        "counted": counted,
        "repeats": repeats,
        "out_of_range": out_of_range,
        "good_levels": list(good_levels(levels)),
        "satisfaction_share": satisfaction_share(counts, levels),
        "response_rate": response_rate(counted, visits_out),
    }


def pooled_share(days: Iterable[Mapping[str, Any] | None]) -> tuple[float | None, int]:
    """Satisfaction share over several day blocks (ratings pooled, not shares averaged) and
    how many counted ratings it rests on."""
    good = total = 0
    for d in days:
        if not d:
            continue
        total += int(d["counted"])
        good += sum(int(d["counts"].get(str(lv), 0)) for lv in d["good_levels"])
    return (round(good / total, 4) if total else None), total
