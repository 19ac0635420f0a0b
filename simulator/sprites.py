"""Real person appearances cut from real footage, for composing simulated camera scenes.

The shipped detector finds real people, not drawn shapes, so simulated video must show
real people. This module cuts walkers out of Debian's ``opencv-doc`` pedestrian clip
(vtest.avi) by background subtraction against the clip's median background:

* the background is the per-pixel median of frames spread over the clip (people move,
  the plaza does not);
* foreground masks (colour distance to the background, cleaned by morphology) give
  person-shaped blobs; blobs are linked frame to frame by overlap into *tracklets*;
* tracklets of one isolated, upright walker (person-like aspect and size, steady
  height, enough frames) become `Walker` appearances: a sequence of BGR crops with soft
  alpha masks, so a composed walker has a real gait.

Everything stays in memory: no person image is written to disk.
"""

from __future__ import annotations


from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


@dataclass(frozen=True, slots=True)
class Appearance:
    """One walker's look over consecutive frames: crops, alpha masks, walking direction."""

    crops: tuple[np.ndarray, ...]  # BGR, each (h, w, 3) uint8, feet at the bottom row
    alphas: tuple[np.ndarray, ...]  # float32 (h, w) in 0..1
    heading: int  # +1 walking right in the source clip, -1 left
    boxes: tuple[tuple[int, int, int, int], ...] = ()  # where each crop was in the source frame
    frames: tuple[int, ...] = ()  # which source frame each crop came from

    @property
    def key(self) -> str:
        """Where and when this appearance starts in the source clip: `f<frame>x<x>`."""
        return f"f{self.frames[0]}x{self.boxes[0][0]}" if self.frames and self.boxes else ""


@dataclass(frozen=True, slots=True)
class SpriteBank:
    background: np.ndarray  # the source clip's median background (BGR)
    appearances: tuple[Appearance, ...]


def _read_all(path: Path, step: int = 1) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"{path}: cannot read; apt-get install -y opencv-doc")
    frames = []
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(frame)
        i += 1
    cap.release()
    return frames


def median_background(frames: list[np.ndarray], samples: int = 60) -> np.ndarray:
    idx = np.linspace(0, len(frames) - 1, min(samples, len(frames))).astype(int)
    return np.median(np.stack([frames[i] for i in idx]), axis=0).astype(np.uint8)


