"""The tracker's per-frame hot path as compiled loops (numba): the optional accelerator.

Why: ``edge.tracker_numpy`` (what every install runs) spends most of a frame in the call
overhead of a few dozen whole-array numpy calls; compiled by numba the whole frame is
one call, a few times faster (docs/PERFORMANCE.md). These loops do the same arithmetic
in the same order, so both give the same tracks (tests/test_tracker.py).

Compiling is optional: the `jit` extra installs numba, and ``FOOTFALL_JIT=0`` turns it
off. ``edge.tracker`` imports this module only when it uses it: numba adds about 130 MiB
of resident memory (its LLVM; docs/PERFORMANCE.md, "Resident memory"), which a door
camera does not need. Without numba the functions here are plain Python (slow; kept
only so the module imports).

The kernels are pure: arrays in, arrays out, no I/O. They are compiled on first use and
cached on disk (``cache=True``: next to this file in ``__pycache__``, or where
``NUMBA_CACHE_DIR`` points when that is not writable); ``edge.tracker.Tracker`` warms
them in its constructor so that no frame pays for compilation.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np


def _numba_njit() -> Any:
    """numba's ``njit`` when installed and not turned off by ``FOOTFALL_JIT=0``, else None."""
    if os.environ.get("FOOTFALL_JIT", "").strip() == "0":
        return None
    try:
        from numba import njit
    except ImportError:
        return None
    return njit


njit = _numba_njit()
JIT = njit is not None  # compiled (numba) or plain Python

_warned = False


def _kernel(fn: Callable[..., Any]) -> Any:
    """``njit`` with an on-disk cache where one can be written, else without: a
    read-only install (a systemd service with ProtectSystem=strict, no home) must still
    run, compiling once per process (a few seconds) instead of loading the cache.
    Without numba the function itself is the kernel."""
    if njit is None:
        return fn
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError as exc:  # numba: "cannot cache function ...: no locator available"
        global _warned
        if not _warned:
            _warned = True
            warnings.warn(f"numba cache unavailable, compiling at every start: {exc}; "
                          "set NUMBA_CACHE_DIR to a writable directory", RuntimeWarning,
                          stacklevel=2)
        return njit(cache=False, nogil=True)(fn)


# The state layout and parameter vector are edge.tracker_numpy's (numba freezes these
# globals at compile time; the on-disk cache is keyed on this file, so a layout change
# there must come with a touch here).
from edge.tracker_numpy import (  # noqa: E402
    BIG, CONF, EXPIRE, ID, NCOL, ONE, P00, P01, P11, PRM_CHI2, PRM_CONFIRM, PRM_DENSE,
    PRM_GATE_MAX2, PRM_HIGH, PRM_IOU, PRM_MAXLOST, PRM_NEW, PRM_Q, PRM_R2, PRM_TLOST, PRM_VINIT, REJECT,
    TBIRTH, TLAST, X1, X2, Y1, Y2,
)


@_kernel
def predict(st: np.ndarray, n: int, dt: float, q: float) -> None:
    """Constant-velocity prediction of every live track over ``dt`` seconds, in place.

    Each box edge moves by its velocity; the shared 2x2 covariance (in box heights
    squared) grows by F P F^T plus white-acceleration noise.
    """
    dt2 = dt * dt
    qa = q * dt2 * dt / 3.0
    qb = q * dt2 / 2.0
    qc = q * dt
    for i in range(n):
        for e in range(4):
            st[i, e] += dt * st[i, 4 + e]
        p00 = st[i, P00]
        p01 = st[i, P01]
        p11 = st[i, P11]
        one = st[i, ONE]
        st[i, P00] = p00 + 2.0 * dt * p01 + dt2 * p11 + qa * one
        st[i, P01] = p01 + dt * p11 + qb * one
        st[i, P11] = p11 + qc * one


@_kernel
def _pair_cost(det: np.ndarray, d: int, trk: np.ndarray, k: int, weak: bool,
               iou_min: float) -> float:
    """Cost of detection d on track k: -IoU when they overlap enough, else (confident
    detections only) the squared centre distance over the gate (< 1 inside it); then
    the two-stage penalties."""
    tw = trk[k, 6]
    th = trk[k, 7]
    iw = min(det[d, 2], trk[k, 2]) - max(det[d, 0], trk[k, 0])
    ih = min(det[d, 3], trk[k, 3]) - max(det[d, 1], trk[k, 1])
    if iw < 0.0:
        iw = 0.0
    if ih < 0.0:
        ih = 0.0
    inter = iw * ih
    iou = inter / (det[d, 6] * det[d, 7] + tw * th - inter)
    if iou >= iou_min:
        c = -iou
    elif weak or trk[k, 10] > 0.5:
        # Only a confident detection and a confirmed track may pair by distance.
        return BIG
    else:
        ex = det[d, 4] - trk[k, 4]
        ey = det[d, 5] - trk[k, 5]
        c = (ex * ex + ey * ey) / (th * th * trk[k, 8])
        if c >= 1.0:
            return BIG
    # Weak detections come after confident ones and only continue confirmed tracks
    # (trk[k, 9] is +2 on confirmed tracks, forbidding on tentative ones); tentative
    # tracks come after confirmed ones (trk[k, 10]).
    if weak:
        c += trk[k, 9]
    return c + trk[k, 10]


