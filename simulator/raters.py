"""Simulated raters at the exit keypad, with ground truth.

A share of the people leaving (the crowd's `out` passers) walk to the keypad after
crossing the door and press one button; some press it several times (impatience, play).
One person uses the keypad at a time: a rater who finds it in use waits until the one
before has left it `keypad_gap_s` after their last press. The truth is what each person
meant: one rating of their level. The presses are what the board sees (debounced, as the
firmware's key debounce passes them), for `VirtualMcu(presses=...)`.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from simulator.people import Crowd


@dataclass(frozen=True)
class RaterSpec:
    share: float = 0.3  # of the people leaving, how many rate
    levels: int = 4  # buttons: 1 = worst .. levels = best
    weights: tuple[float, ...] = (0.05, 0.1, 0.35, 0.5)  # chance of each level
    repeat_share: float = 0.15  # of the raters, how many press `repeat_presses` times
    repeat_presses: int = 5
    press_gap_s: tuple[float, float] = (0.25, 0.8)  # between one person's repeated presses
    walk_s: tuple[float, float] = (1.0, 4.0)  # from the door line to the keypad
    keypad_gap_s: float = 5.0  # the next person presses at least this long after the last press
    keypad: int = 0
    seed: int = 11


@dataclass
class RatingTruth:
    """What the raters meant, and what they pressed."""

    counts: Counter = field(default_factory=Counter)  # level -> people who rated it
    raters: int = 0
    presses: int = 0
    repeats: int = 0  # presses beyond each person's first
    leaving: int = 0  # true exits of the crowd

    @property
    def response_rate(self) -> float | None:
        return round(self.raters / self.leaving, 4) if self.leaving else None

    def satisfaction_share(self, good_levels: tuple[int, ...]) -> float | None:
        return round(sum(self.counts[lv] for lv in good_levels) / self.raters, 4) if self.raters else None


def rate(crowd: Crowd, spec: RaterSpec) -> tuple[list[tuple[float, int, int]], RatingTruth]:
    """Presses (virtual t s, keypad, level) of the crowd's leavers, sorted, and the truth."""
    if len(spec.weights) != spec.levels:
        raise ValueError(f"weights has {len(spec.weights)} entries for {spec.levels} levels")
    rng = random.Random(spec.seed)
    truth = RatingTruth()
    presses: list[tuple[float, int, int]] = []
    free_at = float("-inf")
    for t_cross, direction, _ in crowd.truth():
        if direction != "out":
            continue
        truth.leaving += 1
        if rng.random() >= spec.share:
            continue
        level = rng.choices(range(1, spec.levels + 1), spec.weights)[0]
        n = spec.repeat_presses if rng.random() < spec.repeat_share else 1
        t = max(t_cross + rng.uniform(*spec.walk_s), free_at)
        for _ in range(n):
            presses.append((t, spec.keypad, level))
            t += rng.uniform(*spec.press_gap_s)
        free_at = presses[-1][0] + spec.keypad_gap_s
        truth.counts[level] += 1
        truth.raters += 1
        truth.presses += n
        truth.repeats += n - 1
    presses.sort()
    return presses, truth
