"""Candidate crossings for annotating a counting line on vtest.avi, and strips to check them by eye.

    python -m bench.line_candidates --lines long_470,right_715 --frames 0 399
    python -m bench.line_candidates --lines long_470 --frames 0 399 --strips /tmp/strips

The truth files (tests/data/vtest_truth/<line>.csv) are written by a person, not by this
script: it only proposes. Two independent, slow, high-recall passes over every frame
(docs/camera.md "How the lines were annotated") each give tracks:

* **ssd**: the SSD on overlapping 150 px tiles upscaled 2x to the model's 300 px (far
  people become model-sized) plus the whole frame, a low score floor, tracked by our
  tracker with low thresholds;
* **mog2**: OpenCV's MOG2 background subtraction, foreground blobs as boxes (no detector
  at all), tracked the same way.

A track whose feet (box bottom centre) go from one side of the line to the other by more
than ``--hysteresis`` px, while within the segment, is a candidate. Candidates from both
passes are listed in time order with the pass that proposed them; ``--strips`` writes, per
candidate, a PNG strip of crops every 2nd frame from 6 before to 6 after, with the line,
the proposing track's box and the frame number drawn, to be checked by eye (duplicates,
people standing on the line and grazes are the annotator's to reject). Pass outputs are
cached in ~/.cache/footfall-bench so a second look costs decoding only.

This is an annotation aid and must never be pointed at the test part (test lines on
frames 400-794): ``--frames`` defaults to the dev frames and the script refuses test
lines on test frames. ``--audit-test-part`` lifts that refusal, with a warning: it exists
only for a blind audit of the test part's truth (annotating it again from the video), never
to look at the product's output there.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
CACHE = Path.home() / ".cache" / "footfall-bench"
TILE, OVERLAP = 150, 50


@dataclass(frozen=True)
class Candidate:
    """One proposed crossing: the frame where the feet are nearest the line."""

    line: str
    frame: int
    direction: str
    source: str
    track: int
    box: tuple[float, float, float, float]


def _frames(lo: int, hi: int):
    import cv2

    cap = cv2.VideoCapture(str(VTEST))
    try:
        for i in range(hi + 1):
            ok, img = cap.read()
            if not ok:
                return
            if i >= lo:
                yield i, img
    finally:
        cap.release()


def _tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    xs = list(range(0, w - TILE, TILE - OVERLAP)) + [w - TILE]
    ys = list(range(0, h - TILE, TILE - OVERLAP)) + [h - TILE]
    return [(x, y, x + TILE, y + TILE) for y in ys for x in xs]


def ssd_pass(lo: int, hi: int, threads: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame (boxes, scores): the SSD on 2x-upscaled overlapping tiles plus the whole frame."""
    import cv2

    from edge.detector import OnnxDetector, nms

    det = OnnxDetector("ssdlite_person", threads=threads, score_threshold=0.2)
    out = []
    for _, img in _frames(lo, hi):
        h, w = img.shape[:2]
        bs, ss = [], []
        d = det.detect(img)
        bs.append(d.boxes), ss.append(d.scores)
        for x1, y1, x2, y2 in _tiles(w, h):
            up = cv2.resize(img[y1:y2, x1:x2], (2 * TILE, 2 * TILE), interpolation=cv2.INTER_LINEAR)
            d = det.detect(up)
            if len(d):
                b = d.boxes / 2.0 + np.array([x1, y1, x1, y1], np.float32)
                # a box touching an inner tile edge is a cut person: the neighbour tile has them whole
                cut = (((b[:, 0] <= x1 + 2) & (x1 > 0)) | ((b[:, 2] >= x2 - 2) & (x2 < w))
                       | ((b[:, 1] <= y1 + 2) & (y1 > 0)) | ((b[:, 3] >= y2 - 2) & (y2 < h)))
                bs.append(b[~cut]), ss.append(d.scores[~cut])
        b, s = np.concatenate(bs), np.concatenate(ss)
        keep = nms(b, s, 0.5) if len(s) else np.zeros(0, np.int64)
        out.append((b[keep].astype(np.float32), s[keep].astype(np.float32)))
    return out


