"""`footfall camera ...`: calibration tools for technicians at the door.

* ``snapshot``: one PNG with the counting lines, inside marks, current detections and
  recent tracks. Written only to the device's disk (the path is printed); it is the one
  image of visitors the system ever stores, and only on explicit request.
* ``set-line``: writes a ``[[camera.lines]]`` entry into the agent TOML with tomlkit,
  keeping the technician's comments and layout.
* ``suggest-line``: watches tracks for a while and proposes a line across the dominant
  flow, with a PNG of the trajectories.
* ``check``: frame rate, per-stage latency and detections per frame.
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import UserError

DEFAULT_CONFIG = "/etc/footfall/agent.toml"


def _point(text: str, what: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"{what} needs x,y (pixels, or 0..1 fractions of the frame), got {text!r}") from None
    return x, y


def _config_path(args: argparse.Namespace) -> Path:
    import os

    return Path(args.config or os.environ.get("FOOTFALL_CONFIG") or DEFAULT_CONFIG)


def lines_from_config(path: Path, width: int, height: int):
    """The camera's counting lines from the agent TOML, in pixels of a width x height frame."""
    import tomllib

    from pydantic import ValidationError

    from edge.camera_settings import CameraSettings

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"config {path} not found; create the line with `footfall camera set-line --config {path} ...`") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config {path} is not valid TOML: {exc}") from None
    try:  # only the [camera] table: the rest of the file may not be written yet
        cam = CameraSettings.model_validate({**data.get("camera", {}), "enabled": False})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"])
        raise UserError(f"config {path}: camera.{where}: {err['msg'].removeprefix('Value error, ')}") from None
    out = [ln.counting_line(width, height) for ln in cam.lines]
    if not out:
        raise UserError(f"config {path} has no [[camera.lines]]; add one with `footfall camera set-line`")
    return out


def register(sub: argparse._SubParsersAction) -> None:
    cam = sub.add_parser("camera", help="camera calibration: snapshot, set-line, suggest-line, check")
    csub = cam.add_subparsers(dest="camera_command", metavar="ACTION", required=True)

    def source_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--source", default="0", help="camera index, /dev/videoN, rtsp:// or http:// URL, or a file")
        p.add_argument("--model", default=None, help="model name or manifest path (default ssdlite_person)")
        p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: one per core)")

    p = csub.add_parser("snapshot", help="PNG with lines, detections and recent tracks (kept on this device)")
    source_args(p)
    p.add_argument("--seconds", type=float, default=3.0, help="watch this long for recent tracks")
    p.add_argument("--out", default="camera-snapshot.png", help="PNG path on this device")
    p.set_defaults(handler=snapshot)

    p = csub.add_parser("set-line", help="write a counting line into the agent config")
    p.add_argument("--name", default="door")
    p.add_argument("--p1", required=True, metavar="X,Y")
    p.add_argument("--p2", required=True, metavar="X,Y")
    p.add_argument("--inside", required=True, metavar="X,Y", help="a point on the inside of the door")
    p.add_argument("--hysteresis", type=float, default=None, metavar="PX")
    p.set_defaults(handler=set_line)

    p = csub.add_parser("suggest-line", help="watch tracks and propose a line across the dominant flow")
    source_args(p)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--png", default="camera-trajectories.png", help="trajectory picture (no people in it)")
    p.set_defaults(handler=suggest_line)

    p = csub.add_parser("check", help="frame rate, per-stage latency, detections per frame")
    source_args(p)
    p.add_argument("--seconds", type=float, default=10.0)
    p.set_defaults(handler=check)


# ------------------------------------------------------------------ set-line


