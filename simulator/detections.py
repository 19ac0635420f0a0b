"""Seeded synthetic person-detection streams of people walking through a doorway.

Why: the tracker and counting line must be measured on crowds we cannot film, with
ground truth we can trust. A stream is what a person detector would emit on a 640x480
top-down view of a door: boxes with jitter, about 10% misses, weak scores for some
true people, false positives, people walking in groups, some who turn back before the
line. Every stream keeps about ``in_view`` people in the picture and records each true
crossing of the counting line (by box centre, within the segment) with its direction.

The same generator is the simulator's detection-level mode for scale tests: it skips
rendering and detection and feeds the tracker directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DetectionFrame", "DetectionStream", "StreamSpec", "TrueCrossing", "generate"]


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What to simulate. Sizes scale with the crowd: a busy lobby is seen from higher."""

    in_view: int = 20
    fps: float = 15.0
    duration_s: float = 60.0
    seed: int = 0
    width: int = 640
    height: int = 480
    miss_rate: float = 0.10
    jitter: float = 0.03  # std of centre and size noise, in box heights
    weak_rate: float = 0.10  # share of true detections scored 0.2..0.5 (occluded)
    fp_per_frame: float = 0.5  # false positives per frame (Poisson mean) per 20 in view
    group_prob: float = 0.3  # chance that a spawn is a group of 2 to 4
    turnback_prob: float = 0.1  # chance a walker turns back before the line
    line_y: float = 240.0
    margin_x: float = 40.0  # the line spans [margin_x, width - margin_x]


@dataclass(frozen=True, slots=True)
class TrueCrossing:
    t: float
    person: int
    direction: str  # "in" (toward the inside point, downward) or "out"
    x: float


@dataclass(slots=True)
class DetectionFrame:
    t: float
    boxes: np.ndarray  # (N, 4) float32 xyxy
    scores: np.ndarray  # (N,) float32
    gt_ids: np.ndarray  # (G,) int64, people visible in this frame
    gt_boxes: np.ndarray  # (G, 4) float32 xyxy (clipped to the picture)


@dataclass(slots=True)
class DetectionStream:
    spec: StreamSpec
    frames: list[DetectionFrame]
    crossings: list[TrueCrossing]
    line: tuple[tuple[float, float], tuple[float, float]]
    inside: tuple[float, float]
    person_height: float
    mean_in_view: float = field(default=0.0)


def _person_height(spec: StreamSpec) -> float:
    return float(np.clip(0.9 * math.sqrt(spec.width * spec.height / max(1, spec.in_view)), 24, 110))


