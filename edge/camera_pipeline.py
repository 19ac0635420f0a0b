"""Camera path: frame -> detect -> track -> count -> Crossing records.

One `CameraPipeline` per camera. It owns a detector, a tracker and the counting lines,
times each stage (for `footfall camera check` and the benchmark), and turns every line
crossing into a `Crossing` with ``source="camera"`` and a stable
``source_ref = cam:<run>:<track>:<line>:<n>`` (n counts that track's crossings of that
line), so replaying the same video into the journal is harmless.

The detector may look only at a region of interest around the counting lines: on a
wide view that makes distant people several times larger at the model's 300x300 input,
which is what limits a small SSD far from the camera.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.crossing import Crossing
from edge.detector import Detections, Detector
from edge.identity_repair import IdentityRepair
from edge.tracker import Tracker, TrackerParams
from edge.counting import CountingLine, CountingParams, LineCounter
from edge.video_source import Frame, MotionGate

STAGES: tuple[str, ...] = ("detect", "track", "repair", "count")


@dataclass(frozen=True, slots=True)
class CameraCrossing:
    """A crossing with the frame it happened in (for listings and tests)."""

    frame_index: int
    track_id: int
    crossing: Crossing


@dataclass
class StageTimes:
    """Accumulated seconds per stage, and frames seen; cheap enough to keep always on."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    frames: int = 0
    inferred: int = 0
    detections: int = 0

    def per_frame_ms(self) -> dict[str, float]:
        n = max(self.frames, 1)
        return {k: 1000.0 * v / n for k, v in self.seconds.items()}


def roi_around_lines(
    lines: Sequence[CountingLine], frame_w: int, frame_h: int, margin: float = 1.5, min_side: int = 300
) -> tuple[int, int, int, int]:
    """A detection window around the counting lines.

    The window spans the lines' bounding box grown on each side by ``margin`` / 2 times
    its longer side, taken as at least ``min_side`` (people approach from both sides and
    are detected before they reach the line), is at least ``min_side`` pixels each way,
    and is clipped to the frame. The default ``min_side`` is the shipped model's 300 px
    input: with 160 the window around a door line cut far walkers at its edge, and a
    cut box's bottom centre is not the feet, so fresh tracks jumped across the line
    (measured, docs/camera.md).
    """
    pts = np.array([[*ln.p1] for ln in lines] + [[*ln.p2] for ln in lines], dtype=np.float64)
    x1, y1 = pts.min(axis=0)
    x2, y2 = pts.max(axis=0)
    side = max(x2 - x1, y2 - y1, min_side)
    grow = margin * side / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w = max((x2 - x1) / 2 + grow, min_side / 2)
    half_h = max((y2 - y1) / 2 + grow, min_side / 2)
    rx1, ry1 = int(max(0, cx - half_w)), int(max(0, cy - half_h))
    rx2, ry2 = int(min(frame_w, cx + half_w)), int(min(frame_h, cy + half_h))
    return rx1, ry1, rx2, ry2


FRONT_ENDS: tuple[str, ...] = ("tiles", "roi")


def front_end_for(
    detector: Detector, lines: Sequence[CountingLine], frame_w: int, frame_h: int, kind: str = "tiles"
) -> tuple[Detector, tuple[int, int, int, int] | None]:
    """What the pipeline runs on each frame: the detector and the window it looks at.

    ``tiles``: the model at its own input size on overlapping tiles along the lines
    (`edge.tiled_detector`), so people far from the camera reach it as large as the
    camera sees them; quiet tiles reuse their last boxes; once the people seen give the
    camera's perspective, larger windows (shrunk to the input) where people are large,
    when that needs fewer windows. ``roi``: the model on one
    window around the lines, scaled to its input (people far away shrink).
    """
    if kind == "roi":
        return detector, roi_around_lines(lines, frame_w, frame_h)
    if kind != "tiles":
        raise ValueError(f"front end must be one of {FRONT_ENDS}, not {kind!r}")
    from edge.tiled_detector import TiledDetector, tile_rects

    spec = detector.manifest.input  # type: ignore[attr-defined]
    tiles = tile_rects(lines, frame_w, frame_h, tile=min(spec.width, spec.height))
    return TiledDetector(detector, tiles, frame_size=(frame_w, frame_h), lines=lines), None  # type: ignore[arg-type]


