"""Simulated camera: video of real people walking simulated paths, with ground truth.

Frames are composed from a real background and real person appearances cut from real
footage (see simulator.sprites), so the shipped detector sees people, not drawn shapes.
Each simulated walker has a time and direction at which it crosses the counting line;
the same (time, direction) list can come from the beam simulator, so one ground truth
drives both sources (`walkers_from_crossings`).

Scenario types: ``single_file`` (one after another), ``pairs`` (two abreast, at
different depths, crossing together) and ``groups`` (three or four close together).
Conditions: lighting drift (exposure changing over seconds), ``night`` (grey infrared
look: no colour, lower contrast, more noise) and soft ground shadows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from simulator.sprites import SpriteBank

Direction = Literal["in", "out"]
ScenarioKind = Literal["single_file", "pairs", "groups"]
SCENARIO_KINDS: tuple[str, ...] = ("single_file", "pairs", "groups")

# The scene is a window of the vtest.avi plaza: the walkway band where people cross.
SCENE_CROP = (120, 90, 648, 390)  # x1, y1, x2, y2 in the source background
FEET_BAND = (140.0, 270.0)  # feet y range of walkers, scene pixels (walkway and the lawn before it)


def person_height(feet_y: float) -> float:
    """Apparent height (px) of a 1.7 m person whose feet are at ``feet_y`` (scene pixels).

    Linear perspective fitted by eye on vtest.avi: 72 px with feet at y=232, 92 px at
    y=310 (source frame), i.e. 0.256 px per px of depth.
    """
    src_y = feet_y + SCENE_CROP[1]
    return 72.0 + 0.256 * (src_y - 232.0)


@dataclass(frozen=True, slots=True)
class Walker:
    t_cross: float  # seconds from scene start at which the body centre crosses the line
    direction: Direction  # in = walking right (towards the inside point)
    feet_y: float  # scene pixels
    speed_mps: float
    appearance: int  # index into the sprite bank


@dataclass(frozen=True, slots=True)
class Conditions:
    lighting_drift: float = 0.0  # amplitude of exposure drift (0.3 = +-30%)
    lighting_period_s: float = 20.0
    night: bool = False
    shadows: bool = False
    noise_std: float = 2.0


@dataclass
class Scene:
    kind: str
    walkers: list[Walker]
    duration_s: float
    fps: float = 10.0
    conditions: Conditions = field(default_factory=Conditions)
    width: int = SCENE_CROP[2] - SCENE_CROP[0]
    height: int = SCENE_CROP[3] - SCENE_CROP[1]

    @property
    def line(self) -> tuple[float, float, float, float]:
        x = self.width / 2
        return (x, 30.0, x, FEET_BAND[1] + 25.0)

    @property
    def inside(self) -> tuple[float, float]:
        return (self.width * 0.85, (FEET_BAND[0] + FEET_BAND[1]) / 2 - 40)

    def truth(self) -> dict[str, int]:
        return {d: sum(w.direction == d for w in self.walkers) for d in ("in", "out")}


def _px_per_m(feet_y: float) -> float:
    return person_height(feet_y) / 1.7


def walker_x(w: Walker, t: float, line_x: float) -> float:
    sign = 1.0 if w.direction == "in" else -1.0
    return line_x + sign * w.speed_mps * _px_per_m(w.feet_y) * (t - w.t_cross)


def make_scenario(
    kind: ScenarioKind, events: int, seed: int = 0, fps: float = 10.0, conditions: Conditions | None = None,
    n_appearances: int = 24,
) -> Scene:
    """A scene with ``events`` crossing units (people, pairs or groups), random directions."""
    if kind not in SCENARIO_KINDS:
        raise ValueError(f"scenario kind must be one of {SCENARIO_KINDS}, not {kind!r}")
    rng = np.random.default_rng(seed)
    lo, hi = FEET_BAND
    walkers: list[Walker] = []
    t = 6.0
    for _ in range(events):
        direction: Direction = "in" if rng.random() < 0.5 else "out"
        speed = float(rng.uniform(1.0, 1.5))
        if kind == "single_file":
            walkers.append(Walker(t, direction, float(rng.uniform(lo, hi)), speed, int(rng.integers(n_appearances))))
            t += float(rng.uniform(2.5, 4.0))
        elif kind == "pairs":
            # abreast = side by side along the line, i.e. apart in depth in this oblique view;
            # 60+ px apart in feet height is about 1 m at this scale
            y0 = float(rng.uniform(lo, hi - 60))
            ys = [y0, float(rng.uniform(y0 + 60, hi))]
            faces = rng.choice(n_appearances, 2, replace=False)
            for y, a in zip(ys, faces):
                walkers.append(Walker(t + float(rng.uniform(-0.15, 0.15)), direction, float(y), speed, int(a)))
            t += float(rng.uniform(3.5, 5.0))
        else:
            size = int(rng.integers(3, 5))
            ys = np.linspace(lo, hi, size) + rng.uniform(-4, 4, size)
            faces = rng.choice(n_appearances, size, replace=False)
            for k, (y, a) in enumerate(zip(ys, faces)):
                lag = float(rng.uniform(0.0, 0.9)) if k else 0.0
                walkers.append(Walker(t + lag, direction, float(y), speed, int(a)))
            t += float(rng.uniform(5.0, 6.5))
    return Scene(kind, walkers, duration_s=t + 6.0, fps=fps, conditions=conditions or Conditions())


def walkers_from_crossings(
    crossings: Sequence[tuple[float, Direction]], seed: int = 0, n_appearances: int = 24
) -> list[Walker]:
    """Walkers for an externally simulated list of (time, direction) crossings (e.g. the beam simulator's)."""
    rng = np.random.default_rng(seed)
    return [
        Walker(float(t), d, float(rng.uniform(*FEET_BAND)), float(rng.uniform(1.0, 1.5)), int(rng.integers(n_appearances)))
        for t, d in crossings
    ]


class SceneRenderer:
    """Composes the frames of a scene from a sprite bank."""

    def __init__(self, scene: Scene, bank: SpriteBank, seed: int = 0) -> None:
        x1, y1, x2, y2 = SCENE_CROP
        self.scene = scene
        self.bank = bank
        self.background = bank.background[y1:y2, x1:x2].astype(np.float32)
        self.rng = np.random.default_rng(seed)
        self._cache: dict[tuple[int, int, int, bool], tuple[np.ndarray, np.ndarray]] = {}

    def _sprite(self, appearance: int, k: int, height: int, flip: bool) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        key = (appearance, k, height, flip)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        app = self.bank.appearances[appearance % len(self.bank.appearances)]
        crop, alpha = app.crops[k], app.alphas[k]
        scale = height / crop.shape[0]
        size = (max(2, round(crop.shape[1] * scale)), height)
        img = cv2.resize(crop, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        a = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR)
        if flip:
            img, a = img[:, ::-1], a[:, ::-1]
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = (img, a)
        return img, a

    def render(self, t: float) -> np.ndarray:
        import cv2

        sc, cond = self.scene, self.scene.conditions
        frame = self.background.copy()
        line_x = sc.line[0]
        visible = []
        for w in sc.walkers:
            x = walker_x(w, t, line_x)
            h = person_height(w.feet_y)
            if -h < x < sc.width + h:
                visible.append((w, x, h))
        for w, x, h in sorted(visible, key=lambda v: v[0].feet_y):  # far ones first
            app = self.bank.appearances[w.appearance % len(self.bank.appearances)]
            n = len(app.crops)
            step = int(abs(t - w.t_cross) * 10.0)  # source clip is 10 fps
            k = step % (2 * n - 2) if n > 1 else 0
            k = k if k < n else 2 * n - 2 - k  # ping-pong through the gait
            heading = 1 if w.direction == "in" else -1
            img, a = self._sprite(w.appearance, k, max(8, round(h)), app.heading != heading)
            top, left = round(w.feet_y - img.shape[0]), round(x - img.shape[1] / 2)
            if cond.shadows:
                self._shadow(frame, x, w.feet_y, h)
            self._blend(frame, img, a, left, top)
        if cond.lighting_drift:
            frame *= 1.0 + cond.lighting_drift * math.sin(2 * math.pi * t / cond.lighting_period_s)
        if cond.night:
            grey = cv2.cvtColor(np.clip(frame, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
            grey = 40.0 + 0.6 * grey  # IR: flat, washed-out contrast, grainy
            grey += self.rng.normal(0.0, 6.0, grey.shape).astype(np.float32)
            frame = np.repeat(grey[..., None], 3, axis=2)
        elif cond.noise_std:
            frame += self.rng.normal(0.0, cond.noise_std, frame.shape).astype(np.float32)
        return np.clip(frame, 0, 255).astype(np.uint8)

    @staticmethod
    def _blend(frame: np.ndarray, img: np.ndarray, a: np.ndarray, left: int, top: int) -> None:
        H, W = frame.shape[:2]
        h, w = a.shape
        x1, y1, x2, y2 = max(0, left), max(0, top), min(W, left + w), min(H, top + h)
        if x1 >= x2 or y1 >= y2:
            return
        sub_a = a[y1 - top : y2 - top, x1 - left : x2 - left, None]
        sub_i = img[y1 - top : y2 - top, x1 - left : x2 - left]
        region = frame[y1:y2, x1:x2]
        region *= 1.0 - sub_a
        region += sub_i * sub_a

    @staticmethod
    def _shadow(frame: np.ndarray, x: float, feet_y: float, h: float) -> None:
        import cv2

        H, W = frame.shape[:2]
        mask = np.zeros((H, W), np.float32)
        cv2.ellipse(mask, (round(x + 0.25 * h), round(feet_y)), (max(2, round(0.45 * h)), max(1, round(0.08 * h))),
                    -8, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.04 * h))
        frame *= 1.0 - 0.45 * mask[..., None]

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """(index, time in seconds, BGR image) for the whole scene."""
        n = int(self.scene.duration_s * self.scene.fps)
        for i in range(n):
            t = i / self.scene.fps
            yield i, t, self.render(t)


def write_video(scene: Scene, bank: SpriteBank, path: str) -> int:
    """Render a scene to a video file (MJPG AVI) for `footfall count`; returns frames written."""
    import cv2

    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), scene.fps, (scene.width, scene.height))
    if not writer.isOpened():
        raise OSError(f"cannot write video {path}")
    n = 0
    for _, _, img in SceneRenderer(scene, bank).frames():
        writer.write(img)
        n += 1
    writer.release()
    return n


