"""Tracker and counting-line benchmark: footfall's tracker, both paths, against the peers.

    python -m bench.tracker_bench                 # 5 fresh seeds per density (many minutes)
    python -m bench.tracker_bench --quick         # a quarter of the frames, a smoke check
    python -m bench.tracker_bench --replay S1 S2  # replay a run's seeds
    python -m bench.tracker_bench --dev           # the tuning seeds (in-sample figures)

Every tracker sees the same synthetic detection streams (simulator.detections, 640x480,
30 fps by default) at 5, 20, 50 and 200 people in view. The seeds are drawn at run time
(printed; ``--replay`` runs them again), at least five per density, never one of the dev
seeds footfall's parameters were tuned on (DEV_SEEDS): the accuracy figures are held-out.

"footfall" is the numpy path, what the plain install runs, and the headline; "footfall
numba" the same tracker with the `jit` extra's compiled kernels (same tracks). Reported
per tracker and density, over all seeds: the median and p99 of the time of one update
call (converting detections to each peer's input types is outside the timer), its ratio
to footfall's, and counting gross accuracy per direction, 1 - (missed + extra) / true,
as the mean over seeds with its range and standard deviation. Counting: the camera
agent's own LineCounter (centre anchor, 8 px hysteresis, CAMERA_COUNTING: 0.5 s
settling) on every tracker's reported tracks; a counted crossing matches a true one of
the same direction within 1 s and one box height along the line (optimal one-to-one
matching); the first and last 2 s of a stream are not scored.

Timing is blocked by default: each tracker runs a whole stream in turn (as a device
runs one tracker), the order rotated from seed to seed. ``--interleave`` steps every
frame through all trackers instead, so that each call finds its data evicted by the
others (the cold case, which costs footfall's numpy path relatively more than the peers:
docs/PERFORMANCE.md has both). Compilation is not timed: the compiled path compiles or loads its kernels in
the constructor, and each peer is likewise built before its first timed call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from dataclasses import dataclass, field

import numpy as np

from edge.camera_pipeline import CAMERA_COUNTING
from edge.counting import CountingLine, CountingParams, LineCounter
from edge.tracker import Tracker, TrackerParams
from simulator.detections import DetectionStream, StreamSpec, generate

# A tracker adapter: prepare(boxes, scores, t) converts one frame's detections to the
# tracker's own input types (untimed) and returns (call, finish): call() is the
# tracker's update alone (timed); finish(raw) turns its output into (ids, boxes xyxy)
# of the tracks it reports as established (untimed).
Call = Callable[[], Any]
Finish = Callable[[Any], tuple[np.ndarray, np.ndarray]]
Prepare = Callable[[np.ndarray, np.ndarray, float], tuple[Call, Finish]]


TRACKER_PARAMS = TrackerParams()
# Every tracker's tracks are counted the way the camera agent counts (settling included).
COUNTING_PARAMS = CAMERA_COUNTING


def _ours(compiled: bool) -> Callable[[float], Prepare]:
    def make(fps: float) -> Prepare:
        return _footfall(Tracker(TRACKER_PARAMS, compiled=compiled))
    return make


def _footfall(tr: Tracker) -> Prepare:

    def finish(out: Any) -> tuple[np.ndarray, np.ndarray]:
        c = out.confirmed
        return out.ids[c], out.boxes[c]

    def prepare(boxes: np.ndarray, scores: np.ndarray, t: float) -> tuple[Call, Finish]:
        return (lambda: tr.update(boxes, scores, t)), finish
    return prepare


def _sv_detections(boxes: np.ndarray, scores: np.ndarray) -> Any:
    import supervision as sv
    return sv.Detections(xyxy=boxes.astype(np.float32), confidence=scores.astype(np.float32),
                         class_id=np.zeros(len(scores), dtype=int))


def _supervision_bytetrack(fps: float) -> Prepare:
    from supervision.tracker.byte_tracker.core import ByteTrack
    tr = ByteTrack(frame_rate=int(round(fps)))

    def finish(out: Any) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(out.tracker_id, dtype=np.int64), out.xyxy

    def prepare(boxes: np.ndarray, scores: np.ndarray, t: float) -> tuple[Call, Finish]:
        d = _sv_detections(boxes, scores)
        return (lambda: tr.update_with_detections(d)), finish
    return prepare


def _trackers_pkg(kind: str) -> Callable[[float], Prepare]:
    def make(fps: float) -> Prepare:
        import trackers
        cls = trackers.ByteTrackTracker if kind == "bytetrack" else trackers.SORTTracker
        tr = cls(frame_rate=fps)

        def finish(out: Any) -> tuple[np.ndarray, np.ndarray]:
            ids = np.asarray(out.tracker_id, dtype=np.int64)
            ok = ids >= 0  # -1: not yet mature
            return ids[ok], out.xyxy[ok]

        def prepare(boxes: np.ndarray, scores: np.ndarray, t: float) -> tuple[Call, Finish]:
            d = _sv_detections(boxes, scores)
            return (lambda: tr.update(d)), finish
        return prepare
    return make


def _norfair(fps: float) -> Prepare:
    import norfair
    tr = norfair.Tracker(distance_function="iou", distance_threshold=0.9,
                         hit_counter_max=max(2, int(round(fps / 2))),
                         initialization_delay=max(1, int(round(fps / 10))))

    def finish(objs: Any) -> tuple[np.ndarray, np.ndarray]:
        if not objs:
            return np.zeros(0, np.int64), np.zeros((0, 4))
        return (np.array([o.id for o in objs], dtype=np.int64),
                np.array([o.estimate.reshape(4) for o in objs]))

    def prepare(boxes: np.ndarray, scores: np.ndarray, t: float) -> tuple[Call, Finish]:
        dets = [norfair.Detection(points=b.reshape(2, 2).astype(np.float64),
                                  scores=np.array([s, s], dtype=np.float64))
                for b, s in zip(boxes, scores)]
        return (lambda: tr.update(detections=dets)), finish
    return prepare


def _motpy(fps: float) -> Prepare:
    from motpy import Detection, MultiObjectTracker
    tr = MultiObjectTracker(dt=1.0 / fps, active_tracks_kwargs={"min_steps_alive": 2})
    id_map: dict[str, int] = {}

    def finish(tracks: Any) -> tuple[np.ndarray, np.ndarray]:
        if not tracks:
            return np.zeros(0, np.int64), np.zeros((0, 4))
        ids = np.array([id_map.setdefault(tk.id, len(id_map) + 1) for tk in tracks], np.int64)
        return ids, np.array([tk.box for tk in tracks])

    def prepare(boxes: np.ndarray, scores: np.ndarray, t: float) -> tuple[Call, Finish]:
        dets = [Detection(box=b.astype(np.float64), score=float(s)) for b, s in zip(boxes, scores)]
        return (lambda: tr.step(detections=dets)), finish
    return prepare


TRACKERS: dict[str, Callable[[float], Prepare]] = {
    "footfall": _ours(compiled=False),  # numpy: what the plain install runs (the headline)
    "footfall numba": _ours(compiled=True),  # the `jit` extra
    "supervision ByteTrack": _supervision_bytetrack,
    "trackers ByteTrack": _trackers_pkg("bytetrack"),
    "trackers SORT": _trackers_pkg("sort"),
    "norfair": _norfair,
    "motpy": _motpy,
}


@dataclass
class Result:
    times_us: list[float] = field(default_factory=list)
    events: list[tuple[float, str, float]] = field(default_factory=list)  # t, dir, x
    acc: object = None


def gross_accuracy(stream: DetectionStream, events: list[tuple[float, str, float]],
                   warm_s: float = 2.0, tail_s: float = 2.0) -> dict[str, dict[str, float]]:
    """Per direction: 1 - (missed + extra) / true, matching counted crossings to true
    ones by time (within 1 s) and position along the line (within one box height)."""
    from scipy.optimize import linear_sum_assignment
    lo, hi = warm_s, stream.spec.duration_s - tail_s
    out: dict[str, dict[str, float]] = {}
    for d in ("in", "out"):
        gt = np.array([(c.t, c.x) for c in stream.crossings if c.direction == d]).reshape(-1, 2)
        ev = np.array([(t, x) for t, dd, x in events if dd == d]).reshape(-1, 2)
        matched_gt = np.zeros(len(gt), bool)
        matched_ev = np.zeros(len(ev), bool)
        if len(gt) and len(ev):
            dt = np.abs(gt[:, None, 0] - ev[None, :, 0])
            dx = np.abs(gt[:, None, 1] - ev[None, :, 1]) / stream.person_height
            cost = np.where((dt <= 1.0) & (dx <= 1.0), dt + dx, 1e6)
            r, c = linear_sum_assignment(cost)
            ok = cost[r, c] < 1e6
            matched_gt[r[ok]] = True
            matched_ev[c[ok]] = True
        in_gt = (gt[:, 0] >= lo) & (gt[:, 0] <= hi)
        in_ev = (ev[:, 0] >= lo) & (ev[:, 0] <= hi)
        true = int(in_gt.sum())
        missed = int((in_gt & ~matched_gt).sum())
        extra = int((in_ev & ~matched_ev).sum())
        out[d] = {"true": true, "missed": missed, "extra": extra,
                  "accuracy": 1.0 - (missed + extra) / true if true else float("nan")}
    return out


def _iou_distance(a: np.ndarray, b: np.ndarray, max_d: float = 0.5) -> np.ndarray:
    """1 - IoU between xyxy boxes, NaN beyond max_d (motmetrics' convention; its own
    iou_matrix uses np.asfarray, gone in numpy 2)."""
    if len(a) == 0 or len(b) == 0:
        return np.empty((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    d = 1.0 - inter / (area_a[:, None] + area_b[None, :] - inter)
    d[d > max_d] = np.nan
    return d


def schedule(names: list[str], n_frames: int, interleave: bool, shift: int
             ) -> Iterator[tuple[int, str]]:
    """(frame, tracker) steps. Blocked (default): each tracker runs the whole stream in
    turn, as a device runs one tracker, the order rotated by ``shift`` (the seed's
    index) so that no tracker always goes first. Interleaved: every frame goes through
    all trackers, in an order rotated each frame, so that each call finds its data
    evicted by the others (the cold case)."""
    k = shift % len(names)
    order = names[k:] + names[:k]
    if not interleave:
        for n in order:
            for fi in range(n_frames):
                yield fi, n
        return
    for fi in range(n_frames):
        k = fi % len(order)
        for n in order[k:] + order[:k]:
            yield fi, n


def _x_at(path: tuple[list[float], list[float]], t: float) -> float:
    """A track's position along the line at time ``t``, interpolated between its frames."""
    return float(np.interp(t, path[0], path[1]))