@_kernel
def pairs(st: np.ndarray, n: int, det: np.ndarray, scores: np.ndarray, t: float,
          prm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate (detection, track) pairs that the gate accepts, with their costs.

    Up to ``prm[PRM_DENSE]`` tracks x detections every pair is scored. Beyond,
    detections are sorted along x and each track only looks at those whose centre its
    own reach (half its size, or its gate radius, plus half the biggest detection) allows
    on both axes, so the work grows with the number of plausible pairs, not tracks x
    detections (``edge.tracker_numpy.scored`` does the same).

    A track past its expiry time (unmatched for longer than it may be) pairs with
    nothing: it is dropped at the end of this frame, and matching it first would let a
    stale prediction, far from where the track was last seen, take a stranger.
    """
    m = det.shape[0]
    chi2 = prm[PRM_CHI2]
    gate_max2 = prm[PRM_GATE_MAX2]
    r2 = prm[PRM_R2]
    high = prm[PRM_HIGH]
    iou_min = prm[PRM_IOU]
    # Per-track association columns: x1 y1 x2 y2 cx cy w h, gate, weak and tentative
    # penalties.
    trk = np.empty((n, 11))
    for k in range(n):
        for e in range(4):
            trk[k, e] = st[k, e]
        trk[k, 4] = 0.5 * (st[k, X1] + st[k, X2])
        trk[k, 5] = 0.5 * (st[k, Y1] + st[k, Y2])
        trk[k, 6] = max(st[k, X2] - st[k, X1], 1.0)  # a coasting box may have shrunk
        trk[k, 7] = max(st[k, Y2] - st[k, Y1], 1.0)
        trk[k, 8] = min(chi2 * (st[k, P00] + r2 * st[k, ONE]), gate_max2)
        conf = st[k, CONF]
        trk[k, 9] = (2.0 + BIG) * st[k, ONE] - BIG * conf
        trk[k, 10] = st[k, ONE] - conf
        if st[k, EXPIRE] < t:
            trk[k, 10] = BIG  # expired: every pair costs more than REJECT
    cap = 4 * (m + n) + 16
    pd = np.empty(cap, np.int64)
    pt = np.empty(cap, np.int64)
    pc = np.empty(cap)
    npairs = 0
    if n * m <= prm[PRM_DENSE]:
        for d in range(m):
            weak = scores[d] < high
            for k in range(n):
                c = _pair_cost(det, d, trk, k, weak, iou_min)
                if c < REJECT:
                    if npairs == pd.shape[0]:
                        pd, pt, pc = _grown(pd), _grown(pt), _grown(pc)
                    pd[npairs] = d
                    pt[npairs] = k
                    pc[npairs] = c
                    npairs += 1
        return pd[:npairs], pt[:npairs], pc[:npairs]
    # Sorted window: detections sorted along x; each track takes those its own reach
    # (half its width, or its gate radius, plus half the widest detection) allows on x,
    # then on y. Pairs then go back to detection-major order, so that ties in cost
    # break as in the dense case.
    dmax0 = dmax1 = 0.0
    for d in range(m):
        dmax0 = max(dmax0, det[d, 6])
        dmax1 = max(dmax1, det[d, 7])
    keys = det[:, 4].copy()
    order = np.argsort(keys, kind="mergesort")
    ks = keys[order]
    for k in range(n):
        gate_r = np.sqrt(trk[k, 8]) * trk[k, 7]
        rx = (max(0.5 * trk[k, 6], gate_r) + 0.5 * dmax0) * (1.0 + 1e-9)
        ry = (max(0.5 * trk[k, 7], gate_r) + 0.5 * dmax1) * (1.0 + 1e-9)
        tx = trk[k, 4]
        ty = trk[k, 5]
        j = np.searchsorted(ks, tx - rx, "left")
        while j < m and ks[j] <= tx + rx:
            d = order[j]
            j += 1
            if abs(det[d, 5] - ty) > ry:
                continue
            c = _pair_cost(det, d, trk, k, scores[d] < high, iou_min)
            if c < REJECT:
                if npairs == pd.shape[0]:
                    pd, pt, pc = _grown(pd), _grown(pt), _grown(pc)
                pd[npairs] = d
                pt[npairs] = k
                pc[npairs] = c
                npairs += 1
    pd, pt, pc = pd[:npairs], pt[:npairs], pc[:npairs]
    o = np.argsort(pd * n + pt, kind="mergesort")
    return pd[o], pt[o], pc[o]


@_kernel
def _grown(a: np.ndarray) -> np.ndarray:
    """``a`` in a buffer twice as long (candidate pairs outgrew theirs)."""
    b = np.empty(2 * a.shape[0], a.dtype)
    b[: a.shape[0]] = a
    return b


@_kernel
def greedy(pd: np.ndarray, pt: np.ndarray, pc: np.ndarray, m: int, n: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of gated pairs, cheapest first (ties in pair order).

    Measured: the optimal (Hungarian) matching bought nothing on these costs.
    """
    order = np.argsort(pc, kind="mergesort")
    used_d = np.zeros(m, np.bool_)
    used_t = np.zeros(n, np.bool_)
    k = min(m, n)
    md = np.empty(k, np.int64)
    mt = np.empty(k, np.int64)
    got = 0
    for i in order:
        d = pd[i]
        t = pt[i]
        if used_d[d] or used_t[t]:
            continue
        used_d[d] = True
        used_t[t] = True
        md[got] = d
        mt[got] = t
        got += 1
        if got == k:
            break
    return md[:got], mt[:got]


@_kernel
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
    confirm_s = prm[PRM_CONFIRM]
    t_lost = prm[PRM_TLOST]
    max_lost = prm[PRM_MAXLOST]
    track_of = np.full(m, -1, np.int64)
    for i in range(md.shape[0]):
        track_of[md[i]] = mt[i]
    out_det = np.empty(m, np.int64)
    out_id = np.empty(m, np.int64)
    out_conf = np.empty(m, np.bool_)
    out_box = np.empty((m, 4))
    k = 0
    for d in range(m):
        r = track_of[d]
        if r < 0:
            continue
        p00 = st[r, P00]
        p01 = st[r, P01]
        inv = 1.0 / (p00 + r2)
        g0 = p00 * inv
        g1 = p01 * inv
        for e in range(4):
            innov = det[d, e] - st[r, e]
            st[r, e] += g0 * innov
            st[r, 4 + e] += g1 * innov
        st[r, P11] -= g1 * p01
        st[r, P00] = p00 * r2 * inv
        st[r, P01] = p01 * r2 * inv
        st[r, TLAST] = t
        # Confirmed once matched confirm_s after birth; stays so.
        conf = st[r, CONF] > 0.0 or st[r, TBIRTH] < t - confirm_s
        st[r, CONF] = 1.0 if conf else 0.0
        st[r, EXPIRE] = t + (max_lost if conf else t_lost)
        out_det[k] = d
        out_id[k] = np.int64(st[r, ID])
        out_conf[k] = conf
        for e in range(4):
            out_box[k, e] = st[r, e]
        k += 1
    new_track = prm[PRM_NEW]
    vinit2 = prm[PRM_VINIT] * prm[PRM_VINIT]
    for d in range(m):
        if track_of[d] >= 0 or scores[d] < new_track:
            continue
        r = n
        n += 1
        for c in range(NCOL):
            st[r, c] = 0.0
        for e in range(4):
            st[r, e] = det[d, e]
            out_box[k, e] = det[d, e]
        st[r, P00] = r2
        st[r, P11] = vinit2
        st[r, ONE] = 1.0
        st[r, TBIRTH] = t
        st[r, TLAST] = t
        st[r, EXPIRE] = t + t_lost
        st[r, ID] = next_id
        out_det[k] = d
        out_id[k] = next_id
        out_conf[k] = False
        next_id += 1
        k += 1
    # Drop tracks unmatched for too long (matched and new ones never are), in order.
    w = 0
    for r in range(n):
        if st[r, EXPIRE] >= t:
            if w != r:
                for c in range(NCOL):
                    st[w, c] = st[r, c]
            w += 1
    return w, next_id, out_det[:k], out_id[:k], out_conf[:k], out_box[:k]


@_kernel
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
        md = np.empty(0, np.int64)
        mt = np.empty(0, np.int64)
    return apply(st, n, next_id, det, scores, md, mt, t, prm)
