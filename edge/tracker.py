"""Multi-object tracking of per-frame person boxes, all tracks at once.

Why it is shaped like this: on a Raspberry Pi the tracker shares the CPU with the
detector, and a crowded lobby puts a hundred or more people in view. Per-track Python
objects (as in SORT/ByteTrack ports) cost microseconds per track per frame; here:

* state lives in one preallocated ``(capacity, 17)`` float64 matrix; live tracks are the
  first ``n`` rows;
* the per-frame work (prediction, gating and cost, assignment, correction, births,
  expiry) runs over that matrix as whole-array numpy (``edge.tracker_numpy``, what every
  install runs), or, with the optional `jit` extra (numba), as compiled loops
  (``edge.tracker_kernels``) that give the same tracks;
* the constant-velocity Kalman filter is in closed form: each box edge is a coordinate
  with a velocity, all four share one 2x2 covariance per track (three numbers);
* association is ByteTrack-style: confident detections take tracks first, weak ones only
  continue confirmed tracks; the cost is -IoU, with a Mahalanobis centre-distance
  fallback (inside a chi-square gate) for small or fast boxes that no longer overlap;
* candidate pairs come from a sort along one axis and a conservative window on both
  axes, so the work grows with the number of plausible pairs, not tracks x detections;
* assignment is greedy by cost (measured: the optimal one bought nothing here);
* birth, confirmation and loss are measured in seconds, so 5 fps and 30 fps behave the
  same.

The module does no I/O, owns no thread and no clock: boxes, scores and a timestamp in,
arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import math
import os
from types import ModuleType

import numpy as np

from edge import tracker_numpy as _k

__all__ = ["TrackFrame", "Tracker", "TrackerParams"]


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """Tracker settings. Distances are relative to the box height, times in seconds.

    The defaults suit a camera over a door at 5 to 30 fps with a person detector whose
    true detections mostly score above 0.5.
    """

    high_score: float = 0.5
    """Detections at or above this score are matched first and may start tracks."""
    low_score: float = 0.1
    """Detections below this score are ignored; between low and high they only continue
    confirmed tracks (ByteTrack's second stage: occluded people score low)."""
    new_track_score: float = 0.6
    """An unmatched detection starts a track only at or above this score."""
    iou_min: float = 0.3
    """A pair with at least this IoU is matched by overlap (cost 1 - IoU)."""
    gate_chi2: float = 9.21
    """Below ``iou_min`` a pair may still match if its squared centre distance over the
    predicted variance is below this (chi-square, 2 dof, 99%)."""
    gate_max: float = 0.85
    """...and its centre distance is below this many box heights: a young track's
    velocity is a guess, and coasting on it must not reach across the picture."""
    confirm_s: float = 0.15
    """A track is confirmed when a detection is matched to it at least this long after
    its birth (so at least twice, whatever the frame rate)."""
    tentative_lost_s: float = 0.3
    """An unconfirmed track unmatched for longer than this is dropped."""
    max_lost_s: float = 1.0
    """A confirmed track unmatched for longer than this is dropped."""
    meas_std: float = 0.05
    """Detector centre noise, in box heights."""
    accel_std: float = 0.2
    """Random acceleration of a walker, in box heights per second squared."""
    vel_init_std: float = 1.0
    """Prior velocity spread of a new track, in box heights per second."""
    assignment: str = "greedy"
    """"greedy" (default, measured as good here and cheaper) or "optimal" (scipy's
    linear_sum_assignment on the same costs; needs scipy; for comparison)."""
    dense_pairs_max: int | None = None
    """Up to this many tracks x detections every pair is scored; above it candidate
    pairs come from a sorted window. None: each path's measured best (numpy: 8192,
    about 80 in view; compiled: 64, the window is cheaper from a few people on)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_score <= self.high_score <= 1.0:
            raise ValueError("need 0 <= low_score <= high_score <= 1")
        if not 0.0 < self.iou_min < 1.0:
            raise ValueError("iou_min must be within (0, 1)")
        for name in ("gate_chi2", "gate_max", "meas_std", "accel_std", "vel_init_std"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.assignment not in ("greedy", "optimal"):
            raise ValueError('assignment must be "greedy" or "optimal"')
        if not 0 < self.confirm_s and 0 <= self.tentative_lost_s <= self.max_lost_s:
            raise ValueError("need 0 < confirm_s and 0 <= tentative_lost_s <= max_lost_s")


class TrackFrame(NamedTuple):
    """The tracks a detection was matched to (or started) in this frame.

    Tracks that are coasting (alive but unmatched this frame) are not listed: their
    position is only a prediction, and counting on predictions makes false crossings.
    ``boxes`` are the detections the tracks took (what was seen): counting lines use
    them, because a constant-velocity estimate overshoots when a walker stops short
    of a line and turns back; hysteresis absorbs their jitter. ``filtered`` holds the
    Kalman estimates, smoother, for drawing. (A NamedTuple: it is built every frame,
    and a frozen dataclass costs several microseconds more to build.)
    """

    ids: np.ndarray  # (K,) int64, unique, never reused by this Tracker
    boxes: np.ndarray  # (K, 4) xyxy, the matched detections' boxes, input dtype
    confirmed: np.ndarray  # (K,) bool
    det_index: np.ndarray  # (K,) int64: index into this frame's input detections
    filtered: np.ndarray  # (K, 4) float64 xyxy, Kalman estimates after this frame


# State: one float64 matrix, a row per track (the first n rows are live) and a column
# per quantity. Each box edge (x1, y1, x2, y2) has its own position and velocity: a box
# cut by the picture's edge then keeps a still edge and a moving one, which a
# centre-and-size model gets wrong exactly where people enter and leave. All four
# edges share one 2x2 covariance (p00, p01, p11), kept in units of the box height
# squared, so process and measurement noise are constants. The column numbers live in
# edge.tracker_numpy, which does the per-frame work on this matrix.
_NCOL = _k.NCOL
_ID = _k.ID
_BIG = _k.BIG


def compiled_kernels() -> ModuleType | None:
    """``edge.tracker_kernels`` when numba is installed (the `jit` extra) and not turned
    off by ``FOOTFALL_JIT=0``, else None. Imported only when asked for: importing numba
    costs about 90 MiB of resident memory."""
    if os.environ.get("FOOTFALL_JIT", "").strip() == "0":
        return None
    from edge import tracker_kernels

    return tracker_kernels if tracker_kernels.JIT else None

class Tracker:
    """Constant-velocity Kalman tracker with two-stage gated association.

    Feed it every frame, in time order, including frames with no detections (so that
    lost tracks age). ``t`` is any monotonic time in seconds.

    ``compiled``: None (default) uses numba's kernels where the `jit` extra is installed
    and numpy otherwise; False always numpy; True requires numba (ValueError without).
    """

    def __init__(self, params: TrackerParams | None = None, capacity: int = 256,
                 compiled: bool | None = None) -> None:
        self.params = p = params or TrackerParams()
        kernels = compiled_kernels() if compiled is not False else None
        if compiled and kernels is None:
            raise ValueError("compiled tracker kernels need numba (the `jit` extra) "
                             "and FOOTFALL_JIT not 0")
        self._run: ModuleType = kernels if kernels is not None else _k
        self.compiled = kernels is not None
        self._st = np.zeros((max(8, capacity), _NCOL))
        self._n = 0
        self._next_id = 1
        self._t: float | None = None
        self._optimal = p.assignment == "optimal"
        prm = np.zeros(_k.NPRM)
        prm[_k.PRM_HIGH] = p.high_score
        prm[_k.PRM_NEW] = p.new_track_score
        prm[_k.PRM_IOU] = p.iou_min
        prm[_k.PRM_CHI2] = p.gate_chi2
        prm[_k.PRM_GATE_MAX2] = p.gate_max * p.gate_max
        prm[_k.PRM_R2] = p.meas_std * p.meas_std
        prm[_k.PRM_Q] = p.accel_std * p.accel_std
        prm[_k.PRM_CONFIRM] = p.confirm_s
        prm[_k.PRM_TLOST] = p.tentative_lost_s
        prm[_k.PRM_MAXLOST] = p.max_lost_s
        prm[_k.PRM_VINIT] = p.vel_init_std
        prm[_k.PRM_DENSE] = (p.dense_pairs_max if p.dense_pairs_max is not None
                              else 64 if self.compiled else 8192)
        self._prm = prm
        if self.compiled:
            _warm_up(self._run)

    # -- public ---------------------------------------------------------------------

    def set_score_thresholds(self, high_score: float, new_track_score: float) -> None:
        """Change the two score stages mid-stream (the camera's night profile); tracks keep
        their state."""
        self.params = replace(self.params, high_score=high_score, new_track_score=new_track_score)
        self._prm[_k.PRM_HIGH] = high_score
        self._prm[_k.PRM_NEW] = new_track_score

    @property
    def live_count(self) -> int:
        """Tracks alive now, matched or coasting."""
        return self._n

    def live_ids(self) -> np.ndarray:
        """Ids of all live tracks, matched or coasting."""
        return self._st[: self._n, _ID].astype(np.int64)

    def update(self, boxes_xyxy: np.ndarray, scores: np.ndarray, t: float) -> TrackFrame:
        """Advance all tracks to time ``t`` and match this frame's detections."""
        boxes = np.asarray(boxes_xyxy)
        scores = np.asarray(scores)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
            raise ValueError(
                f"need boxes of shape (N, 4) and scores of shape (N,), "
                f"got {boxes.shape} and {scores.shape}"
            )
        scores = np.ascontiguousarray(scores, dtype=np.float64)  # one compiled variant
        t = float(t)
        t_prev = self._t
        if not math.isfinite(t):
            raise ValueError(f"time must be finite, got {t}")
        if t_prev is not None and t < t_prev:
            raise ValueError(f"time went back: {t} after {t_prev}")
        kept = None
        m = boxes.shape[0]
        if m and _k.least(scores) < self.params.low_score:
            kept = (scores >= self.params.low_score).nonzero()[0]
            boxes, scores = boxes.take(kept, axis=0), scores.take(kept)
            m = kept.shape[0]
        if self.compiled:  # a row per detection: x1 y1 x2 y2 cx cy w h area
            det = np.empty((m, _k.DET_COLS))
            np.matmul(boxes, _k.XYXY_TO_DET, out=det[:, 0:8])
            np.multiply(det[:, 6], det[:, 7], out=det[:, 8])
            wh, area = det[:, 6:8], det[:, 8]
        else:  # numpy: a row per quantity (association's table)
            det = _k.detections(boxes)
            wh, area = det[_k.DQ_W:_k.DQ_W + 2], det[_k.DQ_AREA]
        # NaN fails the first test, an infinite or overflowing box the second.
        if m and not (_k.least(wh) > 0 and _k.most(area) < np.inf):
            raise ValueError("boxes must be finite with x2 > x1 and y2 > y1")

        self._t = t
        n = self._n
        if n + m > self._st.shape[0]:
            grown = np.zeros((max(n + m, 2 * self._st.shape[0]), _NCOL))
            grown[:n] = self._st[:n]
            self._st = grown
        dt = t - t_prev if t_prev is not None else 0.0
        if self._optimal:
            run = self._run
            if not self.compiled:  # numpy drops expired tracks first (compiled: in apply)
                n = _k.expire(self._st, n, t)
            if n and dt > 0.0:
                run.predict(self._st, n, dt, self._prm[_k.PRM_Q])
            if n and m:
                pd, pt, pc = run.pairs(self._st, n, det, scores, t, self._prm)
                md, mt = _assign_optimal(pd, pt, pc, m, n)
            else:
                md = mt = np.zeros(0, np.int64)  # writable: numba compiles read-only apart
            res = run.apply(self._st, n, self._next_id, det, scores, md, mt, t, self._prm)
        else:
            res = self._run.step(self._st, n, self._next_id, det, scores, t, dt, self._prm)
        self._n, self._next_id, out_det, ids, confirmed, filtered = res
        # Positional: a NamedTuple built with keywords costs 0.2 us more.
        return TrackFrame(ids, boxes.take(out_det, axis=0), confirmed,
                          out_det if kept is None else kept[out_det], filtered)


def _assign_optimal(pd: np.ndarray, pt: np.ndarray, cost: np.ndarray, m: int, n: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Minimum total cost matching (for comparison with greedy in the benchmark)."""
    from scipy.optimize import linear_sum_assignment

    full = np.full((m, n), _BIG)
    full[pd, pt] = np.minimum(cost, _BIG)
    r, c = linear_sum_assignment(full)
    ok = full[r, c] < 100.0
    return r[ok].astype(np.int64), c[ok].astype(np.int64)


_warm = False


def _warm_up(kernels: ModuleType) -> None:
    """Run every compiled kernel once on a scratch tracker state, so that compiling them
    (or loading them from numba's on-disk cache) happens here and not in a live frame."""
    global _warm
    if _warm:
        return
    _warm = True
    st = np.zeros((8, _NCOL))
    prm = np.zeros(_k.NPRM)
    prm[[_k.PRM_HIGH, _k.PRM_NEW, _k.PRM_IOU, _k.PRM_CHI2, _k.PRM_R2, _k.PRM_Q]] = (
        0.5, 0.6, 0.3, 9.21, 0.0025, 0.04)
    prm[[_k.PRM_TLOST, _k.PRM_MAXLOST, _k.PRM_VINIT, _k.PRM_DENSE, _k.PRM_GATE_MAX2]] = (
        0.3, 1.0, 1.0, 1.0, 1.0)
    det = np.array([[0.0, 0.0, 10.0, 20.0, 5.0, 10.0, 10.0, 20.0]] * 2)
    sc = np.array([0.9, 0.9])
    n, nid = kernels.step(st, 0, 1, det, sc, 0.0, 0.0, prm)[:2]
    kernels.step(st, n, nid, det, sc, 0.1, 0.1, prm)  # predict, windowed pairs (dense max 1)
    prm[_k.PRM_DENSE] = 1e9
    kernels.step(st, n, nid, det, sc, 0.2, 0.1, prm)  # dense pairs
    kernels.apply(st, n, nid, det, sc, np.zeros(1, np.int64), np.zeros(1, np.int64), 0.3, prm)