def tracker_params_for(detector: Detector, night: bool = False) -> TrackerParams:
    """Tracker thresholds matched to the detector's scores (from its manifest when it has one).

    This SSD scores partly hidden people 0.2-0.5, below the tracker's defaults, so its
    manifest lowers the ByteTrack-style stages (measured, docs/camera.md); on infrared
    frames (``night``) it scores lower still, and the manifest's night stages apply.
    Counting keeps the counter's own defaults.
    """
    manifest = getattr(detector, "manifest", None)
    if manifest is None:
        return TrackerParams()
    low = float(getattr(detector, "score_threshold", manifest.score_threshold))
    high_s, new_s = manifest.track_high, manifest.track_new
    if night:
        high_s = manifest.night_track_high if manifest.night_track_high is not None else high_s
        new_s = manifest.night_track_new if manifest.night_track_new is not None else new_s
    high = max(low, high_s)
    return TrackerParams(low_score=low, high_score=high, new_track_score=max(high, new_s))


def is_infrared(image: np.ndarray) -> bool:
    """A camera's night picture: its infrared mode gives grey frames (the colour channels
    agree within a level or two; sampled every 8th pixel)."""
    if image.ndim != 3 or image.shape[2] < 3:
        return True
    s = image[::8, ::8, :3].astype(np.int16)
    return float(np.abs(s[..., 0] - s[..., 1]).mean() + np.abs(s[..., 1] - s[..., 2]).mean()) < 3.0


# The camera's counting rules: crossings settle for half a second, because a detector's
# box can stretch for a frame or two over the person in front and carry its feet anchor
# across the line and back (measured on door scenes, docs/camera.md); and a crossing
# counts only if its track was seen in at least a third of the frames from half a second
# before it until it settles, because a track made of false positives, or a ghost
# coasting beside the person it lost, crosses on one or two sightings a second
# (docs/tracker.md, "Known misses").
CAMERA_COUNTING = CountingParams(settle_s=0.5, min_seen=1 / 3)

# Appearance-based swap repair between tracker and counter (edge.identity_repair); the
# default is what the evidence in docs/camera.md ("Swap repair") supports.
SWAP_REPAIR = True


