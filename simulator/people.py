"""Simulated passers at a door, with ground truth.

The model keeps positions over time (piecewise-linear keyframes in door coordinates),
not beam timings: the beams are derived from the paths here, and the camera simulator
can render the same people from the same paths.

Door coordinates (metres): x runs through the doorway, negative outside, positive
inside; y runs along the door's width (0 = the middle). Beam A (outer) sits at
x = -spacing/2, beam B (inner) at +spacing/2, both at `beam_height_m`. A passer
occludes a beam while any of its parts (a body, a trolley, a wheelchair) spans the
beam's x and is at least as tall as the beam.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Kind = Literal["adult", "child", "trolley", "wheelchair"]
Unit = Literal["single", "pair", "group", "linger", "turn_back", "child", "trolley", "wheelchair", "trio"]
UNITS: tuple[Unit, ...] = ("single", "pair", "group", "linger", "turn_back", "child", "trolley", "wheelchair", "trio")

START_X = -2.0
END_X = 2.0


@dataclass(frozen=True)
class Part:
    """A rigid occluder carried along with a passer: centre offset along the heading
    (metres, + = ahead), half depth along x, height."""

    ahead_m: float
    half_depth_m: float
    height_m: float


@dataclass
class Person:
    pid: int
    unit: Unit  # the arrival pattern this passer came in
    kind: Kind
    parts: tuple[Part, ...]
    keyframes: list[tuple[float, float, float]]  # (t s, x m, y m), t increasing
    heading: int  # +1 walks inwards, -1 outwards (orients parts)
    truth: Literal["in", "out"] | None  # None: turned back, crossed nothing
    truth_t: float | None  # when the passer crossed x = 0 for good

    def position(self, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x, y at time(s) t (clamped to the path's ends)."""
        ts, xs, ys = (np.array(c) for c in zip(*self.keyframes))
        return np.interp(t, ts, xs), np.interp(t, ts, ys)

    def occlusions(self, beam_x: float, beam_h: float, dt: float = 0.001) -> list[tuple[float, float]]:
        """Intervals [start, end) during which this passer blocks a beam."""
        t0, t1 = self.keyframes[0][0], self.keyframes[-1][0]
        t = np.arange(t0, t1 + dt, dt)
        x, _ = self.position(t)
        blocked = np.zeros(len(t), dtype=bool)
        for part in self.parts:
            if part.height_m < beam_h:
                continue
            blocked |= np.abs(x + self.heading * part.ahead_m - beam_x) < part.half_depth_m
        return _runs(t, blocked, dt)


@dataclass
class Crowd:
    people: list[Person] = field(default_factory=list)

    def truth(self) -> list[tuple[float, str, Unit]]:
        return sorted((p.truth_t, p.truth, p.unit) for p in self.people if p.truth and p.truth_t is not None)


def _runs(t: np.ndarray, mask: np.ndarray, dt: float) -> list[tuple[float, float]]:
    if not mask.any():
        return []
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(float(t[s]), float(t[e - 1] + dt)) for s, e in zip(starts, ends)]


@dataclass(frozen=True)
class CrowdSpec:
    """How a scenario's passers arrive (the [people] table of a scenario TOML)."""

    count: int = 1000
    mix: dict[str, float] = field(default_factory=lambda: {"single": 1.0})
    in_share: float = 0.5
    mean_gap_s: float = 6.0  # mean extra gap between arrival units (exponential)
    min_gap_s: float = 1.2  # door empty at least this long between units
    seed: int = 1


def _walker(rng: random.Random, pid: int, unit: Unit, t0: float, heading: int, y: float,
            speed: float, kind: Kind = "adult", stop: tuple[float, float] | None = None,
            turn_at: float | None = None) -> Person:
    """A straight walk from one side to the other; `stop` = (x, seconds) pauses there
    (shuffling a few cm); `turn_at` = x where the passer turns back."""
    parts = {
        "adult": (Part(0.0, rng.uniform(0.11, 0.16), rng.uniform(1.5, 1.9)),),
        "child": (Part(0.0, rng.uniform(0.08, 0.11), rng.uniform(0.9, 1.4)),),
        "trolley": (Part(0.0, 0.14, 1.75), Part(0.55, 0.35, 1.05)),
        "wheelchair": (Part(0.0, 0.45, 1.3),),
    }[kind]
    x0, x1 = START_X * heading, END_X * heading
    kf: list[tuple[float, float, float]] = [(t0, x0, y)]
    t = t0
    if turn_at is not None:
        xt = turn_at * heading
        t += abs(xt - x0) / speed
        kf.append((t, xt, y))
        t += rng.uniform(0.2, 1.0)
        kf.append((t, xt, y))
        t += abs(x0 - xt) / speed
        kf.append((t, x0, y))
        return Person(pid, unit, kind, parts, kf, heading, None, None)
    if stop is not None:
        xs, dur = stop[0] * heading, stop[1]
        t += abs(xs - x0) / speed
        kf.append((t, xs, y))
        end = t + dur
        while t < end - 0.5:  # shuffle on the spot
            t += rng.uniform(0.5, 2.0)
            kf.append((min(t, end), xs + rng.uniform(-0.04, 0.04) * heading, y))
        t = max(t, end)
        kf.append((t, xs, y))
        x_now = xs
    else:
        x_now = x0
    t_cross = t + abs(0.0 - x_now) / speed if x_now * heading < 0 else t
    t += abs(x1 - x_now) / speed
    kf.append((t, x1, y))
    return Person(pid, unit, kind, parts, kf, heading, "in" if heading > 0 else "out", t_cross)


