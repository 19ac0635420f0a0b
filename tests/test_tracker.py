"""The tracker: identities, confirmation and loss in seconds, association, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.counting import CountingLine, LineCounter
from edge.tracker import Tracker, TrackerParams
from simulator.detections import StreamSpec, generate

LINE = CountingLine("door", (40.0, 240.0), (600.0, 240.0), (320.0, 470.0), hysteresis_px=8.0)
H = 100.0  # walker box height, px
W = 40.0


def walker_frames(fps: float, speed: float, jitter: float, miss: float, seed: int,
                  direction: int = 1, y_from: float = 60.0, y_to: float = 420.0):
    """A lone walker's detections: bottom-centre goes from y_from to y_to (or back)."""
    rng = np.random.default_rng(seed)
    dist = abs(y_to - y_from)
    n = int(dist / speed * fps) + 1
    a, b = (y_from, y_to) if direction > 0 else (y_to, y_from)
    for i in range(n + int(fps)):  # plus a second standing at the end
        t = i / fps
        y = a + (b - a) * min(1.0, t * speed / dist)
        if rng.random() < miss:
            yield t, np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
            continue
        box = np.array([[320 - W / 2, y - H, 320 + W / 2, y]]) + rng.uniform(-jitter, jitter, (1, 4))
        yield t, box.astype(np.float32), np.array([0.8], np.float32)


def count(frames, tracker=None, counter=None):
    tracker = tracker or Tracker()
    counter = counter or LineCounter([LINE])
    events = []
    for t, boxes, scores in frames:
        out = tracker.update(boxes, scores, t)
        events += counter.update(out.ids, out.boxes, out.confirmed, t)
    return events


def test_lone_walker_keeps_one_identity_and_is_confirmed_in_seconds():
    for fps in (5.0, 30.0):
        tr = Tracker()
        seen = set()
        first_confirmed = None
        for t, boxes, scores in walker_frames(fps, 100.0, 3.0, 0.0, 1):
            out = tr.update(boxes, scores, t)
            seen.update(out.ids.tolist())
            if first_confirmed is None and out.confirmed.any():
                first_confirmed = t
        assert seen == {1}
        # confirm_s = 0.15 s: the first match at least 0.15 s after birth confirms.
        assert first_confirmed is not None
        assert 0.15 <= first_confirmed <= 0.15 + 1 / fps + 1e-9


@pytest.mark.parametrize("fps", [5.0, 15.0, 30.0])
def test_lost_track_is_dropped_after_max_lost_s_whatever_the_frame_rate(fps):
    p = TrackerParams()
    tr = Tracker(p)
    box = np.array([[100, 100, 140, 200]], np.float32)
    t = 0.0
    for _ in range(10):
        tr.update(box, np.array([0.9], np.float32), t)
        t += 1 / fps
    last_seen = t - 1 / fps
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    while t - last_seen <= p.max_lost_s:
        tr.update(*empty, t)
        assert tr.live_count == 1
        t += 1 / fps
    tr.update(*empty, t)
    assert tr.live_count == 0


@pytest.mark.parametrize("assignment", ["greedy", "optimal"])
def test_two_walkers_passing_each_other_keep_their_identities(assignment):
    tr = Tracker(TrackerParams(assignment=assignment))
    rng = np.random.default_rng(2)
    for f in range(80):
        t = f / 15
        a, b = 20 + 6 * f, 460 - 6 * f
        boxes = np.array([[300, a - 50, 340, a + 50], [312, b - 50, 352, b + 50]]) + rng.normal(0, 2, (2, 4))
        out = tr.update(boxes.astype(np.float32), np.array([0.9, 0.9], np.float32), t)
        # Detection 0 is always the walker going down: its track must be id 1.
        assert dict(zip(out.det_index.tolist(), out.ids.tolist())) == {0: 1, 1: 2}


def test_weak_detections_continue_confirmed_tracks_but_never_start_one():
    tr = Tracker()
    box = np.array([[100, 100, 140, 200]], np.float32)
    weak = np.array([0.3], np.float32)
    for i in range(5):
        out = tr.update(box, weak, i / 10)
        assert out.ids.size == 0
    for i in range(5, 10):
        out = tr.update(box + i, np.array([0.9], np.float32), i / 10)
    for i in range(10, 20):
        out = tr.update(box + i, weak, i / 10)
        assert out.ids.tolist() == [1] and out.confirmed.all()
    # Below low_score a detection is ignored altogether.
    out = tr.update(box + 20, np.array([0.05], np.float32), 2.0)
    assert out.ids.size == 0


