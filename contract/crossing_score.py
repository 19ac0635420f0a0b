"""Counts against ground truth: the one scorer for `footfall count --truth`, the bench
and the simulator's scenes.

Per direction, a counted crossing matches an unmatched true crossing of the same
direction within ``tolerance_s``, closest pairs first, so one count never covers two
people. Gross accuracy = 1 - (missed + extra) / true: a miss and an extra both cost,
and do not cancel as they would in a net count. The lag is counted time minus true
time over the matched pairs (positive: reported late).

Pure: lists of (time, direction) in, figures out.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["DIRECTIONS", "score_crossings", "worst_direction"]

DIRECTIONS: tuple[str, str] = ("in", "out")


def score_crossings(
    truth: Sequence[tuple[float, str]], counted: Sequence[tuple[float, str]], tolerance_s: float = 1.0
) -> dict[str, dict[str, float | int | None]]:
    """Per direction: true, counted, matched, missed, extra, gross_accuracy, median_lag_s
    and median_abs_lag_s (None without matches). Times in seconds (or any one unit,
    with the tolerance in the same unit)."""
    if not tolerance_s >= 0:
        raise ValueError("tolerance_s must be >= 0")
    out: dict[str, dict[str, float | int | None]] = {}
    for d in DIRECTIONS:
        t_true = sorted(float(t) for t, dd in truth if dd == d)
        t_cnt = sorted(float(t) for t, dd in counted if dd == d)
        pairs = sorted(
            (abs(a - b), i, j) for i, a in enumerate(t_true) for j, b in enumerate(t_cnt) if abs(a - b) <= tolerance_s
        )
        used_t: set[int] = set()
        used_c: set[int] = set()
        lags: list[float] = []
        for _, i, j in pairs:
            if i not in used_t and j not in used_c:
                used_t.add(i)
                used_c.add(j)
                lags.append(t_cnt[j] - t_true[i])
        n = len(t_true)
        missed, extra = n - len(used_t), len(t_cnt) - len(used_c)
        out[d] = {
            "true": n, "counted": len(t_cnt), "matched": len(used_t), "missed": missed, "extra": extra,
            "gross_accuracy": 1.0 - (missed + extra) / n if n else (1.0 if not t_cnt else 0.0),
            "median_lag_s": statistics.median(lags) if lags else None,
            "median_abs_lag_s": statistics.median(abs(v) for v in lags) if lags else None,
        }
    return out


def worst_direction(score: dict[str, dict[str, float | int | None]]) -> float:
    """The lower of the two directions' gross accuracy (directions with no true crossing
    and no count left out): what a count's users can rely on."""
    vals = [float(s["gross_accuracy"]) for s in score.values() if s["true"] or s["counted"]]
    return min(vals) if vals else 1.0
