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


@pytest.mark.parametrize("compiled", [False, True])
def test_dense_and_windowed_candidate_pairs_give_the_same_tracks(compiled):
    """The sorted-window gating must never drop a pair that the gate would accept."""
    stream = generate(StreamSpec(in_view=50, duration_s=6.0, seed=5))
    dense = Tracker(TrackerParams(dense_pairs_max=10**9), compiled=compiled)
    window = Tracker(TrackerParams(dense_pairs_max=0), compiled=compiled)
    for fr in stream.frames:
        a = dense.update(fr.boxes, fr.scores, fr.t)
        b = window.update(fr.boxes, fr.scores, fr.t)
        assert a.ids.tolist() == b.ids.tolist()
        assert a.det_index.tolist() == b.det_index.tolist()
        np.testing.assert_allclose(a.filtered, b.filtered)


def _greedy_reference(c: np.ndarray) -> set[tuple[int, int]]:
    """Greedy matching the plain way: every allowed pair in (cost, detection, track)
    order, taken when both are still free."""
    from edge.tracker_numpy import REJECT

    used_d, used_t, got = set(), set(), set()
    for cost, d, k in sorted((c[d, k], d, k) for d, k in zip(*np.nonzero(c < REJECT))):
        if d not in used_d and k not in used_t:
            used_d.add(d)
            used_t.add(k)
            got.add((int(d), int(k)))
    return got


@settings(max_examples=150, deadline=None)
@given(m=st.integers(1, 12), n=st.integers(1, 12), seed=st.integers(0, 2**32 - 1),
       levels=st.integers(2, 6), forbidden=st.floats(0.0, 0.9))
def test_greedy_rounds_match_the_one_pair_at_a_time_loop(m, n, seed, levels, forbidden):
    """Both vectorised greedy matchings (argmin rounds on the matrix, first-pair rounds on
    a pair list) take exactly the pairs the sorted loop takes, ties included (costs drawn
    from a few levels, so ties are common)."""
    from edge.tracker_numpy import BIG, greedy_dense, greedy_pairs

    rng = np.random.default_rng(seed)
    c = rng.integers(0, levels, (m, n)).astype(float) - 1.0
    c[rng.random((m, n)) < forbidden] = BIG
    want = _greedy_reference(c)
    md, mt = greedy_dense(c.copy())
    assert set(zip(md.tolist(), mt.tolist())) == want
    assert md.tolist() == sorted(md.tolist())  # in detection order
    pd, pt = np.nonzero(c < BIG)
    md, mt = greedy_pairs(pd, pt, c[pd, pt], m, n)
    assert set(zip(md.tolist(), mt.tolist())) == want
    assert md.tolist() == sorted(md.tolist())


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
    import numba  # noqa: F401  (the [jit] extra `make install` installs: missing, this errors rather than skips)
    from edge import tracker_kernels as k

    Tracker(compiled=True)
    before = {name: len(getattr(k, name).signatures) for name in ("step", "pairs", "apply")}
    stream = generate(StreamSpec(in_view=50, duration_s=2.0, seed=3))
    for cls in (Tracker(compiled=True), Tracker(TrackerParams(dense_pairs_max=10**9), compiled=True)):
        for fr in stream.frames:
            cls.update(fr.boxes, fr.scores, fr.t)
            cls.update(fr.boxes.astype(np.float64), fr.scores.astype(np.float64), fr.t)
    after = {name: len(getattr(k, name).signatures) for name in before}
    assert after == before


def _after_a_gap(params: TrackerParams, confirmed: bool, gap_s: float, dx: float, score: float,
                 compiled: bool) -> bool:
    """A still person (20 x 100 px box) seen at 30 fps until confirmed (or once), then
    nobody for ``gap_s``, then one detection ``dx`` px to the side: does the track take it?"""
    tr = Tracker(params, compiled=compiled)
    box = np.array([[300, 100, 320, 200]], np.float32)
    frames = 10 if confirmed else 1
    for f in range(frames):
        out = tr.update(box, np.array([0.9], np.float32), f / 30)
    assert bool(out.confirmed[0]) == confirmed
    t = (frames - 1) / 30 + gap_s
    out = tr.update(box + np.float32([dx, 0, dx, 0]), np.array([score], np.float32), t)
    return out.ids.tolist() == [1]


