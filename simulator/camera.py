"""Simulated camera: video of real people walking simulated paths, with ground truth.

Frames are composed from a real background and real person appearances cut from real
footage (see simulator.sprites), so the shipped detector sees people, not drawn shapes.
Each simulated walker has a time and direction at which it crosses the counting line;
the same (time, direction) list can come from the beam simulator, so one ground truth
drives both sources (`walkers_from_crossings`).

Two camera geometries over the same real background (the vtest.avi plaza):

* ``door`` (default): what a door counter's camera sees. The camera looks down the
  approach to a threshold; walkers come towards or go away from it and the counting
  line runs *across* the walkway, so people walking abreast appear side by side and
  people in single file one behind the other. Walkers follow a pinhole ground-plane
  model fitted to the clip's own perspective (`DoorView`).
* ``oblique``: the first geometry, kept for comparison: walkers cross a vertical line
  left to right, so people abreast are apart in *depth* and overlap in the image (a
  wall camera looking across the flow, which door-counter installers avoid).

Scenario types: ``single_file`` (one after another), ``pairs`` (two abreast, crossing
together) and ``groups`` (three or four close together).
Conditions: lighting drift (exposure changing over seconds), ``night`` (grey infrared
look: no colour, lower contrast, more noise) and soft ground shadows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from contract.crossing_score import score_crossings as _score_crossings
from simulator.sprites import SpriteBank

Direction = Literal["in", "out"]
ScenarioKind = Literal["single_file", "pairs", "groups"]
SCENARIO_KINDS: tuple[str, ...] = ("single_file", "pairs", "groups")
Geometry = Literal["door", "oblique"]
GEOMETRIES: tuple[str, ...] = ("door", "oblique")

# Oblique geometry: a window of the vtest.avi plaza, the walkway band where people cross.
SCENE_CROP = (120, 90, 648, 390)  # x1, y1, x2, y2 in the source background
FEET_BAND = (140.0, 270.0)  # feet y range of walkers, scene pixels (walkway and the lawn before it)


@dataclass(frozen=True, slots=True)
class DoorView:
    """Door geometry: a pinhole camera over a flat ground, fitted to vtest.avi's perspective.

    The clip's people are 72 px tall with feet at source row 232 and grow 0.256 px per
    row, so the horizon is at row 232 - 72/0.256 = -49 and the camera is 1.7 * 281/72 =
    6.6 m above the ground; a 60 degree horizontal field of view gives f = 665 px. A
    person at ground depth Z (m) then stands with feet at row horizon + f*H/Z, is
    1.7*f/Z px tall, and a lateral offset X (m) shifts it by f*X/Z px. The threshold is
    the paved approach on the right of the plaza, its line 11 m from the camera.
    """

    crop: tuple[int, int, int, int] = (448, 130, 768, 480)  # x1, y1, x2, y2 in the source background
    horizon_y: float = -49.0  # source rows
    camera_h_m: float = 6.6
    focal_px: float = 665.0
    centre_x: float = 630.0  # source column of the door's centre line
    line_z_m: float = 11.0  # ground depth of the counting line
    door_width_m: float = 1.8

    def feet_row(self, z: float) -> float:
        """Scene row of the feet of a person at depth ``z`` metres."""
        return self.horizon_y + self.focal_px * self.camera_h_m / z - self.crop[1]

    def column(self, x_m: float, z: float) -> float:
        return self.centre_x + self.focal_px * x_m / z - self.crop[0]

    def height(self, z: float) -> float:
        return 1.7 * self.focal_px / z


DOOR_VIEW = DoorView()


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
    across_m: float = 0.0  # door geometry: lateral offset from the door's centre line (m)


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
    width: int = 0  # 0: from the geometry's window
    height: int = 0
    # a bare Scene keeps the first geometry, "oblique"; make_scenario, the benches and
    # the fusion runner ask for "door" (place walkers with `position` in either)
    geometry: str = "oblique"

    def __post_init__(self) -> None:
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, not {self.geometry!r}")
        x1, y1, x2, y2 = self.crop
        self.width = self.width or x2 - x1
        self.height = self.height or y2 - y1

    @property
    def crop(self) -> tuple[int, int, int, int]:
        return DOOR_VIEW.crop if self.geometry == "door" else SCENE_CROP

    @property
    def line(self) -> tuple[float, float, float, float]:
        if self.geometry == "door":  # across the threshold, 0.3 m beyond each jamb
            v, z = DOOR_VIEW, DOOR_VIEW.line_z_m
            half = v.door_width_m / 2 + 0.3
            y = v.feet_row(z)
            return (v.column(-half, z), y, v.column(half, z), y)
        x = self.width / 2
        return (x, 30.0, x, FEET_BAND[1] + 25.0)

    @property
    def inside(self) -> tuple[float, float]:
        if self.geometry == "door":  # in = walking towards the camera (down the image)
            return (DOOR_VIEW.column(0.0, DOOR_VIEW.line_z_m), float(self.height - 5))
        return (self.width * 0.85, (FEET_BAND[0] + FEET_BAND[1]) / 2 - 40)

    def truth(self) -> dict[str, int]:
        return {d: sum(w.direction == d for w in self.walkers) for d in ("in", "out")}


def _px_per_m(feet_y: float) -> float:
    return person_height(feet_y) / 1.7


def walker_x(w: Walker, t: float, line_x: float) -> float:
    """Oblique geometry: x of the walker's centre at time ``t``."""
    sign = 1.0 if w.direction == "in" else -1.0
    return line_x + sign * w.speed_mps * _px_per_m(w.feet_y) * (t - w.t_cross)