def run_stream(stream: DetectionStream, names: list[str], with_mot: bool = True,
               interleave: bool = False, shift: int = 0) -> dict[str, dict[str, object]]:
    fps = stream.spec.fps
    preps = {n: TRACKERS[n](fps) for n in names}
    line = CountingLine("door", stream.line[0], stream.line[1], stream.inside, hysteresis_px=8.0)
    counters = {n: LineCounter([line], anchor="centre", params=COUNTING_PARAMS,
                               frame_size=(stream.spec.width, stream.spec.height)) for n in names}
    results = {n: Result() for n in names}
    # Where each track was along the line at each frame (times, x): a crossing is
    # stamped with the interpolated moment it happened, between two frames, and reported
    # once settled, so its position is interpolated from this path.
    where: dict[str, dict[int, tuple[list[float], list[float]]]] = {n: {} for n in names}
    if with_mot:
        import motmetrics as mm
    accs = {n: mm.MOTAccumulator(auto_id=True) for n in names} if with_mot else {}
    for fi, n in schedule(names, len(stream.frames), interleave, shift):
        fr = stream.frames[fi]
        call, finish = preps[n](fr.boxes, fr.scores, fr.t)
        t0 = time.perf_counter()
        raw = call()
        results[n].times_us.append((time.perf_counter() - t0) * 1e6)
        ids, boxes = finish(raw)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        for i, x in zip(ids.tolist(), ((boxes[:, 0] + boxes[:, 2]) / 2).tolist()):
            ts, xs = where[n].setdefault(i, ([], []))
            ts.append(fr.t)
            xs.append(x)
        evs = counters[n].update(ids, boxes, np.ones(len(ids), bool), fr.t)
        results[n].events += [(e.t, e.direction, _x_at(where[n][e.track_id], e.t)) for e in evs]
        if with_mot:
            dist = _iou_distance(fr.gt_boxes.astype(np.float64), boxes)
            accs[n].update(fr.gt_ids.tolist(), ids.tolist(), dist)
    for n in names:  # crossings still settling at the end
        results[n].events += [(e.t, e.direction, _x_at(where[n][e.track_id], e.t))
                              for e in counters[n].flush()]
    table: dict[str, dict[str, object]] = {}
    mh = mm.metrics.create() if with_mot else None
    for n in names:
        ts = np.array(results[n].times_us)
        row: dict[str, object] = {
            "median_us": float(np.median(ts)),
            "p99_us": float(np.percentile(ts, 99)),
            "counting": gross_accuracy(stream, results[n].events),
            "times_us": results[n].times_us,
        }
        if with_mot and mh is not None:
            s = mh.compute(accs[n], metrics=["mota", "idf1", "num_switches"], name=n)
            row["mota"] = float(s["mota"].iloc[0])
            row["idf1"] = float(s["idf1"].iloc[0])
            row["id_switches"] = int(s["num_switches"].iloc[0])
        table[n] = row
    return table


