"""Video sources: a V4L2 camera, an RTSP/HTTP stream or a file, as timestamped frames.

Three concerns, kept apart:

* `VideoSource` opens one source with OpenCV, stamps every frame at capture, and for
  live sources reconnects with exponential backoff when the source drops (camera
  unplugged, stream gone), reporting its state for the health model instead of raising.
* `LatestFrameGrabber` runs a capture thread that keeps only the newest frame, so a
  slow detector never works on stale, queued frames; `next()` also caps the rate.
* `MotionGate` skips inference while nothing moves (quiet micro-stations), counting how
  many frames it saved.

No frame is ever written to disk here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

SourceKind = Literal["v4l2", "stream", "file"]
SourceState = Literal["connecting", "streaming", "reconnecting", "ended", "failed"]


class SourceError(Exception):
    """A video source cannot be opened or read; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class Frame:
    image: np.ndarray  # BGR, HxWx3 uint8
    index: int  # 0-based frame number since the source was opened (continues across reconnects)
    t_utc: float  # capture time, seconds since the Unix epoch
    t_mono: float  # capture time on the monotonic clock (live) or media time (file)


def classify(spec: str | int) -> SourceKind:
    """Tell a camera, a network stream and a file apart from a command-line spec."""
    s = str(spec)
    if s.isdigit() or s.startswith("/dev/video"):
        return "v4l2"
    if "://" in s:
        return "stream"
    return "file"


def _open_capture(spec: str | int, kind: SourceKind) -> Any:
    import cv2

    if kind == "v4l2":
        s = str(spec)
        index = int(s) if s.isdigit() else s
        if isinstance(index, str) and not os.path.exists(index):
            raise SourceError(
                f"camera {index} does not exist: check the cable and `ls /dev/video*`; "
                f"on a Pi camera enable the V4L2 compatibility layer (libcamera-v4l2 / bcm2835-v4l2)"
            )
        cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
    elif kind == "stream":
        cap = cv2.VideoCapture(str(spec), cv2.CAP_FFMPEG)
    else:
        path = Path(str(spec))
        if not path.is_file():
            raise SourceError(f"video file {path} not found")
        cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        hint = {
            "v4l2": "is another program using the camera? try `v4l2-ctl --list-devices`",
            "stream": "check the URL, credentials and that the camera is reachable (`ffprobe URL`)",
            "file": "the file is not a video OpenCV can decode (corrupt, or an unsupported codec)",
        }[kind]
        raise SourceError(f"cannot open {kind} source {spec}: {hint}")
    return cap


@dataclass
class Backoff:
    """Exponential backoff for reconnects: initial, doubling, capped."""

    initial_s: float = 0.5
    max_s: float = 30.0
    _next: float = field(default=0.0, init=False)

    def next_delay(self) -> float:
        self._next = self.initial_s if self._next == 0 else min(self._next * 2, self.max_s)
        return self._next

    def reset(self) -> None:
        self._next = 0.0