def position(scene: "Scene", w: Walker, t: float) -> tuple[float, float, float]:
    """(centre x, feet row, height) of walker ``w`` at time ``t`` in ``scene``'s geometry, scene pixels."""
    if scene.geometry == "door":
        return door_position(w, t)
    return walker_x(w, t, scene.line[0]), w.feet_y, person_height(w.feet_y)


def door_position(w: Walker, t: float, view: DoorView = DOOR_VIEW) -> tuple[float, float, float]:
    """Door geometry: (centre x, feet row, height) of the walker at time ``t``, scene pixels.

    ``in`` walks towards the camera (depth shrinking); the feet are on the line at ``t_cross``.
    """
    sign = -1.0 if w.direction == "in" else 1.0
    z = view.line_z_m + sign * w.speed_mps * (t - w.t_cross)
    z = max(z, 1.0)
    return view.column(w.across_m, z), view.feet_row(z), view.height(z)


def make_scenario(
    kind: ScenarioKind, events: int, seed: int = 0, fps: float = 10.0, conditions: Conditions | None = None,
    n_appearances: int = 24, geometry: Geometry = "door",
) -> Scene:
    """A scene with ``events`` crossing units (people, pairs or groups), random directions.

    Times, directions, speeds and appearances are the same for both geometries (same
    seed); only where people are placed differs. Door geometry: pairs walk abreast with
    their centres 0.55-0.8 m apart (shoulder to shoulder), groups of 3-4 spread over
    1.4 m of the 1.8 m door and staggered up to 0.9 s (about 1 m) in depth.
    """
    if kind not in SCENARIO_KINDS:
        raise ValueError(f"scenario kind must be one of {SCENARIO_KINDS}, not {kind!r}")
    rng = np.random.default_rng(seed)
    lateral = np.random.default_rng(seed + 10007)  # door placement; keeps the shared draws identical
    lo, hi = FEET_BAND
    walkers: list[Walker] = []
    t = 6.0
    for _ in range(events):
        direction: Direction = "in" if rng.random() < 0.5 else "out"
        speed = float(rng.uniform(1.0, 1.5))
        if kind == "single_file":
            walkers.append(Walker(t, direction, float(rng.uniform(lo, hi)), speed, int(rng.integers(n_appearances)),
                                  float(lateral.uniform(-0.45, 0.45))))
            t += float(rng.uniform(2.5, 4.0))
        elif kind == "pairs":
            # oblique: abreast = apart in depth; 60+ px apart in feet height is about 1 m at this scale
            y0 = float(rng.uniform(lo, hi - 60))
            ys = [y0, float(rng.uniform(y0 + 60, hi))]
            faces = rng.choice(n_appearances, 2, replace=False)
            centre, gap = float(lateral.uniform(-0.2, 0.2)), float(lateral.uniform(0.55, 0.8))
            for k, (y, a) in enumerate(zip(ys, faces)):
                walkers.append(Walker(t + float(rng.uniform(-0.15, 0.15)), direction, float(y), speed, int(a),
                                      centre + (k - 0.5) * gap))
            t += float(rng.uniform(3.5, 5.0))
        else:
            size = int(rng.integers(3, 5))
            ys = np.linspace(lo, hi, size) + rng.uniform(-4, 4, size)
            faces = rng.choice(n_appearances, size, replace=False)
            # centres at most 0.7 m from the door's middle (0.45 m-wide people inside 1.8 m); four
            # abreast are then shoulder to shoulder (0.47 m apart), closer would overlap bodies
            across = np.linspace(-0.7, 0.7, size) + lateral.uniform(-0.03, 0.03, size)
            for k, (y, a) in enumerate(zip(ys, faces)):
                lag = float(rng.uniform(0.0, 0.9)) if k else 0.0
                walkers.append(Walker(t + lag, direction, float(y), speed, int(a), float(across[k])))
            t += float(rng.uniform(5.0, 6.5))
    return Scene(kind, walkers, duration_s=t + 6.0, fps=fps, conditions=conditions or Conditions(), geometry=geometry)


