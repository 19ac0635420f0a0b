"""The tracker's per-frame hot path as whole-array numpy over its state matrix.

Why this shape: a device gets the plain install (numpy, no compiler), and there the cost
of a frame is the number of numpy calls, not the arithmetic (about a microsecond each on
a desktop core, several on a Pi). So every step is a fixed handful of calls whatever the
crowd: the prediction of all tracks in one matrix product, a per-track table for
association (another product of the state, so that its rows come out together), the
detections' table built once in the same row-per-quantity layout, the cost of every candidate pair in one broadcast (or, for big frames, of
the pairs in sorted windows), greedy assignment in rounds (each takes every pair that is
the first left for both its detection and its track; a crowded frame needs a few rounds,
never one per track), and the Kalman correction, confirmation and births of all matched
tracks at once (on their state gathered and transposed, so that each quantity is a
contiguous row). Fewer calls is not all: a call on a strided 2-D view, one that
broadcasts, or a mixed dtype costs two to three times a same-shape one on contiguous
rows (callgrind: about 5k instructions against 10-25k), so the tables are laid out for
contiguous rows; a reduction (np.minimum.reduce) costs two to three plain calls, so
small minima are an argmin and an index; a Python float operand costs about 0.1 us
more than a 0-d array (numpy 2.4).

The arithmetic is ``edge.tracker_kernels``' (numba loops, the optional `jit` extra), so
both give the same tracks (tests/test_tracker.py compares them frame by frame on the
benchmark's streams; only the last bits of the estimates may differ).

State layout: one float64 matrix, a row per track (the first ``n`` rows live), a column
per quantity (the names below). Each box edge has a position and a velocity; all four
edges share one 2x2 covariance (p00, p01, p11) in box heights squared; ``ONE`` is 1.0 on
every live row. Pure: arrays in, arrays out, no I/O.
"""

from __future__ import annotations

import functools

import numpy as np

X1, Y1, X2, Y2, VX1, VY1, VX2, VY2, P00, P01, P11, ONE = range(12)
TBIRTH, TLAST, CONF, EXPIRE, ID = range(12, 17)
NCOL = 17
BIG = 1e9  # cost of a forbidden pair; anything >= REJECT is never matched
REJECT = 100.0

# Indices into the float64 parameter vector ``prm`` (built by Tracker from its params).
(PRM_HIGH, PRM_NEW, PRM_IOU, PRM_CHI2, PRM_R2, PRM_Q, PRM_CONFIRM, PRM_TLOST, PRM_MAXLOST,
 PRM_VINIT, PRM_DENSE, PRM_GATE_MAX2) = range(12)
NPRM = 12

_NO_INT = np.zeros(0, np.int64)
_NO_INT.flags.writeable = False

# Detection columns of the compiled path (built by edge.tracker from xyxy): x1 y1 x2 y2
# cx cy w h; then area. (The numpy path builds the transpose of the same, ``detections``.)
DET_COLS = 9
# xyxy -> x1 y1 x2 y2 cx cy w h, one product.
XYXY_TO_DET = np.array([
    [1, 0, 0, 0, 0.5, 0, -1, 0],
    [0, 1, 0, 0, 0, 0.5, 0, -1],
    [0, 0, 1, 0, 0.5, 0, 1, 0],
    [0, 0, 0, 1, 0, 0.5, 0, 1],
], dtype=np.float64)

