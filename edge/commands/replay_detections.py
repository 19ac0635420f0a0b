"""`footfall replay-detections`: run recorded detections through tracker and line.

Why: a technician (or a test) can check the counting of a door from a detection dump
in MOT-Challenge format, without video and without any image of a visitor.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack

from edge.commands.args import floats
from edge.counting import ANCHORS
from edge.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "replay-detections",
        help="count line crossings in a MOT-format detection file",
        description=(
            "Read detections (MOT-Challenge text: frame,id,x,y,w,h,score,...; id ignored), "
            "track them, and count crossings of one line. Prints the in/out counts and "
            "every crossing."
        ),
    )
    p.add_argument("det", metavar="DET", help="detection file in MOT-Challenge text format")
    p.add_argument("--line", required=True, metavar="x1,y1,x2,y2", help="counting line, pixels")
    p.add_argument("--inside", required=True, metavar="x,y",
                   help="a point on the inside of the line (crossing toward it counts as in)")
    p.add_argument("--fps", type=float, default=15.0, help="frame rate of the file (default 15)")
    p.add_argument("--anchor", choices=ANCHORS, default="bottom_centre",
                   help="the point of a box that crosses the line: bottom_centre (the feet, "
                        "a camera looking obliquely; default) or centre (looking straight down)")
    p.add_argument("--tracks-out", metavar="FILE", help="write the tracks in MOT format here")
    p.add_argument("--json", action="store_true", help='print {"in": n, "out": n, "crossings": [...]}')
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from edge.counting import CountingLine, LineCounter
    from edge.mot_format import MotFormatError, read_detections, write_tracks
    from edge.tracker import Tracker

    x1, y1, x2, y2 = floats(args.line, 4, "--line")
    inside = floats(args.inside, 2, "--inside")
    if not args.fps > 0:
        raise UserError(f"--fps must be positive, got {args.fps}")
    try:
        line = CountingLine("line", (x1, y1), (x2, y2), (inside[0], inside[1]))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    tracker = Tracker()
    counter = LineCounter([line], anchor=args.anchor)
    crossings: list[dict[str, object]] = []
    counts = {"in": 0, "out": 0}
    with ExitStack() as stack:
        try:
            det_fh = stack.enter_context(open(args.det, encoding="utf-8"))
        except OSError as exc:
            raise UserError(f"cannot read detections {args.det!r}: {exc.strerror}") from None
        tracks_fh = None
        if args.tracks_out:
            try:
                tracks_fh = stack.enter_context(open(args.tracks_out, "w", encoding="utf-8"))
            except OSError as exc:
                raise UserError(f"cannot write tracks to {args.tracks_out!r}: {exc.strerror}") from None
        try:
            for fr in read_detections(det_fh, source=args.det):
                t = (fr.frame - 1) / args.fps
                out = tracker.update(fr.boxes_xyxy, fr.scores, t)
                if tracks_fh is not None:
                    c = out.confirmed
                    write_tracks(tracks_fh, fr.frame, out.ids[c], out.boxes[c],
                                 fr.scores[out.det_index[c]])
                for ev in counter.update(out.ids, out.boxes, out.confirmed, t):
                    counts[ev.direction] += 1
                    crossings.append({"frame": fr.frame, "track": ev.track_id,
                                      "direction": ev.direction, "t": round(ev.t, 4)})
        except MotFormatError as exc:
            raise UserError(f"{exc}") from None
        except UnicodeDecodeError:
            raise UserError(f"{args.det} is not a text file (MOT-Challenge text expected)") from None
    if args.json:
        text = json.dumps({"in": counts["in"], "out": counts["out"], "crossings": crossings}) + "\n"
    else:
        text = "".join([f"in: {counts['in']}  out: {counts['out']}\n"] + [
            f"frame {c['frame']}  track {c['track']}  {c['direction']}\n" for c in crossings])
    # Flushed here, inside the command: a reader that has gone away (`| head`) then
    # raises BrokenPipeError where edge.cli ends the command quietly.
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0
