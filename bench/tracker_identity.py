"""Do two versions of the numpy tracker make the same tracks? This tree's against another
checkout's, frame by frame.

    python -m bench.tracker_identity /path/to/other/checkout [--seeds 1 .. 10]

Why: a change to the hot path that is meant to be only faster (fewer numpy calls, the
same arithmetic) must not move a single track. Both versions see the same streams
(seeds 1-10 by default, 5, 20, 50 and 200 in view, 30 and 10 fps); every frame's output (ids,
boxes, confirmed, det_index, filtered) and the live ids after it must be equal
(np.array_equal: the same bits). The other version is loaded as bench.tracker_versions
loads it. Exit status 1 at the first difference, with where it is.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import edge.tracker as this_tracker
from bench.tracker_versions import DURATIONS, _load
from simulator.detections import StreamSpec, generate

FIELDS = ("ids", "boxes", "confirmed", "det_index", "filtered")


def first_difference(a: object, b: object, spec: StreamSpec) -> str | None:
    """Where two trackers (``Tracker`` classes) first differ on ``spec``'s stream, or None."""
    ta, tb = a(compiled=False), b(compiled=False)  # type: ignore[operator]
    for i, fr in enumerate(generate(spec).frames):
        oa = ta.update(fr.boxes, fr.scores, fr.t)
        ob = tb.update(fr.boxes, fr.scores, fr.t)
        for f in FIELDS:
            if not np.array_equal(getattr(oa, f), getattr(ob, f)):
                return f"frame {i} (t={fr.t:.3f}): {f} differs"
        if not np.array_equal(ta.live_ids(), tb.live_ids()):
            return f"frame {i} (t={fr.t:.3f}): live ids differ"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tracker_identity", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("other", help="root of the other checkout (e.g. a git worktree of main)")
    ap.add_argument("--seeds", type=int, nargs="*", default=list(range(1, 11)))
    ap.add_argument("--in-view", type=int, nargs="*", default=[5, 20, 50, 200])
    ap.add_argument("--fps", type=float, nargs="*", default=[30.0, 10.0])
    args = ap.parse_args(argv)
    _load("other_tracker_numpy", os.path.join(args.other, "edge", "tracker_numpy.py"))
    other = _load("other_tracker", os.path.join(args.other, "edge", "tracker.py"),
                  ("from edge import tracker_numpy as _k", "import other_tracker_numpy as _k"))
    bad = 0
    frames = 0
    for fps in args.fps:
        for v in args.in_view:
            for seed in args.seeds:
                spec = StreamSpec(in_view=v, fps=fps, duration_s=DURATIONS.get(v, 10.0), seed=seed)
                where = first_difference(other.Tracker, this_tracker.Tracker, spec)
                frames += int(round(spec.duration_s * fps))
                if where:
                    bad += 1
                    print(f"DIFFERENT: {v} in view, {fps:g} fps, seed {seed}: {where}")
    print(f"{'identical' if not bad else f'{bad} streams differ'}: seeds {args.seeds}, "
          f"in view {args.in_view}, fps {args.fps} (about {frames} frames)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