def walkers_from_crossings(
    crossings: Sequence[tuple[float, Direction]], seed: int = 0, n_appearances: int = 24
) -> list[Walker]:
    """Walkers for an externally simulated list of (time, direction) crossings (e.g. the beam simulator's)."""
    rng = np.random.default_rng(seed)
    half = DOOR_VIEW.door_width_m / 2 - 0.3
    return [
        Walker(float(t), d, float(rng.uniform(*FEET_BAND)), float(rng.uniform(1.0, 1.5)), int(rng.integers(n_appearances)),
               float(rng.uniform(-half, half)))
        for t, d in crossings
    ]


class SceneRenderer:
    """Composes the frames of a scene from a sprite bank."""

    def __init__(self, scene: Scene, bank: SpriteBank, seed: int = 0) -> None:
        x1, y1, x2, y2 = scene.crop
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
        visible = []  # (walker, centre x, feet row, height)
        for w in sc.walkers:
            x, feet, h = position(sc, w, t)
            if 0 < feet < sc.height + h and -h < x < sc.width + h:
                visible.append((w, x, feet, h))
        for w, x, feet, h in sorted(visible, key=lambda v: v[2]):  # far ones (higher feet) first
            app = self.bank.appearances[w.appearance % len(self.bank.appearances)]
            n = len(app.crops)
            step = int(abs(t - w.t_cross) * 10.0)  # source clip is 10 fps
            k = step % (2 * n - 2) if n > 1 else 0
            k = k if k < n else 2 * n - 2 - k  # ping-pong through the gait
            if sc.geometry == "door":  # side-on sprites walk towards/away: face either way
                flip = (w.appearance + (w.direction == "in")) % 2 == 1
            else:
                flip = app.heading != (1 if w.direction == "in" else -1)
            img, a = self._sprite(w.appearance, k, max(8, round(h)), flip)
            top, left = round(feet - img.shape[0]), round(x - img.shape[1] / 2)
            if cond.shadows:
                self._shadow(frame, x, feet, h)
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


def walker_scores(scene: Scene, renderer: "SceneRenderer", detectors: dict, roi, offsets_s: Sequence[float]
                  ) -> dict[str, list[float]]:
    """Per detector: its best score on each walker (a box around the walker's body
    centre) at each offset from the walker's crossing time; 0 where none. What the
    detector alone makes of the people, before tracking."""
    best: dict[str, list[float]] = {name: [] for name in detectors}
    for w in scene.walkers:
        for dt in offsets_s:
            img = renderer.render(w.t_cross + dt)
            x, feet, h = position(scene, w, w.t_cross + dt)
            for name, det in detectors.items():
                d = det.detect(img, roi)
                on = [float(s) for b, s in zip(d.boxes, d.scores) if b[0] < x < b[2] and b[1] < feet - h / 2 < b[3]]
                best[name].append(max(on, default=0.0))
    return best


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
) -> dict[str, dict[str, float | int | None]]:
    """The project's one scorer (`contract.crossing_score`) with the composed scenes'
    tolerance, 1.5 s, kept so their figures stay comparable with earlier runs."""
    return _score_crossings(truth, counted, tolerance_s)


def walkers_from_crowd(crowd, door_width_m: float = 1.2, seed: int = 0, n_appearances: int = 24) -> list[Walker]:
    """Walkers for the beam simulator's people (`simulator.people.Crowd`): one ground truth.

    Each adult who crosses (``truth`` set) becomes a walker crossing the camera line at
    the same time and in the same direction, at a place (oblique: depth; door: lateral offset scaled to the camera door) given by where along the door's
    width it crossed, at its walking speed there. Walkers who turn back, children,
    trolleys and wheelchairs are not rendered (no sprites for them; see docs/camera.md).
    """
    rng = np.random.default_rng(seed)
    lo, hi = FEET_BAND
    half = DOOR_VIEW.door_width_m / 2
    out: list[Walker] = []
    for p in crowd.people:
        if p.truth is None or p.truth_t is None or p.kind != "adult":
            continue
        t = float(p.truth_t)
        x0, y = p.position(t - 0.25)
        x1, _ = p.position(t + 0.25)
        speed = float(np.clip(abs(float(x1) - float(x0)) / 0.5, 0.6, 2.0))
        frac = float(np.clip(float(y) / door_width_m + 0.5, 0.0, 1.0))
        across = float(np.clip(float(y) * DOOR_VIEW.door_width_m / door_width_m, -half + 0.2, half - 0.2))
        out.append(Walker(t, p.truth, lo + frac * (hi - lo), speed, int(rng.integers(n_appearances)), across))
    return out