# Association tables, one quantity per row and one detection or track per column (so
# that each quantity is a contiguous vector). Both start x1 y1 x2 y2 -x1 -y1 cx cy
# area, so that a pair's two sides line up row by row (x and y go through each
# operation together; with the edges negated, the overlap's two maxima are minima and
# x2, y2, -x1 and -y1 take one minimum), except that the track's centre is negated
# (-cx, -cy: a pair's centre offset and its areas' sum come out of one add) and cx is
# the centre "for distance": pushed FAR away (a weak detection's cx, a tentative
# track's -cx) so that such a pair's distance is out of every gate without a mask
# (only a confident detection and a confirmed track may pair by distance). A track's
# next row is its gate (box height squared x chi-square x predicted variance: a centre
# distance squared under it passes). Pair costs read the rows from _P0 (x2) to
# _DQ_PAIR / _KQ_PAIR (area, gate). Then come the box's w and h, and per track the
# penalty it adds to a confident detection (+1 when tentative) and to a weak one (+2 on
# a confirmed track, forbidding on a tentative one): a pair's penalty is one of those
# two rows, picked by the detection's score stage in one take. Last, a track's true cx
# (for the sorted windows of big frames) and its push (FAR when tentative, else 0).
_P0, _CX, _A = 2, 6, 8
_DQ_PAIR, DQ_W, _DQ_ROWS = 9, 9, 11
_K_GATE, _KQ_PAIR, _K_W, _K_TENT, _K_WEAK, _K_CX, _K_PUSH, _KQ_ROWS = 9, 10, 10, 12, 13, 14, 15, 16
DQ_AREA = _A  # the detections' table's rows that edge.tracker checks: w, h (DQ_W) and area
# xyxy -> the detections' table (its area row is filled after), one product.
_DET_FROM_XYXY = np.zeros((_DQ_ROWS, 4))
_DET_FROM_XYXY[0:4] = np.eye(4)
_DET_FROM_XYXY[4:6, 0:2] = -np.eye(2)
_DET_FROM_XYXY[_CX:_CX + 2] = XYXY_TO_DET[:, 4:6].T
_DET_FROM_XYXY[DQ_W:DQ_W + 2] = XYXY_TO_DET[:, 6:8].T
_DET_FROM_XYXY.flags.writeable = False
FAR = 1e100  # squared, still finite; over any gate
_PUSH = np.array((0.0, FAR))  # a detection's cx push, by its weak flag
_PUSH.flags.writeable = False


def _const(x: float) -> np.ndarray:
    """A read-only 0-d array: as a ufunc operand it costs about 0.1 us less than a
    Python float, which numpy must first convert (measured, numpy 2.4)."""
    a = np.array(x)
    a.flags.writeable = False
    return a


_ZERO, _ONE, _BIG, _REJECT = _const(0.0), _const(1.0), _const(BIG), _const(REJECT)
_TRUE, _FALSE = _const(True), _const(False)  # (as assigned values too)
_K_IN = CONF + 1  # the track table is a product of the state's first _K_IN columns


@functools.lru_cache(maxsize=4)
def _track_rows(r2: float) -> np.ndarray:
    """The ``(_KQ_ROWS, _K_IN)`` matrix that takes a state row's first columns to its
    track table column in one product: the box's edges, centre, size; the gate's
    ``p00 + r2``; the stage penalties and the push, from CONF and ONE. Every entry of
    the table has at most two nonzero terms of exact products, so the product rounds
    exactly as the per-row operations it replaces (the area row is filled after)."""
    t = np.zeros((_KQ_ROWS, _K_IN))
    t[0:_A, 0:4] = _DET_FROM_XYXY[0:_A]
    t[_CX:_CX + 2] *= -1.0  # -cx, -cy: a pair's centre offset and its areas' sum in one add
    t[_K_W:_K_W + 2, 0:4] = _DET_FROM_XYXY[DQ_W:DQ_W + 2]
    t[_K_GATE, P00], t[_K_GATE, ONE] = 1.0, r2
    t[_K_TENT, ONE], t[_K_TENT, CONF] = 1.0, -1.0  # 1 - conf
    t[_K_WEAK, ONE], t[_K_WEAK, CONF] = BIG + 1.0, -(BIG - 1.0)  # 2, or BIG + 1 if tentative
    t[_K_CX, 0:4] = XYXY_TO_DET[:, 4]
    t[_K_PUSH, ONE], t[_K_PUSH, CONF] = FAR, -FAR  # 0, or FAR (on -cx) if tentative
    t.flags.writeable = False
    return t


