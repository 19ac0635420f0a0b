"""Tiles: see small people along the whole counting line.

A 300x300 detector shown a whole 768x576 view (or a wide window around a long line)
shrinks a person 20 m away to a dozen pixels, and misses them. Here the line's
neighbourhood is cut into overlapping tiles of the model's own input size, so every
person reaches the model at the size the camera sees them; the tiles' boxes are merged
across tiles (a box cut by a tile's inner edge gives way to the whole one beside it,
then NMS), and a tile whose picture has not changed since its last inference hands back
its last boxes instead of running the model again (people standing still keep their
boxes; an empty quiet tile costs nothing).

Near the camera people are large, and model-sized tiles there are more than the model
needs: once `PersonScale` has learnt the camera's perspective (box height against feet
row, from the detector's own boxes in the first frames), the windows are re-planned,
each as large as still shows the smallest person in it at least `MIN_PERSON_PX` tall at
the model's input, and the plan is kept when it needs fewer windows (a line from corner
to corner of a 768x576 view: 12 tiles -> 6 windows).

Not every window runs on every frame: one window per person near a line does, the rest
every 2nd frame (`STRIDE`; the tracker coasts between), because only near the line does
a frame more or less change a count.

`tile_rects` (pure geometry) chooses the tiles; `TiledDetector` runs any `OnnxDetector`
over them and has the same `detect(frame)` face, so the pipeline does not know.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from edge.box_overlap import inside_share, iou
from edge.counting import CountingLine
from edge.detector import Detections, OnnxDetector, nms, suppress_merged

Rect = tuple[int, int, int, int]
PersonHeight = Callable[[float], float]

# The smallest a person may be shown to the model when a window is shrunk to its input
# (pixels; people smaller than this in the frame are shown at their own size). Chosen on
# the dev part only: docs/camera.md, "Windows sized to the people".
MIN_PERSON_PX = 64.0

# The schedule (docs/camera.md, "Which windows run on a frame"). For each person whose
# feet were within ``NEAR_LINE_HEIGHTS`` of their own box height of a line, one window
# that showed them whole runs every frame; every other window runs every ``STRIDE``-th.
# The tracker measures in box heights and seconds (`edge.tracker.TrackerParams`), so a
# walker (about 1.4 m/s, 1.7 m tall: 0.8 box heights a second) moves the same share of
# their height per frame near the camera or far from it: the camera's row is no reason
# to skip, nearness to the line is. STRIDE 2 keeps the gap between a window's runs (0.2 s
# at 10 fps) under the tracker's `tentative_lost_s` (0.3 s), so a newcomer seen once is
# still there to be confirmed at the next run; 1.0 box height is more than a walker
# covers in a second, so everyone is seen every frame for the second before a crossing,
# through the crossing and its 0.5 s settling.
STRIDE = 2
NEAR_LINE_HEIGHTS = 1.0


def _spread(lo: float, hi: float, size: int, overlap: int, limit: int) -> list[int]:
    """Start positions of tiles of ``size`` covering [lo, hi] with at least ``overlap``
    shared, evenly spread, inside [0, limit]."""
    lo, hi = max(0.0, lo), min(float(limit), hi)
    if size >= limit:
        return [0]
    span = max(hi - lo, size)
    n = max(1, math.ceil((span - overlap) / (size - overlap)))
    start = min(max(0.0, (lo + hi) / 2 - span / 2), limit - span) if span < limit else 0.0
    start = max(0.0, start)
    end = min(limit - size, start + span - size)
    return sorted({int(round(v)) for v in np.linspace(start, end, n)}) if n > 1 else [int(round(max(0.0, min(start, limit - size))))]


def _rect_segment_distance(rect: Rect, p1: tuple[float, float], p2: tuple[float, float]) -> float:
    """Distance from a rectangle to a segment (sampled along the segment; pixels)."""
    x1, y1, x2, y2 = rect
    ts = np.linspace(0.0, 1.0, 64)
    px = p1[0] + (p2[0] - p1[0]) * ts
    py = p1[1] + (p2[1] - p1[1]) * ts
    dx = np.maximum(np.maximum(x1 - px, 0), px - x2)
    dy = np.maximum(np.maximum(y1 - py, 0), py - y2)
    return float(np.hypot(dx, dy).min())


def tile_rects(
    lines: Sequence[CountingLine], frame_w: int, frame_h: int, tile: int = 300, overlap: int = 120, reach: float = 150.0,
    person_height: PersonHeight | None = None, min_person: float = 64.0, max_scale: float = 3.0, whole: float = 60.0,
) -> list[Rect]:
    """Overlapping square windows covering every point within ``reach`` pixels of the
    counting lines.

    Without ``person_height`` every window is ``tile`` x ``tile`` (the model's input, no
    scaling): ``overlap`` should exceed the tallest person near the line, so that everyone
    lies whole in at least one tile; ``reach`` gives the tracker room to pick a person up
    before the line. A frame smaller than a tile is one tile (the whole frame).

    With ``person_height`` (feet row -> a person's height in pixels there, the camera's
    perspective) the windows are planned row by row down the frame, each row's windows
    as large as lets the smallest whole person in that row still reach the model at least
    ``min_person`` pixels tall (scale ``s`` = window / tile, 1 to ``max_scale``); ``overlap``
    and ``reach`` are in model pixels (times ``s`` in the frame), and rows overlap by at
    least the tallest person at their seam. Near the camera people are large, so a few
    large windows, shrunk to the model's input, cover what many tiles did.
    """
    if tile <= overlap:
        raise ValueError("tile must be larger than overlap")
    if person_height is not None:
        return _scaled_rects(lines, frame_w, frame_h, tile, reach, person_height, min_person, max_scale, whole)
    out: set[Rect] = set()
    tw, th = min(tile, frame_w), min(tile, frame_h)
    for ln in lines:
        xs = (min(ln.p1[0], ln.p2[0]) - reach, max(ln.p1[0], ln.p2[0]) + reach)
        ys = (min(ln.p1[1], ln.p2[1]) - reach, max(ln.p1[1], ln.p2[1]) + reach)
        for x in _spread(*xs, tw, min(overlap, tw - 1), frame_w):
            for y in _spread(*ys, th, min(overlap, th - 1), frame_h):
                r = (x, y, x + tw, y + th)
                if _rect_segment_distance(r, ln.p1, ln.p2) <= reach:
                    out.add(r)
    return sorted(out, key=lambda r: (r[1], r[0]))


def _feet_samples(lines: Sequence[CountingLine], frame_w: int, frame_h: int, reach: float, step: float) -> np.ndarray:
    """Feet positions (x, y, place along the lines, distance to the nearest line) on a
    ``step`` grid within ``reach`` of any line."""
    xs = np.arange(step / 2, frame_w, step)
    ys = np.arange(step / 2, frame_h, step)
    gx, gy = np.meshgrid(xs, ys)
    px, py = gx.ravel(), gy.ravel()
    near = np.zeros(px.shape, bool)
    along = np.full(px.shape, np.inf)
    gap = np.full(px.shape, np.inf)
    for n, ln in enumerate(lines):
        (x1, y1), (x2, y2) = ln.p1, ln.p2
        dx, dy = x2 - x1, y2 - y1
        t = np.clip(((px - x1) * dx + (py - y1) * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
        dist = np.hypot(px - (x1 + t * dx), py - (y1 + t * dy))
        hit = dist <= reach
        along[hit & ~near] = n + t[hit & ~near]
        gap = np.minimum(gap, dist)
        near |= hit
    return np.stack([px[near], py[near], along[near], gap[near]], axis=1)


def _scaled_rects(lines: Sequence[CountingLine], frame_w: int, frame_h: int, tile: int, reach: float,
                  person_height: PersonHeight, min_person: float, max_scale: float, whole: float) -> list[Rect]:
    """Greedy set cover: the fewest square windows such that every person whose feet lie
    within ``reach`` of a line is whole in a window that shows them at least
    ``min(their height, min_person)`` pixels tall at the model's input."""
    feet = _feet_samples(lines, frame_w, frame_h, reach, step=8.0)
    if feet.shape[0] == 0:
        return []
    h = np.maximum(np.array([person_height(float(y)) for y in feet[:, 1]]), 4.0)
    # the box a person standing there fills: 1.1x the expected height (people differ), half
    # as wide; farther than ``whole`` from the line a person need only be seen (their feet
    # in a window), as the grid's tiles did, so the tracker has them before the line
    hb = np.where(feet[:, 3] <= whole, 1.1 * h, 0.0)
    bx1 = np.clip(feet[:, 0] - hb / 4, 0, frame_w)
    bx2 = np.clip(feet[:, 0] + hb / 4, 0, frame_w)
    by1 = np.clip(feet[:, 1] - hb, 0, frame_h)
    by2 = np.clip(feet[:, 1] + 2, 0, frame_h)
    s_max = np.minimum(np.maximum(1.0, h / min_person), max_scale)
    side_max = min(frame_w, frame_h)
    m = 4.0  # a box this close to a window's inner edge counts as cut (TiledDetector._cut_edges uses 3 px)
    cands: list[Rect] = []
    cover: list[np.ndarray] = []
    for s in (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0):
        side = int(min(round(tile * s), side_max))
        scale = side / tile
        if scale > max_scale + 1e-9 or (s > 1.0 and side < round(tile * s) and cands and cands[-1][2] - cands[-1][0] == side):
            continue
        xs = sorted({*range(0, frame_w - side + 1, 16), frame_w - side})
        ys = sorted({*range(0, frame_h - side + 1, 16), frame_h - side})
        for y0 in ys:
            in_y = (((by1 >= y0 + m) | (y0 == 0)) & ((by2 <= y0 + side - m) | (y0 + side >= frame_h)) & (s_max >= scale - 1e-9))
            if not in_y.any():
                continue
            for x0 in xs:
                c = in_y & ((bx1 >= x0 + m) | (x0 == 0)) & ((bx2 <= x0 + side - m) | (x0 + side >= frame_w))
                if c.any():
                    cands.append((x0, y0, x0 + side, y0 + side))
                    cover.append(c)
    if not cands:
        return []
    cov = np.array(cover)
    todo = cov.any(axis=0)  # people no window can show whole at a fitting scale are left out
    # sweep along the line: the first person not yet covered picks, among the windows that
    # hold them, the one that covers most of the rest (a greedy cover that starts at one
    # end leaves no scattered remnants, unlike picking the biggest window first)
    order = np.argsort(feet[:, 2], kind="stable")
    chosen: list[Rect] = []
    for i in order:
        if not todo[i]:
            continue
        holding = np.nonzero(cov[:, i])[0]
        gain = (cov[holding] & todo).sum(axis=1)
        k = int(holding[int(np.argmax(gain))])
        chosen.append(cands[k])
        todo &= ~cov[k]
    # drop a window whose people all lie in the others
    for r in list(chosen):
        rest = [cands.index(c) for c in chosen if c != r]
        if rest and not (cov[cands.index(r)] & ~cov[rest].any(axis=0) & cov.any(axis=0)).any():
            chosen.remove(r)
    return sorted(chosen, key=lambda r: (r[1], r[0]))


