"""The tracker's per-frame hot path as whole-array numpy over its state matrix.

Why this shape: a device gets the plain install (numpy, no compiler), and there the cost
of a frame is the number of numpy calls, not the arithmetic (1 to 3 us each on a
desktop core, several times that on a Pi). So every step is a fixed handful of calls
whatever the crowd: the Kalman prediction and correction of all tracks at once, candidate
pairs from one sort and two binary searches, the cost of every candidate pair in one
pass, and greedy assignment in rounds over the sorted pairs (each round takes every pair
that is the cheapest left for both its detection and its track; a crowded frame needs a
few rounds, never one per track).

The arithmetic mirrors ``edge.tracker_kernels`` (numba loops, the optional `jit` extra)
operation for operation, so both give the same tracks; tests/test_tracker.py compares
them on the benchmark's streams.

State layout: one float64 matrix, a row per track (the first ``n`` rows live), a column
per quantity (the names below). Each box edge has a position and a velocity; all four
edges share one 2x2 covariance (p00, p01, p11) in box heights squared; ``ONE`` is 1.0 on
every live row. Pure: arrays in, arrays out, no I/O.
"""

from __future__ import annotations

import numpy as np

X1, Y1, X2, Y2, VX1, VY1, VX2, VY2, P00, P01, P11, ONE = range(12)
TBIRTH, TLAST, CONF, EXPIRE, ID = range(12, 17)
NCOL = 17
BIG = 1e9  # cost of a forbidden pair; anything >= REJECT is never matched
REJECT = 100.0

# Indices into the float64 parameter vector ``prm`` (built by Tracker from its params).
(PRM_HIGH, PRM_NEW, PRM_IOU, PRM_CHI2, PRM_R2, PRM_Q, PRM_CONFIRM, PRM_TLOST, PRM_MAXLOST,
 PRM_VINIT, PRM_DENSE) = range(11)
NPRM = 11

_NO_INT = np.zeros(0, np.int64)
_NO_INT.flags.writeable = False

# Detection columns (built by edge.tracker from xyxy): x1 y1 x2 y2 cx cy w h; then area.
DET_COLS = 9
# Per-track association table, one row per live track: x1 y1 x2 y2 cx cy w h as for a
# detection, then area, gate (box height squared x chi-square x predicted variance: a
# centre distance squared under it passes), and the two stage penalties.
_AREA, _GATE, _WEAK_PEN, _TENT_PEN = 8, 9, 10, 11
_TRK_COLS = 12
# xyxy -> x1 y1 x2 y2 cx cy w h, one product.
XYXY_TO_DET = np.array([
    [1, 0, 0, 0, 0.5, 0, -1, 0],
    [0, 1, 0, 0, 0, 0.5, 0, -1],
    [0, 0, 1, 0, 0.5, 0, 1, 0],
    [0, 0, 0, 1, 0, 0.5, 0, 1],
], dtype=np.float64)
_DET_FROM_XYXY = np.ascontiguousarray(XYXY_TO_DET.T)


def predict(st: np.ndarray, n: int, dt: float, q: float) -> None:
    """Constant-velocity prediction of every live track over ``dt`` seconds, in place:
    each edge moves by its velocity, the shared covariance grows by F P F^T plus
    white-acceleration noise."""
    s = st[:n]
    s[:, 0:4] += dt * s[:, 4:8]
    dt2 = dt * dt
    # [p00 p01 p11 one] @ this = the new [p00 p01 p11]: one product for all tracks.
    f = np.array([[1.0, 0.0, 0.0],
                  [2.0 * dt, 1.0, 0.0],
                  [dt2, dt, 1.0],
                  [q * dt2 * dt / 3.0, q * dt2 / 2.0, q * dt]])
    s[:, P00:ONE] = s[:, P00:ONE + 1] @ f


def track_table(st: np.ndarray, n: int, t: float, prm: np.ndarray) -> np.ndarray:
    """What association needs of each live track, as a ``(12, n)`` table, one row per
    quantity (so that each is a contiguous vector for whole-array operations)."""
    s = st[:n]
    k = np.empty((_TRK_COLS, n))
    np.matmul(_DET_FROM_XYXY, s[:, 0:4].T, out=k[0:8])
    np.maximum(k[6:8], 1.0, out=k[6:8])  # a coasting box may have shrunk
    np.multiply(k[6], k[7], out=k[_AREA])
    np.multiply(k[7] * k[7], prm[PRM_CHI2] * (s[:, P00] + prm[PRM_R2]), out=k[_GATE])
    conf = s[:, CONF]
    # Weak detections only continue confirmed tracks (+2; forbidding on tentative ones);
    # tentative tracks come after confirmed ones (+1); a track past its expiry pairs with
    # nothing (it is dropped at the end of this frame, and its stale prediction must
    # not take a stranger).
    np.multiply(conf, -BIG, out=k[_WEAK_PEN])
    k[_WEAK_PEN] += 2.0 + BIG
    np.subtract(1.0, conf, out=k[_TENT_PEN])
    k[_TENT_PEN, s[:, EXPIRE] < t] = BIG
    return k


