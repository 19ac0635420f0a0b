"""Step through our pipeline's crossings on vtest.avi, line by line, to find why a count
was missed or made.

    python -m bench.crossing_trace --lines diag,x610 --out /tmp/trace     # record
    python -m bench.crossing_trace --lines diag --out /tmp/trace --list   # truth vs ours
    python -m bench.crossing_trace --lines diag --out /tmp/trace --frames 770 794 --near 60
    python -m bench.crossing_trace --lines ALL --out /tmp/trace --score --counting settle_s=1.0

Recording runs our pipeline (SSD, tiles, the detections cached by
`bench.heldout_accuracy`) for every named line in one pass over the clip and keeps, per
frame, the merged detections, the tracks the counter was given (id, box, confirmed), each
track's side as the counter holds it after the frame, and the crossings. ``--list`` prints
each line's truth and our counts side by side with frame numbers, each marked matched or
not (the scorer's own rule: same direction within 1 s, closest first). ``--frames A B``
prints every frame in that range: the detections and tracks whose feet are within
``--near`` px of the line (signed distance, + inside; whether within the segment).
``--score`` replays the recorded tracks into the counter as it is now, with
``--counting NAME=VALUE`` overrides of the camera's `CountingParams` and ``--lift K``
(the feet anchor raised by K box heights), and scores every part as
`bench.heldout_accuracy` does: the tracker's output does not depend on the counter, so
a counting rule is tried on every line in seconds (record the traces with the code
whose tracker and front-end you mean). Everything here is for reading errors on the
annotated lines; it changes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
from pathlib import Path

import numpy as np

from bench.heldout_accuracy import (TOLERANCE_S, VTEST, counting_line, frames, last_frame_of, load_lines,
                                    open_detector, parts_of, score_part, truth_of)


def record(lines: list[str], out: Path, threads: int, cache_dir: Path, last: int | None = None) -> None:
    """Run one pipeline per line over the clip; pickle each line's per-frame trace."""
    from edge.camera_pipeline import CameraPipeline, front_end_for

    spec = load_lines()
    det = open_detector(threads, cache_dir)
    pipes, traces, t0 = {}, {n: {"frames": [], "events": []} for n in lines}, None
    for f in frames(last):
        det.frame = f.index
        if not pipes:
            h, w = f.image.shape[:2]
            t0 = f.t_utc - f.t_mono
            for n in lines:
                line = counting_line(spec["lines"][n], n)
                d, roi = front_end_for(det, [line], w, h, "tiles")
                pipes[n] = CameraPipeline(d, [line], run_id="t", roi=roi, frame_size=(w, h))
        for n, pipe in pipes.items():
            evs = pipe.process(f)
            tr = pipe.last_tracks
            c = pipe.counter
            sides = [int(c._side[c._slot_of[int(i)], 0]) if int(i) in c._slot_of else 0 for i in tr.ids]
            dets = pipe.last_detections
            traces[n]["frames"].append({
                "i": f.index, "t": f.t_mono, "det_boxes": np.array(dets.boxes), "det_scores": np.array(dets.scores),
                "ids": np.array(tr.ids), "boxes": np.array(tr.boxes), "confirmed": np.array(tr.confirmed),
                "det_index": np.array(tr.det_index), "sides": sides,
                "parents": [int(c._parent_id[c._slot_of[int(i)]]) if int(i) in c._slot_of else -1 for i in tr.ids],
            })
            traces[n]["events"] += [_event(e, t0) for e in evs]
    for n, pipe in pipes.items():
        traces[n]["events"] += [_event(e, t0) for e in pipe.flush()]
    det.save()
    out.mkdir(parents=True, exist_ok=True)
    for n, tr in traces.items():
        (out / f"{n}.pkl").write_bytes(pickle.dumps(tr))


def _event(e, t0: float) -> dict:
    return {"t": e.crossing.t_utc - t0, "dir": e.crossing.direction, "track": e.track_id,
            "counted_at": e.frame_index}


def matches(truth: list[tuple[float, str]], counted: list[tuple[float, str]]) -> tuple[dict, dict]:
    """Which true crossing each count matched (the scorer's rule), both ways, by index."""
    t2c, c2t = {}, {}
    for d in ("in", "out"):
        ti = [i for i, (_, dd) in enumerate(truth) if dd == d]
        ci = [j for j, (_, dd) in enumerate(counted) if dd == d]
        pairs = sorted((abs(truth[i][0] - counted[j][0]), i, j) for i in ti for j in ci
                       if abs(truth[i][0] - counted[j][0]) <= TOLERANCE_S)
        for _, i, j in pairs:
            if i not in t2c and j not in c2t:
                t2c[i], c2t[j] = j, i
    return t2c, c2t


def listing(name: str, tr: dict, fps: float, lo: int = 400, hi: int = 794) -> None:
    """Truth and our counts of one line on frames lo..hi, in time order, marked."""
    truth = truth_of(name, fps)
    ev = tr["events"]
    counted = [(e["t"], e["dir"]) for e in ev]
    t2c, c2t = matches(truth, counted)
    rows = [(t, "truth", d, "ok" if i in t2c else "MISSED", "") for i, (t, d) in enumerate(truth)]
    rows += [(e["t"], "ours", e["dir"], "ok" if j in c2t else "EXTRA",
              f"track {e['track']}, counted at frame {e['counted_at']}") for j, e in enumerate(ev)]
    print(f"== {name} (frames {lo}-{hi})")
    for t, who, d, mark, note in sorted(rows):
        if lo <= t * fps < hi + 1:
            print(f"  {t * fps:6.1f}  {who:5s} {d:3s} {mark:6s} {note}")