def merge_tiles(
    boxes: np.ndarray, scores: np.ndarray, cut: np.ndarray, nms_iou: float, cover: float = 0.5
) -> np.ndarray:
    """Indices of the boxes to keep from several overlapping tiles.

    A box ``cut`` by a tile's inner edge is dropped when at least ``cover`` of it lies
    inside a whole box from another tile (the same person, seen whole there); then NMS
    across tiles removes the remaining doubles.
    """
    n = boxes.shape[0]
    if n == 0:
        return np.zeros((0,), np.int64)
    keep = np.ones(n, dtype=bool)
    whole, parts = np.nonzero(~cut)[0], np.nonzero(cut)[0]
    if whole.size and parts.size:
        keep[parts[inside_share(boxes[parts], boxes[whole]).max(axis=1) >= cover]] = False
    idx = np.nonzero(keep)[0]
    return idx[nms(boxes[idx], scores[idx], nms_iou)]


class PersonScale:
    """A person's height by feet row, learnt from the detector's own boxes.

    The camera's perspective makes people nearer the bottom of the frame taller; a
    straight-line fit of box height against feet row over confident, whole boxes (not cut
    by a tile edge, not touching the frame's top or bottom) gives it. The fit is offered
    only once ``min_boxes`` boxes span at least ``min_spread`` of the frame's height, and
    is never extended below the lowest feet row seen (no guessing people larger than
    observed: too large a guess would shrink people below what the model sees).
    """

    def __init__(self, frame_h: int, min_boxes: int = 60, min_spread: float = 0.2, min_score: float = 0.5) -> None:
        self.frame_h = frame_h
        self.min_boxes = min_boxes
        self.min_spread = min_spread
        self.min_score = min_score
        self._feet: list[np.ndarray] = []
        self._height: list[np.ndarray] = []
        self.n = 0

    def add(self, boxes: np.ndarray, scores: np.ndarray, cut: np.ndarray) -> None:
        ok = (scores >= self.min_score) & ~cut & (boxes[:, 1] > 2) & (boxes[:, 3] < self.frame_h - 2)
        if ok.any():
            self._feet.append(boxes[ok, 3].astype(np.float64))
            self._height.append((boxes[ok, 3] - boxes[ok, 1]).astype(np.float64))
            self.n += int(ok.sum())

    def fit(self) -> PersonHeight | None:
        """``feet row -> height`` once enough is seen, else None."""
        if self.n < self.min_boxes:
            return None
        y, h = np.concatenate(self._feet), np.concatenate(self._height)
        lo, hi = np.percentile(y, [5, 95])
        if hi - lo < self.min_spread * self.frame_h:
            return None
        a, b = np.polyfit(y, h, 1)
        ok = np.abs(h - (a * y + b)) <= 0.25 * np.maximum(a * y + b, 1.0)  # one pass without outliers
        if ok.sum() >= self.min_boxes // 2:
            a, b = np.polyfit(y[ok], h[ok], 1)
        if a <= 0 or a * lo + b <= 0:
            return None
        top = float(hi)
        return lambda row: float(a * min(row, top) + b)