def generate(spec: StreamSpec) -> DetectionStream:
    """Build the whole stream (deterministic for a given spec)."""
    rng = np.random.default_rng(spec.seed)
    W, H = spec.width, spec.height
    h0 = _person_height(spec)
    speed0 = 0.8 * h0  # px/s: about 1.4 m/s for a 1.7 m person
    transit = (H + h0) / speed0
    rate = spec.in_view / transit / (1 + spec.group_prob * 2.0)  # groups average 3  # people per second to keep in_view in the picture
    # Walkers: spawn time, x, direction (+1 down = in), speed, size, drift, turn-back y.
    walkers: list[tuple[float, float, int, float, float, float, float, float]] = []
    t = -transit  # start one transit early so the picture is full at t=0
    while t < spec.duration_s:
        t += rng.exponential(1.0 / rate)
        size = 1 + (rng.integers(2, 5) if rng.random() < spec.group_prob else 0)
        direction = 1 if rng.random() < 0.5 else -1
        speed = speed0 * rng.uniform(0.75, 1.25)
        # A group walks side by side (people do not overlap on the floor): its members
        # are spaced 1.0 to 1.4 widths apart, the whole group inside the doorway.
        spacing = 0.42 * h0 * rng.uniform(1.0, 1.4)
        half = (size - 1) * spacing / 2 + 0.42 * h0
        x_lead = rng.uniform(spec.margin_x + half, W - spec.margin_x - half)
        for k in range(size):
            h = h0 * rng.uniform(0.85, 1.15)
            w = 0.42 * h
            x_line = x_lead + (k - (size - 1) / 2) * spacing
            t0 = t + k * rng.uniform(0.0, 0.4)
            drift = rng.normal(0.0, 0.06 * h0)
            v = speed * rng.uniform(0.95, 1.05)
            to_line = (spec.line_y if direction > 0 else H - spec.line_y) + h / 2
            x = x_line - drift * to_line / v
            turn = np.nan
            if rng.random() < spec.turnback_prob:
                # Turn back between 1.5 and 0.5 box heights before the line.
                d = rng.uniform(0.5, 1.5) * h
                turn = spec.line_y - d if direction > 0 else spec.line_y + d
            walkers.append((t0, x, direction, v, w, h, drift, turn))
    arr = np.array(walkers, dtype=np.float64)
    t0, x0, dirn, speed, wv, hv, drift, turn = arr.T
    y_start = np.where(dirn > 0, -hv / 2, H + hv / 2)
    n_people = arr.shape[0]

    # True crossings: walkers without a turn-back cross the line once.
    crossings: list[TrueCrossing] = []
    crosses = np.isnan(turn)
    tc = t0 + np.abs(spec.line_y - y_start) / speed
    xc = x0 + drift * (tc - t0)
    for i in np.flatnonzero(crosses & (tc >= 0) & (tc <= spec.duration_s)):
        if spec.margin_x <= xc[i] <= W - spec.margin_x:
            crossings.append(TrueCrossing(float(tc[i]), int(i), "in" if dirn[i] > 0 else "out",
                                          float(xc[i])))
    crossings.sort(key=lambda c: c.t)

    frames: list[DetectionFrame] = []
    n_frames = int(round(spec.duration_s * spec.fps))
    fp_mean = spec.fp_per_frame * max(1.0, spec.in_view / 20)
    in_view_total = 0
    for f in range(n_frames):
        tf = f / spec.fps
        el = tf - t0
        live = el >= 0
        dist = speed * np.maximum(el, 0)
        # Position along the path, folding back at the turn point.
        turn_d = np.where(np.isnan(turn), np.inf, np.abs(turn - y_start))
        along = np.where(dist <= turn_d, dist, 2 * turn_d - dist)
        y = y_start + dirn * along
        x = x0 + drift * np.maximum(el, 0)
        live &= along > -hv  # came back out of the picture
        live &= np.abs(y - H / 2) < H / 2 + hv / 2
        box = np.stack([x - wv / 2, y - hv / 2, x + wv / 2, y + hv / 2], axis=1)
        clipped = box.copy()
        np.clip(clipped[:, 0::2], 0, W, out=clipped[:, 0::2])
        np.clip(clipped[:, 1::2], 0, H, out=clipped[:, 1::2])
        vis = ((clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])) / (wv * hv)
        live &= vis >= 0.4
        idx = np.flatnonzero(live)
        in_view_total += idx.shape[0]
        gtb = clipped[idx]
        # Detections: misses, jitter, scores.
        det_idx = idx[rng.random(idx.shape[0]) >= spec.miss_rate]
        db = clipped[det_idx]
        hh = hv[det_idx][:, None]
        c = (db[:, 0:2] + db[:, 2:4]) / 2 + rng.normal(0, spec.jitter, (det_idx.shape[0], 2)) * hh
        s = (db[:, 2:4] - db[:, 0:2]) * (1 + rng.normal(0, spec.jitter, (det_idx.shape[0], 2)))
        s = np.maximum(s, 4.0)
        db = np.concatenate([c - s / 2, c + s / 2], axis=1)
        sc = rng.uniform(0.55, 0.95, det_idx.shape[0])
        weak = rng.random(det_idx.shape[0]) < spec.weak_rate
        sc[weak] = rng.uniform(0.2, 0.5, int(weak.sum()))
        # False positives: person-sized boxes anywhere, mostly weak.
        nfp = rng.poisson(fp_mean)
        if nfp:
            fh = h0 * rng.uniform(0.6, 1.2, nfp)
            fc = np.stack([rng.uniform(0, W, nfp), rng.uniform(0, H, nfp)], axis=1)
            fwh = np.stack([0.42 * fh, fh], axis=1)
            db = np.concatenate([db, np.concatenate([fc - fwh / 2, fc + fwh / 2], axis=1)])
            sc = np.concatenate([sc, rng.uniform(0.1, 0.7, nfp)])
        order = rng.permutation(db.shape[0])
        frames.append(DetectionFrame(
            t=tf,
            boxes=db[order].astype(np.float32),
            scores=sc[order].astype(np.float32),
            gt_ids=idx.astype(np.int64),
            gt_boxes=gtb.astype(np.float32),
        ))
    del n_people
    return DetectionStream(
        spec=spec,
        frames=frames,
        crossings=crossings,
        line=((spec.margin_x, spec.line_y), (W - spec.margin_x, spec.line_y)),
        inside=(W / 2, H - 10.0),
        person_height=h0,
        mean_in_view=in_view_total / max(1, n_frames),
    )
