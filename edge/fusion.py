"""Sensor fusion: a door's beam crossings and its camera line's crossings -> one count.

Pure: crossings, health changes and a watermark in; fused crossings and a discrepancy
verdict out. No I/O, no threads, no clock of its own (the agent's `edge.fuser` feeds it
from the journal).

Why and how. Beams see every body that breaks them but cannot tell two people walking
abreast from one; the camera separates people abreast but misses some (occlusion, dark)
and fails as a whole when dark, blocked or down. So crossings of both sources are
grouped into *episodes*: chains of crossings (either source, either direction) each
within `window_s` of the next. An episode is closed once the watermark (the time up to
which both sources have delivered everything) is more than `window_s` past its last
crossing; nothing later can join it. Per direction the episode then counts

* both sources healthy: ``max(beams, camera)`` -- the camera's extra people are the
  ones abreast the beams merged (a clean or long blockage counted once), the beams'
  extra people are the ones the camera missed; when the beams saw nothing at all,
  the camera's crossings count only if `camera_alone` says so;
* camera unhealthy (dark, blocked, down) during the episode: the beams' count;
* beams unhealthy (stuck beam, link down): the camera's count.

Each person is counted once per episode by construction (the fused count is one number
per episode and direction, never a sum of the two sources). Fused refs derive from the
sorted refs of the episode's constituents, so the same journaled crossings always give
the same fused refs (replay after a restart is idempotent); an episode is split only
by time, never by arrival order.

The discrepancy monitor compares the two sources over a rolling window, per direction,
only where both were healthy: a misaligned beam, a camera moved off its line or beams
wired the wrong way round drift the ratio past `discrepancy_bound`.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edge.crossing import DIRECTIONS, Crossing


@dataclass(frozen=True)
class FusionParams:
    """How crossings of the two sources are matched and trusted (config `[fusion]`)."""

    window_s: float = 1.0  # crossings of either source this close belong to one episode
    camera_min_confidence: float = 0.0  # camera crossings below this are ignored
    # count camera crossings of an episode the healthy beams saw nothing of. Off: healthy
    # beams see every body, so such a crossing is a camera error, or the camera's own
    # sighting of someone the beams counted more than window_s apart (a double count)
    camera_alone: bool = False

    def __post_init__(self) -> None:
        if not self.window_s > 0:
            raise ValueError(f"window_s must be > 0, not {self.window_s}")


@dataclass(frozen=True)
class Episode:
    """A closed group of crossings and what it counts for."""

    beam: tuple[Crossing, ...]
    camera: tuple[Crossing, ...]
    beam_ok: bool
    camera_ok: bool
    fused: tuple[Crossing, ...]

    def counts(self, source: str, direction: str) -> int:
        group = self.beam if source == "beam" else self.camera if source == "camera" else self.fused
        return sum(c.direction == direction for c in group)


class HealthTimeline:
    """A source's health over time from its parts' changes (t, ok, part): healthy while
    every part is (a part is healthy before its first change)."""

    def __init__(self, changes: Iterable[tuple[float, bool] | tuple[float, bool, str]] = ()) -> None:
        self._parts: dict[str, tuple[list[float], list[bool]]] = {}
        for ch in sorted(changes, key=lambda c: c[0]):
            self.add(*ch)

    def add(self, t: float, ok: bool, part: str = "") -> None:
        ts, oks = self._parts.setdefault(part, ([], []))
        i = bisect.bisect_right(ts, t)
        ts.insert(i, t)
        oks.insert(i, ok)

    def ok_at(self, t: float) -> bool:
        for ts, oks in self._parts.values():
            i = bisect.bisect_right(ts, t)
            if i and not oks[i - 1]:
                return False
        return True

    def ok_during(self, start: float, end: float) -> bool:
        """Healthy at `start` and after every change up to `end`."""
        if not self.ok_at(start):
            return False
        changes = sorted({t for ts, _ in self._parts.values() for t in ts if start < t <= end})
        return all(self.ok_at(t) for t in changes)

    def down_since(self, now: float, part: str | None = None) -> float | None:
        """When the current outage began (the earliest still-open outage of `part`, or of
        any part), or None."""
        since = None
        for name, (ts, oks) in self._parts.items():
            if part is not None and name != part:
                continue
            i = bisect.bisect_right(ts, now)
            if i and not oks[i - 1]:
                j = i - 1
                while j > 0 and not oks[j - 1]:
                    j -= 1
                since = ts[j] if since is None else min(since, ts[j])
        return since


def fused_ref(door: str, constituents: Iterable[Crossing]) -> str:
    """The episode's identity: door + a hash of its constituents' (source, source_ref)."""
    keys = sorted(f"{c.source}:{c.source_ref}" for c in constituents)
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    return f"fused:{door}:{digest}"


def count_episode(beam: Sequence[Crossing], camera: Sequence[Crossing], beam_ok: bool, camera_ok: bool,
                  params: FusionParams, door: str) -> tuple[Crossing, ...]:
    """The fused crossings of one closed episode (see the module docstring for the rule)."""
    base = fused_ref(door, [*beam, *camera])
    out: list[Crossing] = []
    for d in DIRECTIONS:
        b = sorted((c for c in beam if c.direction == d), key=lambda c: (c.t_utc, c.source_ref))
        k = sorted((c for c in camera if c.direction == d), key=lambda c: (c.t_utc, c.source_ref))
        if camera_ok and not beam_ok:
            chosen = k
        elif not camera_ok or len(b) >= len(k) or (not b and not params.camera_alone and beam_ok):
            chosen = b
        else:
            chosen = k
        if not chosen:
            continue
        agree = camera_ok and beam_ok and len(b) == len(k)
        conf = 1.0 if agree else sum(c.confidence for c in chosen) / len(chosen)
        for i, c in enumerate(chosen):
            out.append(Crossing(t_utc=c.t_utc, line=door, direction=d, source="fused",
                                confidence=round(conf, 3), source_ref=f"{base}:{d}:{i}"))
    return tuple(out)


@dataclass
class Fusion:
    """Streaming fusion for one door: `add` crossings, `close(watermark)` closed episodes.

    The caller promises that every crossing with ``t_utc < watermark`` has been added
    before ``close(watermark)``; crossings that arrive later than that are *late*: they
    are not fused (counted in `late`), because their episode may already be out.
    """

    door: str
    params: FusionParams = field(default_factory=FusionParams)
    beam_health: HealthTimeline = field(default_factory=HealthTimeline)
    camera_health: HealthTimeline = field(default_factory=HealthTimeline)
    watermark: float = float("-inf")
    late: int = 0
    _pending: list[Crossing] = field(default_factory=list)
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def add(self, crossings: Iterable[Crossing]) -> int:
        """Queue beam/camera crossings of this door; returns how many were taken."""
        n = 0
        for c in crossings:
            if c.source == "fused":
                raise ValueError("fused crossings cannot be fused again")
            key = (c.source, c.source_ref)
            if key in self._seen:
                continue  # the same crossing read twice (a replay)
            if c.t_utc < self.watermark:
                self.late += 1
                continue
            if c.source == "camera" and c.confidence < self.params.camera_min_confidence:
                continue
            self._seen.add(key)
            self._pending.append(c)
            n += 1
        return n

    @property
    def resume_utc(self) -> float:
        """Where a restarted fuser must re-read from: the earliest unclosed crossing, or the
        watermark. Closed episodes lie wholly before it (they are > window from any
        pending crossing), so re-reading from here re-forms exactly the pending episodes."""
        return min((c.t_utc for c in self._pending), default=self.watermark)

    def close(self, watermark: float) -> list[Episode]:
        """Close every episode that can no longer grow; returns them in time order."""
        self.watermark = max(self.watermark, watermark)
        if not self._pending:
            return []
        w = self.params.window_s
        items = sorted(self._pending, key=lambda c: (c.t_utc, c.source, c.source_ref))
        groups: list[list[Crossing]] = [[items[0]]]
        for c in items[1:]:
            if c.t_utc - groups[-1][-1].t_utc <= w:
                groups[-1].append(c)
            else:
                groups.append([c])
        out: list[Episode] = []
        keep: list[Crossing] = []
        for g in groups:
            if g[-1].t_utc + w >= self.watermark:
                keep.extend(g)
                continue
            start, end = g[0].t_utc - w, g[-1].t_utc + w
            beam = tuple(c for c in g if c.source == "beam")
            cam = tuple(c for c in g if c.source == "camera")
            b_ok = self.beam_health.ok_during(start, end)
            k_ok = self.camera_health.ok_during(start, end)
            out.append(Episode(beam, cam, b_ok, k_ok, count_episode(beam, cam, b_ok, k_ok, self.params, self.door)))
            for c in g:
                self._seen.discard((c.source, c.source_ref))
        self._pending = keep
        return out


def fuse(beam: Sequence[Crossing], camera: Sequence[Crossing], params: FusionParams | None = None, *,
         door: str, beam_health: Iterable[tuple[float, bool]] = (),
         camera_health: Iterable[tuple[float, bool]] = ()) -> list[Crossing]:
    """Whole-run fusion of two finished crossing lists (simulations, replays)."""
    f = Fusion(door, params or FusionParams(), HealthTimeline(beam_health), HealthTimeline(camera_health))
    f.add(beam)
    f.add(camera)
    return [c for ep in f.close(float("inf")) for c in ep.fused]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    detail: str


class DiscrepancyMonitor:
    """Rolling per-direction comparison of beam and camera counts where both were healthy.

    Alarm when, in either direction, ``|beams - camera| / max(beams, camera)`` over the
    last `window_s` exceeds `bound` with at least `min_count` crossings of the larger
    source (fewer say nothing: a quiet hour cannot tell drift from chance).
    """

    def __init__(self, window_s: float, bound: float, min_count: int) -> None:
        self.window_s, self.bound, self.min_count = window_s, bound, min_count
        self._rows: deque[tuple[float, str, int, int]] = deque()  # (t, direction, beams, camera)

    def add(self, episode: Episode) -> None:
        if not (episode.beam_ok and episode.camera_ok):
            return
        t = max(c.t_utc for c in (*episode.beam, *episode.camera))
        for d in DIRECTIONS:
            nb, nc = episode.counts("beam", d), episode.counts("camera", d)
            if nb or nc:
                self._rows.append((t, d, nb, nc))

    def verdict(self, now_utc: float) -> Verdict:
        while self._rows and self._rows[0][0] < now_utc - self.window_s:
            self._rows.popleft()
        parts, ok = [], True
        for d in DIRECTIONS:
            nb = sum(r[2] for r in self._rows if r[1] == d)
            nc = sum(r[3] for r in self._rows if r[1] == d)
            big = max(nb, nc)
            if big < self.min_count:
                parts.append(f"{d}: beams {nb} camera {nc} (too few to judge)")
                continue
            gap = abs(nb - nc) / big
            bad = gap > self.bound
            ok = ok and not bad
            parts.append(f"{d}: beams {nb} camera {nc} ({gap:.0%} apart{', over the bound' if bad else ''})")
        detail = "; ".join(parts)
        if not ok:
            detail = (f"beams and camera disagree beyond {self.bound:.0%} over the last {self.window_s / 60:.0f} min"
                      f" (a misaligned beam, a moved camera, swapped directions?): {detail}")
        return Verdict(ok, detail)