def test_dense_and_windowed_candidate_pairs_give_the_same_tracks():
    """The sorted-window gating must never drop a pair that the gate would accept."""
    stream = generate(StreamSpec(in_view=50, duration_s=6.0, seed=5))
    dense = Tracker(TrackerParams(dense_pairs_max=10**9))
    window = Tracker(TrackerParams(dense_pairs_max=0))
    for fr in stream.frames:
        a = dense.update(fr.boxes, fr.scores, fr.t)
        b = window.update(fr.boxes, fr.scores, fr.t)
        ia, ib = np.argsort(a.ids), np.argsort(b.ids)
        assert a.ids[ia].tolist() == b.ids[ib].tolist()
        np.testing.assert_allclose(a.filtered[ia], b.filtered[ib])


def test_counting_on_a_synthetic_crowd_is_accurate():
    """20 people in view, jitter, 10% misses, false positives, groups: >= 97% per
    direction over a minute (the full figures are in bench/tracker_bench)."""
    from bench.tracker_bench import gross_accuracy

    stream = generate(StreamSpec(in_view=20, duration_s=60.0, seed=11))
    tr = Tracker()
    lc = LineCounter([CountingLine("door", *stream.line, stream.inside)], anchor="centre",
                     frame_size=(640, 480))
    events = []
    for fr in stream.frames:
        out = tr.update(fr.boxes, fr.scores, fr.t)
        for e in lc.update(out.ids, out.boxes, out.confirmed, fr.t):
            b = out.boxes[out.ids.tolist().index(e.track_id)]
            events.append((e.t, e.direction, (b[0] + b[2]) / 2))
    acc = gross_accuracy(stream, events)
    assert acc["in"]["true"] > 50 and acc["out"]["true"] > 50
    assert acc["in"]["accuracy"] >= 0.97 and acc["out"]["accuracy"] >= 0.97, acc


@pytest.mark.parametrize("confirmed", [False, True])
def test_a_track_past_its_lost_time_takes_no_detection(confirmed):
    """A track unmatched for longer than it may be is gone, even in the frame that
    would have matched it: its stale prediction must not take someone else."""
    p = TrackerParams()
    tr = Tracker(p)
    box = np.array([[100, 100, 140, 200]], np.float32)
    score = np.array([0.9], np.float32)
    seen = (0.0, 0.1, 0.2) if confirmed else (0.0,)
    for t in seen:
        out = tr.update(box, score, t)
    assert out.ids.tolist() == [1] and bool(out.confirmed[0]) == confirmed
    lost = p.max_lost_s if confirmed else p.tentative_lost_s
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    tr.update(*empty, seen[-1] + 0.9 * lost)
    assert tr.live_count == 1
    out = tr.update(box, score, seen[-1] + 1.05 * lost)
    assert out.ids.tolist() == [2] and not out.confirmed.any()


def test_no_frame_pays_for_compilation():
    """The constructor warms every kernel with the argument types update() passes, so
    a stream of frames (float32 or float64 input, with low scores filtered) adds no
    compiled variant."""
    from edge import tracker_kernels as k

    Tracker()
    before = {name: len(getattr(k, name).signatures) for name in ("step", "pairs", "apply")}
    stream = generate(StreamSpec(in_view=50, duration_s=2.0, seed=3))
    for cls in (Tracker(), Tracker(TrackerParams(dense_pairs_max=0))):
        for fr in stream.frames:
            cls.update(fr.boxes, fr.scores, fr.t)
            cls.update(fr.boxes.astype(np.float64), fr.scores.astype(np.float64), fr.t)
    after = {name: len(getattr(k, name).signatures) for name in before}
    assert after == before


def test_bad_input_is_refused_with_a_clear_error():
    tr = Tracker()
    with pytest.raises(ValueError, match="shape"):
        tr.update(np.zeros((2, 3)), np.zeros(2), 0.0)
    with pytest.raises(ValueError, match="shape"):
        tr.update(np.zeros((2, 4)), np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="x2 > x1"):
        tr.update(np.array([[10, 10, 5, 20]], np.float32), np.array([0.9]), 0.0)
    with pytest.raises(ValueError, match="x2 > x1"):
        tr.update(np.array([[10, np.nan, 15, 20]], np.float32), np.array([0.9]), 0.0)
    tr.update(np.zeros((0, 4)), np.zeros(0), 1.0)
    with pytest.raises(ValueError, match="back"):
        tr.update(np.zeros((0, 4)), np.zeros(0), 0.5)
    with pytest.raises(ValueError):
        TrackerParams(low_score=0.6, high_score=0.5)