def predict(st: np.ndarray, n: int, dt: float, q: float) -> None:
    """Constant-velocity prediction of every live track over ``dt`` seconds, in place:
    each edge moves by its velocity, the shared covariance grows by F P F^T plus
    white-acceleration noise; one matrix product for all of it."""
    s = st[:n]
    s[:, 0:ONE] = s[:, 0:ONE + 1] @ _transition(dt, q)


@functools.lru_cache(maxsize=8)
def _transition(dt: float, q: float) -> np.ndarray:
    """The ``(12, 11)`` matrix taking a state row's first 12 columns (edges, velocities,
    covariance, one) to its predicted first 11. Cached: a steady frame rate has a few
    distinct dt; a jittery clock misses, and the build is three operations."""
    f = _F_STILL.copy()
    f[_VEL, _POS] = dt
    dt2 = dt * dt
    f[P00:ONE + 1, P00:ONE] = ((1.0, 0.0, 0.0),
                               (2.0 * dt, 1.0, 0.0),
                               (dt2, dt, 1.0),
                               (q * dt2 * dt / 3.0, q * dt2 / 2.0, q * dt))
    f.flags.writeable = False
    return f


_F_STILL = np.eye(ONE + 1, ONE)  # dt = 0 (the covariance block is set per dt)
_VEL, _POS = np.arange(4, 8), np.arange(0, 4)  # edge += dt x its velocity


def track_table(st: np.ndarray, n: int, prm: np.ndarray) -> np.ndarray:
    """What association needs of each live track, as a ``(_KQ_ROWS, n)`` table (rows:
    see the layout above): one matrix product of the state (``_track_rows``), then the
    size floor, the area, the gate and the push."""
    k = np.empty((_KQ_ROWS, n))
    np.matmul(_track_rows(float(prm[PRM_R2])), st[:n, 0:_K_IN].T, out=k)
    w = k[_K_W:_K_W + 2]
    np.maximum(w, _ONE, out=w)  # a coasting box may have shrunk
    h = w[1]
    np.multiply(w[0], h, out=k[_A])
    # chi-square x predicted variance (p00 + r2, from the product), capped: a young
    # track's velocity is a guess, and coasting on it must not let it reach across the
    # picture. Then in box heights squared.
    gate = k[_K_GATE]
    gate *= prm[PRM_CHI2]
    np.minimum(gate, prm[PRM_GATE_MAX2], out=gate)
    gate *= h * h
    # A tentative track does not pair by distance (its cx is pushed FAR away); tentative
    # tracks come after confirmed ones (+1); weak detections only continue confirmed
    # tracks (+2, and BIG on tentative ones): rows of the product. (Expired tracks are
    # gone: see expire.)
    cx = k[_CX]
    np.add(cx, k[_K_PUSH], out=cx)  # (not k[_CX] += ...: that also assigns the row back)
    return k


def detections(boxes: np.ndarray) -> np.ndarray:
    """The detections' side of association, a ``(_DQ_ROWS, m)`` table from ``(m, 4)``
    xyxy boxes (rows: see the layout above; the product gives x1 y1 x2 y2 cx cy w h
    exactly, then the area). The push of weak detections' cx is set by ``scored``,
    which knows the score stage. ``edge.tracker`` checks the sizes
    and the area on it."""
    d = np.empty((_DQ_ROWS, boxes.shape[0]))
    np.matmul(_DET_FROM_XYXY, boxes.T, out=d)
    np.multiply(d[DQ_W], d[DQ_W + 1], out=d[_A])
    return d


