"""Write tests/data/known_counting_misses.npz: the detections around the tracker bench's
two known extra counts (docs/tracker.md, "Known misses"), for tests/test_counting.py.

    PYTHONPATH=. python -m bench.known_counting_misses

Each case is the frames of one simulator.detections stream (30 fps, the bench's) within
a time window, as the bench gives them to the trackers: per frame its time, its count
of detections, and all boxes (xyxy, float32) and scores concatenated; plus the counting
line (x1 y1 x2 y2, inside point, frame size) and the true crossings in the window (time,
0 in / 1 out). Stored rather than generated in the test: generating the 5-in-view
stream takes seconds, and the fixed data keeps the sequence the same whatever later
changes to the simulator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simulator.detections import StreamSpec, generate

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "known_counting_misses.npz"

# name: (in view, seed, stream seconds, window start, window end)
CASES = {
    # a track born of two overlapping false positives crosses on a third (extra "out" at 28.23 s)
    "fp_track": (5, 1691718597, 120.0, 26.0, 31.0),
    # a ghost track coasting beside the person it lost crosses with them (extra "in" at 12.08 s)
    "ghost": (20, 192407973, 40.0, 8.0, 13.5),
}


def main() -> None:
    out: dict[str, np.ndarray] = {}
    for key, (n_view, seed, dur, t0, t1) in CASES.items():
        s = generate(StreamSpec(in_view=n_view, fps=30.0, duration_s=dur, seed=seed))
        frames = [f for f in s.frames if t0 <= f.t < t1]
        out[f"{key}_t"] = np.array([f.t for f in frames])
        out[f"{key}_n"] = np.array([len(f.scores) for f in frames])
        out[f"{key}_boxes"] = np.concatenate([f.boxes for f in frames])
        out[f"{key}_scores"] = np.concatenate([f.scores for f in frames])
        out[f"{key}_line"] = np.array([*s.line[0], *s.line[1], *s.inside, s.spec.width, s.spec.height],
                                      dtype=np.float64)
        out[f"{key}_truth"] = np.array([(c.t, 0 if c.direction == "in" else 1)
                                        for c in s.crossings if t0 <= c.t < t1])
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