def step(name: str, tr: dict, lo: int, hi: int, near: float) -> None:
    """Detections and tracks near the line, frame by frame."""
    spec = load_lines()
    line = counting_line(spec["lines"][name], name)
    p1, p2, ins = (np.array(v, float) for v in (line.p1, line.p2, line.inside_point))
    u = (p2 - p1) / np.hypot(*(p2 - p1))
    n = np.array([-u[1], u[0]])
    n *= np.sign((ins - p1) @ n)
    length = np.hypot(*(p2 - p1))

    def where(b):
        xy = np.array([(b[0] + b[2]) / 2, b[3]])
        s, a = (xy - p1) @ n, (xy - p1) @ u
        return s, a, 0 <= a <= length

    for fr in tr["frames"]:
        if not lo <= fr["i"] <= hi:
            continue
        out = []
        for b, sc in zip(fr["det_boxes"], fr["det_scores"]):
            s, a, w = where(b)
            if abs(s) <= near and -near <= a <= length + near:
                out.append(f"    det  s {s:+6.1f} along {a:6.1f}{'' if w else ' (beyond)'} score {sc:.2f} "
                           f"box {b.astype(int).tolist()} h {b[3] - b[1]:.0f}")
        for tid, b, cf, side, par in zip(fr["ids"], fr["boxes"], fr["confirmed"], fr["sides"], fr["parents"]):
            s, a, w = where(b)
            if abs(s) <= near and -near <= a <= length + near:
                out.append(f"    trk {tid:4d}{'' if cf else '?'} s {s:+6.1f} along {a:6.1f}{'' if w else ' (beyond)'} "
                           f"side {side:+d}{f' heir of {par}' if par >= 0 else ''} box {b.astype(int).tolist()}")
        evs = [e for e in tr["events"] if e["counted_at"] == fr["i"]]
        print(f"  frame {fr['i']}" + "".join(f"  COUNT {e['dir']} t={e['t'] * 10:.1f} track {e['track']}" for e in evs))
        print("\n".join(out))


def replay(name: str, tr: dict, params, lift: float = 0.0) -> list[tuple[float, str]]:
    """The recorded tracks of one line through a counter with ``params``: crossings as
    (seconds from frame 0, direction), on the frames `bench.heldout_accuracy` runs."""
    from edge.counting import LineCounter

    spec = load_lines()
    last = last_frame_of(name, spec["split"])
    c = LineCounter([counting_line(spec["lines"][name], name)], params=params, frame_size=(768, 576))
    t0, out = tr["frames"][0]["t"], []
    for fr in tr["frames"]:
        if last is not None and fr["i"] > last:
            break
        b = np.array(fr["boxes"], dtype=np.float64).reshape(-1, 4)
        if lift:
            b[:, 3] -= lift * (b[:, 3] - b[:, 1])
        out += c.update(fr["ids"], b, fr["confirmed"], fr["t"])
    out += c.flush()
    return [(e.t - t0, e.direction) for e in out]


def score(names: list[str], out: Path, overrides: list[str], lift: float) -> None:
    """Every part of every named line, ours (worst direction; matched/true +extra)."""
    from contract.crossing_score import worst_direction
    from edge.camera_pipeline import CAMERA_COUNTING

    kw = {k: type(getattr(CAMERA_COUNTING, k))(v) for k, v in (o.split("=", 1) for o in overrides)}
    params = dataclasses.replace(CAMERA_COUNTING, **kw)
    spec = load_lines()
    print(f"# counting {params}, lift {lift}")
    for n in names:
        counted = replay(n, pickle.loads((out / f"{n}.pkl").read_bytes()), params, lift)
        for part, rng in parts_of(n, spec["split"]).items():
            s = score_part(truth_of(n, spec["fps"]), counted, rng, spec["fps"])
            cells = " ".join(f"{d} {v['matched']}/{v['true']}+{v['extra']}" for d, v in s.items())
            print(f"{n:12s} {part:24s} {worst_direction(s):+.3f}  {cells}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.crossing_trace", description=__doc__.splitlines()[0])
    ap.add_argument("--lines", required=True, help="comma-separated line names, or ALL")
    ap.add_argument("--out", required=True, help="folder of the traces (one pickle per line)")
    ap.add_argument("--list", action="store_true", help="truth vs ours, frames 400-794 (--frames to change)")
    ap.add_argument("--frames", nargs=2, type=int, default=None)
    ap.add_argument("--near", type=float, default=60.0)
    ap.add_argument("--score", action="store_true", help="replay the recorded tracks into the counter and score")
    ap.add_argument("--counting", nargs="*", default=[], help="NAME=VALUE overrides of the camera's CountingParams")
    ap.add_argument("--lift", type=float, default=0.0, help="--score: raise the feet anchor by this many box heights")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "footfall-bench"))
    args = ap.parse_args(argv)
    names, out = args.lines.split(","), Path(args.out)
    if names == ["ALL"]:
        names = list(load_lines()["lines"])
    if args.score:
        score(names, out, args.counting, args.lift)
        return 0
    if not args.list and args.frames is None:
        if not VTEST.is_file():
            print(f"{VTEST} missing", file=sys.stderr)
            return 2
        record(names, out, args.threads, Path(args.cache_dir))
        return 0
    fps = load_lines()["fps"]
    for n in names:
        tr = pickle.loads((out / f"{n}.pkl").read_bytes())
        if args.list:
            listing(n, tr, fps, *(args.frames or (400, 794)))
        else:
            step(n, tr, args.frames[0], args.frames[1], args.near)
    return 0


if __name__ == "__main__":
    sys.exit(main())