def costs(d: np.ndarray, k: np.ndarray, pen: np.ndarray, iou_min: float) -> np.ndarray:
    """Cost of each pair, from its detection's rows ``d`` and its track's rows ``k``
    (the tables' rows from _P0, materialised to the same shape: same-shape
    operations cost a third of broadcasting ones at this size) and its stage penalty
    ``pen`` (same shape); REJECT or more where the gate forbids the pair.

    -IoU when IoU >= iou_min, else (confident detections on confirmed tracks only: the
    others' distance centre is infinite) the squared centre distance over the gate,
    which must be < 1; plus the penalty (+1 on a tentative track, +2 for a weak
    detection, forbidding on a tentative track). x and y go through each operation
    together, and so do the two gates.
    """
    lo = np.minimum(d[0:4], k[0:4])  # min x2, min y2, -max x1, -max y1
    wh = lo[0:2]
    np.add(wh, lo[2:4], out=wh)  # overlap width and height
    np.maximum(wh, _ZERO, out=wh)
    inter = wh[0] * wh[1]
    # The track's centre is negated in its table: one add gives the centre offsets
    # (d + -k: the same bits as d - k) and the areas' sum.
    sums = np.add(d[_CX - _P0:_A - _P0 + 1], k[_CX - _P0:_A - _P0 + 1])
    neg = sums[2]
    np.subtract(inter, neg, out=neg)  # -union (inter - union: the same bits, negated)
    neg_iou = np.divide(inter, neg, out=neg)
    e = sums[0:2]
    e *= e
    dist, e1 = e[0], e[1]
    np.add(dist, e1, out=dist)
    dist /= k[_K_GATE - _P0]  # squared centre distance over the gate
    # Arithmetic rather than masks and np.where (several times dearer at this size),
    # both gates in one floor: e holds the distance and IoU - iou_min, whose floors are
    # 0 for an allowed pair (distance < 1, IoU >= iou_min) and else >= 1 and -1. So
    # outside the gate the distance costs BIG more, and an overlap under iou_min costs
    # BIG - IoU, else -IoU; the pair takes the cheaper. Every term added is 0.0 for an
    # allowed pair, so its cost is exact (and the same bits as ceil(iou_min - IoU) x BIG
    # - IoU, the form before).
    np.subtract(-iou_min, neg_iou, out=e1)
    f = np.floor(e, out=wh)
    f *= _BIG
    dist += f[0]
    x = f[1]
    np.subtract(neg_iou, x, out=x)
    c = np.minimum(dist, x, out=dist)
    c += pen
    return c