def foreground_mask(frame: np.ndarray, background: np.ndarray, threshold: float = 38.0) -> np.ndarray:
    """Soft mask of what differs from the background (0..1), cleaned of specks and holes."""
    import cv2

    d = cv2.absdiff(frame, background)
    d16 = d.astype(np.uint16)
    diff2 = d16[..., 0] * d16[..., 0] + d16[..., 1] * d16[..., 1] + d16[..., 2] * d16[..., 2]
    hard = (diff2 > threshold * threshold).astype(np.uint8)
    hard = cv2.morphologyEx(hard, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    hard = cv2.morphologyEx(hard, cv2.MORPH_CLOSE, np.ones((7, 5), np.uint8))
    return hard


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def extract_appearances(
    frames: list[np.ndarray],
    background: np.ndarray,
    min_height: int = 60,
    min_frames: int = 12,
    max_appearances: int = 24,
) -> list[Appearance]:
    """Cut tracklets of isolated upright walkers out of the clip."""
    import cv2

    tracks: list[dict] = []  # open tracklets: boxes, crops, alphas, last frame
    done: list[dict] = []
    for fi, frame in enumerate(frames):
        mask = foreground_mask(frame, background)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        blobs = []
        for k in range(1, n):
            x, y, w, h, area = stats[k]
            if h < min_height or not 1.6 <= h / max(w, 1) <= 4.0 or area < 0.35 * w * h:
                continue
            if y + h >= frame.shape[0] - 2 or x <= 1 or x + w >= frame.shape[1] - 1:
                continue  # cut by the frame edge
            blobs.append((int(x), int(y), int(x + w), int(y + h)))
        used: set[int] = set()
        for tr in tracks:
            best, best_iou = -1, 0.3
            for j, b in enumerate(blobs):
                if j not in used and (v := _iou(tr["boxes"][-1], b)) > best_iou:
                    best, best_iou = j, v
            if best >= 0:
                used.add(best)
                tr["boxes"].append(blobs[best])
                tr["frames"].append(fi)
            tr["alive"] = best >= 0
        for tr in [t for t in tracks if not t["alive"]]:
            done.append(tr)
        tracks = [t for t in tracks if t["alive"]]
        for j, b in enumerate(blobs):
            if j not in used:
                tracks.append({"boxes": [b], "frames": [fi], "alive": True})
    done.extend(tracks)

    out: list[Appearance] = []
    for tr in sorted(done, key=lambda t: -len(t["frames"])):
        boxes = np.array(tr["boxes"], dtype=np.float64)
        if len(boxes) < min_frames:
            continue
        heights = boxes[:, 3] - boxes[:, 1]
        if heights.std() > 0.12 * heights.mean():
            continue  # merging/splitting blobs, not one steady walker
        cx = (boxes[:, 0] + boxes[:, 2]) / 2
        travel = cx[-1] - cx[0]
        if abs(travel) < 0.6 * heights.mean():
            continue  # standing or milling about: no walking gait
        crops, alphas, where = [], [], []
        for fi, (x1, y1, x2, y2) in zip(tr["frames"], tr["boxes"]):
            frame = frames[fi]
            pad = 3
            X1, Y1 = max(0, x1 - pad), max(0, y1 - pad)
            X2, Y2 = min(frame.shape[1], x2 + pad), min(frame.shape[0], y2 + pad)
            m = foreground_mask(frame[Y1:Y2, X1:X2], background[Y1:Y2, X1:X2]).astype(np.float32)
            m = cv2.GaussianBlur(m, (5, 5), 0)
            crops.append(frame[Y1:Y2, X1:X2].copy())
            alphas.append(m)
            where.append((X1, Y1, X2, Y2))
        out.append(Appearance(tuple(crops), tuple(alphas), 1 if travel > 0 else -1, tuple(where), tuple(tr["frames"])))
        if len(out) >= max_appearances:
            break
    return out


def recognisable(app: Appearance, background: np.ndarray, score: Callable[[np.ndarray], float],
                 min_score: float = 0.5) -> bool:
    """Whether a person detector still sees the cut-out person, pasted back where it was.

    Background subtraction sometimes loses a head against a dark wall or keeps a piece of
    a lamp post; such cut-outs are not people any more and would make the simulated
    scenes measure our cutting, not the counter. Start, middle and end crops must score.
    """
    for k in (0, len(app.crops) // 2, len(app.crops) - 1):
        x1, y1, x2, y2 = app.boxes[k]
        scene = background.astype(np.float32).copy()
        a = app.alphas[k][..., None]
        scene[y1:y2, x1:x2] = scene[y1:y2, x1:x2] * (1 - a) + app.crops[k] * a
        h = y2 - y1
        wx1, wy1 = max(0, x1 - h), max(0, y1 - h // 2)
        wx2, wy2 = min(scene.shape[1], x2 + h), min(scene.shape[0], y2 + h // 2)
        if score(scene[wy1:wy2, wx1:wx2].astype(np.uint8)) < min_score:
            return False
    return True


@lru_cache(maxsize=2)
def load_sprite_bank(path: str = str(VTEST), score: Callable[[np.ndarray], float] | None = None,
                     last_frame: int | None = None, exclude: tuple[str, ...] = ()) -> SpriteBank:
    """Background and walker appearances from a real clip (cached in memory per process).

    ``score`` (image -> best person score) drops cut-outs a detector no longer sees as a
    person; see `recognisable`. ``last_frame`` cuts walkers only from frames up to it, and
    ``exclude`` drops appearances by `Appearance.key`: together they keep the people of a
    clip's held-out part out of the scenes (docs/camera.md "How we measure"). The
    background is the median of the whole clip (no person stands still that long).
    """
    frames = _read_all(Path(path))
    background = median_background(frames)
    source = frames if last_frame is None else frames[: last_frame + 1]
    appearances = extract_appearances(source, background, max_appearances=40)
    appearances = [a for a in appearances if a.key not in exclude]
    if score is not None:
        appearances = [a for a in appearances if recognisable(a, background, score)]
    appearances = appearances[:24]
    if not appearances:
        raise RuntimeError(f"no isolated walkers found in {path}")
    return SpriteBank(background, tuple(appearances))