@pytest.mark.parametrize("compiled", [False, True])
def test_only_confident_detections_on_confirmed_tracks_pair_by_distance(compiled):
    """Boxes that no longer overlap (18 px aside, IoU 0.05) may still pair within the
    gate, but only a confident detection with a confirmed track: a weak one, or a new
    track, must overlap (false positives otherwise confirmed and carried tracks off)."""
    p = TrackerParams()
    assert _after_a_gap(p, confirmed=True, gap_s=0.2, dx=18.0, score=0.9, compiled=compiled)
    assert not _after_a_gap(p, confirmed=True, gap_s=0.2, dx=18.0, score=0.3, compiled=compiled)
    assert not _after_a_gap(p, confirmed=False, gap_s=0.2, dx=18.0, score=0.9, compiled=compiled)
    # Overlapping (4 px aside), the weak detection and the new track do pair.
    assert _after_a_gap(p, confirmed=True, gap_s=0.2, dx=4.0, score=0.3, compiled=compiled)
    assert _after_a_gap(p, confirmed=False, gap_s=0.03, dx=4.0, score=0.9, compiled=compiled)


@pytest.mark.parametrize("compiled", [False, True])
def test_the_distance_gate_reaches_at_most_gate_max_box_heights(compiled):
    """After 0.9 s unseen the predicted spread would admit a detection a whole box height
    away; gate_max (0.85 box heights) refuses it, a wider cap lets it in."""
    for dx, cap, taken in ((100.0, 0.85, False), (100.0, 1.5, True), (70.0, 0.85, True)):
        p = TrackerParams(gate_max=cap, accel_std=2.0)
        assert _after_a_gap(p, True, 0.9, dx, 0.9, compiled) == taken, (dx, cap)


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
    with np.errstate(invalid="ignore", over="ignore"):  # numpy's own warnings about them
        with pytest.raises(ValueError, match="x2 > x1"):
            tr.update(np.array([[10, 10, np.inf, 20]]), np.array([0.9]), 0.0)
        with pytest.raises(ValueError, match="x2 > x1"):
            tr.update(np.array([[0, 0, 1e200, 1e200]]), np.array([0.9]), 0.0)
    with pytest.raises(ValueError, match="finite"):
        tr.update(np.zeros((0, 4)), np.zeros(0), float("nan"))
    assert tr.live_count == 0  # a refused frame changes nothing
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


@pytest.mark.parametrize("in_view", [5, 20, 50, 200])
def test_numpy_and_compiled_paths_give_the_same_tracks(in_view):
    """The plain install runs edge.tracker_numpy, the `jit` extra the numba kernels: on
    the benchmark's streams (30 fps) they must make the same tracks, frame by frame, and
    so the same counts."""
    import numba  # noqa: F401  (the [jit] extra `make install` installs: missing, this errors rather than skips)
    from bench.tracker_bench import DURATIONS

    stream = generate(StreamSpec(in_view=in_view, fps=30.0, seed=in_view + 7,
                                 duration_s=min(20.0, DURATIONS[in_view])))
    plain, compiled = Tracker(compiled=False), Tracker(compiled=True)
    assert not plain.compiled and compiled.compiled
    matched = 0
    for fr in stream.frames:
        a = plain.update(fr.boxes, fr.scores, fr.t)
        b = compiled.update(fr.boxes, fr.scores, fr.t)
        assert a.ids.tolist() == b.ids.tolist()
        assert a.det_index.tolist() == b.det_index.tolist()
        assert a.confirmed.tolist() == b.confirmed.tolist()
        np.testing.assert_allclose(a.filtered, b.filtered, rtol=0, atol=1e-6)
        matched += a.ids.size
    assert matched > 0.5 * sum(f.gt_ids.size for f in stream.frames)