def scored(st: np.ndarray, n: int, d: np.ndarray, scores: np.ndarray, t: float,
           prm: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair costs (REJECT or more: the gate forbids the pair): the ``(m, n)`` matrix of
    every detection on every track, or, for big frames, the gated pairs as (detection,
    track, cost) arrays. ``d`` is ``detections``' table; its pushed cx is set here.

    Up to ``prm[PRM_DENSE]`` tracks x detections every pair is scored: both tables are
    spread to ``(rows, m, n)`` once, then every operation is same-shape. Beyond,
    detections are sorted along x, each track takes the window of detections its own
    reach (half its width or its gate radius, plus half the widest detection) allows on
    x, then on y, and only those pairs are scored: the work follows the plausible
    pairs, and one coasting track with a wide gate widens only its own window.

    A pair's penalty is its track's confident-detection or weak-detection row (the
    two added one after the other would give the same allowed costs: one of them is 0).
    """
    m = d.shape[1]
    dense = m * n <= prm[PRM_DENSE]
    k = track_table(st, n, prm)
    weak = np.less(scores, prm[PRM_HIGH])  # as an index (0/1): a penalty row, a push
    pens = k[_K_TENT:_K_WEAK + 1]
    if dense:
        cx = d[_CX]
        np.add(cx, _PUSH.take(weak), out=cx)
        dd = d[_P0:_DQ_PAIR].repeat(n, axis=1).reshape(_DQ_PAIR - _P0, m, n)
        kk = k[_P0:_KQ_PAIR, None, :].repeat(m, axis=1)
        return costs(dd, kk, pens.take(weak, axis=0), float(prm[PRM_IOU]))
    order = d[_CX].argsort(kind="stable")
    keys = d[_CX].take(order)
    cx = d[_CX]
    np.add(cx, _PUSH.take(weak), out=cx)
    gate_r = np.sqrt(k[_K_GATE])
    hw = 0.5 * d[DQ_W:DQ_W + 2].max(axis=1)
    rx = (np.maximum(0.5 * k[_K_W], gate_r) + hw[0]) * (1.0 + 1e-9)  # slack: rounding
    ry = (np.maximum(0.5 * k[_K_W + 1], gate_r) + hw[1]) * (1.0 + 1e-9)  # never drops a pair
    lo = keys.searchsorted(k[_K_CX] - rx, "left")
    cnt = keys.searchsorted(k[_K_CX] + rx, "right") - lo
    total = int(cnt.sum())
    pt = np.arange(n).repeat(cnt)
    pd = order[np.arange(total) + (lo - (cnt.cumsum() - cnt)).repeat(cnt)]
    near = np.abs(d[_CX + 1, pd] + k[_CX + 1, pt]) <= ry[pt]  # (the track's cy is negated)
    pd, pt = pd[near], pt[near]
    two = pens.take(pt, axis=1)
    pen = np.where(weak.take(pd), two[1], two[0])
    # take, not fancy indexing: its rows come out contiguous (d[rows, pd] is transposed).
    c = costs(d[_P0:_DQ_PAIR].take(pd, axis=1), k[_P0:_KQ_PAIR].take(pt, axis=1), pen,
              float(prm[PRM_IOU]))
    ok = c < REJECT
    return pd[ok], pt[ok], c[ok]


def pairs(st: np.ndarray, n: int, det: np.ndarray, scores: np.ndarray, t: float,
          prm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate (detection, track) pairs that the gate accepts, with their costs (for
    the optimal assignment)."""
    c = scored(st, n, det, scores, t, prm)
    if isinstance(c, tuple):
        return c
    pd, pt = (c < REJECT).nonzero()
    return pd, pt, c[pd, pt]


def greedy_dense(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching on an ``(m, n)`` cost matrix (REJECT or more: forbidden),
    cheapest pair first, ties to the lower detection, then the lower track; in rounds.
    ``c`` may be overwritten.

    Greedy over the sorted pairs takes a pair iff no earlier pair it conflicts with was
    taken. A pair that is the first left in both its row and its column (each row's and
    column's argmin) is therefore taken, and every other pair in its row and column is
    not; dropping both and repeating gives exactly the greedy matching, one round per
    link of the longest chain of conflicts (one or two in a crowd, never one per
    track). Rounds after the first work on the few rows left (those still open), with
    the taken columns forbidden (BIG); where at most _FEW rows are left, greedy takes
    their pairs one at a time instead (``_one_at_a_time``: a round is a dozen calls).
    """
    m, n = c.shape
    r = _ARANGE[:m] if m <= _ARANGE.shape[0] else np.arange(m)
    col = c.argmin(axis=1)
    open_ = c[r, col] < _REJECT  # each row's least cost (a gather: a third of a row-wise min)
    take = c.argmin(axis=0).take(col) == r
    take &= open_
    md = take.nonzero()[0]
    mt = col.take(md)
    rows = (open_ > take).nonzero()[0]  # open, not taken: may take another track
    if not rows.shape[0]:
        return md, mt
    # Later rounds mark their matches in the first round's arrays (taken, and the track
    # in col), so that the matching comes out in detection order without a sort.
    taken, best = take, col
    c = c.take(rows, axis=0)
    c[:, mt] = _BIG
    if rows.shape[0] <= _FEW:
        _one_at_a_time(c, rows, taken, best)
        md = taken.nonzero()[0]
        return md, best.take(md)
    while least(c) < REJECT:
        k = rows.shape[0]
        r = _ARANGE[:k] if k <= _ARANGE.shape[0] else np.arange(k)
        col = c.argmin(axis=1)
        open_ = c[r, col] < _REJECT
        take = c.argmin(axis=0).take(col) == r
        take &= open_
        td = take.nonzero()[0]
        tk = col.take(td)
        rd = rows.take(td)
        taken[rd] = _TRUE
        best[rd] = tk
        keep = (open_ > take).nonzero()[0]
        if not keep.shape[0]:
            break
        rows = rows.take(keep)
        c = c.take(keep, axis=0)
        c[:, tk] = _BIG
    md = taken.nonzero()[0]
    return md, best.take(md)


_FEW = 3  # rows left after greedy's first round that go one pair at a time


def _one_at_a_time(c: np.ndarray, rows: np.ndarray, taken: np.ndarray, best: np.ndarray
                   ) -> None:
    """Greedy on a few rows, one pair at a time: the least cost left (the first in row
    order, then column order: ties to the lower detection, then the lower track) is
    taken and its row and column forbidden, until none is allowed. Marks ``taken`` and
    ``best`` at the detections ``rows`` (ascending) name; ``c`` (contiguous) is
    overwritten. The greedy matching of what the first round left, as the rounds'."""
    n = c.shape[1]
    flat = c.ravel()
    while True:
        i = int(flat.argmin())
        if flat[i] >= REJECT:
            return
        r, j = divmod(i, n)
        d = rows[r]
        taken[d] = True
        best[d] = j
        c[r] = BIG
        c[:, j] = BIG


def least(a: np.ndarray) -> np.floating:
    """The least entry of a small non-empty array (NaN if it holds one). An argmin and an
    index cost half of np.minimum.reduce at tens of entries (its fixed cost is the
    reduction machinery's)."""
    return a.ravel()[a.argmin()]


def most(a: np.ndarray) -> np.floating:
    """The greatest entry of a small non-empty array (NaN if it holds one); see least."""
    return a.ravel()[a.argmax()]


_ARANGE = np.arange(4096)
_ARANGE.flags.writeable = False


def _by_detection(md: list[np.ndarray], mt: list[np.ndarray], ordered: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The rounds' matches as one (detection, track) list in detection order (each
    round's own list is in that order where ``ordered``)."""
    if len(md) == 1 and ordered:
        return md[0], mt[0]
    if not md:
        return _NO_INT, _NO_INT
    d, k = np.concatenate(md), np.concatenate(mt)
    o = d.argsort()
    return d[o], k[o]


def greedy_pairs(pd: np.ndarray, pt: np.ndarray, pc: np.ndarray, m: int, n: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """greedy_dense's matching from a list of gated pairs (a big frame's: few pairs
    for its tracks x detections, where argmins over the whole matrix would cost more).

    Same rounds: in (cost, detection, track) order, a pair that is the first left for
    both its detection and its track is taken, and the other pairs of either go.
    """
    o = np.lexsort((pt, pd, pc))
    d, k = pd[o], pt[o]
    md: list[np.ndarray] = []
    mt: list[np.ndarray] = []
    while d.shape[0]:
        pos = np.arange(d.shape[0])
        first_d = np.empty(m, np.int64)
        first_d.fill(d.shape[0])
        np.minimum.at(first_d, d, pos)
        first_t = np.empty(n, np.int64)
        first_t.fill(d.shape[0])
        np.minimum.at(first_t, k, pos)
        fd, ft = first_d[d], first_t[k]
        take = (fd == pos) & (ft == pos)
        md.append(d[take])
        mt.append(k[take])
        # A detection or track is taken iff its first pair is.
        left = ~(take[fd] | take[ft])
        d, k = d[left], k[left]
    return _by_detection(md, mt)


def apply(st: np.ndarray, n: int, next_id: int, det: np.ndarray, scores: np.ndarray,
          md: np.ndarray, mt: np.ndarray, t: float, prm: np.ndarray
          ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kalman correction of the matched tracks and births from unmatched confident
    detections (tracks past their time are dropped before: ``expire``).

    ``md`` (ascending) and ``mt`` are the matched detections and their tracks; ``det``
    is ``detections``' table. ``st`` must have room for ``n`` + the number of
    detections rows. Returns the new live
    count and next id, and per reported track (matched ones in detection order, then
    births): detection index, id, confirmed, filtered xyxy.
    """
    p = prm.tolist()
    r2, new_score, confirm_s, t_lost, max_lost, vinit = (
        p[PRM_R2], p[PRM_NEW], p[PRM_CONFIRM], p[PRM_TLOST], p[PRM_MAXLOST], p[PRM_VINIT])
    # The matched tracks' state, transposed (a row per quantity, a column per track):
    # a copy, corrected here with contiguous whole-row operations, written back once.
    s = st.take(mt, axis=0).T.copy()
    # Kalman gain of each edge's position and velocity (shared by the four edges).
    cov = s[P00:P11]  # p00, p01
    g = cov / (s[P00] + r2)
    box = s[0:4]
    innov = det[0:4].take(md, axis=1)
    innov -= box
    moving = s[0:8]  # (a name, not s[0:8] += ...: that also assigns the rows back)
    np.add(moving, (g[:, None, :] * innov).reshape(8, -1), out=moving)
    p11 = s[P11]
    np.subtract(p11, g[1] * s[P01], out=p11)
    np.multiply(g, r2, out=cov)
    # Confirmed once matched confirm_s after birth; stays so (time never goes back, so
    # the test stays true once it is). Last match now; expiry max_lost_s after now if
    # confirmed, else tentative_lost_s: TLAST, CONF and EXPIRE looked up by the
    # confirmation, in one step.
    conf = s[TBIRTH] < t - confirm_s
    s[TLAST:EXPIRE + 1] = np.array((t, t, 0.0, 1.0, t + t_lost, t + max_lost)
                                   ).reshape(3, 2).take(conf, axis=1)
    st[mt] = s.T
    out_det, out_id, out_box = md, s[ID].astype(np.int64), box.T

    free = scores >= new_score
    free[md] = _FALSE
    born = free.nonzero()[0]
    b = born.shape[0]
    if b:
        nb = st[n:n + b]
        nb[:] = _birth_row(r2, vinit * vinit)
        nb[:, TBIRTH] = t
        nb[:, TLAST] = t
        nb[:, EXPIRE] = t + t_lost
        nb[:, 0:4] = det[0:4].take(born, axis=1).T
        new_ids = np.arange(next_id, next_id + b, dtype=np.int64)
        nb[:, ID] = new_ids
        out_det = np.concatenate((md, born))
        out_id = np.concatenate((out_id, new_ids))
        conf = np.concatenate((conf, np.zeros(b, bool)))
        out_box = np.concatenate((out_box, nb[:, 0:4]))
        n += b
    return n, next_id + b, out_det, out_id, conf, out_box


def expire(st: np.ndarray, n: int, t: float) -> int:
    """Drop the tracks unmatched for too long at time ``t``, in order; returns the new
    live count. Done before a frame's association (so that no track past its time,
    whose stale prediction is far from where it was last seen, takes a stranger):
    the state after the frame is the same as dropping them at its end, since the
    tracks matched or born in it never are."""
    if not n or least(st[:n, EXPIRE]) >= t:  # the usual frame: none is due
        return n
    kept = st[:n][st[:n, EXPIRE] >= t]
    w = kept.shape[0]
    st[:w] = kept
    return w


@functools.lru_cache(maxsize=4)
def _birth_row(r2: float, vinit2: float) -> np.ndarray:
    """A new track's state row, less its box, times and id: still, with the
    measurement's variance on position and the prior's on velocity."""
    row = np.zeros(NCOL)
    row[P00], row[P11], row[ONE] = r2, vinit2, 1.0
    row.flags.writeable = False
    return row


def step(st: np.ndarray, n: int, next_id: int, det: np.ndarray, scores: np.ndarray,
         t: float, dt: float, prm: np.ndarray
         ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One whole frame with greedy assignment: expire, predict, gate and score, match,
    correct, birth. Same results as ``apply`` (see there). (edge.tracker_kernels.step is
    the same sequence, compiled whole: numba cannot call this one.)"""
    m = det.shape[1]
    n = expire(st, n, t)
    if n > 0 and dt > 0.0:
        predict(st, n, dt, prm[PRM_Q])
    if n > 0 and m > 0:
        c = scored(st, n, det, scores, t, prm)
        md, mt = greedy_pairs(*c, m, n) if isinstance(c, tuple) else greedy_dense(c)
    else:
        md = mt = _NO_INT
    return apply(st, n, next_id, det, scores, md, mt, t, prm)
