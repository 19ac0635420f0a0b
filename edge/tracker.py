"""Multi-object tracking of per-frame person boxes, all tracks at once in numpy.

Why it is shaped like this: on a Raspberry Pi the tracker shares the CPU with the
detector, and a crowded lobby puts a hundred or more people in view. Per-track Python
objects (as in SORT/ByteTrack ports) cost microseconds per track per frame; here every
step is a fixed, small number of array operations over all tracks:

* state lives in one preallocated ``(capacity, 17)`` float64 matrix; live tracks are the
  first ``n`` rows, dead rows are squeezed out with one fancy-index copy;
* the constant-velocity Kalman filter is in closed form: each box edge is a coordinate
  with a velocity, all four share one 2x2 covariance per track (three numbers), so
  predicting all tracks is one small matrix product and correcting the matched ones is
  a dozen element-wise ops;
* association is ByteTrack-style: confident detections take tracks first, weak ones only
  continue confirmed tracks; the cost is -IoU, with a Mahalanobis centre-distance
  fallback (inside a chi-square gate) for small or fast boxes that no longer overlap;
* up to a few thousand tracks x detections every pair is scored; beyond, candidate
  pairs come from a sort along the wider axis and a conservative window on both axes,
  so the work grows with the number of plausible pairs, not tracks x detections;
* assignment is greedy by cost (measured: the optimal one bought nothing here): all
  mutual best pairs at once, then the few contested ones in cost order;
* birth, confirmation and loss are measured in seconds, so 5 fps and 30 fps behave the
  same.

The module does no I/O, owns no thread and no clock: boxes, scores and a timestamp in,
arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

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
    dense_pairs_max: int = 4096
    """Up to this many tracks x detections every pair is scored (cheaper than sorting);
    above it candidate pairs come from the sorted window."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_score <= self.high_score <= 1.0:
            raise ValueError("need 0 <= low_score <= high_score <= 1")
        if not 0.0 < self.iou_min < 1.0:
            raise ValueError("iou_min must be within (0, 1)")
        for name in ("gate_chi2", "meas_std", "accel_std", "vel_init_std"):
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
# squared: then process and measurement noise are constants and the whole prediction,
# noise included (through the ONE column), is a single matrix product.
_X1, _Y1, _X2, _Y2, _VX1, _VY1, _VX2, _VY2, _P00, _P01, _P11, _ONE = range(12)
_TBIRTH, _TLAST, _CONF, _EXPIRE, _ID = range(12, 17)
_NCOL = 17
_NPRED = 12  # columns 0.._ONE move with the prediction
_BIG = 1e9  # cost of a forbidden pair

# Detection columns: x1, y1, x2, y2, cx, cy, w, h from xyxy by one product.
_XYXY_TO_DET = np.array([
    [1, 0, 0, 0, 0.5, 0, -1, 0],
    [0, 1, 0, 0, 0, 0.5, 0, -1],
    [0, 0, 1, 0, 0.5, 0, 1, 0],
    [0, 0, 0, 1, 0, 0.5, 0, 1],
], dtype=np.float64)

_EMPTY_I = np.zeros(0, dtype=np.int64)
_EMPTY_I.setflags(write=False)