def generate(spec: CrowdSpec) -> Crowd:
    """Draw `spec.count` passers in arrival units, one unit in the doorway at a time."""
    rng = random.Random(spec.seed)
    names = [u for u in UNITS if spec.mix.get(u, 0) > 0]
    unknown = set(spec.mix) - set(UNITS)
    if unknown:
        raise ValueError(f"unknown arrival unit(s) {sorted(unknown)}; known: {list(UNITS)}")
    weights = [spec.mix[u] for u in names]
    crowd = Crowd()
    t = 5.0
    pid = 0
    while len(crowd.people) < spec.count:
        unit: Unit = rng.choices(names, weights)[0]
        heading = 1 if rng.random() < spec.in_share else -1
        speed = rng.uniform(0.9, 1.6)
        members: list[Person] = []
        if unit in ("single", "child", "trolley", "wheelchair"):
            kind: Kind = {"single": "adult", "child": "child", "trolley": "trolley", "wheelchair": "wheelchair"}[unit]
            sp = speed if kind != "wheelchair" else rng.uniform(0.6, 1.0)
            members.append(_walker(rng, pid, unit, t, heading, rng.uniform(-0.4, 0.4), sp, kind))
        elif unit == "pair":
            for k in range(2):
                members.append(_walker(rng, pid + k, unit, t + rng.uniform(0, 0.12), heading,
                                       -0.3 + 0.6 * k, speed))
        elif unit == "trio":  # three abreast across the door's width, barely out of step
            for k in range(3):
                members.append(_walker(rng, pid + k, unit, t + rng.uniform(0, 0.12), heading,
                                       -0.4 + 0.4 * k, speed))
        elif unit == "group":
            size = rng.randint(3, 5)
            lag = 0.0
            for k in range(size):
                abreast = k > 0 and rng.random() < 0.4
                if k > 0 and not abreast:
                    lag += rng.uniform(0.35, 0.9) / speed  # follows at 0.35-0.9 m pitch
                members.append(_walker(rng, pid + k, unit, t + lag + (rng.uniform(0, 0.1) if abreast else 0),
                                       heading, rng.uniform(-0.4, 0.4), speed * rng.uniform(0.95, 1.05)))
        elif unit == "linger":
            members.append(_walker(rng, pid, unit, t, heading, 0.0, speed,
                                   stop=(rng.uniform(-0.03, 0.03), rng.uniform(3.0, 20.0))))
        elif unit == "turn_back":
            if rng.random() < 0.5:  # an ordinary passer between turn-backs
                members.append(_walker(rng, pid, "single", t, heading, 0.0, speed))
            else:
                members.append(_walker(rng, pid, unit, t, heading, 0.0, speed,
                                       turn_at=rng.uniform(-0.2, 0.0)))  # never past the door line
        pid += len(members)
        crowd.people += members[: spec.count - len(crowd.people)]
        t = max(p.keyframes[-1][0] for p in members) - 1.5 + spec.min_gap_s + rng.expovariate(1 / spec.mean_gap_s)
    return crowd


@dataclass(frozen=True)
class BeamSpec:
    """Where the beams are and how noisy they are (the [door] table)."""

    spacing_m: float = 0.08
    height_m: float = 1.0
    glitch_per_hour: float = 2.0  # short spurious breaks (insects, rain)
    flicker_prob: float = 0.03  # chance a passer's blockage has a brief gap (arm swing)
    seed: int = 2


def beam_edges(crowd: Crowd, beams: BeamSpec) -> list[tuple[float, int, int]]:
    """The raw (t s, beam, edge) stream both beams see, before the MCU's debounce."""
    rng = random.Random(beams.seed)
    out: list[tuple[float, int, int]] = []
    xs = (-beams.spacing_m / 2, beams.spacing_m / 2)
    end = max((p.keyframes[-1][0] for p in crowd.people), default=0.0) + 5
    for beam, bx in enumerate(xs):
        ivs: list[tuple[float, float]] = []
        for p in crowd.people:
            for s, e in p.occlusions(bx, beams.height_m):
                if rng.random() < beams.flicker_prob and e - s > 0.1:
                    mid = rng.uniform(s + 0.03, e - 0.05)
                    gap = rng.uniform(0.005, 0.04)
                    ivs += [(s, mid), (mid + gap, e)]
                else:
                    ivs.append((s, e))
        n_glitch = int(end / 3600 * beams.glitch_per_hour + rng.random())
        for _ in range(n_glitch):
            s = rng.uniform(0, end)
            ivs.append((s, s + rng.uniform(0.001, 0.02)))
        for s, e in _union(ivs):
            out += [(s, beam, 1), (e, beam, 0)]
    out.sort()
    return out


def _union(ivs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for s, e in sorted(ivs):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def debounce(edges: list[tuple[float, int, int]], hold_s: float) -> list[tuple[float, int, int]]:
    """What the firmware's debounce passes: a level change that holds for `hold_s`,
    stamped at its start (mirrors door.c)."""
    out: list[tuple[float, int, int]] = []
    by_beam: dict[int, list[tuple[float, int]]] = {}
    for t, b, e in edges:
        by_beam.setdefault(b, []).append((t, e))
    for b, seq in by_beam.items():
        stable = 0
        for i, (t, e) in enumerate(seq):
            nxt = seq[i + 1][0] if i + 1 < len(seq) else math.inf
            if e != stable and nxt - t >= hold_s:
                stable = e
                out.append((t, b, e))
    out.sort()
    return out
