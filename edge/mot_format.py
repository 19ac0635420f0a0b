"""MOT-Challenge text format: ``frame,id,x,y,w,h,score,...`` one box per line.

Why this format: it is what detector dumps and tracking benchmarks already speak, so a
technician can replay a recorded detection file through the tracker and counting line
without video (no image of a visitor is needed). Frames are 1-based; x, y are the
top-left corner; columns after the score are kept by tools like this one as -1.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

import numpy as np

__all__ = ["MotFormatError", "MotFrame", "read_detections", "write_tracks"]


class MotFormatError(ValueError):
    """A line of a MOT file that cannot be read; says which line and why."""


@dataclass(frozen=True, slots=True)
class MotFrame:
    frame: int
    boxes_xyxy: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32


def _parse(lines: Iterable[str], source: str) -> dict[int, list[tuple[float, ...]]]:
    rows: dict[int, list[tuple[float, ...]]] = {}
    for lineno, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
        if len(parts) < 6:
            raise MotFormatError(
                f"{source}:{lineno}: expected at least 6 comma-separated values "
                f"(frame,id,x,y,w,h[,score,...]), got {len(parts)}: {text!r}"
            )
        try:
            vals = [float(p) for p in parts[:7]]
        except ValueError:
            raise MotFormatError(f"{source}:{lineno}: not a number in {text!r}") from None
        frame_f, _id, x, y, w, h = vals[:6]
        score = vals[6] if len(vals) > 6 else 1.0
        if frame_f != int(frame_f) or frame_f < 1:
            raise MotFormatError(f"{source}:{lineno}: frame must be a whole number >= 1, got {parts[0]}")
        if not all(np.isfinite(v) for v in (x, y, w, h, score)):
            raise MotFormatError(f"{source}:{lineno}: values must be finite: {text!r}")
        if w <= 0 or h <= 0:
            raise MotFormatError(f"{source}:{lineno}: box width and height must be positive: {text!r}")
        rows.setdefault(int(frame_f), []).append((x, y, x + w, y + h, score))
    return rows


def read_detections(fh: TextIO, source: str = "<detections>", fill_gaps: bool = True
                    ) -> Iterator[MotFrame]:
    """Frames in order; with ``fill_gaps`` also the frames with no detection in between
    (a tracker must see empty frames for lost tracks to age). The id column is ignored."""
    rows = _parse(fh, source)
    if not rows:
        return
    frames = range(1, max(rows) + 1) if fill_gaps else sorted(rows)
    for f in frames:
        r = rows.get(f)
        if r:
            a = np.asarray(r, dtype=np.float32)
            yield MotFrame(f, a[:, :4], a[:, 4])
        else:
            yield MotFrame(f, np.zeros((0, 4), np.float32), np.zeros(0, np.float32))


def write_tracks(fh: TextIO, frame: int, ids: np.ndarray, boxes_xyxy: np.ndarray,
                 scores: np.ndarray | None = None) -> None:
    """Append one frame's tracks as MOT lines (``frame,id,x,y,w,h,score,-1,-1,-1``)."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    s = np.ones(b.shape[0]) if scores is None else np.asarray(scores, dtype=np.float64)
    for tid, (x1, y1, x2, y2), sc in zip(np.asarray(ids).tolist(), b.tolist(), s.tolist()):
        fh.write(f"{frame},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{sc:.3f},-1,-1,-1\n")