class Tracker:
    """Constant-velocity Kalman tracker with two-stage gated association.

    Feed it every frame, in time order, including frames with no detections (so that
    lost tracks age). ``t`` is any monotonic time in seconds.
    """

    def __init__(self, params: TrackerParams | None = None, capacity: int = 256) -> None:
        self.params = p = params or TrackerParams()
        self._st = np.zeros((max(8, capacity), _NCOL))
        self._n = 0
        self._next_id = 1
        self._t: float | None = None
        self._trans_dt = -1.0
        self._trans_t = np.eye(_NPRED)
        self._dense: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._grid = np.indices((64, 64))
        self._r2 = p.meas_std * p.meas_std
        # Track columns used by association, as one product with the state:
        # x1 y1 x2 y2 cx cy w h, gate scale, weak-detection penalty, tentative penalty.
        tm = np.zeros((_NCOL, 11))
        tm[[_X1, _Y1, _X2, _Y2], [0, 1, 2, 3]] = 1
        tm[[_X1, _X2], 4] = tm[[_Y1, _Y2], 5] = 0.5
        tm[[_X1, _X2], 6] = tm[[_Y1, _Y2], 7] = [-1, 1]
        tm[_P00, 8] = p.gate_chi2  # times h^2 below: gate_chi2 * innovation variance
        tm[_ONE, 8] = p.gate_chi2 * self._r2
        # Weak detections cost +2 on confirmed tracks and are forbidden on tentative ones.
        tm[_ONE, 9] = 2.0 + _BIG
        tm[_CONF, 9] = -_BIG
        tm[_ONE, 10] = 1.0  # tentative tracks come after confirmed ones
        tm[_CONF, 10] = -1.0
        self._track_cols = tm

    # -- public ---------------------------------------------------------------------

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
        t = float(t)
        t_prev = self._t
        if t_prev is not None and t < t_prev:
            raise ValueError(f"time went back: {t} after {t_prev}")
        p = self.params
        kept = None
        m = boxes.shape[0]
        if m and scores.min() < p.low_score:
            kept = (scores >= p.low_score).nonzero()[0]
            boxes, scores = boxes[kept], scores[kept]
            m = kept.shape[0]
        det = boxes @ _XYXY_TO_DET  # (m, 8) float64
        if m and not det[:, 6:8].min() > 0:
            raise ValueError("boxes must be finite with x2 > x1 and y2 > y1")

        self._t = t
        n = self._n
        st = self._st
        if n and t_prev is not None and t > t_prev:
            dt = t - t_prev
            if abs(dt - self._trans_dt) > 1e-9:
                self._set_transition(dt)
            st[:n, :_NPRED] = st[:n, :_NPRED] @ self._trans_t

        if n and m:
            md, mt = self._associate(det, scores, n)
        else:
            md = mt = _EMPTY_I
        out = self._correct(det, md, mt, t) if md.shape[0] else None

        # Unmatched confident detections start tentative tracks.
        free = scores >= p.new_track_score
        free[md] = False
        births = free.nonzero()[0]
        if births.shape[0]:
            born = self._birth(det, births, t)
            if out is None:
                out, md = born, births
            else:
                out = np.concatenate((out, born))
                md = np.concatenate((md, births))

        # Tracks unmatched for too long are dropped (matched and new ones never are).
        n = self._n
        if n and st[:n, _EXPIRE].min() < t:
            keep = (st[:n, _EXPIRE] >= t).nonzero()[0]
            self._n = keep.shape[0]
            st[: self._n] = st[keep]

        if out is None:
            return TrackFrame(_EMPTY_I, boxes[:0], np.zeros(0, bool), _EMPTY_I, np.zeros((0, 4)))
        return TrackFrame(
            ids=out[:, _ID].astype(np.int64),
            boxes=boxes[md],
            confirmed=out[:, _CONF] > 0,
            det_index=md if kept is None else kept[md],
            filtered=out[:, :4],
        )

    # -- steps ----------------------------------------------------------------------

    def _set_transition(self, dt: float) -> None:
        q = self.params.accel_std ** 2
        tr = np.eye(_NPRED)
        tr[[_X1, _Y1, _X2, _Y2], [_VX1, _VY1, _VX2, _VY2]] = dt
        tr[_P00, _P01] = 2 * dt
        tr[_P00, _P11] = dt * dt
        tr[_P01, _P11] = dt
        tr[_P00, _ONE] = q * dt**3 / 3
        tr[_P01, _ONE] = q * dt**2 / 2
        tr[_P11, _ONE] = q * dt
        self._trans_t, self._trans_dt = np.ascontiguousarray(tr.T), dt

    def _pairs(self, det: np.ndarray, n: int, trk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate (detection, track) pairs: every one that the gate could accept."""
        m = det.shape[0]
        if n * m <= self.params.dense_pairs_max:
            cached = self._dense.get((m, n))
            if cached is None:
                if m > self._grid[0].shape[0] or n > self._grid[0].shape[1]:
                    big = (max(m, 2 * self._grid[0].shape[0]), max(n, 2 * self._grid[0].shape[1]))
                    self._grid = np.indices(big)
                if len(self._dense) > 1024:
                    self._dense.clear()
                cached = (self._grid[0][:m, :n].ravel(), self._grid[1][:m, :n].ravel())
                self._dense[(m, n)] = cached
            return cached
        # Sort tracks along the axis where they spread most; a detection can only pair
        # with tracks whose centre lies within a conservative window on that axis:
        # half of both box sizes (overlap) or the gate radius (distance), whichever wider.
        # Then the same bound on the other axis drops most of the window's pairs.
        ax = 0 if np.ptp(trk[:, 4]) >= np.ptp(trk[:, 5]) else 1
        other = 1 - ax
        gate = float(np.sqrt((trk[:, 8] * trk[:, 7] * trk[:, 7]).max()))
        tmax = trk[:, 6:8].max(axis=0)
        dmax = det[:, 6:8].max(axis=0)
        g = max(gate, 0.5 * float(tmax[ax])) + 0.5 * float(dmax[ax])
        g_other = max(gate, 0.5 * float(tmax[other])) + 0.5 * float(dmax[other])
        order = trk[:, 4 + ax].argsort()
        ks = trk[order, 4 + ax]
        dk = det[:, 4 + ax]
        lo = ks.searchsorted(dk - g, "left")
        cnt = ks.searchsorted(dk + g, "right") - lo
        pd = np.arange(m).repeat(cnt)
        pt = order[np.arange(pd.shape[0]) + (lo - (cnt.cumsum() - cnt)).repeat(cnt)]
        near = np.abs(det[pd, 4 + other] - trk[pt, 4 + other]) <= g_other
        keep = near.nonzero()[0]
        return pd[keep], pt[keep]

    def _associate(self, det: np.ndarray, scores: np.ndarray, n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Match detections to tracks; returns (detection indices, track rows)."""
        p = self.params
        trk = self._st[:n] @ self._track_cols
        np.maximum(trk[:, 6:8], 1.0, out=trk[:, 6:8])  # a coasting box may have shrunk
        pd, pt = self._pairs(det, n, trk)
        if pd.shape[0] == 0:
            return _EMPTY_I, _EMPTY_I
        dp = det.take(pd, axis=0).T  # (8, P) views, one column per pair
        tp = trk.take(pt, axis=0).T  # (11, P)
        iw = np.minimum(dp[2], tp[2])
        iw -= np.maximum(dp[0], tp[0])
        ih = np.minimum(dp[3], tp[3])
        ih -= np.maximum(dp[1], tp[1])
        np.maximum(iw, 0.0, out=iw)
        np.maximum(ih, 0.0, out=ih)
        iw *= ih  # intersection
        union = dp[6] * dp[7]
        union += tp[6] * tp[7]
        union -= iw
        iw /= union  # IoU
        ex = dp[4] - tp[4]
        ey = dp[5] - tp[5]
        ex *= ex
        ey *= ey
        ex += ey
        var = tp[7] * tp[7]
        var *= tp[8]  # gate_chi2 * innovation variance, px^2
        cost = ex / var  # squared Mahalanobis distance over the gate: < 1 inside it
        # Overlapping pairs cost -IoU (in [-1, -iou_min]); the rest cost their gated
        # distance (in [0, 1)); 1 or more is outside both.
        np.copyto(cost, -iw, where=iw >= p.iou_min)
        bad = cost >= 1.0
        # Two stages in one ordering: weak detections after confident ones and only on
        # confirmed tracks; tentative tracks after confirmed ones.
        pen = scores.take(pd) < p.high_score
        cost += pen * tp[9]
        cost += tp[10]
        np.copyto(cost, _BIG, where=bad)
        m = det.shape[0]
        if p.assignment == "optimal":
            return _assign_optimal(pd, pt, cost, m, n)
        if pd.shape[0] == m * n:  # every pair scored: the cost is an (m, n) matrix
            return _assign_dense(cost.reshape(m, n))
        sel = (cost < 100.0).nonzero()[0]
        if sel.shape[0] == 0:
            return _EMPTY_I, _EMPTY_I
        return _assign(pd[sel], pt[sel], cost[sel], m, n)

    def _correct(self, det: np.ndarray, md: np.ndarray, mt: np.ndarray, t: float) -> np.ndarray:
        """Kalman update of the matched tracks; returns their updated state rows."""
        st = self._st
        p = self.params
        g = st.take(mt, axis=0)  # (k, NCOL)
        z = det.take(md, axis=0)
        inv = g[:, _P00] + self._r2
        np.reciprocal(inv, out=inv)
        gain = g[:, _P00:_P01 + 1] * inv[:, None]  # (k, 2): position and velocity gains
        innov = z[:, 0:4] - g[:, 0:4]
        # Positions and velocities of the four edges in one product: (k, 2, 1) x (k, 1, 4).
        g[:, 0:8] += (gain[:, :, None] * innov[:, None, :]).reshape(-1, 8)
        g[:, _P11] -= gain[:, 1] * g[:, _P01]
        g[:, _P00:_P01 + 1] *= (self._r2 * inv)[:, None]
        g[:, _TLAST] = t
        if g[:, _CONF].min() > 0:  # all confirmed already (most frames)
            g[:, _EXPIRE] = t + p.max_lost_s
        else:
            # Confirmed once matched confirm_s after birth; stays so (t only grows).
            conf = g[:, _TBIRTH] < t - p.confirm_s
            g[:, _CONF] = conf
            g[:, _EXPIRE] = t + p.tentative_lost_s + (p.max_lost_s - p.tentative_lost_s) * conf
        st[mt] = g
        return g

    def _birth(self, det: np.ndarray, births: np.ndarray, t: float) -> np.ndarray:
        b = births.shape[0]
        n = self._n
        if n + b > self._st.shape[0]:
            grown = np.zeros((max(n + b, 2 * self._st.shape[0]), _NCOL))
            grown[:n] = self._st[:n]
            self._st = grown
        p = self.params
        new = self._st[n:n + b]
        new[:] = 0.0
        new[:, _X1:_Y2 + 1] = det[births, 0:4]
        new[:, _P00] = self._r2
        new[:, _P11] = p.vel_init_std * p.vel_init_std
        new[:, _ONE] = 1.0
        new[:, _TBIRTH] = t
        new[:, _TLAST] = t
        new[:, _EXPIRE] = t + p.tentative_lost_s
        new[:, _ID] = np.arange(self._next_id, self._next_id + b)
        self._next_id += b
        self._n = n + b
        return new.copy()


def _assign_optimal(pd: np.ndarray, pt: np.ndarray, cost: np.ndarray, m: int, n: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Minimum total cost matching (for comparison with greedy in the benchmark)."""
    from scipy.optimize import linear_sum_assignment

    full = np.full((m, n), _BIG)
    full[pd, pt] = np.minimum(cost, _BIG)
    r, c = linear_sum_assignment(full)
    ok = full[r, c] < 100.0
    return r[ok].astype(np.int64), c[ok].astype(np.int64)


def _assign_dense(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching on a full cost matrix, by rounds of mutual bests.

    A pair that is the cheapest of both its row and its column is what greedy takes
    too, so all of them are taken at once (most frames end there); the few detections
    left with a candidate go through greedy in cost order.
    """
    m = cost.shape[0]
    rows = np.arange(m)
    bd = cost.argmin(1)
    cb = cost[rows, bd]
    ok = cost.argmin(0)[bd] == rows
    ok &= cb < 100.0
    md = ok.nonzero()[0]
    mt = bd[md]
    if np.count_nonzero(cb < 100.0) == md.shape[0]:
        return md, mt  # every detection with a candidate got one: done
    # Left: detections whose best track went to another. Greedy on what they can still
    # take (usually nothing: a false positive or a duplicate beside a matched person).
    rest = (~ok & (cb < 100.0)).nonzero()[0]
    sub = cost[rest]
    sub[:, mt] = _BIG
    r, c = (sub < 100.0).nonzero()
    if r.shape[0] == 0:
        return md, mt
    order = sub[r, c].argsort(kind="stable")
    used_d: set[int] = set()
    used_t: set[int] = set()
    gd: list[int] = []
    gt: list[int] = []
    for d, k in zip(rest[r[order]].tolist(), c[order].tolist()):
        if d in used_d or k in used_t:
            continue
        used_d.add(d)
        used_t.add(k)
        gd.append(d)
        gt.append(k)
    return (np.concatenate((md, np.array(gd, dtype=np.int64))),
            np.concatenate((mt, np.array(gt, dtype=np.int64))))


def _assign(pd: np.ndarray, pt: np.ndarray, cost: np.ndarray, m: int, n: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of gated pairs, cheapest first (greedy).

    A pair whose detection and track appear in no other pair is taken as is (in a door
    scene that is most of them, and any optimiser would take it too); only the
    contested rest goes through a greedy pass in cost order.
    """
    cd = np.bincount(pd, minlength=m)
    ct = np.bincount(pt, minlength=n)
    contested = (cd[pd] > 1) | (ct[pt] > 1)
    rest = contested.nonzero()[0]
    if rest.shape[0] == 0:
        return pd, pt
    order = rest[cost[rest].argsort(kind="stable")]
    used_d: set[int] = set()
    used_t: set[int] = set()
    gd: list[int] = []
    gt: list[int] = []
    for d, k in zip(pd[order].tolist(), pt[order].tolist()):
        if d in used_d or k in used_t:
            continue
        used_d.add(d)
        used_t.add(k)
        gd.append(d)
        gt.append(k)
    lone = (~contested).nonzero()[0]
    return (np.concatenate((pd[lone], np.array(gd, dtype=np.int64))),
            np.concatenate((pt[lone], np.array(gt, dtype=np.int64))))