# Stream length per density (seconds at --fps): long enough for about 40 or more true
# crossings per direction and seed, short enough for the slow peers.
DURATIONS = {5: 120.0, 20: 40.0, 50: 20.0, 200: 8.0}

# Tuning set: the only seeds footfall's parameters were ever tuned on (at every density).
# Figures on them are in-sample. Reported figures use fresh seeds drawn at run time from
# FRESH_SEEDS, which these can never be.
DEV_SEEDS = (1, 2, 3, 4, 5)
FRESH_SEEDS = (1_000_000, 2**31)

# Peers too slow to run on big crowds in a bench of minutes (norfair's per-pair Python
# distance: over a second a frame at 200 in view); skipped above this many in view.
SLOW_PEERS = {"norfair": 50}


def draw_seeds(k: int, rng: np.random.Generator | None = None) -> list[int]:
    """k distinct fresh seeds, none of them a dev seed."""
    rng = rng or np.random.default_rng()
    out: list[int] = []
    while len(out) < k:
        v = int(rng.integers(*FRESH_SEEDS))
        if v not in out:
            out.append(v)
    return out


def summarise(per_seed: list[dict[str, dict[str, object]]], names: list[str]
              ) -> dict[str, dict[str, object]]:
    """Pool per-frame times over seeds (median, p99) and give each direction's accuracy as
    mean, min, max and standard deviation over seeds."""
    out: dict[str, dict[str, object]] = {}
    for n in names:
        runs = [r[n] for r in per_seed if n in r]
        if not runs:
            continue
        ts = np.concatenate([np.asarray(r["times_us"]) for r in runs])
        row: dict[str, object] = {"median_us": float(np.median(ts)),
                                  "p99_us": float(np.percentile(ts, 99)), "seeds": len(runs)}
        for d in ("in", "out"):
            acc = np.array([r["counting"][d]["accuracy"] for r in runs])  # type: ignore[index]
            row[d] = {"mean": float(acc.mean()), "min": float(acc.min()), "max": float(acc.max()),
                      "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                      "per_seed": acc.tolist(),
                      "true": int(sum(r["counting"][d]["true"] for r in runs)),  # type: ignore[index]
                      "missed": int(sum(r["counting"][d]["missed"] for r in runs)),  # type: ignore[index]
                      "extra": int(sum(r["counting"][d]["extra"] for r in runs))}  # type: ignore[index]
        for key in ("mota", "idf1"):
            if all(key in r for r in runs):
                row[key] = float(np.mean([r[key] for r in runs]))
        out[n] = row
    return out