class _SharedMotion:
    """Per-tile motion test on one downscaled grey copy of the frame (made once per frame,
    not once per tile): a tile moves when more than ``min_changed`` of its pixels differ
    by more than ``pixel_delta`` from its last inference; after motion ``hold_frames``
    more frames run (as `MotionGate`)."""

    def __init__(self, n: int, scale: float = 0.5, pixel_delta: int = 18, min_changed: float = 0.002,
                 hold_frames: int = 5) -> None:
        self.scale = scale
        self.pixel_delta = pixel_delta
        self.min_changed = min_changed
        self.hold_frames = hold_frames
        self._ref: list[np.ndarray | None] = [None] * n
        self._hold = [0] * n
        self._small: np.ndarray | None = None

    def frame(self, image: np.ndarray) -> None:
        import cv2

        h, w = image.shape[:2]
        small = cv2.resize(image, (max(1, round(w * self.scale)), max(1, round(h * self.scale))),
                           interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        self._small = cv2.GaussianBlur(grey, (5, 5), 0)

    def moved(self, k: int, tile: Rect) -> bool:
        import cv2

        assert self._small is not None
        x1, y1, x2, y2 = (int(round(v * self.scale)) for v in tile)
        view = self._small[y1:y2, x1:x2]
        ref = self._ref[k]
        if ref is None or ref.shape != view.shape:
            self._ref[k], self._hold[k] = view, self.hold_frames
            return True
        if np.count_nonzero(cv2.absdiff(view, ref) > self.pixel_delta) > self.min_changed * view.size:
            self._hold[k] = self.hold_frames
        if self._hold[k] > 0:
            self._hold[k] -= 1
            self._ref[k] = view
            return True
        return False


class TiledDetector:
    """`OnnxDetector` over tiles of the frame, with per-tile motion skipping.

    Given the counting ``lines``, it starts on the grid of model-sized tiles and, once
    `PersonScale` has learnt the camera's perspective from its own boxes, re-plans the
    windows with `tile_rects(person_height=...)` and keeps that plan if it needs fewer
    windows (a line from near to far: large windows, shrunk to the model's input, where
    people are large).
    """

    def __init__(self, detector: OnnxDetector, tiles: Sequence[Rect], *, motion: bool = True,
                 frame_size: tuple[int, int] | None = None, lines: Sequence[CountingLine] | None = None,
                 min_person: float = MIN_PERSON_PX, stride: int = STRIDE,
                 near_line_heights: float = NEAR_LINE_HEIGHTS) -> None:
        if not tiles:
            raise ValueError("at least one tile is needed")
        self.detector = detector
        self.manifest = detector.manifest
        self.score_threshold = detector.score_threshold
        self.frame_size = frame_size
        self.motion = motion
        self.lines = list(lines) if lines else []
        self.min_person = min_person
        self.stride = max(1, int(stride)) if self.lines else 1  # without lines nothing is "near"
        self.near_line_heights = near_line_heights
        self.scale: PersonScale | None = None
        self.replanned = False
        self.replanned_at: int | None = None  # the call (frame) that re-planned the windows
        self.inferences = 0
        self.scheduled_skips = 0  # window-frames left out by the schedule (not by the motion test)
        self.calls = 0
        self._slots = 0
        self._use(tiles)

    def _use(self, tiles: Sequence[Rect]) -> None:
        self.tiles = [tuple(int(v) for v in t) for t in tiles]
        self._motion = _SharedMotion(len(self.tiles)) if self.motion else None
        self._last: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [
            (np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), bool)) for _ in self.tiles]
        self._ran = [False] * len(self.tiles)  # run at least once since the plan was made
        self._needed = [True] * len(self.tiles)  # must run on this frame (the schedule, `_plan`)

    def _near_line(self, boxes: np.ndarray) -> np.ndarray:
        """Which boxes' feet (bottom centre) lie within ``near_line_heights`` of their own
        height of a counting line."""
        near = np.zeros(boxes.shape[0], bool)
        if boxes.shape[0] == 0:
            return near
        fx = (boxes[:, 0] + boxes[:, 2]) / 2
        fy = boxes[:, 3]
        reach = self.near_line_heights * np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
        for ln in self.lines:
            (x1, y1), (x2, y2) = ln.p1, ln.p2
            dx, dy = x2 - x1, y2 - y1
            t = np.clip(((fx - x1) * dx + (fy - y1) * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
            near |= np.hypot(fx - (x1 + t * dx), fy - (y1 + t * dy)) <= reach
        return near

    def _plan(self) -> None:
        """Which windows must run on the next frame: for each person near a line (in the
        windows' last boxes), one window that showed them whole; a person near a line seen
        only cut keeps every window that holds them running. The rest wait their turn."""
        claimed: list[np.ndarray] = []
        need = [not ran for ran in self._ran]
        cut_near: list[tuple[int, np.ndarray]] = []
        for k, (boxes, _, cut) in enumerate(self._last):
            near = self._near_line(boxes)
            whole = boxes[near & ~cut]
            if near.any() and (near & cut).any():
                cut_near.append((k, boxes[near & cut]))
            if whole.shape[0] == 0:
                continue
            if claimed:
                seen = np.concatenate(claimed)
                new = iou(whole, seen).max(axis=1) < 0.3
            else:
                new = np.ones(whole.shape[0], bool)
            if new.any():
                need[k] = True
                claimed.append(whole)
        seen = np.concatenate(claimed) if claimed else np.zeros((0, 4), np.float32)
        for k, boxes in cut_near:
            if seen.shape[0] == 0 or (inside_share(boxes, seen).max(axis=1) < 0.5).any():
                need[k] = True
        self._needed = need

    def _due(self, k: int) -> bool:
        """The schedule: every frame while this window is the one that shows someone near a
        line whole, else every ``stride``-th frame (windows staggered so each frame runs
        about the same number)."""
        return self.stride <= 1 or self._needed[k] or (self.calls + k) % self.stride == 0

    def _cut_edges(self, tile: Rect, boxes: np.ndarray, fw: int, fh: int) -> np.ndarray:
        x1, y1, x2, y2 = tile
        m = 3.0
        return (((boxes[:, 0] <= x1 + m) & (x1 > 0)) | ((boxes[:, 1] <= y1 + m) & (y1 > 0))
                | ((boxes[:, 2] >= x2 - m) & (x2 < fw)) | ((boxes[:, 3] >= y2 - m) & (y2 < fh)))

    def _learn(self, boxes: np.ndarray, scores: np.ndarray, cut: np.ndarray, fw: int, fh: int) -> None:
        if self.replanned or not self.lines:
            return
        if self.scale is None:
            self.scale = PersonScale(fh)
        self.scale.add(boxes, scores, cut)
        height = self.scale.fit()
        if height is None:
            return
        self.replanned = True
        tile = min(self.manifest.input.width, self.manifest.input.height)
        plan = tile_rects(self.lines, fw, fh, tile=tile, person_height=height, min_person=self.min_person)
        if plan and len(plan) < len(self.tiles):
            self._use(plan)
            self.replanned_at = self.calls

    def detect(self, frame_bgr: np.ndarray, roi: tuple[int, int, int, int] | None = None) -> Detections:
        """Person boxes in frame pixels from all tiles (``roi`` is ignored: the tiles are the window)."""
        fh, fw = frame_bgr.shape[:2]
        self.calls += 1
        self._slots += len(self.tiles)
        if self._motion is not None:
            self._motion.frame(frame_bgr)
        waiting: list[int] = []  # windows the schedule leaves out this frame
        for k, tile in enumerate(self.tiles):
            if not self._due(k):
                waiting.append(k)
                self.scheduled_skips += 1
                continue
            if self._motion is not None and not self._motion.moved(k, tile):
                continue  # a still picture: its last boxes stand (people standing keep theirs)
            d = self.detector.detect(frame_bgr, roi=tile)
            self.inferences += 1
            self._last[k] = (d.boxes, d.scores, self._cut_edges(tile, d.boxes, fw, fh))
            self._ran[k] = True
        if self.stride > 1:
            self._plan()
        # a waiting window's people moved since its last run: its old boxes are left out and
        # the tracker coasts them for a frame
        fresh = [last for k, last in enumerate(self._last) if k not in waiting]
        boxes = np.concatenate([b for b, _, _ in fresh]) if fresh else np.zeros((0, 4), np.float32)
        if boxes.shape[0] == 0:
            return Detections.empty()
        scores = np.concatenate([s for _, s, _ in fresh])
        cut = np.concatenate([c for _, _, c in fresh])
        if waiting and cut.any():
            # a box cut by a running window's edge whose person lies in a waiting window is
            # that window's to see whole at its next run (a cut box's bottom is not the feet)
            inside = np.zeros(cut.shape, bool)
            for x1, y1, x2, y2 in (self.tiles[k] for k in waiting):
                iw = np.clip(np.minimum(boxes[:, 2], x2) - np.maximum(boxes[:, 0], x1), 0, None)
                ih = np.clip(np.minimum(boxes[:, 3], y2) - np.maximum(boxes[:, 1], y1), 0, None)
                area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-9)
                inside |= iw * ih / area >= 0.5
            drop = cut & inside
            if drop.any():
                boxes, scores, cut = boxes[~drop], scores[~drop], cut[~drop]
                if boxes.shape[0] == 0:
                    return Detections.empty()
        keep = merge_tiles(boxes, scores, cut, self.detector.nms_iou)
        boxes, scores, cut = boxes[keep], scores[keep], cut[keep]
        if self.detector.merged_cover > 0 and boxes.shape[0] >= 3:
            k2 = suppress_merged(boxes, scores, self.detector.merged_cover)
            boxes, scores, cut = boxes[k2], scores[k2], cut[k2]
        out = Detections(boxes.astype(np.float32), scores.astype(np.float32))
        self._learn(out.boxes, out.scores, cut, fw, fh)
        return out

    @property
    def skipped_share(self) -> float:
        """Share of window inferences saved (the motion test and the schedule together)."""
        return 1.0 - self.inferences / self._slots if self._slots else 0.0

    @property
    def scheduled_share(self) -> float:
        """Share of window inferences the schedule alone left out."""
        return self.scheduled_skips / self._slots if self._slots else 0.0