def set_line(args: argparse.Namespace) -> int:
    import tomlkit

    path = _config_path(args)
    p1, p2, ins = _point(args.p1, "--p1"), _point(args.p2, "--p2"), _point(args.inside, "--inside")
    values = [*p1, *p2, *ins]
    fraction = all(0.0 <= v <= 1.0 for v in values)
    if p1 == p2:
        raise UserError("--p1 and --p2 are the same point; a line needs two ends")
    doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    camera = doc.get("camera")
    if camera is None:
        camera = tomlkit.table()
        doc["camera"] = camera
    lines = camera.get("lines")
    if lines is None:
        lines = tomlkit.aot()
        camera["lines"] = lines
    entry = tomlkit.table()
    entry["name"] = args.name
    entry["p1"] = list(p1)
    entry["p2"] = list(p2)
    entry["inside"] = list(ins)
    entry["units"] = "fraction" if fraction else "pixels"
    if args.hysteresis is not None:
        entry["hysteresis_px"] = args.hysteresis
    for i, existing in enumerate(lines):
        if existing.get("name") == args.name:
            lines[i] = entry
            break
    else:
        lines.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    tmp.replace(path)
    print(f"camera line {args.name!r} written to {path} ({entry['units']}); restart the agent to use it")
    return 0


# ------------------------------------------------------------------ shared runner


def open_video_and_model(spec: str, model: str, threads: int | None, **source_kw: Any) -> tuple[Any, Any]:
    """A video source and the detector, or a UserError that says what is wrong with either."""
    from edge.detector import OnnxDetector
    from edge.model_manifest import ModelError
    from edge.video_source import SourceError, VideoSource

    try:
        source = VideoSource(spec, **source_kw)
    except SourceError as exc:
        raise UserError(str(exc)) from None
    try:
        detector = OnnxDetector(model, threads=threads)
    except ModelError as exc:
        source.close()
        raise UserError(str(exc)) from None
    return source, detector


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    return open_video_and_model(args.source, args.model, args.threads, max_retries=3)


def _watch(args, seconds: float, lines=None):
    """Run the pipeline for ``seconds`` of frames; returns pipeline, last frame, tracks, timings."""
    from edge.camera_pipeline import CameraPipeline
    from edge.counting import CountingLine

    source, detector = _open(args)
    first = source.read()
    if first is None:
        raise UserError(f"source {args.source} gave no frames")
    h, w = first.image.shape[:2]
    if lines is None:
        # a placeholder line only to run the tracker; nothing is counted or stored
        lines = [CountingLine("probe", (w / 2, 0), (w / 2, h), (w, h / 2))]
    pipe = CameraPipeline(detector, lines, run_id=uuid.uuid4().hex[:8])
    tracks: dict[int, list[tuple[float, float]]] = {}
    decode_s = 0.0
    frame, shown, n = first, first, 0
    t_end = first.t_mono + seconds
    wall0 = time.perf_counter()
    while frame is not None:
        pipe.process(frame)
        shown, n = frame, n + 1
        tf = pipe.last_tracks
        for tid, box in zip(tf.ids, tf.boxes):
            tracks.setdefault(int(tid), []).append((float(box[0] + box[2]) / 2, float(box[3])))
        if frame.t_mono >= t_end:
            break
        t0 = time.perf_counter()
        frame = source.read()
        decode_s += time.perf_counter() - t0
    wall = time.perf_counter() - wall0
    source.close()
    return pipe, shown, tracks, {"decode_s": decode_s, "wall_s": wall, "frames": n}


# ------------------------------------------------------------------ snapshot