def mog2_pass(lo: int, hi: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame (boxes, scores): MOG2 foreground blobs (shadows dropped), score 0.9 each.
    The model learns the background from frame 0, so it starts at frame 0 whatever ``lo``."""
    import cv2

    bg = cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=25, detectShadows=True)
    kernel = np.ones((3, 3), np.uint8)
    out = []
    for i, img in _frames(0, hi):
        m = (bg.apply(img) == 255).astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel)
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((9, 5), np.uint8))
        n, _, st, _ = cv2.connectedComponentsWithStats(m)
        boxes = [(x, y, x + w, y + h) for x, y, w, h, a in st[1:] if a >= 120 and h >= 20 and h > 0.8 * w]
        if i >= lo:
            b = np.array(boxes, np.float32).reshape(-1, 4)
            out.append((b, np.full(len(b), 0.9, np.float32)))
    return out


def cached_pass(name: str, lo: int, hi: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A pass's per-frame boxes, from the disk cache when it holds them."""
    f = CACHE / f"candidates-{name}-{lo}-{hi}.npz"
    if f.is_file():
        with np.load(f) as z:
            ends = z["ends"]
            starts = np.concatenate([[0], ends[:-1]])
            return [(z["boxes"][a:b], z["scores"][a:b]) for a, b in zip(starts, ends)]
    res = ssd_pass(lo, hi) if name == "ssd" else mog2_pass(lo, hi)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(f, boxes=np.concatenate([b for b, _ in res]), scores=np.concatenate([s for _, s in res]),
             ends=np.cumsum([len(s) for _, s in res]))
    return res


def tracks(dets: list[tuple[np.ndarray, np.ndarray]], lo: int, fps: float) -> dict[int, list[tuple[int, np.ndarray]]]:
    """Track id -> [(frame, box)] with our tracker at low thresholds (high recall)."""
    from edge.tracker import Tracker, TrackerParams

    tr = Tracker(TrackerParams(high_score=0.3, low_score=0.15, new_track_score=0.3, max_lost_s=1.5))
    out: dict[int, list[tuple[int, np.ndarray]]] = {}
    for k, (b, s) in enumerate(dets):
        tf = tr.update(b, s, (lo + k) / fps)
        for tid, box in zip(tf.ids.tolist(), tf.boxes):
            out.setdefault(tid, []).append((lo + k, np.asarray(box, float)))
    return out


def crossings_of(track: list[tuple[int, np.ndarray]], spec: dict, hysteresis: float
                 ) -> list[tuple[int, str, np.ndarray]]:
    """(frame, direction, box) where the track's feet change side of the segment."""
    x1, y1, x2, y2 = spec["line"]
    ix, iy = spec["inside"]
    p = np.array([x1, y1], float)
    d = np.array([x2 - x1, y2 - y1], float)
    length = float(np.hypot(*d))
    u = d / length
    nrm = np.array([-u[1], u[0]])
    if np.dot(np.array([ix, iy]) - p, nrm) < 0:
        nrm = -nrm
    side, out, since = 0, [], []  # since: (frame, box, |s|) from the last definite side on
    for f, box in track:
        feet = np.array([(box[0] + box[2]) / 2, box[3]])
        s = float(np.dot(feet - p, nrm))
        along = float(np.dot(feet - p, u))
        if not -10 <= along <= length + 10:
            side, since = 0, []
            continue
        new = 1 if s > hysteresis else -1 if s < -hysteresis else 0
        since.append((f, box, abs(s)))
        if new and side and new != side:
            f0, b0, _ = min(since, key=lambda r: r[2])  # the frame where the feet are nearest the line
            out.append((f0, "in" if new > 0 else "out", b0))
        if new:
            side, since = new, [(f, box, abs(s))]
    return out


def candidates(lines: list[str], lo: int, hi: int, hysteresis: float = 4.0,
               audit_test_part: bool = False) -> list[Candidate]:
    """Candidate crossings of the named lines on frames lo..hi from both passes, in time order.
    Test lines on test frames are refused unless ``audit_test_part`` (a blind truth audit)."""
    spec = json.loads((DATA / "vtest_lines.json").read_text())
    split = spec["split"]
    for name in lines:
        if name in split["test_lines"] and hi >= split["test_frames"][0]:
            if not audit_test_part:
                raise SystemExit(f"{name} is a test line: frames {split['test_frames']} are the test part")
            print(f"WARNING: {name} is a test line and frames {split['test_frames']} are the test part: "
                  "--audit-test-part is only for a blind audit of the truth (annotation from the video), "
                  "never for the product's output", file=sys.stderr)
    out = []
    for src in ("ssd", "mog2"):
        for tid, tr in tracks(cached_pass(src, lo, hi), lo, spec["fps"]).items():
            for name in lines:
                for f, dr, box in crossings_of(tr, spec["lines"][name], hysteresis):
                    out.append(Candidate(name, f, dr, src, tid, tuple(float(v) for v in box)))
    return sorted(out, key=lambda c: (c.line, c.frame))


def write_strips(cands: list[Candidate], folder: Path, lo: int, hi: int) -> None:
    """One PNG per candidate: 7 crops (every 2nd frame, -6..+6), line, box and frame number drawn."""
    import cv2

    spec = json.loads((DATA / "vtest_lines.json").read_text())
    need = {f for c in cands for f in range(c.frame - 6, c.frame + 7, 2) if lo <= f <= hi}
    imgs = {i: img for i, img in _frames(min(need, default=lo), max(need, default=lo)) if i in need}
    folder.mkdir(parents=True, exist_ok=True)
    for n, c in enumerate(cands):
        x1, y1, x2, y2 = c.box
        hgt = max(y2 - y1, 40)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half_w, half_h = int(0.9 * hgt), int(0.9 * hgt)
        crops = []
        for f in range(c.frame - 6, c.frame + 7, 2):
            if f not in imgs:
                continue
            im = imgs[f].copy()
            lx1, ly1, lx2, ly2 = spec["lines"][c.line]["line"]
            cv2.line(im, (lx1, ly1), (lx2, ly2), (0, 255, 255), 1)
            if f == c.frame:
                cv2.rectangle(im, (int(x1), int(y1)), (int(x2), int(y2)), (0, 0, 255), 1)
            ax, ay = int(max(0, cx - half_w)), int(max(0, cy - half_h))
            crop = im[ay:int(cy + half_h), ax:int(cx + half_w)]
            crop = cv2.resize(crop, (160, 160))
            cv2.putText(crop, str(f), (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
            crops.append(crop)
        strip = np.concatenate(crops, axis=1)
        head = np.zeros((18, strip.shape[1], 3), np.uint8)
        cv2.putText(head, f"#{n} {c.line} f{c.frame} {c.direction} {c.source} t{c.track}", (3, 13),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        cv2.imwrite(str(folder / f"{c.line}-{n:03d}-f{c.frame}.png"), np.concatenate([head, strip]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.line_candidates", description=__doc__.splitlines()[0])
    ap.add_argument("--lines", required=True, help="comma-separated line names")
    ap.add_argument("--frames", nargs=2, type=int, default=[0, 399])
    ap.add_argument("--hysteresis", type=float, default=4.0)
    ap.add_argument("--strips", default=None, help="write one PNG strip per candidate here")
    ap.add_argument("--audit-test-part", action="store_true",
                    help="allow test lines on test frames, for a blind audit of the truth only (warns)")
    args = ap.parse_args(argv)
    lo, hi = args.frames
    cands = candidates(args.lines.split(","), lo, hi, args.hysteresis, args.audit_test_part)
    for n, c in enumerate(cands):
        print(f"#{n:3d} {c.line:10s} frame {c.frame:4d} {c.direction:3s} {c.source:4s} track {c.track:4d} "
              f"feet ({(c.box[0] + c.box[2]) / 2:.0f},{c.box[3]:.0f}) h {c.box[3] - c.box[1]:.0f}")
    if args.strips:
        write_strips(cands, Path(args.strips), lo, hi)
    return 0


if __name__ == "__main__":
    sys.exit(main())