@settings(max_examples=40, deadline=None)
@given(
    frames=st.lists(
        st.lists(st.tuples(st.floats(0, 600), st.floats(0, 440), st.floats(5, 80),
                           st.floats(5, 120), st.floats(0.0, 1.0)), max_size=25),
        min_size=1, max_size=25),
    dts=st.lists(st.floats(0.0, 0.5), min_size=25, max_size=25),
)
def test_track_ids_never_duplicate_and_are_never_reused(frames, dts):
    tr = Tracker(TrackerParams(dense_pairs_max=64))  # exercise both pair paths
    t = 0.0
    retired: set[int] = set()
    live_prev: set[int] = set()
    for rows, dt in zip(frames, dts):
        t += dt
        a = np.array(rows, dtype=np.float32).reshape(-1, 5)
        boxes = np.column_stack([a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]])
        out = tr.update(boxes, a[:, 4], t)
        ids = out.ids.tolist()
        assert len(ids) == len(set(ids))
        assert not (set(ids) & retired)
        assert len(set(out.det_index.tolist())) == len(ids)  # one detection per track
        live = set(tr.live_ids().tolist())
        retired |= live_prev - live
        live_prev = live


@settings(max_examples=60, deadline=None)
@given(
    fps=st.floats(5.0, 30.0),
    speed=st.floats(50.0, 150.0),  # px/s: 0.5 to 1.5 box heights per second
    jitter=st.floats(0.0, 6.0),  # px, uniform on every box coordinate
    miss=st.floats(0.0, 0.1),
    direction=st.sampled_from([1, -1]),
    seed=st.integers(0, 2**16),
)
def test_lone_walker_crossing_counts_exactly_once(fps, speed, jitter, miss, direction, seed):
    events = count(walker_frames(fps, speed, jitter, miss, seed, direction))
    assert [e.direction for e in events] == (["in"] if direction > 0 else ["out"])


@settings(max_examples=60, deadline=None)
@given(
    fps=st.floats(5.0, 30.0),
    speed=st.floats(50.0, 150.0),
    jitter=st.floats(0.0, 3.0),
    stop_at=st.floats(-4.0, 4.0),  # where the bottom-centre stops, px from the line
    pause=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**16),
)
def test_walker_who_stops_on_the_line_and_turns_back_counts_nothing(fps, speed, jitter, stop_at,
                                                                   pause, seed):
    rng = np.random.default_rng(seed)
    y_stop = 240.0 + stop_at
    frames = []
    t = 0.0
    path = list(np.arange(60.0, y_stop, speed / fps)) + [y_stop] * int(pause * fps + 1)
    path += list(np.arange(y_stop, 60.0, -speed / fps))
    for y in path:
        box = np.array([[320 - W / 2, y - H, 320 + W / 2, y]]) + rng.uniform(-jitter, jitter, (1, 4))
        frames.append((t, box.astype(np.float32), np.array([0.8], np.float32)))
        t += 1 / fps
    assert count(frames) == []


_TRACK_DIGEST = r"""
import hashlib, sys
import numpy as np
import edge.tracker_kernels as k
from edge.tracker import Tracker
from simulator.detections import StreamSpec, generate
stream = generate(StreamSpec(in_view=20, duration_s=8.0, seed=5))
tr, h = Tracker(), hashlib.sha256()
for fr in stream.frames:
    out = tr.update(fr.boxes, fr.scores, fr.t)
    h.update(out.ids.tobytes() + out.confirmed.tobytes() + np.round(out.filtered, 6).tobytes())
print(k.JIT, h.hexdigest())
"""


def test_plain_python_kernels_track_exactly_like_the_compiled_ones():
    """A default install has no numba (the `jit` extra): the same kernels then run as plain
    Python, and must give the same tracks, bit for bit up to rounding."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    import numba  # noqa: F401  (the [jit] extra `make install` installs: missing, this errors rather than skips)
    got = {}
    for jit in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", _TRACK_DIGEST], capture_output=True, text=True, cwd=root,
                             env={**os.environ, "PYTHONPATH": str(root), "FOOTFALL_JIT": jit}, timeout=240, check=True)
        got[jit] = out.stdout.split()
    assert got["0"][0] == "False" and got["1"][0] == "True"
    assert got["0"][1] == got["1"][1]