def snapshot(args: argparse.Namespace) -> int:
    import cv2

    path = _config_path(args)
    source, _ = _open(args)
    first = source.read()
    source.close()
    if first is None:
        raise UserError(f"source {args.source} gave no frames")
    h, w = first.image.shape[:2]
    lines = lines_from_config(path, w, h) if path.exists() else None
    pipe, frame, tracks, _ = _watch(args, args.seconds, lines)
    img = frame.image.copy()
    for pts in tracks.values():
        if len(pts) > 1:
            cv2.polylines(img, [np.array(pts, np.int32)], False, (255, 200, 0), 1)
    for b, s in zip(pipe.last_detections.boxes.astype(int), pipe.last_detections.scores):
        cv2.rectangle(img, tuple(b[:2]), tuple(b[2:]), (0, 255, 0), 2)
        cv2.putText(img, f"{s:.2f}", (b[0], max(10, b[1] - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1)
    for ln in lines or []:
        cv2.line(img, tuple(int(v) for v in ln.p1), tuple(int(v) for v in ln.p2), (0, 0, 255), 2)
        cv2.drawMarker(img, tuple(int(v) for v in ln.inside_point), (0, 0, 255), cv2.MARKER_CROSS, 14, 2)
        cv2.putText(img, f"{ln.name}: in", tuple(int(v) + 6 for v in ln.inside_point), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (0, 0, 255), 1)
    out = Path(args.out)
    if not cv2.imwrite(str(out), img):
        raise UserError(f"cannot write {out}")
    print(f"snapshot written to {out.resolve()} (stays on this device; delete it when calibration is done)")
    if lines is None:
        print(f"no [[camera.lines]] in {path}: set one with `footfall camera set-line`")
    return 0


# ------------------------------------------------------------------ suggest-line


def propose_line(tracks: dict[int, list[tuple[float, float]]], min_travel: float = 40.0):
    """A counting line across the dominant flow of the given trajectories.

    Returns (p1, p2, inside, flow_unit) or None. The flow is the principal direction of
    the tracks' displacements; the line runs perpendicular to it through the median of
    the trajectories' midpoints, long enough to span 90% of them.
    """
    moves, mids, pts_all = [], [], []
    for pts in tracks.values():
        a = np.asarray(pts, dtype=np.float64)
        if len(a) < 3:
            continue
        d = a[-1] - a[0]
        if np.hypot(*d) < min_travel:
            continue
        moves.append(d)
        mids.append(a[len(a) // 2])
        pts_all.append(a)
    if len(moves) < 2:
        return None
    m = np.asarray(moves)
    _, _, vt = np.linalg.svd(m, full_matrices=False)  # uncentred: in and out share one axis
    flow = vt[0] / np.linalg.norm(vt[0])
    if (m @ flow).sum() < 0:
        flow = -flow
    normal = np.array([-flow[1], flow[0]])
    centre = np.median(np.asarray(mids), axis=0)
    across = np.concatenate([(p - centre) @ normal for p in pts_all])
    lo, hi = np.percentile(across, [5, 95])
    p1 = centre + normal * (lo - 10)
    p2 = centre + normal * (hi + 10)
    inside = centre + flow * max(40.0, 0.25 * (hi - lo))
    return tuple(p1), tuple(p2), tuple(inside), tuple(flow)


def suggest_line(args: argparse.Namespace) -> int:
    import cv2

    pipe, frame, tracks, stats = _watch(args, args.minutes * 60.0)
    result = propose_line(tracks)
    if result is None:
        raise UserError(f"too few people walked through in {stats['frames']} frames; watch longer (--minutes)")
    p1, p2, inside, flow = result
    h, w = frame.image.shape[:2]
    canvas = np.full((h, w, 3), 40, np.uint8)  # trajectories only: no picture of anyone
    for pts in tracks.values():
        if len(pts) > 1:
            cv2.polylines(canvas, [np.array(pts, np.int32)], False, (255, 200, 0), 1)
    cv2.line(canvas, tuple(int(v) for v in p1), tuple(int(v) for v in p2), (0, 0, 255), 2)
    cv2.drawMarker(canvas, tuple(int(v) for v in inside), (0, 0, 255), cv2.MARKER_CROSS, 14, 2)
    cv2.imwrite(args.png, canvas)
    fmt = lambda p: f"{p[0]:.0f},{p[1]:.0f}"  # noqa: E731
    print(f"{len(tracks)} tracks; dominant flow ({flow[0]:+.2f}, {flow[1]:+.2f}); picture: {args.png}")
    print("'inside' is taken as the direction most people walked; swap it if that was outwards.")
    print(f"footfall camera set-line --p1 {fmt(p1)} --p2 {fmt(p2)} --inside {fmt(inside)}")
    return 0


# ------------------------------------------------------------------ check


def check(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    pipe, _, _, stats = _watch(args, args.seconds)
    n = max(stats["frames"], 1)
    table = Table(title=f"camera check: {args.source}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("frames", str(stats["frames"]))
    table.add_row("frame rate (processed)", f"{stats['frames'] / max(stats['wall_s'], 1e-9):.1f} fps")
    table.add_row("decode ms/frame", f"{1000 * stats['decode_s'] / n:.1f}")
    for stage, ms in pipe.times.per_frame_ms().items():
        table.add_row(f"{stage} ms/frame", f"{ms:.1f}")
    table.add_row("detections per frame", f"{pipe.times.detections / n:.2f}")
    Console().print(table)
    return 0