@pytest.mark.parametrize("fps, digest, filtered_sum, reported", [
    (30.0, "13caf1be0d82e16c", 2618845.755433985, 2491),
    (10.0, "5af8ae720a7f7b37", 841953.2033681027, 805),
])
def test_numpy_path_tracks_are_unchanged(fps, digest, filtered_sum, reported):
    """A golden record of the numpy path's tracks (computed on main at 4ff24a2, before
    issue 13's work on its per-frame overhead): a change meant only to make the hot path
    cheaper must not move a track. Ids, detection indices, confirmation and boxes are
    hashed (exact); the Kalman estimates, whose last bits may depend on the BLAS build,
    are compared as a sum. bench/tracker_identity.py checks many more streams."""
    import hashlib

    h = hashlib.sha256()
    total, n = 0.0, 0
    tr = Tracker(compiled=False)
    for fr in generate(StreamSpec(in_view=20, fps=fps, duration_s=6.0, seed=3)).frames:
        out = tr.update(fr.boxes, fr.scores, fr.t)
        for a in (out.ids, out.det_index, out.confirmed, out.boxes):
            h.update(np.ascontiguousarray(a).tobytes())
        total += float(out.filtered.sum())
        n += out.ids.size
    assert (h.hexdigest()[:16], n) == (digest, reported)
    assert total == pytest.approx(filtered_sum, rel=1e-12)


def test_the_plain_install_never_imports_numba():
    """Without the `jit` extra (here: FOOTFALL_JIT=0) the tracker runs on numpy and numba
    is not even imported: it would cost the camera agent about 90 MiB."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = ("import sys; from edge.tracker import Tracker; import numpy as np; t = Tracker(); "
            "t.update(np.array([[0, 0, 10, 20.]]), np.array([0.9]), 0.0); "
            "print(t.compiled, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root), "FOOTFALL_JIT": "0"},
                         timeout=120, check=True)
    assert out.stdout.split() == ["False", "False"]
    out = subprocess.run([sys.executable, "-c", "from edge.tracker import Tracker; Tracker(compiled=True)"],
                         capture_output=True, text=True, cwd=root, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(root), "FOOTFALL_JIT": "0"})
    assert out.returncode != 0 and "ValueError: compiled tracker kernels need numba" in out.stderr


@pytest.mark.parametrize("interleave", [False, True])
def test_bench_steps_every_tracker_through_every_frame_in_order(interleave):
    """The benchmark's schedules (blocked or interleaved) give each tracker each frame
    exactly once and in time order, and rotate which tracker goes first."""
    from bench.tracker_bench import schedule

    names = ["a", "b", "c"]
    for shift in range(4):
        steps = list(schedule(names, 7, interleave, shift))
        assert len(steps) == 21
        for n in names:
            assert [f for f, who in steps if who == n] == list(range(7))
        assert steps[0][1] == names[shift % 3]


def test_bench_draws_fresh_seeds_never_the_dev_ones():
    from bench.tracker_bench import DEV_SEEDS, FRESH_SEEDS, draw_seeds

    seeds = draw_seeds(200, np.random.default_rng(0))
    assert len(set(seeds)) == 200
    assert not set(seeds) & set(DEV_SEEDS)
    assert all(FRESH_SEEDS[0] <= s < FRESH_SEEDS[1] for s in seeds)
    assert FRESH_SEEDS[0] > max(DEV_SEEDS)


def test_bench_scores_a_stream_whose_crossings_fall_between_frames():
    """Crossing times are interpolated between frames (edge.counting), so the bench
    must place each crossing along the line at that time, not look up a frame."""
    from bench.tracker_bench import run_stream

    stream = generate(StreamSpec(in_view=20, fps=30.0, duration_s=8.0, seed=3))
    row = run_stream(stream, ["footfall"], with_mot=False)["footfall"]
    counting = row["counting"]
    assert sum(counting[d]["true"] for d in ("in", "out")) > 0
    assert all(0.0 <= counting[d]["accuracy"] <= 1.0 for d in ("in", "out"))
