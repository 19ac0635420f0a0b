"""Two versions of the numpy tracker side by side: this tree's and another checkout's.

    python -m bench.tracker_versions /path/to/other/checkout [--in-view 5 20 50 200]

Why: on a shared, loaded machine two runs minutes apart differ by more than a code change
does, so both versions run in one process, alternated round by round (4 rounds; the
order flips each round) on the same streams (dev seeds 1-3, 30 fps), and the figure is
the median of the round medians of ``Tracker.update``'s time per frame. The other
version's ``edge/tracker.py`` and ``edge/tracker_numpy.py`` are loaded under other module
names (numba is not used: ``compiled=False``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types

import numpy as np

import edge.tracker as this_tracker
from simulator.detections import StreamSpec, generate

DURATIONS = {5: 40.0, 20: 20.0, 50: 10.0, 200: 4.0}


def _load(name: str, path: str, patch: tuple[str, str] | None = None) -> types.ModuleType:
    src = open(path).read()
    if patch:
        src = src.replace(*patch)
    mod = types.ModuleType(name)
    mod.__file__ = path
    sys.modules[name] = mod
    exec(compile(src, path, "exec"), mod.__dict__)
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tracker_versions", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("other", help="root of the other checkout (e.g. a git worktree of main)")
    ap.add_argument("--in-view", type=int, nargs="*", default=[5, 20, 50, 200])
    args = ap.parse_args(argv)
    _load("other_tracker_numpy", os.path.join(args.other, "edge", "tracker_numpy.py"))
    other = _load("other_tracker", os.path.join(args.other, "edge", "tracker.py"),
                  ("from edge import tracker_numpy as _k", "import other_tracker_numpy as _k"))
    print(f"# load {os.getloadavg()[0]:.1f}; other = {args.other}")
    for v in args.in_view:
        streams = [generate(StreamSpec(in_view=v, fps=30, duration_s=DURATIONS.get(v, 10.0), seed=s))
                   for s in (1, 2, 3)]
        res: dict[str, list[float]] = {"other": [], "this": []}
        for rnd in range(4):
            pair = [("other", other), ("this", this_tracker)]
            for name, mod in (pair if rnd % 2 == 0 else pair[::-1]):
                ts = []
                for st in streams:
                    tr = mod.Tracker(compiled=False)
                    for fr in st.frames:
                        t0 = time.perf_counter()
                        tr.update(fr.boxes, fr.scores, fr.t)
                        ts.append(time.perf_counter() - t0)
                res[name].append(float(np.median(ts)) * 1e6)
        o, t = np.median(res["other"]), np.median(res["this"])
        print(f"{v:4d} in view: other {o:7.1f} us  this {t:7.1f} us  other/this {o / t:.2f}  "
              f"(rounds other {[round(x) for x in res['other']]}, this {[round(x) for x in res['this']]}; "
              f"load {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