def costs(d: np.ndarray, k: np.ndarray, weak: np.ndarray, iou_min: float) -> np.ndarray:
    """Cost of detections ``d`` (rows: DET_COLS quantities) against tracks ``k`` (rows:
    track_table's), for any shapes that broadcast (every pair, or a list of pairs); +inf
    where the gate forbids the pair.

    -IoU when IoU >= iou_min, else the squared centre distance over the gate, which must
    be < 1; plus +2 for a weak detection (forbidding on a tentative track) and the
    track's stage penalty.
    """
    iw = np.minimum(d[2], k[2])
    iw -= np.maximum(d[0], k[0])
    np.maximum(iw, 0.0, out=iw)
    ih = np.minimum(d[3], k[3])
    ih -= np.maximum(d[1], k[1])
    np.maximum(ih, 0.0, out=ih)
    iw *= ih  # intersection
    union = d[_AREA] + k[_AREA]
    union -= iw
    iw /= union  # IoU
    ex = d[4] - k[4]
    ex *= ex
    ey = d[5] - k[5]
    ey *= ey
    ex += ey
    ex /= k[_GATE]  # squared centre distance over the gate
    ex[ex >= 1.0] = np.inf
    c = np.where(iw >= iou_min, np.negative(iw, out=iw), ex)
    c += weak * k[_WEAK_PEN]
    c += k[_TENT_PEN]
    c[c >= REJECT] = np.inf
    return c


