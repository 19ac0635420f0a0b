"""Multi-object tracking of per-frame person boxes, all tracks at once in numpy.

Why it is shaped like this: on a Raspberry Pi the tracker shares the CPU with the
detector, and a crowded lobby puts a hundred or more people in view. Per-track Python
objects (as in SORT/ByteTrack ports) cost microseconds per track per frame; here every
step is a fixed, small number of array operations over all tracks:

* state lives in one preallocated ``(capacity, 12)`` float64 matrix; live tracks are the
  first ``n`` rows, dead rows are squeezed out with one fancy-index copy;
* the constant-velocity Kalman filter is in closed form: x and y are independent and
  share one 2x2 covariance per track (three numbers), so predicting all tracks is one
  small matrix product and correcting the matched ones is a dozen element-wise ops;
* association is ByteTrack-style: confident detections take tracks first, weak ones only
  continue confirmed tracks; the cost is 1 - IoU, with a Mahalanobis centre-distance
  fallback (inside a chi-square gate) for small or fast boxes that no longer overlap;
* candidate pairs come from a sort along the wider axis plus a conservative window, so
  the work grows with the number of plausible pairs, not tracks x detections;
* assignment accepts every pair that has no rival outright (most pairs in practice) and
  resolves the few contested ones greedily by cost, confident detections first;
* birth, confirmation and loss are measured in seconds, so 5 fps and 30 fps behave the
  same.

The module does no I/O, owns no thread and no clock: boxes, scores and a timestamp in,
arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    iou_min: float = 0.1
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
    accel_std: float = 1.5
    """Random acceleration of a walker, in box heights per second squared."""
    vel_init_std: float = 1.5
    """Prior velocity spread of a new track, in box heights per second."""
    size_alpha: float = 0.4
    """Smoothing of box width and height toward each matched detection (0..1)."""
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
        if not 0 < self.confirm_s and 0 <= self.tentative_lost_s <= self.max_lost_s:
            raise ValueError("need 0 < confirm_s and 0 <= tentative_lost_s <= max_lost_s")
        if not 0.0 < self.size_alpha <= 1.0:
            raise ValueError("size_alpha must be within (0, 1]")


@dataclass(frozen=True, slots=True)
class TrackFrame:
    """The tracks a detection was matched to (or started) in this frame.

    Tracks that are coasting (alive but unmatched this frame) are not listed: their
    position is only a prediction, and counting on predictions makes false crossings.
    ``boxes`` are the filtered estimates (Kalman centre, smoothed size), xyxy pixels.
    """

    ids: np.ndarray  # (K,) int64, unique, never reused by this Tracker
    boxes: np.ndarray  # (K, 4) float64 xyxy
    confirmed: np.ndarray  # (K,) bool
    det_index: np.ndarray  # (K,) int64: the detection each track took this frame


# State: one float64 matrix, a row per quantity and a column per track, so that a row
# is a contiguous vector over all live tracks (the first n columns). The covariance is
# kept in units of the box height squared: then process and measurement noise are
# constants and prediction is a single matrix product (the ONE row carries the noise).
_CX, _CY, _VX, _VY, _P00, _P01, _P11, _ONE, _W, _H, _TBIRTH, _TLAST, _HITS, _CONF, _ID, _DET = range(16)
_NROW = 16
_NPRED = 8  # rows 0.._ONE move with the prediction
_BIG = 1e9  # cost of a forbidden pair

# Detection matrix rows: x1, y1, x2, y2, cx, cy, w, h from xyxy by one product.
_XYXY_TO_DET = np.array([
    [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1],
    [0.5, 0, 0.5, 0], [0, 0.5, 0, 0.5], [-1, 0, 1, 0], [0, -1, 0, 1],
], dtype=np.float64)
_STATE_TO_XYXY = np.zeros((4, _NROW))
_STATE_TO_XYXY[0, [_CX, _W]] = [1, -0.5]
_STATE_TO_XYXY[1, [_CY, _H]] = [1, -0.5]
_STATE_TO_XYXY[2, [_CX, _W]] = [1, 0.5]
_STATE_TO_XYXY[3, [_CY, _H]] = [1, 0.5]

_EMPTY_I = np.zeros(0, dtype=np.int64)


class Tracker:
    """Constant-velocity Kalman tracker with two-stage gated association.

    Feed it every frame, in time order, including frames with no detections (so that
    lost tracks age). ``t`` is any monotonic time in seconds.
    """

    def __init__(self, params: TrackerParams | None = None, capacity: int = 256) -> None:
        self.params = p = params or TrackerParams()
        self._st = np.zeros((_NROW, max(8, capacity)))
        self._n = 0
        self._next_id = 1
        self._t: float | None = None
        self._trans_dt: float | None = None
        self._trans = np.eye(_NPRED)
        self._dense: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._r2 = p.meas_std * p.meas_std
        # Track rows used by association, as one product with the state:
        # x1 y1 x2 y2 cx cy w h, gate variance, weak-detection penalty, tentative penalty.
        tm = np.zeros((11, _NROW))
        tm[:4] = _STATE_TO_XYXY
        tm[4, _CX] = tm[5, _CY] = tm[6, _W] = tm[7, _H] = 1
        tm[8, _P00] = p.gate_chi2
        tm[8, _ONE] = p.gate_chi2 * self._r2
        # Weak detections cost +2 on confirmed tracks and are forbidden on tentative ones.
        tm[9, _ONE] = 2.0 + _BIG
        tm[9, _CONF] = -_BIG
        tm[10, _ONE] = 1.0  # tentative tracks come after confirmed ones
        tm[10, _CONF] = -1.0
        self._track_rows = tm

    # -- public ---------------------------------------------------------------------

    @property
    def live_count(self) -> int:
        """Tracks alive now, matched or coasting."""
        return self._n

    def update(self, boxes_xyxy: np.ndarray, scores: np.ndarray, t: float) -> TrackFrame:
        """Advance all tracks to time ``t`` and match this frame's detections."""
        boxes = np.asarray(boxes_xyxy)
        scores = np.asarray(scores)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
            raise ValueError(
                f"need boxes of shape (N, 4) and scores of shape (N,), "
                f"got {boxes.shape} and {scores.shape}"
            )
        if self._t is not None and t < self._t:
            raise ValueError(f"time went back: {t} after {self._t}")
        p = self.params
        kept = None
        m = boxes.shape[0]
        if m and float(scores.min()) < p.low_score:
            kept = np.flatnonzero(scores >= p.low_score)
            boxes, scores = boxes[kept], scores[kept]
            m = kept.shape[0]
        det = np.empty((9, m))
        np.matmul(_XYXY_TO_DET, boxes.T, out=det[:8])
        det[8] = scores
        if m and not float(det[6:8].min()) > 0:
            raise ValueError("boxes must be finite with x2 > x1 and y2 > y1")

        dt = 0.0 if self._t is None else t - self._t
        self._t = t
        n = self._n
        st = self._st
        if n and dt > 0:
            if dt != self._trans_dt:
                self._set_transition(dt)
            st[:_NPRED, :n] = self._trans @ st[:_NPRED, :n]

        md, mt = self._associate(det, n) if n and m else (_EMPTY_I, _EMPTY_I)
        out = self._correct(det, md, mt, t) if md.shape[0] else None

        # Unmatched confident detections start tentative tracks.
        free = det[8] >= p.new_track_score
        free[md] = False
        births = np.flatnonzero(free)
        if births.shape[0]:
            born = self._birth(det, births, t)
            out = born if out is None else np.concatenate((out, born), axis=1)

        # Tracks unmatched for too long are dropped (matched and new ones never are).
        n = self._n
        # Cheap common case first: nobody unmatched longer than the shorter limit.
        if n and t - float(st[_TLAST, :n].min()) > p.tentative_lost_s:
            lost = p.tentative_lost_s + (p.max_lost_s - p.tentative_lost_s) * st[_CONF, :n]
            keep = np.flatnonzero((t - st[_TLAST, :n]) <= lost)
            self._n = keep.shape[0]
            st[:, : self._n] = st[:, keep]

        if out is None:
            return TrackFrame(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, bool), _EMPTY_I)
        det_index = out[_DET].astype(np.int64)
        if kept is not None:
            det_index = kept[det_index]
        return TrackFrame(
            ids=out[_ID].astype(np.int64),
            boxes=(_STATE_TO_XYXY @ out).T,
            confirmed=out[_CONF] > 0,
            det_index=det_index,
        )

    # -- steps ----------------------------------------------------------------------

    def _set_transition(self, dt: float) -> None:
        q = self.params.accel_std ** 2
        tr = np.eye(_NPRED)
        tr[_CX, _VX] = tr[_CY, _VY] = dt
        tr[_P00, _P01] = 2 * dt
        tr[_P00, _P11] = dt * dt
        tr[_P01, _P11] = dt
        tr[_P00, _ONE] = q * dt**3 / 3
        tr[_P01, _ONE] = q * dt**2 / 2
        tr[_P11, _ONE] = q * dt
        self._trans, self._trans_dt = tr, dt

    def _pairs(self, det: np.ndarray, n: int, trk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate (detection, track) pairs: every one that the gate could accept."""
        m = det.shape[1]
        if n * m <= self.params.dense_pairs_max:
            cached = self._dense.get((m, n))
            if cached is None:
                if len(self._dense) > 4096:
                    self._dense.clear()
                cached = (np.repeat(np.arange(m), n), np.tile(np.arange(n), m))
                self._dense[(m, n)] = cached
            return cached
        # Sort tracks along the axis where they spread most; a detection can only pair
        # with tracks whose centre lies within a conservative window on that axis:
        # half of both box sizes (overlap) or the gate radius (distance), whichever wider.
        ax = 0 if np.ptp(trk[4]) >= np.ptp(trk[5]) else 1
        gate = float(np.sqrt((trk[8] * trk[7] * trk[7]).max()))
        g = max(gate, 0.5 * float(trk[6 + ax].max())) + 0.5 * float(det[6 + ax].max())
        order = np.argsort(trk[4 + ax])
        ks = trk[4 + ax, order]
        dk = det[4 + ax]
        lo = np.searchsorted(ks, dk - g, "left")
        cnt = np.searchsorted(ks, dk + g, "right") - lo
        pd = np.repeat(np.arange(m), cnt)
        pos = np.arange(pd.shape[0]) + np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)
        return pd, order[pos]

    def _associate(self, det: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Match detections to tracks; returns (detection indices, track columns)."""
        p = self.params
        trk = self._track_rows @ self._st[:, :n]
        pd, pt = self._pairs(det, n, trk)
        if pd.shape[0] == 0:
            return _EMPTY_I, _EMPTY_I
        dp = det.take(pd, axis=1)
        tp = trk.take(pt, axis=1)
        iw = np.minimum(dp[2], tp[2])
        iw -= np.maximum(dp[0], tp[0])
        ih = np.minimum(dp[3], tp[3])
        ih -= np.maximum(dp[1], tp[1])
        np.maximum(iw, 0.0, out=iw)
        np.maximum(ih, 0.0, out=ih)
        inter = iw * ih
        iou = inter / (dp[6] * dp[7] + tp[6] * tp[7] - inter)
        ex = dp[4] - tp[4]
        ey = dp[5] - tp[5]
        ex *= ex
        ey *= ey
        ex += ey
        var = tp[8] * tp[7] * tp[7]  # gate_chi2 * innovation variance, px^2
        maha = ex / var  # squared Mahalanobis distance / gate: < 1 inside the gate
        # Overlapping pairs cost -IoU (in [-1, -iou_min]); the rest cost their gated
        # distance (in [0, 1)); outside both, forbidden.
        cost = np.where(iou >= p.iou_min, -iou, np.where(maha < 1.0, maha, _BIG))
        # Two stages in one ordering: weak detections after confident ones and only on
        # confirmed tracks; tentative tracks after confirmed ones.
        cost += (dp[8] < p.high_score) * tp[9] + tp[10]
        m = det.shape[1]
        if pd.shape[0] == m * n:  # every pair scored: the cost is an (m, n) matrix
            return _assign_dense(cost.reshape(m, n))
        sel = np.flatnonzero(cost < 100.0)
        if sel.shape[0] == 0:
            return _EMPTY_I, _EMPTY_I
        return _assign(pd[sel], pt[sel], cost[sel], m, n)

    def _correct(self, det: np.ndarray, md: np.ndarray, mt: np.ndarray, t: float) -> np.ndarray:
        """Kalman update of the matched tracks; returns their updated state columns."""
        st = self._st
        p = self.params
        g = st[:, mt]
        z = det[:, md]
        inv = 1.0 / (g[_P00] + self._r2)
        k0 = g[_P00] * inv
        k1 = g[_P01] * inv
        innov = z[4:6] - g[_CX:_CY + 1]
        g[_CX:_CY + 1] += k0 * innov
        g[_VX:_VY + 1] += k1 * innov
        g[_P11] -= k1 * g[_P01]
        g[_P00:_P01 + 1] *= self._r2 * inv
        g[_W:_H + 1] += p.size_alpha * (z[6:8] - g[_W:_H + 1])
        g[_TLAST] = t
        g[_HITS] += 1.0
        # Once true it stays true: t only grows.
        np.greater_equal(t - g[_TBIRTH], p.confirm_s, out=g[_CONF], casting="unsafe")
        g[_DET] = md
        st[:, mt] = g
        return g

    def _birth(self, det: np.ndarray, births: np.ndarray, t: float) -> np.ndarray:
        b = births.shape[0]
        n = self._n
        if n + b > self._st.shape[1]:
            grown = np.zeros((_NROW, max(n + b, 2 * self._st.shape[1])))
            grown[:, :n] = self._st[:, :n]
            self._st = grown
        p = self.params
        new = self._st[:, n:n + b]
        new[:] = 0.0
        z = det[:, births]
        new[_CX:_CY + 1] = z[4:6]
        new[_W:_H + 1] = z[6:8]
        new[_P00] = self._r2
        new[_P11] = p.vel_init_std * p.vel_init_std
        new[_ONE] = 1.0
        new[_TBIRTH] = new[_TLAST] = t
        new[_HITS] = 1.0
        new[_ID] = np.arange(self._next_id, self._next_id + b)
        new[_DET] = births
        self._next_id += b
        self._n = n + b
        return new.copy()


def _assign_dense(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching on a full cost matrix, by rounds of mutual bests.

    A pair that is the cheapest of both its row and its column is what greedy takes
    too; taking all of them at once, then repeating on what is left, gives the greedy
    matching in a few array operations per round (one round in most frames).
    """
    m = cost.shape[0]
    rows = np.arange(m)
    found_d: list[np.ndarray] = []
    found_t: list[np.ndarray] = []
    while True:
        bd = cost.argmin(1)
        cb = cost[rows, bd]
        bt = cost.argmin(0)
        ok = bt[bd] == rows
        ok &= cb < 100.0
        md = np.flatnonzero(ok)
        mt = bd[md]
        found_d.append(md)
        found_t.append(mt)
        ok |= cb >= 100.0
        if ok.all() or md.shape[0] == 0:
            break
        cost = cost.copy() if len(found_d) == 1 else cost
        cost[md] = _BIG
        cost[:, mt] = _BIG
    if len(found_d) == 1:
        return found_d[0], found_t[0]
    return np.concatenate(found_d), np.concatenate(found_t)


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
    if not contested.any():
        return pd, pt
    rest = np.flatnonzero(contested)
    order = rest[np.argsort(cost[rest], kind="stable")]
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
    lone = np.flatnonzero(~contested)
    return (np.concatenate((pd[lone], np.array(gd, dtype=np.int64))),
            np.concatenate((pt[lone], np.array(gt, dtype=np.int64))))
