"""Counts against ground truth, per direction: gross accuracy = 1 - (missed + extra) / true.

A true crossing and a counted one match when they have the same direction and lie
within `tolerance_s`; matching is greedy in time order, so one count never covers two
people.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class DirectionScore:
    direction: str
    true: int
    counted: int
    missed: int
    extra: int

    @property
    def gross_accuracy(self) -> float:
        return 1.0 - (self.missed + self.extra) / self.true if self.true else float("nan")


def score(truth: Iterable[tuple[float, str]], counted: Iterable[tuple[float, str]],
          tolerance_s: float = 4.0) -> dict[str, DirectionScore]:
    out = {}
    truth = list(truth)
    counted = list(counted)
    for d in ("in", "out"):
        ts = sorted(t for t, dd in truth if dd == d)
        cs = sorted(t for t, dd in counted if dd == d)
        i = j = matched = 0
        while i < len(ts) and j < len(cs):
            if abs(ts[i] - cs[j]) <= tolerance_s:
                matched += 1
                i += 1
                j += 1
            elif cs[j] < ts[i]:
                j += 1
            else:
                i += 1
        out[d] = DirectionScore(d, len(ts), len(cs), len(ts) - matched, len(cs) - matched)
    return out