def score_crossings(
    truth: Sequence[tuple[float, str]], counted: Sequence[tuple[float, str]], tolerance_s: float = 1.5
) -> dict[str, dict[str, float]]:
    """Per direction: true, counted, matched, missed, extra and gross accuracy.

    A counted crossing matches an unmatched true crossing of the same direction within
    ``tolerance_s`` (closest first). Gross accuracy = 1 - (missed + extra) / true.
    """
    out: dict[str, dict[str, float]] = {}
    for d in ("in", "out"):
        t_true = sorted(t for t, dd in truth if dd == d)
        t_cnt = sorted(t for t, dd in counted if dd == d)
        pairs = sorted(
            (abs(a - b), i, j) for i, a in enumerate(t_true) for j, b in enumerate(t_cnt) if abs(a - b) <= tolerance_s
        )
        used_t: set[int] = set()
        used_c: set[int] = set()
        for _, i, j in pairs:
            if i not in used_t and j not in used_c:
                used_t.add(i)
                used_c.add(j)
        n = len(t_true)
        missed, extra = n - len(used_t), len(t_cnt) - len(used_c)
        out[d] = {
            "true": n, "counted": len(t_cnt), "matched": len(used_t), "missed": missed, "extra": extra,
            "gross_accuracy": 1.0 - (missed + extra) / n if n else (1.0 if not t_cnt else 0.0),
        }
    return out


def walkers_from_crowd(crowd, door_width_m: float = 1.2, seed: int = 0, n_appearances: int = 24) -> list[Walker]:
    """Walkers for the beam simulator's people (`simulator.people.Crowd`): one ground truth.

    Each adult who crosses (``truth`` set) becomes a walker crossing the camera line at
    the same time and in the same direction, at a depth given by where along the door's
    width it crossed, at its walking speed there. Walkers who turn back, children,
    trolleys and wheelchairs are not rendered (no sprites for them; see docs/camera.md).
    """
    rng = np.random.default_rng(seed)
    lo, hi = FEET_BAND
    out: list[Walker] = []
    for p in crowd.people:
        if p.truth is None or p.truth_t is None or p.kind != "adult":
            continue
        t = float(p.truth_t)
        x0, y = p.position(t - 0.25)
        x1, _ = p.position(t + 0.25)
        speed = float(np.clip(abs(float(x1) - float(x0)) / 0.5, 0.6, 2.0))
        frac = float(np.clip(float(y) / door_width_m + 0.5, 0.0, 1.0))
        out.append(Walker(t, p.truth, lo + frac * (hi - lo), speed, int(rng.integers(n_appearances))))
    return out
