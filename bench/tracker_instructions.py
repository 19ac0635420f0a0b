"""Instructions per frame of a checkout's numpy tracker, counted by valgrind (callgrind).

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        --toggle-collect=functools_reduce \\
        python -m bench.tracker_instructions ROOT [--in-view 20] [--frames 100]

then divide callgrind's "Collected" by the frame count printed here. ROOT is a checkout
(this one: "."; main's worktree for the baseline); its edge/tracker.py and
edge/tracker_numpy.py are loaded as bench.tracker_versions loads them.

Why: on a shared machine the time of a frame moves with the load by more than a
change to the hot path does; the count of instructions executed does not, and at tens
of people in view it follows the time (the frame is numpy's per-call overhead). Only
the frames are counted: they run inside one functools.reduce call, which callgrind's
--toggle-collect brackets; stream generation and the first 30 frames of each stream
(warm-up) are outside it. Streams: dev seeds 1-3, 30 fps.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

from bench.tracker_versions import _load
from simulator.detections import StreamSpec, generate

WARM_UP = 30


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tracker_instructions", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="checkout whose tracker to run")
    ap.add_argument("--in-view", type=int, default=20)
    ap.add_argument("--frames", type=int, default=100, help="counted frames per stream")
    args = ap.parse_args(argv)
    _load("counted_tracker_numpy", os.path.join(args.root, "edge", "tracker_numpy.py"))
    mod = _load("counted_tracker", os.path.join(args.root, "edge", "tracker.py"),
                ("from edge import tracker_numpy as _k", "import counted_tracker_numpy as _k"))
    runs = []
    for seed in (1, 2, 3):
        frames = generate(StreamSpec(in_view=args.in_view, fps=30.0, seed=seed,
                                     duration_s=(WARM_UP + args.frames) / 30.0 + 1.0)).frames
        tr = mod.Tracker(compiled=False)
        for fr in frames[:WARM_UP]:
            tr.update(fr.boxes, fr.scores, fr.t)
        runs.append((tr, frames[WARM_UP:WARM_UP + args.frames]))

    def counted(done: int, run: tuple) -> int:
        tr, frames = run
        for fr in frames:
            tr.update(fr.boxes, fr.scores, fr.t)
        return done + len(frames)

    n = functools.reduce(counted, runs, 0)
    print(f"{n} frames counted ({args.in_view} in view, dev seeds 1-3, 30 fps, root {args.root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