class CameraPipeline:
    """Frame in, crossings out; stage timings in ``times``."""

    def __init__(
        self,
        detector: Detector,
        lines: Sequence[CountingLine],
        *,
        run_id: str,
        tracker_params: TrackerParams | None = None,
        roi: tuple[int, int, int, int] | None = None,
        motion_gate: MotionGate | None = None,
        counting_params: CountingParams | None = None,
        frame_size: tuple[int, int] | None = None,
        swap_repair: bool | None = None,
    ) -> None:
        if not lines:
            raise ValueError("at least one counting line is needed")
        self.detector = detector
        self.lines = list(lines)
        self.run_id = run_id
        self.tracker = Tracker(tracker_params or tracker_params_for(detector))
        # the night profile: lower score stages while the camera sends infrared frames
        night = None if tracker_params is not None else tracker_params_for(detector, night=True)
        self._profiles = None if night is None or night == self.tracker.params else (self.tracker.params, night)
        self.night = False
        self.grey = False  # the camera sends grey (infrared) frames: no colours to repair swaps by
        self.counter = LineCounter(
            self.lines, params=counting_params or CAMERA_COUNTING, frame_size=frame_size
        )
        self.roi = roi
        self.motion_gate = motion_gate
        self.times = StageTimes()
        self._n: dict[tuple[int, str], int] = defaultdict(int)
        self.last_detections: Detections = Detections.empty()
        self.last_tracks = None
        self._last_frame: Frame | None = None
        # per track: detection score sum, frames matched, last seen (t_mono): a crossing's
        # confidence is its track's mean detection score so far
        self._scores: dict[int, list[float]] = {}
        # identity swaps after two boxes merged, repaired by appearance (edge.identity_repair)
        self.repair = IdentityRepair() if (SWAP_REPAIR if swap_repair is None else swap_repair) else None

    def process(self, frame: Frame) -> list[CameraCrossing]:
        """Run one frame through detect -> track -> count."""
        clock = time.perf_counter
        self.times.frames += 1
        if self.times.frames % 25 == 1 and (self._profiles is not None or self.repair is not None):
            self.grey = is_infrared(frame.image)  # every 25th frame: cheap
            if self._profiles is not None:
                self._set_night(self.grey)
        t0 = clock()
        if self.motion_gate is None or self.motion_gate.should_process(frame.image):
            dets = self.detector.detect(frame.image, roi=self.roi)
            self.times.inferred += 1
        else:
            dets = Detections.empty()  # nothing moved: the tracker coasts on its predictions
        self.times.detections += len(dets)
        self.last_detections = dets
        t1 = clock()
        tracks = self.tracker.update(dets.boxes, dets.scores, frame.t_mono)
        t2 = clock()
        if self.repair is not None:  # the ids to count by: swaps after a merge undone
            tracks = tracks._replace(ids=self.repair.update(frame.image, tracks.ids, tracks.boxes, frame.t_mono,
                                                           colour=not self.grey))
        t3 = clock()
        self.last_tracks = tracks
        self._note_scores(tracks.ids, dets.scores[tracks.det_index] if len(dets) else dets.scores, frame.t_mono)
        events = self.counter.update(tracks.ids, tracks.boxes, tracks.confirmed, frame.t_mono)
        out = [self._to_crossing(frame, ev) for ev in events]
        self._last_frame = frame
        t4 = clock()
        s = self.times.seconds
        s["detect"] += t1 - t0
        s["track"] += t2 - t1
        if self.repair is not None:
            s["repair"] += t3 - t2
        s["count"] += t4 - t3
        return out

    def _set_night(self, night: bool) -> None:
        if night != self.night:  # called only with profiles
            p = self._profiles[1 if night else 0]
            self.tracker.set_score_thresholds(p.high_score, p.new_track_score)
            self.night = night

    def _note_scores(self, ids: np.ndarray, scores: np.ndarray, t: float) -> None:
        for tid, score in zip(ids.tolist(), scores.tolist()):
            acc = self._scores.setdefault(tid, [0.0, 0, t])
            acc[0] += score
            acc[1] += 1
            acc[2] = t
        if len(self._scores) > 512:  # forget tracks unseen for a minute
            self._scores = {k: v for k, v in self._scores.items() if v[2] >= t - 60.0}

    def confidence(self, track_id: int) -> float:
        """A crossing's confidence: its track's mean detection score so far. A second box
        on one body or a short stray track tends to score lower than a person seen clearly
        (`[fusion] camera_min_confidence` can drop crossings below a level; off by default)."""
        acc = self._scores.get(track_id)
        return round(acc[0] / acc[1], 3) if acc and acc[1] else 0.0

    def _to_crossing(self, frame: Frame, ev) -> CameraCrossing:  # ev: edge.counting.LineCrossing
        track_id = int(ev.track_id)
        line = str(ev.line)
        self._n[(track_id, line)] += 1
        n = self._n[(track_id, line)]
        # the event's own time is on the frame's clock (media or monotonic); map it to UTC
        t_utc = frame.t_utc + (float(ev.t) - frame.t_mono)
        crossing = Crossing(
            t_utc=t_utc,
            line=line,
            direction=ev.direction,
            source="camera",
            confidence=self.confidence(track_id),
            source_ref=f"cam:{self.run_id}:{track_id}:{line}:{n}",
        )
        return CameraCrossing(frame.index, track_id, crossing)

    def flush(self) -> list[CameraCrossing]:
        """At the end of a stream: the crossings still settling (`CountingParams.settle_s`)."""
        frame = self._last_frame
        return [] if frame is None else [self._to_crossing(frame, ev) for ev in self.counter.flush()]

    def run(self, frames: Iterable[Frame]) -> list[CameraCrossing]:
        out: list[CameraCrossing] = []
        for frame in frames:
            out.extend(self.process(frame))
        return out + self.flush()