class VideoSource:
    """One OpenCV source producing timestamped frames.

    Files end (`read()` returns None); live sources (camera, stream, or a file opened
    with ``live=True`` for tests and replays) reconnect with backoff instead, up to
    ``max_retries`` consecutive failures (None: forever, as the agent does).
    """

    def __init__(
        self,
        spec: str | int,
        *,
        live: bool | None = None,
        backoff: Backoff | None = None,
        max_retries: int | None = None,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        width: int | None = None,
        height: int | None = None,
    ) -> None:
        self.spec = spec
        self.kind = classify(spec)
        self.live = (self.kind != "file") if live is None else live
        self.backoff = backoff or Backoff()
        self.max_retries = max_retries
        self._wall, self._mono, self._sleep = wall, mono, sleep
        self._size = (width, height)
        self.state: SourceState = "connecting"
        self.reconnects = 0
        self.last_error: str | None = None
        self._index = 0
        self._file_t0_utc = wall()
        self._cap: Any = None
        self._open()  # the first open fails loudly: a wrong spec is the user's to fix

    def _open(self) -> None:
        import cv2

        self._cap = _open_capture(self.spec, self.kind)
        w, h = self._size
        if w and h and self.kind == "v4l2":
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
        if self.kind in ("v4l2", "stream"):
            self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver queue is stale frames too
        self.state = "streaming"

    @property
    def fps(self) -> float:
        import cv2

        return float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0) if self._cap is not None else 0.0

    @property
    def frame_count(self) -> int:
        import cv2

        return int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self._cap is not None else 0

    def read(self) -> Frame | None:
        """The next frame, or None when a file ends or a live source gave up reconnecting."""
        import cv2

        while True:
            if self._cap is not None and self._cap.grab():
                t_mono, t_wall = self._mono(), self._wall()  # stamp at grab: closest to exposure
                ok, image = self._cap.retrieve()
                if ok and image is not None:
                    if not self.live:
                        media_s = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                        fps = self.fps or 25.0
                        media_s = media_s if media_s > 0 or self._index == 0 else self._index / fps
                        t_mono, t_wall = media_s, self._file_t0_utc + media_s
                    frame = Frame(image, self._index, t_wall, t_mono)
                    self._index += 1
                    self.backoff.reset()
                    self.state = "streaming"
                    return frame
            if not self.live:
                self.state = "ended"
                return None
            if not self._reconnect():
                return None

    def _reconnect(self) -> bool:
        """Release and reopen with backoff; False when max_retries consecutive tries failed."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        tries = 0
        while self.max_retries is None or tries < self.max_retries:
            self.state = "reconnecting"
            self._sleep(self.backoff.next_delay())
            tries += 1
            try:
                self._open()
                self.reconnects += 1
                return True
            except SourceError as exc:
                self.last_error = str(exc)
        self.state = "failed"
        return False

    def frames(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LatestFrameGrabber:
    """A capture thread that keeps only the newest frame; consumers never see stale frames.

    `next()` blocks until a frame newer than the last one handed out is available and at
    least ``1 / max_fps`` seconds have passed since the previous hand-out (rate cap).
    Frames captured meanwhile are dropped, and counted in ``dropped``.
    """

    def __init__(self, source: VideoSource, max_fps: float | None = None,
                 mono: Callable[[], float] = time.monotonic, drop_stale: bool = True) -> None:
        self.source = source
        # drop_stale=False: decode exactly one frame ahead and wait (replaying a file,
        # where every frame counts); decoding still overlaps inference.
        self.drop_stale = drop_stale
        self.min_interval = 1.0 / max_fps if max_fps else 0.0
        self._mono = mono
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._handed: int = -1
        self._last_handout: float | None = None
        self._done = False
        self.captured = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="camera-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._done:
                frame = self.source.read()
                with self._cond:
                    if not self.drop_stale:
                        self._cond.wait_for(
                            lambda: self._done or self._latest is None or self._latest.index <= self._handed
                        )
                    if frame is None:
                        self._done = True
                    else:
                        if self._latest is not None and self._latest.index > self._handed:
                            self.dropped += 1
                        self._latest = frame
                        self.captured += 1
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def next(self, timeout: float | None = None) -> Frame | None:
        """Newest unseen frame, or None when the source ended (or on timeout)."""
        if self._last_handout is not None and self.min_interval:
            wait = self._last_handout + self.min_interval - self._mono()
            if wait > 0:
                time.sleep(wait)
        with self._cond:
            ok = self._cond.wait_for(
                lambda: (self._latest is not None and self._latest.index > self._handed) or self._done, timeout
            )
            if not ok or self._latest is None or self._latest.index <= self._handed:
                return None
            frame = self._latest
            self._handed = frame.index
            self._cond.notify_all()
        self._last_handout = self._mono()
        return frame

    def stop(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()
        self._thread.join(timeout=5)


class MotionGate:
    """Skips inference while a (downscaled, grey) view of the scene does not change.

    A frame "moves" when more than ``min_changed`` of its pixels differ by more than
    ``pixel_delta`` grey levels from the last frame that was sent to inference. After
    motion, ``hold_frames`` more frames are always processed so a person who stops in the
    doorway keeps being tracked.
    """

    def __init__(self, pixel_delta: int = 18, min_changed: float = 0.002, hold_frames: int = 10,
                 roi: tuple[int, int, int, int] | None = None, scale_width: int = 160) -> None:
        self.pixel_delta = pixel_delta
        self.min_changed = min_changed
        self.hold_frames = hold_frames
        self.roi = roi
        self.scale_width = scale_width
        self._ref: np.ndarray | None = None
        self._hold = 0
        self.seen = 0
        self.skipped = 0

    def _small(self, image: np.ndarray) -> np.ndarray:
        import cv2

        if self.roi is not None:
            x1, y1, x2, y2 = self.roi
            image = image[y1:y2, x1:x2]
        h, w = image.shape[:2]
        sw = min(self.scale_width, w)
        small = cv2.resize(image, (sw, max(1, round(h * sw / w))), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (5, 5), 0)

    def should_process(self, image: np.ndarray) -> bool:
        import cv2

        self.seen += 1
        small = self._small(image)
        if self._ref is None or self._ref.shape != small.shape:
            self._ref = small
            self._hold = self.hold_frames
            return True
        changed = np.count_nonzero(cv2.absdiff(small, self._ref) > self.pixel_delta) / small.size
        if changed > self.min_changed:
            self._hold = self.hold_frames
        if self._hold > 0:
            self._hold -= 1
            self._ref = small
            return True
        self.skipped += 1
        return False

    @property
    def saving(self) -> float:
        """Fraction of frames whose inference was skipped."""
        return self.skipped / self.seen if self.seen else 0.0
