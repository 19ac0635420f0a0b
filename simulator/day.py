"""An opening day at one door: arrivals that follow a center's day (a morning and an
afternoon peak), more people coming in than going out in the morning and the reverse in
the evening, so the people inside rise and fall like a real center's.

The day is a list of segments, one per opening hour: each is an ordinary crowd
(`simulator.people.generate`, one arrival unit in the doorway at a time) in its own time,
with the offset (seconds after local midnight) at which it starts. Segments never overlap:
one starts after the last passer of the one before has left the door.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from simulator.people import Crowd, CrowdSpec, generate

# arrivals per opening hour (relative): a morning and an afternoon peak, as centers report
HOUR_WEIGHTS: dict[int, float] = {8: 1.0, 9: 2.0, 10: 3.0, 11: 2.5, 12: 1.0, 13: 1.0, 14: 2.0, 15: 3.0,
                                  16: 2.5, 17: 1.5, 18: 1.0, 19: 0.8}


@dataclass(frozen=True)
class Segment:
    """One hour's passers: `crowd` in its own time, starting `offset_s` after local midnight."""

    hour: int
    offset_s: float
    crowd: Crowd

    def truth(self) -> list[tuple[float, str]]:
        """(seconds after local midnight, direction) of each passer that crossed."""
        return [(self.offset_s + t, d) for t, d, _ in self.crowd.truth()]


def in_share(hour: int) -> float:
    """Share of passers coming in: most arrive in the morning, most leave in the evening."""
    return 0.75 if hour < 12 else 0.5 if hour < 16 else 0.25


def opening_day(passers: int, base: CrowdSpec, seed: int, hours: dict[int, float] | None = None) -> list[Segment]:
    """About `passers` people over the opening hours, spread by `hours` (default HOUR_WEIGHTS);
    `base` gives the arrival units and gaps, `seed` draws everything."""
    weights = hours or HOUR_WEIGHTS
    rng = random.Random(seed)
    total = sum(weights.values())
    counts = {h: int(passers * w / total) for h, w in weights.items()}
    for h in rng.sample(sorted(weights), passers - sum(counts.values())):  # the remainder, one each
        counts[h] += 1
    out: list[Segment] = []
    free_at = 0.0
    for h in sorted(weights):
        if counts[h] == 0:
            continue
        spec = replace(base, count=counts[h], in_share=in_share(h), seed=rng.randrange(2**31),
                       mean_gap_s=max(base.min_gap_s, 3600.0 / (counts[h] + 1)))
        crowd = generate(spec)
        start = max(h * 3600.0 + rng.uniform(0, 300), free_at)
        out.append(Segment(h, start, crowd))
        free_at = start + max(kf[0] for p in crowd.people for kf in p.keyframes) + base.min_gap_s
    return out
