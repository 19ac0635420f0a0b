"""Swap repair (`edge.identity_repair`) on vtest.avi: what it changes, and what it costs.

    python -m bench.swap_repair --lines x610,diag_right      # crossings off/on, swaps, decisions
    python -m bench.swap_repair --lines ALL --frames 0 794   # every annotated line
    python -m bench.swap_repair --cost                       # us/frame against the detector

The first form runs two pipelines per line (repair off and on) on the detections cached
by `bench.heldout_accuracy` and prints the truth, both pipelines' crossings (frame,
direction, reported id), the swaps made and every merge the repair resolved with its four
distances (for reading why it swapped or not). ``--cost`` times `IdentityRepair.update`
in the shipped pipeline (real tiled SSD) on frames 0-299 with a line from corner to corner
(the most people tracked), the detector on the same frames, and the repair alone with ten
people-sized boxes. All of vtest.avi is in-sample now (docs/camera.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.heldout_accuracy import counting_line, frames, load_lines, open_detector, truth_of


def compare(names: list[str], lo: int, hi: int, cache_dir: Path) -> None:
    from edge.camera_pipeline import CameraPipeline, front_end_for

    spec = load_lines()
    det = open_detector(1, cache_dir)
    pipes, ev, t0 = {}, {}, 0.0
    for f in frames(hi):
        if f.index < lo:
            continue
        det.frame = f.index
        if not pipes:
            t0 = f.t_utc - f.t_mono
            for n in names:
                line = counting_line(spec["lines"][n], n)
                for on in (False, True):
                    d, roi = front_end_for(det, [line], 768, 576, "tiles")
                    pipes[(n, on)] = CameraPipeline(d, [line], run_id="x", roi=roi, frame_size=(768, 576),
                                                    swap_repair=on)
                    ev[(n, on)] = []
        for k, p in pipes.items():
            ev[k] += p.process(f)
    for k, p in pipes.items():
        ev[k] += p.flush()
    for n in names:
        print(f"== {n}: truth", [(round(t * 10, 1), d) for t, d in truth_of(n, 10.0) if lo <= t * 10 <= hi])
        for on in (False, True):
            got = sorted((round((e.crossing.t_utc - t0) * 10, 1), e.crossing.direction, e.track_id)
                         for e in ev[(n, on)])
            print(f"  repair {'on ' if on else 'off'}", got)
        rep = pipes[(n, True)].repair
        print("  swaps (frame, tracker ids):", [(round(t * 10), a, b) for t, a, b in rep.swaps])
        for t, a, b, aa, bb, ab, ba, pp in rep.decisions:
            print(f"    merge resolved at {t * 10:4.0f}: {a:3d} {b:3d}  straight {aa:.2f}+{bb:.2f}  "
                  f"crossed {ab:.2f}+{ba:.2f}  gain {aa + bb - ab - ba:+.2f}  stored apart {pp:.2f}")


def cost() -> None:
    from edge.camera_pipeline import CameraPipeline, front_end_for
    from edge.counting import CountingLine
    from edge.detector import OnnxDetector
    from edge.identity_repair import IdentityRepair

    line = CountingLine("corner", (0, 0), (768, 576), (700, 50))
    d, roi = front_end_for(OnnxDetector("ssdlite_person", threads=2), [line], 768, 576, "tiles")
    pipe = CameraPipeline(d, [line], run_id="c", roi=roi, frame_size=(768, 576), swap_repair=True)
    rep, orig, per, det_ms = pipe.repair, pipe.repair.update, [], []

    def timed(image, ids, boxes, t):
        t0 = time.perf_counter()
        out = orig(image, ids, boxes, t)
        per.append(((time.perf_counter() - t0) * 1e6, len(ids)))
        return out

    rep.update = timed
    images = []
    for f in frames(299):
        before = pipe.times.seconds["detect"]
        pipe.process(f)
        det_ms.append((pipe.times.seconds["detect"] - before) * 1e3)
        if f.index < 100:
            images.append(f.image)
    us, n = np.array([u for u, _ in per]), np.array([k for _, k in per])
    print(f"tracks per frame: median {np.median(n):.0f}, max {n.max()}; swaps {len(rep.swaps)}")
    print(f"repair in the pipeline: median {np.median(us):.0f} us/frame, p90 {np.percentile(us, 90):.0f} us "
          f"(frames 0-299)")
    print(f"detector (tiled SSD, 2 threads): median {np.median(det_ms[30:]):.1f} ms/frame (frames 30-299)")
    alone, ten = IdentityRepair(), []
    for i, img in enumerate(images):  # ten people-sized boxes, apart, moving 3 px a frame
        x = 60 + 65 * np.arange(10) + 3 * (i % 20)
        y = 150 + 20 * (np.arange(10) % 3)
        boxes = np.stack([x, y, x + 40, y + 100], axis=1).astype(np.float32)
        t0 = time.perf_counter()
        alone.update(img, np.arange(1, 11), boxes, i / 10)
        ten.append((time.perf_counter() - t0) * 1e6)
    print(f"repair with 10 tracks (boxes on vtest frames 0-99): median {np.median(ten):.0f} us/frame")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", default="x610,diag_right", help="comma-separated line names, or ALL")
    ap.add_argument("--frames", type=int, nargs=2, default=(0, 794), metavar=("FIRST", "LAST"))
    ap.add_argument("--cost", action="store_true", help="only: the repair's time per frame")
    ap.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "footfall-bench"))
    args = ap.parse_args(argv)
    if args.cost:
        cost()
        return 0
    names = list(load_lines()["lines"]) if args.lines == "ALL" else args.lines.split(",")
    compare(names, args.frames[0], args.frames[1], Path(args.cache_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
