"""Tiles: see small people along the whole counting line.

A 300x300 detector shown a whole 768x576 view (or a wide window around a long line)
shrinks a person 20 m away to a dozen pixels, and misses them. Here the line's
neighbourhood is cut into overlapping tiles of the model's own input size, so every
person reaches the model at the size the camera sees them; the tiles' boxes are merged
across tiles (a box cut by a tile's inner edge gives way to the whole one beside it,
then NMS), and a tile whose picture has not changed since its last inference hands back
its last boxes instead of running the model again (people standing still keep their
boxes; an empty quiet tile costs nothing).

`tile_rects` (pure geometry) chooses the tiles; `TiledDetector` runs any `OnnxDetector`
over them and has the same `detect(frame)` face, so the pipeline does not know.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edge.counting import CountingLine
from edge.detector import Detections, OnnxDetector, nms, suppress_merged
from edge.video_source import MotionGate

Rect = tuple[int, int, int, int]


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
    lines: Sequence[CountingLine], frame_w: int, frame_h: int, tile: int = 300, overlap: int = 120, reach: float = 150.0
) -> list[Rect]:
    """Overlapping ``tile`` x ``tile`` windows covering every point within ``reach`` pixels
    of the counting lines.

    ``overlap`` should exceed the tallest person near the line, so that everyone lies
    whole in at least one tile; ``reach`` gives the tracker room to pick a person up
    before the line. A frame smaller than a tile is one tile (the whole frame).
    """
    if tile <= overlap:
        raise ValueError("tile must be larger than overlap")
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
    whole = np.nonzero(~cut)[0]
    if whole.size:
        for i in np.nonzero(cut)[0]:
            b = boxes[i]
            w = boxes[whole]
            iw = np.maximum(np.minimum(w[:, 2], b[2]) - np.maximum(w[:, 0], b[0]), 0)
            ih = np.maximum(np.minimum(w[:, 3], b[3]) - np.maximum(w[:, 1], b[1]), 0)
            area = max(float((b[2] - b[0]) * (b[3] - b[1])), 1e-9)
            if (iw * ih / area).max() >= cover:
                keep[i] = False
    idx = np.nonzero(keep)[0]
    return idx[nms(boxes[idx], scores[idx], nms_iou)]


class TiledDetector:
    """`OnnxDetector` over fixed tiles of the frame, with per-tile motion skipping."""

    def __init__(self, detector: OnnxDetector, tiles: Sequence[Rect], *, motion: bool = True,
                 frame_size: tuple[int, int] | None = None) -> None:
        if not tiles:
            raise ValueError("at least one tile is needed")
        self.detector = detector
        self.manifest = detector.manifest
        self.score_threshold = detector.score_threshold
        self.tiles = [tuple(int(v) for v in t) for t in tiles]
        self.frame_size = frame_size
        self.gates = [MotionGate(roi=t, hold_frames=5) if motion else None for t in self.tiles]
        self._last: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [
            (np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), bool)) for _ in self.tiles]
        self.inferences = 0
        self.calls = 0

    def _cut_edges(self, tile: Rect, boxes: np.ndarray, fw: int, fh: int) -> np.ndarray:
        x1, y1, x2, y2 = tile
        m = 3.0
        return (((boxes[:, 0] <= x1 + m) & (x1 > 0)) | ((boxes[:, 1] <= y1 + m) & (y1 > 0))
                | ((boxes[:, 2] >= x2 - m) & (x2 < fw)) | ((boxes[:, 3] >= y2 - m) & (y2 < fh)))

    def detect(self, frame_bgr: np.ndarray, roi: tuple[int, int, int, int] | None = None) -> Detections:
        """Person boxes in frame pixels from all tiles (``roi`` is ignored: the tiles are the window)."""
        fh, fw = frame_bgr.shape[:2]
        self.calls += 1
        for k, (tile, gate) in enumerate(zip(self.tiles, self.gates)):
            if gate is not None and not gate.should_process(frame_bgr):
                continue
            d = self.detector.detect(frame_bgr, roi=tile)
            self.inferences += 1
            self._last[k] = (d.boxes, d.scores, self._cut_edges(tile, d.boxes, fw, fh))
        boxes = np.concatenate([b for b, _, _ in self._last])
        if boxes.shape[0] == 0:
            return Detections.empty()
        scores = np.concatenate([s for _, s, _ in self._last])
        cut = np.concatenate([c for _, _, c in self._last])
        keep = merge_tiles(boxes, scores, cut, self.detector.nms_iou)
        boxes, scores = boxes[keep], scores[keep]
        if self.detector.merged_cover > 0 and boxes.shape[0] >= 3:
            k2 = suppress_merged(boxes, scores, self.detector.merged_cover)
            boxes, scores = boxes[k2], scores[k2]
        return Detections(boxes.astype(np.float32), scores.astype(np.float32))

    @property
    def skipped_share(self) -> float:
        """Share of tile inferences the motion test saved."""
        total = self.calls * len(self.tiles)
        return 1.0 - self.inferences / total if total else 0.0