def _with(base: Any, assignments: list[str], ap: argparse.ArgumentParser) -> Any:
    import dataclasses
    changes: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(base)}
    for a in assignments:
        name, _, value = a.partition("=")
        if name not in fields:
            ap.error(f"unknown field {name!r}; one of {sorted(fields)}")
        default = getattr(base, name)
        # a field whose default is None (dense_pairs_max) takes a number
        changes[name] = (None if value == "None" else float(value) if default is None
                         else type(default)(value))
    try:
        return dataclasses.replace(base, **changes)
    except ValueError as exc:
        ap.error(str(exc))


def _numba_version() -> str:
    from edge.tracker import compiled_kernels

    if compiled_kernels() is None:
        return "off (the numba path is not available)"
    import numba
    return str(numba.__version__)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tracker_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short streams (a quarter of the frames)")
    ap.add_argument("--in-view", type=int, nargs="*", default=[5, 20, 50, 200])
    ap.add_argument("--trackers", nargs="*", default=list(TRACKERS), choices=list(TRACKERS))
    ap.add_argument("--fps", type=float, default=30.0)
    seeds = ap.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=5, metavar="K",
                       help="fresh seeds drawn at run time per density (default 5)")
    seeds.add_argument("--replay", type=int, nargs="+", metavar="SEED",
                       help="these seeds at every density instead (to replay a run)")
    seeds.add_argument("--dev", action="store_true",
                       help=f"the tuning seeds {DEV_SEEDS} (in-sample figures)")
    ap.add_argument("--duration", type=float, help="seconds per stream (default per density)")
    ap.add_argument("--mot", action="store_true", help="also MOTA/IDF1 (motmetrics; slower)")
    ap.add_argument("--interleave", action="store_true",
                    help="step every frame through all trackers (cold caches) instead of "
                         "one whole stream per tracker in turn")
    ap.add_argument("--all-peers", action="store_true",
                    help=f"run slow peers on every density too ({SLOW_PEERS})")
    ap.add_argument("--json", metavar="FILE", help="also write all figures as JSON")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="a TrackerParams field for footfall's tracker (repeatable)")
    ap.add_argument("--counting", action="append", default=[], metavar="NAME=VALUE",
                    help="a CountingParams field for every tracker's counter (repeatable)")
    args = ap.parse_args(argv)
    global TRACKER_PARAMS, COUNTING_PARAMS
    TRACKER_PARAMS = _with(TrackerParams(), args.param, ap)
    COUNTING_PARAMS = _with(CAMERA_COUNTING, args.counting, ap)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    everything: dict[str, object] = {
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}",
        "numpy": np.__version__, "numba": _numba_version(), "fps": args.fps, "quick": args.quick,
        "argv": sys.argv[1:] if argv is None else argv, "streams": {},
    }
    kind = "dev (in-sample)" if args.dev else "replayed" if args.replay else "fresh (held-out)"
    print(f"# tracker bench: fps={args.fps} quick={args.quick} numpy={np.__version__} "
          f"numba={_numba_version()} {platform.machine()} load={os.getloadavg()[0]:.1f} "
          f"seeds={kind} timing={'interleaved' if args.interleave else 'blocked'} "
          f"params={args.param or 'default'} counting={args.counting or 'camera agent'}")
    from edge.tracker import compiled_kernels

    trackers = list(args.trackers)
    if "footfall numba" in trackers and compiled_kernels() is None:
        trackers.remove("footfall numba")
        print("# footfall numba: skipped, numba (the `jit` extra) is not installed or FOOTFALL_JIT=0")
    for n_view in args.in_view:
        names = [n for n in trackers
                 if args.all_peers or n_view <= SLOW_PEERS.get(n, n_view)]
        skipped = [n for n in trackers if n not in names]
        seed_list = (list(DEV_SEEDS) if args.dev else args.replay if args.replay
                     else draw_seeds(args.seeds))
        dur = args.duration or DURATIONS.get(n_view, 20.0)
        if args.quick:
            dur = max(4.0, dur / 4)
        print(f"\n## {n_view} in view, {dur:.0f} s at {args.fps:g} fps per seed, seeds "
              f"{' '.join(map(str, seed_list))}"
              + (f" (skipped as too slow here: {', '.join(skipped)}; --all-peers runs them)"
                 if skipped else ""))
        sys.stdout.flush()
        t0 = time.perf_counter()
        per_seed = []
        truth = [0, 0]
        mean_view = []
        for i, seed in enumerate(seed_list):
            stream = generate(StreamSpec(in_view=n_view, fps=args.fps, duration_s=dur, seed=seed))
            per_seed.append(run_stream(stream, names, with_mot=args.mot,
                                       interleave=args.interleave, shift=i))
            gi = sum(c.direction == "in" for c in stream.crossings)
            truth[0] += gi
            truth[1] += len(stream.crossings) - gi
            mean_view.append(stream.mean_in_view)
        table = summarise(per_seed, names)
        print(f"measured mean in view {np.mean(mean_view):.1f}; true crossings in/out "
              f"{truth[0]}/{truth[1]} over all seeds (whole streams; scored: less 2 s at each end); load {os.getloadavg()[0]:.1f}  "
              f"[{time.perf_counter() - t0:.0f} s]")
        print(f"{'tracker':22s} {'median us':>9s} {'p99 us':>8s} {'/ ours':>7s} "
              f"{'in acc mean [min-max] sd':>27s} {'out acc mean [min-max] sd':>27s} "
              f"{'in m/e':>7s} {'out m/e':>7s}" + (f" {'MOTA':>6s} {'IDF1':>6s}" if args.mot else ""))
        ours = table[names[0]]["median_us"]
        for n in names:
            r = table[n]
            accs = []
            for d in ("in", "out"):
                a = r[d]  # type: ignore[index]
                accs.append(f"{a['mean']:.3f} [{a['min']:.3f}-{a['max']:.3f}] {a['std']:.3f}")
            me = [f"{r[d]['missed']:>3d}/{r[d]['extra']:<3d}" for d in ("in", "out")]  # type: ignore[index]
            ratio = r["median_us"] / ours  # type: ignore[operator]
            print(f"{n:22s} {r['median_us']:9.0f} {r['p99_us']:8.0f} {ratio:7.2f} "
                  f"{accs[0]:>27s} {accs[1]:>27s} {me[0]:>7s} {me[1]:>7s}"
                  + (f" {r.get('mota', float('nan')):6.3f} {r.get('idf1', float('nan')):6.3f}"
                     if args.mot else ""))
        everything["streams"][str(n_view)] = {  # type: ignore[index]
            "seeds": seed_list, "duration_s": dur, "mean_in_view": float(np.mean(mean_view)),
            "true_in": truth[0], "true_out": truth[1], "skipped": skipped, "trackers": table,
        }
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(everything, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