def pairs(st: np.ndarray, n: int, det: np.ndarray, scores: np.ndarray, t: float,
          prm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate (detection, track) pairs that the gate accepts, with their costs.
    ``det`` is ``(m, DET_COLS)``.

    Up to ``prm[PRM_DENSE]`` tracks x detections every pair is scored in one broadcast.
    Beyond, detections are sorted along x, each track takes the window of detections its
    own reach (half its width or its gate radius, plus half the widest detection) allows
    on x, then on y, and only those pairs are scored: the work follows the plausible
    pairs, and one coasting track with a wide gate widens only its own window.
    """
    m = det.shape[0]
    k = track_table(st, n, t, prm)
    weak = (scores < prm[PRM_HIGH]).astype(np.float64)
    d = det.T
    if m * n <= prm[PRM_DENSE]:
        c = costs(d[:, :, None], k[:, None, :], weak[:, None], prm[PRM_IOU])
        pd, pt = (c < REJECT).nonzero()
        return pd, pt, c[pd, pt]
    gate_r = np.sqrt(k[_GATE])
    hw = 0.5 * det[:, 6:8].max(axis=0)
    rx = (np.maximum(0.5 * k[6], gate_r) + hw[0]) * (1.0 + 1e-9)  # slack: rounding
    ry = (np.maximum(0.5 * k[7], gate_r) + hw[1]) * (1.0 + 1e-9)  # never drops a pair
    order = det[:, 4].argsort(kind="stable")
    keys = det[order, 4]
    lo = keys.searchsorted(k[4] - rx, "left")
    cnt = keys.searchsorted(k[4] + rx, "right") - lo
    total = int(cnt.sum())
    pt = np.arange(n).repeat(cnt)
    pd = order[np.arange(total) + (lo - (cnt.cumsum() - cnt)).repeat(cnt)]
    near = np.abs(det[pd, 5] - k[5, pt]) <= ry[pt]
    pd, pt = pd[near], pt[near]
    c = costs(d[:, pd], k[:, pt], weak[pd], prm[PRM_IOU])
    ok = c < REJECT
    return pd[ok], pt[ok], c[ok]


def greedy(pd: np.ndarray, pt: np.ndarray, pc: np.ndarray, m: int, n: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of gated pairs, cheapest first, ties to the lower detection
    then the lower track; in rounds.

    Greedy over the sorted pairs takes a pair iff no earlier pair it conflicts with was
    taken. A pair that is the first left for both its detection and its track is
    therefore taken, and every other pair of that detection or track is not; dropping
    both and repeating gives exactly the greedy matching, one round per link of the
    longest chain of conflicts (one or two in a crowd, never one per track).
    """
    o = np.lexsort((pt, pd, pc))
    d, k = pd[o], pt[o]
    md: list[np.ndarray] = []
    mt: list[np.ndarray] = []
    while d.shape[0]:
        pos = np.arange(d.shape[0])
        first_d = np.full(m, d.shape[0])
        np.minimum.at(first_d, d, pos)
        first_t = np.full(n, d.shape[0])
        np.minimum.at(first_t, k, pos)
        fd, ft = first_d[d], first_t[k]
        take = (fd == pos) & (ft == pos)
        md.append(d[take])
        mt.append(k[take])
        # A detection or track is taken iff its first pair is.
        left = ~(take[fd] | take[ft])
        d, k = d[left], k[left]
    if not md:
        return _NO_INT, _NO_INT
    return np.concatenate(md), np.concatenate(mt)


def apply(st: np.ndarray, n: int, next_id: int, det: np.ndarray, scores: np.ndarray,
          md: np.ndarray, mt: np.ndarray, t: float, prm: np.ndarray
          ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kalman correction of the matched tracks, births from unmatched confident
    detections, then removal of tracks unmatched for too long.

    ``st`` must have room for ``n`` + the number of detections rows. Returns the new
    live count and next id, and per reported track (matched ones in detection order,
    then births): detection index, id, confirmed, filtered xyxy.
    """
    m = det.shape[0]
    r2 = prm[PRM_R2]
    track_of = np.full(m, -1, np.int64)
    track_of[md] = mt
    dm = (track_of >= 0).nonzero()[0]
    rows = track_of[dm]
    s = st[rows]  # a copy: corrected here, written back once
    # Kalman gain of each edge's position and velocity (shared by the four edges).
    g = s[:, P00:P11] / (s[:, P00:P01] + r2)
    innov = det[dm, 0:4] - s[:, 0:4]
    s[:, 0:8] += (g[:, :, None] * innov[:, None, :]).reshape(-1, 8)
    s[:, P11] -= g[:, 1] * s[:, P01]
    s[:, P00:P11] = r2 * g
    # Confirmed once matched confirm_s after birth; stays so.
    conf = (s[:, CONF] > 0.0) | (s[:, TBIRTH] < t - prm[PRM_CONFIRM])
    s[:, TLAST] = t
    s[:, CONF] = conf
    s[:, EXPIRE] = np.where(conf, t + prm[PRM_MAXLOST], t + prm[PRM_TLOST])
    st[rows] = s

    born = ((track_of < 0) & (scores >= prm[PRM_NEW])).nonzero()[0]
    b = born.shape[0]
    new_ids = np.arange(next_id, next_id + b, dtype=np.int64)
    if b:
        nb = st[n:n + b]
        nb[:] = _newborn(t, prm)
        nb[:, 0:4] = det[born, 0:4]
        nb[:, ID] = new_ids
    out_det = np.concatenate((dm, born))
    out_id = np.concatenate((s[:, ID].astype(np.int64), new_ids))
    out_conf = np.concatenate((conf, np.zeros(b, bool)))
    out_box = np.concatenate((s[:, 0:4], det[born, 0:4]))
    # Drop tracks unmatched for too long (matched and new ones never are), in order.
    n += b
    live = st[:n, EXPIRE] >= t
    w = int(np.count_nonzero(live))
    if w < n:
        st[:w] = st[:n][live]
    return w, next_id + b, out_det, out_id, out_conf, out_box


def _newborn(t: float, prm: np.ndarray) -> np.ndarray:
    """The state row of a track born at ``t``, before its box and id."""
    row = np.zeros(NCOL)
    row[P00] = prm[PRM_R2]
    row[P11] = prm[PRM_VINIT] * prm[PRM_VINIT]
    row[ONE] = 1.0
    row[TBIRTH] = row[TLAST] = t
    row[EXPIRE] = t + prm[PRM_TLOST]
    return row


def step(st: np.ndarray, n: int, next_id: int, det: np.ndarray, scores: np.ndarray,
         t: float, dt: float, prm: np.ndarray
         ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One whole frame with greedy assignment: predict, gate and score, match, correct,
    birth, expire. Same results as ``apply`` (see there)."""
    m = det.shape[0]
    if n > 0 and dt > 0.0:
        predict(st, n, dt, prm[PRM_Q])
    if n > 0 and m > 0:
        pd, pt, pc = pairs(st, n, det, scores, t, prm)
        md, mt = greedy(pd, pt, pc, m, n)
    else:
        md = mt = _NO_INT
    return apply(st, n, next_id, det, scores, md, mt, t, prm)