class CameraSource:
    """The camera as one of the agent's counting sources (``start()``/``stop()``).

    One thread: capture (via `LatestFrameGrabber`, its own decode thread) -> pipeline ->
    ``sink(crossings)`` (the agent's journal writer). Every failure becomes a health
    report, never an exception into the agent: a bad model or a missing camera leaves
    the camera path unhealthy while the beams keep counting; a dropped camera
    reconnects with backoff.
    """

    def __init__(
        self,
        spec: str | int,
        lines: Sequence[CountingLine] | Callable[[int, int], Sequence[CountingLine]],
        sink,  # Callable[[list[Crossing]], object]
        health,  # Callable[[str, bool, str], None]: (component, ok, detail)
        *,
        model: str | None = None,
        threads: int | None = None,
        max_fps: float | None = 10.0,
        motion_gating: bool = False,
        live: bool | None = None,
        run_id: str | None = None,
        front_end: str = "tiles",
    ) -> None:
        import uuid

        # lines in fractions of the frame (set-line's 0..1 form) can only be placed once the
        # first frame gives the size: then ``lines`` is a function (width, height) -> lines
        self._lines_for = lines if callable(lines) else (lambda w, h, fixed=list(lines): fixed)
        self.lines: list[CountingLine] = [] if callable(lines) else list(lines)
        self.spec, self.sink, self.health = spec, sink, health
        self.model, self.threads, self.max_fps = model, threads, max_fps
        self.motion_gating, self.live = motion_gating, live
        self.front_end = front_end
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.pipeline: CameraPipeline | None = None
        self._stop = False
        self._thread = None

    def start(self) -> None:
        import threading

        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        from edge.detector import OnnxDetector
        from edge.model_manifest import ModelError
        from edge.video_source import LatestFrameGrabber, MotionGate, SourceError, VideoSource

        try:
            detector = OnnxDetector(self.model, threads=self.threads)
        except ModelError as exc:
            self.health("camera", False, str(exc))
            return
        try:
            source = VideoSource(self.spec, live=self.live)
        except SourceError as exc:
            self.health("camera", False, str(exc))
            return
        first = source.read()
        if first is None:
            self.health("camera", False, f"camera source {self.spec} gave no frames")
            return
        h, w = first.image.shape[:2]
        try:
            self.lines = list(self._lines_for(w, h))
        except ValueError as exc:
            self.health("camera", False, f"camera lines on the {w}x{h} frame: {exc}")
            return
        front, roi = front_end_for(detector, self.lines, w, h, self.front_end)
        gate = MotionGate(roi=roi) if self.motion_gating else None
        self.pipeline = CameraPipeline(front, self.lines, run_id=self.run_id, roi=roi, motion_gate=gate,
                                       frame_size=(w, h))
        self.health("camera", True, f"streaming {w}x{h}")
        grabber = LatestFrameGrabber(source, max_fps=self.max_fps, drop_stale=source.live)
        frame = first
        reported = "streaming"
        try:
            while frame is not None and not self._stop:
                crossings = self.pipeline.process(frame)
                if crossings:
                    self.sink([c.crossing for c in crossings])
                frame = grabber.next(timeout=1.0)
                while frame is None and not self._stop and source.state in ("reconnecting", "streaming") and source.live:
                    if source.state != reported:
                        reported = source.state
                        self.health("camera", False, f"camera {self.spec} {source.state}: {source.last_error or ''}")
                    frame = grabber.next(timeout=1.0)
                if frame is not None and reported != "streaming":
                    reported = "streaming"
                    self.health("camera", True, "streaming again")
            rest = self.pipeline.flush()
            if rest:
                self.sink([c.crossing for c in rest])
            if source.state == "failed":
                self.health("camera", False, f"camera {self.spec} lost: {source.last_error}")
        finally:
            grabber.stop()
            source.close()
