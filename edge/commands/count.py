"""`footfall count VIDEO`: count people crossing a line in a video file.

For technicians checking a camera placement on a recording, and for tests on real
footage. Lists every crossing (frame, time, track, direction); nothing is stored
except what ``--events-out`` asks for (crossings only, never images).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

from edge.commands.args import floats
from edge.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "count",
        help="count people crossing a line in a video file",
        description="Count people crossing a segment in a video (in = towards the inside point). "
        "Coordinates are pixels, or 0..1 fractions of the frame when all are <= 1.",
    )
    p.add_argument("video", help="video file (or a camera/stream spec, stopped with Ctrl-C)")
    p.add_argument("--line", required=True, metavar="X1,Y1,X2,Y2", help="counting segment")
    p.add_argument("--inside", required=True, metavar="X,Y", help="a point on the inside of the door")
    p.add_argument("--model", default=None, help="model name in models/ or a manifest path (default ssdlite_person)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: one per core)")
    p.add_argument("--front-end", default="tiles", choices=("tiles", "roi"),
                   help="tiles: the model at its own size on overlapping tiles along the line (default; sees "
                   "people far from the camera); roi: one window around the line scaled to the model")
    p.add_argument("--roi", default="auto", help="with --front-end roi: 'auto' (window around the line), 'full', "
                   "or X1,Y1,X2,Y2")
    p.add_argument("--hysteresis", type=float, default=None, help="counting hysteresis in pixels")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--events-out", default=None, metavar="FILE", help="write the crossings as JSON lines")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--truth", default=None, metavar="FILE.csv",
                   help="score against hand-counted crossings: CSV rows 'frame,direction' (in/out); prints "
                   "per-direction gross accuracy, missed, extra and median time lag")
    p.add_argument("--tolerance", type=float, default=1.0, metavar="SECONDS",
                   help="a count matches a true crossing within this many seconds (default 1.0)")
    p.set_defaults(handler=run)


def scale_points(values: tuple[float, ...], w: int, h: int, relative: bool) -> tuple[float, ...]:
    """0..1 fractions to pixels when ``relative``; pixels unchanged otherwise."""
    if not relative:
        return values
    return tuple(v * (w if i % 2 == 0 else h) for i, v in enumerate(values))


def run(args: argparse.Namespace) -> int:
    from edge.camera_pipeline import CameraPipeline, front_end_for
    from edge.counting import CountingLine
    from edge.commands.camera import open_video_and_model

    from edge.truth_file import read_truth_csv

    truth = read_truth_csv(args.truth) if args.truth else None  # a bad file fails before the long count
    if not args.tolerance >= 0:
        raise UserError("--tolerance must be >= 0 seconds")
    line = floats(args.line, 4, "--line")
    inside = floats(args.inside, 2, "--inside")
    source, detector = open_video_and_model(args.video, args.model, args.threads, live=False)
    first = source.read()
    if first is None:
        raise UserError(f"video {args.video} has no readable frames (corrupt or empty)")
    h, w = first.image.shape[:2]
    relative = all(0.0 <= v <= 1.0 for v in line + inside)
    x1, y1, x2, y2 = scale_points(line, w, h, relative)
    ix, iy = scale_points(inside, w, h, relative)
    kwargs = {} if args.hysteresis is None else {"hysteresis_px": args.hysteresis}
    counting_line = CountingLine("line", (x1, y1), (x2, y2), (ix, iy), **kwargs)
    front, roi = front_end_for(detector, [counting_line], w, h, args.front_end)
    if args.front_end == "roi" and args.roi == "full":
        roi = None
    elif args.front_end == "roi" and args.roi != "auto":
        roi = tuple(int(v) for v in floats(args.roi, 4, "--roi"))
    pipeline = CameraPipeline(front, [counting_line], run_id=uuid.uuid4().hex[:8], roi=roi, frame_size=(w, h))
    total = source.frame_count or None
    fps = source.fps or 0.0  # read now: a closed capture reports 0

    def frames():
        yield first
        yield from source.frames()

    events = []
    show = not args.no_progress and not args.json and sys.stderr.isatty()
    try:
        if show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("counting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          TextColumn("in {task.fields[n_in]} out {task.fields[n_out]}"), transient=True) as bar:
                task = bar.add_task("count", total=total, n_in=0, n_out=0)
                for frame in frames():
                    events.extend(pipeline.process(frame))
                    n_in = sum(e.crossing.direction == "in" for e in events)
                    bar.update(task, advance=1, n_in=n_in, n_out=len(events) - n_in)
        else:
            for frame in frames():
                events.extend(pipeline.process(frame))
    except KeyboardInterrupt:
        print("interrupted: counts so far follow", file=sys.stderr)
    finally:
        source.close()
    events.extend(pipeline.flush())

    def media_s(e) -> float:  # the crossing's own moment, in seconds from the video's start
        return e.crossing.t_utc - first.t_utc + first.t_mono

    rows = [
        {
            "frame": round(media_s(e) * fps) if fps else e.frame_index,
            "time_s": round(media_s(e), 3),
            "counted_frame": e.frame_index,
            "track": e.track_id,
            "direction": e.crossing.direction,
            "line": e.crossing.line,
            "t_utc": e.crossing.t_utc,
            "source_ref": e.crossing.source_ref,
        }
        for e in events
    ]
    n_in = sum(r["direction"] == "in" for r in rows)
    result = {
        "video": str(args.video),
        "frames": pipeline.times.frames,
        "line": [x1, y1, x2, y2],
        "inside": [ix, iy],
        "front_end": args.front_end,
        "roi": list(roi) if roi else None,
        "tiles": [list(t) for t in getattr(front, "tiles", [])],
        "model": detector.manifest.name,
        "in": n_in,
        "out": len(rows) - n_in,
        "crossings": rows,
        "stage_ms_per_frame": {k: round(v, 3) for k, v in pipeline.times.per_frame_ms().items()},
    }
    if truth is not None:
        if not fps:
            raise UserError(f"video {args.video} reports no frame rate: truth frames cannot be turned into times")
        from contract.crossing_score import score_crossings

        result["score"] = score_crossings([(f / fps, d) for f, d in truth], [(r["time_s"], r["direction"]) for r in rows],
                                          tolerance_s=args.tolerance)
        result["tolerance_s"] = args.tolerance
    if args.events_out:
        with open(Path(args.events_out), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.video}: in {n_in}, out {len(rows) - n_in} ({pipeline.times.frames} frames)")
    for col in ("frame", "time (s)", "track", "direction"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["frame"]), f"{r['time_s']:.1f}" if r["time_s"] is not None else "-",
                      str(r["track"]), r["direction"])
    console = Console()
    console.print(table)
    if truth is not None:
        console.print(score_table(result["score"], f"against {args.truth} (match within {args.tolerance:g} s)"))
    return 0


def score_table(score: dict, title: str):  # -> rich.table.Table
    """Per direction: true, counted, missed, extra, gross accuracy, median lag."""
    from rich.table import Table

    t = Table(title=title)
    for col in ("direction", "true", "counted", "missed", "extra", "gross accuracy", "median lag (s)"):
        t.add_column(col, justify="right")
    for d, s in score.items():
        lag = s["median_lag_s"]
        t.add_row(d, str(s["true"]), str(s["counted"]), str(s["missed"]), str(s["extra"]),
                  f"{s['gross_accuracy']:.3f}", "-" if lag is None else f"{lag:+.2f}")
    return t
