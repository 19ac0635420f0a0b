"""Counting lines and zones: turn tracks into in/out crossings that survive jitter.

Why each rule exists:

* **Hysteresis.** A track's anchor has a *side* per line (inside, outside, or not yet
  known). The side only changes once the anchor is at least ``hysteresis_px`` past the
  line; between -h and +h the old side holds. So box jitter and detector flicker at the
  line cannot count, and a walker who stops on the line and turns back counts nothing.
* **Born on the line.** A track first seen between -h and +h (a person coming out from
  behind a sign, a post or a group right at the line) takes the side its anchor is on,
  tentatively: it leaves that side only once its anchor has moved from where it was
  first seen as far across as the ordinary rule asks (from -h to +h), and if it first
  goes a full h out on that same side the side is simply its own. Without this such a
  track has no side until it is past the line, and its crossing is lost (vtest.avi
  `long_470`, frame 363, docs/camera.md); jitter of someone who appears standing on the
  line does not reach that far. Not in the stream's first frame: nobody appears there,
  everyone in view was already there, and a step off the line then is not a crossing
  anyone saw (the annotation rule: a crossing under way at frame 0 does not count;
  vtest.avi `near_right`, frame 0, docs/camera.md).
* **Within the segment.** A side change counts only where the anchor is within the
  segment's extent (plus ``segment_margin_px``), so people passing beside a door do
  not count.
* **Alternation.** A track's crossings of a line alternate (in, out, in...): its side
  must change for a count, so no direction counts twice in a row; walking in then back
  out is one in and one out. ``max_per_direction`` can cap each direction per track.
* **Confirmed tracks only.** Unconfirmed tracks (possible false positives) never count;
  while unconfirmed, a track's side is only initialised, so a crossing made during
  confirmation is counted at confirmation.
* **Re-identification.** When a new track id first appears within ``reid_px`` of where
  a track vanished less than ``reid_s`` ago, it inherits a copy of that track's sides and
  what it already counted, so an identity switch does not count twice. A copy, not the
  track's own state: in a crowd the tracker misses a track's detection for a frame now
  and then, a new id near it is common, and the track that comes back must still have
  its side, or its crossing is lost. While the vanished track stays away its heir can
  also undo the crossing it left settling (crossing straight back); once it is seen
  again the two are different people and each counts only its own.
  With ``frame_size`` given, tracks that leave or enter through the picture's edge
  take no part in this (people come and go there all the time).
  A new id that found no track to inherit when it appeared tries again in each frame
  while its track is still unconfirmed (it cannot count before then), taking only a
  track that vanished before it appeared: a walker hidden in a group often re-appears
  as a new id the frame after the track that last held them was seen, which the
  one-frame rule (``reid_gap_frames``) must pass over at first; a frame or two later
  that track has stayed away, and the new id takes its side (vtest.avi `centre_long`,
  frame 61, docs/camera.md).
* **Settling.** A crossing is reported once it is ``settle_s`` old; one its track
  undoes sooner (crosses back) counts nothing either way. A box that stretches for a
  frame or two over the person in front (its bottom edge, the feet anchor, jumps
  across the line and back) or a step over the line and back is not a passage. Call
  `flush()` at the end of a stream for crossings still settling.
* **Evidence** (``min_seen``, with settling). A crossing settles only if its track was
  seen (given to `update`) in at least that fraction of the stream's frames from
  ``settle_s`` before the side change (or the track's first sighting, if later) until
  it settles; otherwise nothing counts (the track keeps its new side). A track made of a
  few false positives, or a ghost coasting beside the person it lost and taking that
  person's detection now and then, crosses on one or two sightings a second; a person
  is seen in most frames. (An heir from re-identification carries on its parent's
  sightings.)
* **Crossing time.** A crossing is stamped with the moment the anchor crossed the line,
  interpolated between the two frames on either side of it, not the frame where the
  hysteresis or the track's confirmation let it count, nor when it settled: so the
  time a crossing carries does not depend on how long the counter waits to be sure.
* **Image edges.** With ``frame_size`` given, the hysteresis on each side of a line is
  capped at half the room the picture leaves on that side, so a line near the edge of
  the picture still counts.

Pure: no I/O, no clock; ids, boxes, flags and a timestamp in, crossings out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge.crossing import Direction

__all__ = [
    "Anchor", "CountingLine", "CountingParams", "CountingZone", "LineCounter", "LineCrossing",
]

Anchor = Literal["bottom_centre", "centre"]
# Sighting times kept per track for the evidence check (min_seen): a settling time of
# 0.5 s needs 16 at 30 fps; beyond _RING frames before a side change are not counted.
_RING = 64
ANCHORS: tuple[Anchor, ...] = ("bottom_centre", "centre")
Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class CountingLine:
    """A counting segment from ``p1`` to ``p2``; crossing toward ``inside_point`` is in."""

    name: str
    p1: Point
    p2: Point
    inside_point: Point
    hysteresis_px: float = 8.0

    def __post_init__(self) -> None:
        (x1, y1), (x2, y2), (xi, yi) = self.p1, self.p2, self.inside_point
        length = math.hypot(x2 - x1, y2 - y1)
        if not length > 0:
            raise ValueError(f"line {self.name!r}: p1 and p2 must differ")
        side = ((x2 - x1) * (yi - y1) - (y2 - y1) * (xi - x1)) / length
        if abs(side) < 1.0:
            raise ValueError(
                f"line {self.name!r}: the inside point {self.inside_point} lies on the line; "
                "pick a point clearly on the inside"
            )
        if not self.hysteresis_px >= 0:
            raise ValueError(f"line {self.name!r}: hysteresis_px must be >= 0")


@dataclass(frozen=True, slots=True)
class CountingZone:
    """A polygon; entering it counts as in, leaving it as out."""

    name: str
    polygon: tuple[Point, ...]
    hysteresis_px: float = 8.0

    def __post_init__(self) -> None:
        if len(self.polygon) < 3:
            raise ValueError(f"zone {self.name!r}: a polygon needs at least 3 points")
        if not self.hysteresis_px >= 0:
            raise ValueError(f"zone {self.name!r}: hysteresis_px must be >= 0")


@dataclass(frozen=True, slots=True)
class CountingParams:
    """How tracks become crossings. Distances in pixels, times in seconds."""

    reid_s: float = 1.5
    """A new track appearing within this time of a vanished one may inherit it."""
    reid_px: float = 60.0
    """...if it appears within this distance of where that one was last seen."""
    reid_gap_frames: float = 1.0
    """A track is a candidate for re-identification only once it has been unseen for
    more than this many of the stream's frame intervals (the median of the last 15 steps
    between updates), besides the current frame; 0: as soon as it is missing from a
    frame. A track missed for a single frame is usually still there (the tracker coasts it and it comes back);
    a new id beside it then is someone else, whose own side must not be replaced by the
    missed track's (that counted a crossing nobody made)."""
    forget_s: float = 5.0
    """Counting state of a track unseen for this long is dropped."""
    segment_margin_px: float = 0.0
    """A side change this far beyond a segment's ends still counts."""
    max_per_direction: int = 0
    """Crossings per track, line and direction at most; 0: no limit. Hysteresis already
    makes a track's crossings alternate in, out, in...; a limit of 1 also stops an
    identity that wanders between two people from counting twice, but then misses the
    second person when trackers swap identities (measured: bench/tracker_bench)."""
    settle_s: float = 0.0
    """A crossing is reported this long after it happened, unless its track crossed
    back meanwhile (then neither counts); 0 reports at once (the camera path uses
    `edge.camera_pipeline.CAMERA_COUNTING`: 0.5 s)."""
    min_seen: float = 0.0
    """A crossing settles only if its track was seen in at least this fraction of the
    frames from ``settle_s`` before it (or the track's first sighting) until it settles;
    else it counts nothing (the track keeps its new side). 0: no such check. Needs
    ``settle_s`` > 0 to mean anything (the window is the settling time either side of
    the crossing). Tracks born of false positives and ghost tracks coasting beside a
    person cross on one or two sightings a second (docs/tracker.md, "Known misses");
    the camera path uses 1/3."""

    def __post_init__(self) -> None:
        if min(self.reid_s, self.reid_px, self.reid_gap_frames, self.forget_s, self.segment_margin_px, self.settle_s) < 0:
            raise ValueError("counting distances and times must not be negative")
        if not 0.0 <= self.min_seen <= 1.0:
            raise ValueError("min_seen is a fraction of frames, from 0 to 1")
        if self.forget_s < self.reid_s:
            raise ValueError("forget_s must be at least reid_s")
        if self.max_per_direction < 0:
            raise ValueError("max_per_direction must be >= 0")


@dataclass(slots=True)
class _Held:
    """A crossing still settling (see `CountingParams.settle_s`)."""

    t: float  # when the anchor crossed the line
    li: int
    d: int  # 0 in, 1 out
    slot: int
    track_id: int
    seen: float  # when the counter saw the side change (settling runs from here)
    start: float  # the evidence window's start: settle_s before, or the first sighting
    before: int  # sightings of the track from start up to and with the side change
    hits0: int  # the track's count of sightings then (later ones are counted from it)


@dataclass(frozen=True, slots=True)
class LineCrossing:
    """One counted crossing of one line (or zone) by one track."""

    line_index: int
    line: str
    track_id: int
    direction: Direction
    t: float


class LineCounter:
    """Counts crossings of several lines and zones by the tracks of one camera."""

    def __init__(
        self,
        lines: Sequence[CountingLine | CountingZone],
        anchor: Anchor = "bottom_centre",
        params: CountingParams | None = None,
        frame_size: tuple[int, int] | None = None,
    ) -> None:
        if not lines:
            raise ValueError("need at least one counting line or zone")
        names = [ln.name for ln in lines]
        if len(set(names)) != len(names):
            raise ValueError(f"line and zone names must be unique: {names}")
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {ANCHORS}, not {anchor!r}")
        self.lines = tuple(lines)
        self.anchor: Anchor = anchor
        self.params = params or CountingParams()
        self._lines_idx = [i for i, ln in enumerate(lines) if isinstance(ln, CountingLine)]
        self._zones_idx = [i for i, ln in enumerate(lines) if isinstance(ln, CountingZone)]
        nl = len(lines)
        # Lines as arrays: origin, unit direction, unit normal toward inside, length.
        seg = [lines[i] for i in self._lines_idx]
        p1 = np.array([ln.p1 for ln in seg], dtype=np.float64).reshape(-1, 2)
        p2 = np.array([ln.p2 for ln in seg], dtype=np.float64).reshape(-1, 2)
        ins = np.array([ln.inside_point for ln in seg], dtype=np.float64).reshape(-1, 2)
        d = p2 - p1
        length = np.hypot(d[:, 0], d[:, 1])
        u = d / length[:, None] if len(seg) else d
        nrm = np.stack([-u[:, 1], u[:, 0]], axis=1) if len(seg) else d
        flip = np.sign(np.einsum("ij,ij->i", ins - p1, nrm)) if len(seg) else length
        self._p1, self._u, self._n, self._len = p1, u, nrm * flip[:, None], length
        h = np.array([ln.hysteresis_px for ln in lines], dtype=np.float64)
        self._h_in = h.copy()
        self._h_out = h.copy()
        self._frame = frame_size
        if frame_size is not None:
            self._cap_at_edges(frame_size)
        self._zone_polys = [np.asarray(lines[i].polygon, dtype=np.float64) for i in self._zones_idx]
        # Per-track state, in slots; a dict maps track id -> slot.
        cap = 64
        self._slot_of: dict[int, int] = {}
        self._free: list[int] = list(range(cap - 1, -1, -1))
        self._side = np.zeros((cap, nl), dtype=np.int8)
        self._counted = np.zeros((cap, nl, 2), dtype=np.int32)  # [.., 0]=in, [.., 1]=out
        self._last_t = np.full(cap, -np.inf)
        self._last_xy = np.zeros((cap, 2))
        self._last_edge = np.zeros(cap, dtype=bool)
        self._last_s = np.full((cap, nl), np.nan)  # signed distance at the last sighting
        self._zero_t = np.full((cap, nl), np.nan)  # when the anchor last crossed the line
        # Born on the line: the signed distance at the first sighting while the side is
        # only tentative (NaN: the side, if any, is a definite one).
        self._birth_s = np.full((cap, nl), np.nan)
        self._id_of = np.full(cap, -1, dtype=np.int64)
        # Re-identification: the slot each slot's state was copied from (-1: none), that
        # slot's id then, when the copy was made, and whether a slot was copied since it
        # was last seen (a vanished track has one heir).
        self._parent = np.full(cap, -1, dtype=np.int64)
        self._parent_id = np.full(cap, -1, dtype=np.int64)
        self._born_t = np.full(cap, np.inf)
        self._bequeathed = np.zeros(cap, dtype=bool)
        # Evidence (min_seen): each slot's count of sightings, the times of its last
        # _RING of them (a ring), and its first sighting.
        self._hits = np.zeros(cap, dtype=np.int64)
        self._ring = np.full((cap, _RING), -np.inf)
        self._first_t = np.full(cap, np.inf)
        self._t: float | None = None
        self._start: float | None = None  # the stream's first frame (no one is born there)
        # The stream's frame interval: the median of the last steps between updates (one
        # frame delivered late and the next early must not shrink it).
        self._steps = np.full(15, np.nan)
        self._n_steps = 0
        self.totals = np.zeros((nl, 2), dtype=np.int64)
        self._held: list[_Held] = []  # crossings still settling

    # -- public ---------------------------------------------------------------------

    def anchors(self, boxes: np.ndarray) -> np.ndarray:
        """The point of each xyxy box that is counted: bottom-centre or centre."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        x = (b[:, 0] + b[:, 2]) * 0.5
        y = b[:, 3] if self.anchor == "bottom_centre" else (b[:, 1] + b[:, 3]) * 0.5
        return np.stack([x, y], axis=1)

    def update(self, ids: np.ndarray, boxes: np.ndarray, confirmed: np.ndarray, t: float
               ) -> list[LineCrossing]:
        """Feed the tracks seen at time ``t``; returns the crossings they made."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        confirmed = np.asarray(confirmed, dtype=bool).reshape(-1)
        k = ids.shape[0]
        if np.asarray(boxes).shape != (k, 4) or confirmed.shape != (k,):
            raise ValueError("need ids (K,), boxes (K, 4) and confirmed (K,) of one length K")
        if self._t is not None and t < self._t:
            raise ValueError(f"time went back: {t} after {self._t}")
        if k and np.unique(ids).shape[0] != k:
            raise ValueError("track ids must be unique within a frame")
        if self._t is not None and t > self._t:
            self._steps[self._n_steps % self._steps.shape[0]] = t - self._t
            self._n_steps += 1
        self._t = t
        if self._start is None:
            self._start = t
        self._forget(t)
        if k == 0:
            return self._release(t)
        xy = self.anchors(boxes)
        at_edge = self._touches_edge(boxes)
        slots = self._slots_for(ids, xy, at_edge, confirmed, t)
        s, within = self._signed(xy)
        first = np.isnan(self._last_s[slots])
        self._note_zero_crossings(slots, s, t)
        new_side = np.where(s >= self._h_in, 1, np.where(s <= -self._h_out, -1, 0)).astype(np.int8)
        old = self._side[slots]
        # Born on the line: the side the anchor is on, tentatively (module docstring).
        born = first & (old == 0) & (new_side == 0) & (s != 0) & (t > self._start)
        if born.any():
            old = np.where(born, np.sign(s), old).astype(np.int8)
            self._birth_s[slots] = np.where(born, s, self._birth_s[slots])
        birth = self._birth_s[slots]
        tentative = ~np.isnan(birth)
        # Unknown side: take the new one. Known: a flip needs a confirmed track, and from
        # a tentative side the whole way across from the first sighting.
        change = (new_side != 0) & (new_side != old)
        if tentative.any():
            travel = np.where(tentative, (s - birth) * new_side, np.inf)
            change &= travel >= (self._h_in + self._h_out)
        flip = change & (old != 0) & confirmed[:, None]
        init = change & (old == 0)
        upd = flip | init
        side = np.where(upd, new_side, old)
        self._side[slots] = side
        if tentative.any():  # definite once past h on either side
            self._birth_s[slots] = np.where(tentative & (new_side != 0) & (new_side == side) & ~born,
                                            np.nan, birth)
        self._last_t[slots] = t
        self._last_xy[slots] = xy
        self._last_edge[slots] = at_edge
        self._bequeathed[slots] = False
        self._ring[slots, self._hits[slots] % _RING] = t
        self._hits[slots] += 1
        if flip.any():
            self._hold(flip & within, side, slots, ids, t)
        return self._release(t)

    def _note_zero_crossings(self, slots: np.ndarray, s: np.ndarray, t: float) -> None:
        """Remember, per track and line, when the anchor last changed sides (linear
        interpolation between the last sighting and this one)."""
        prev = self._last_s[slots]
        t_prev = self._last_t[slots][:, None]
        crossed = np.isfinite(prev) & (np.sign(prev) != np.sign(s)) & np.isfinite(t_prev)
        if crossed.any():
            rows, cols = np.nonzero(crossed)
            a, b = prev[rows, cols], s[rows, cols]
            frac = np.clip(np.divide(a, a - b, out=np.ones_like(a), where=a != b), 0.0, 1.0)
            tp = t_prev[rows, 0]
            self._zero_t[slots[rows], cols] = tp + (t - tp) * frac
        self._last_s[slots] = s

    def flush(self) -> list[LineCrossing]:
        """The crossings still settling, at the end of a stream."""
        return self._release(float("inf"))

    # -- internals ------------------------------------------------------------------

    def _hold(self, flips: np.ndarray, side: np.ndarray, slots: np.ndarray, ids: np.ndarray, t: float) -> None:
        """Side changes become held crossings, unless they undo one still held."""
        cap = self.params.max_per_direction
        for r, li in zip(*np.nonzero(flips)):
            d = 0 if side[r, li] > 0 else 1
            slot = int(slots[r])
            kin = (slot, self._vanished_parent(slot))
            back = next((h for h in self._held if h.slot in kin and h.li == li and h.d != d), None)
            if back is not None:  # crossed back before it settled: neither counts
                self._held.remove(back)
                for k in {slot, back.slot}:
                    self._counted[k, li, back.d] = max(0, self._counted[k, li, back.d] - 1)
                continue
            if cap and self._counted[slot, li, d] >= cap:
                continue
            tz = self._zero_t[slot, li]
            t_cross = float(tz) if np.isfinite(tz) and tz <= t else t
            start = max(t - self.params.settle_s, float(self._first_t[slot]))
            before = int(np.count_nonzero(self._ring[slot] >= start - 1e-9))
            self._held.append(_Held(t_cross, int(li), d, slot, int(ids[r]), t, start, before,
                                    int(self._hits[slot])))
            self._counted[slot, li, d] += 1

    def _vanished_parent(self, slot: int) -> int:
        """The slot whose state ``slot`` copied, while that track has not been seen
        since (else -1: it came back, so the heir is someone else)."""
        p = int(self._parent[slot])
        if p < 0 or self._id_of[p] != self._parent_id[slot] or self._last_t[p] >= self._born_t[slot]:
            return -1
        return p

    def _release(self, t: float) -> list[LineCrossing]:
        """Held crossings at least settle_s old, as counted crossings."""
        if not self._held:
            return []
        due = t - self.params.settle_s + 1e-9
        out = [h for h in self._held if h.seen <= due]
        if not out:
            return []
        self._held = [h for h in self._held if h.seen > due]
        if self.params.min_seen > 0:
            out = [h for h in out if self._evident(h)]
        for h in out:
            self.totals[h.li, h.d] += 1
        return [LineCrossing(h.li, self.lines[h.li].name, h.track_id, "in" if h.d == 0 else "out", h.t) for h in out]

    def _evident(self, h: _Held) -> bool:
        """Whether ``h``'s track was seen in at least ``min_seen`` of the frames from
        ``h.start`` to now; if not, the crossing is dropped (the track keeps its side)."""
        if not self._n_steps or self._t is None:
            return True
        iv = float(np.nanmedian(self._steps))
        before_frames = min(int(round((h.seen - h.start) / iv)) + 1, _RING)
        frames = before_frames + int(round((self._t - h.seen) / iv))
        # Sightings since the side change: the track's own, or its heir's (a copy made
        # after it, which carries its count on) if more.
        kin = np.nonzero((self._parent == h.slot) & (self._parent_id == h.track_id)
                         & (self._born_t >= h.seen) & (self._id_of >= 0))[0]
        own = self._hits[h.slot] if self._id_of[h.slot] == h.track_id else h.hits0
        after = max([int(own), *(int(v) for v in self._hits[kin])]) - h.hits0
        if h.before + max(after, 0) >= self.params.min_seen * frames - 1e-9:
            return True
        # The track keeps its new side (it is there now): undoing the side change let a
        # later id that inherited it (re-identification) make the crossing again (dev
        # seed 13, 5 in view).
        self._counted[h.slot, h.li, h.d] = max(0, self._counted[h.slot, h.li, h.d] - 1)
        return False

    def _signed(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance (+ inside) of each anchor to each line/zone, and whether it
        lies within the segment's extent."""
        k = xy.shape[0]
        nl = len(self.lines)
        s = np.empty((k, nl))
        within = np.ones((k, nl), dtype=bool)
        if self._lines_idx:
            rel = xy[:, None, :] - self._p1[None, :, :]
            s[:, self._lines_idx] = np.einsum("kld,ld->kl", rel, self._n)
            along = np.einsum("kld,ld->kl", rel, self._u)
            m = self.params.segment_margin_px
            within[:, self._lines_idx] = (along >= -m) & (along <= self._len + m)
        for zi, poly in zip(self._zones_idx, self._zone_polys):
            s[:, zi] = _polygon_signed_distance(xy, poly)
        return s, within

    def _touches_edge(self, boxes: np.ndarray) -> np.ndarray:
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if self._frame is None:
            return np.zeros(b.shape[0], dtype=bool)
        w, h = self._frame
        m = 2.0
        return (b[:, 0] <= m) | (b[:, 1] <= m) | (b[:, 2] >= w - m) | (b[:, 3] >= h - m)

    def _slots_for(self, ids: np.ndarray, xy: np.ndarray, at_edge: np.ndarray,
                   confirmed: np.ndarray, t: float) -> np.ndarray:
        slots = np.empty(ids.shape[0], dtype=np.int64)
        fresh: list[int] = []
        orphans: list[int] = []  # unconfirmed ids that inherited nothing so far
        for i, tid in enumerate(ids.tolist()):
            slot = self._slot_of.get(tid)
            if slot is None:
                fresh.append(i)
            else:
                slots[i] = slot
                if not confirmed[i] and self._parent[slot] < 0 and not at_edge[i]:
                    orphans.append(i)
        if fresh or orphans:
            cand = self._reid_candidates(ids, slots, fresh, t)
            if orphans and cand.size:
                self._adopt_late(xy, orphans, slots, cand)
            if fresh:
                self._adopt(ids, xy, at_edge, t, fresh, slots, cand)
        return slots

    def _reid_candidates(self, ids: np.ndarray, slots: np.ndarray, fresh: list[int], t: float
                         ) -> np.ndarray:
        """Slots of tracks a new id may inherit: vanished recently (not seen this frame),
        not out through the edge, no heir yet."""
        p = self.params
        live = np.array(sorted(self._slot_of.values()), dtype=np.int64)
        # Unseen for more than reid_gap_frames intervals besides this frame: last seen at
        # least reid_gap_frames + 1 intervals ago, give or take half of one (jitter).
        gap = (p.reid_gap_frames + 0.5) * float(np.nanmedian(self._steps)) if self._n_steps else 0.0
        ok = ((self._last_t[live] < t - gap) & (self._last_t[live] >= t - p.reid_s)
              & ~self._last_edge[live] & ~self._bequeathed[live])
        fresh_set = set(fresh)
        present = {int(slots[i]) for i in range(ids.shape[0]) if i not in fresh_set}
        return np.array([c for c in live[ok].tolist() if c not in present], dtype=np.int64)

    def _adopt_late(self, xy: np.ndarray, orphans: list[int], slots: np.ndarray,
                    cand: np.ndarray) -> None:
        """Re-identification for unconfirmed ids that inherited nothing when they
        appeared: the nearest candidate that vanished before the id appeared (one seen
        since was someone else, beside it) and within ``reid_px``. Its sides and counts
        replace the id's own, and its sightings join the id's (a taken candidate is
        marked bequeathed, so no new id of this frame takes it too)."""
        taken: list[int] = []
        for i in orphans:
            slot = int(slots[i])
            ok = [c for c in cand.tolist() if c not in taken and self._last_t[c] < self._born_t[slot]]
            if not ok:
                continue
            pool = np.array(ok, dtype=np.int64)
            dist = np.hypot(*(self._last_xy[pool] - xy[i]).T)
            j = int(np.argmin(dist))
            if dist[j] > self.params.reid_px:
                continue
            heir = int(pool[j])
            taken.append(heir)
            # Both tracks' sightings, newest last, in ring order (oldest overwritten first).
            seen = np.sort(np.r_[self._ring[heir], self._ring[slot]])
            seen = seen[np.isfinite(seen)][-_RING:]
            hits = int(self._hits[heir] + self._hits[slot])
            ring = np.full(_RING, -np.inf)
            ring[(hits - len(seen) + np.arange(len(seen))) % _RING] = seen
            self._ring[slot] = ring
            self._hits[slot] = hits
            self._first_t[slot] = min(self._first_t[heir], self._first_t[slot])
            self._side[slot] = self._side[heir]
            self._counted[slot] = self._counted[heir]
            self._last_s[slot] = self._last_s[heir]
            self._zero_t[slot] = self._zero_t[heir]
            self._birth_s[slot] = self._birth_s[heir]
            self._last_t[slot] = self._last_t[heir]
            self._bequeathed[heir] = True
            self._parent[slot] = heir
            self._parent_id[slot] = self._id_of[heir]

    def _adopt(self, ids: np.ndarray, xy: np.ndarray, at_edge: np.ndarray, t: float,
               fresh: list[int], slots: np.ndarray, cand: np.ndarray) -> None:
        """Give new ids a slot, inheriting a recently vanished track's state if near."""
        p = self.params
        cand = cand[~self._bequeathed[cand]]  # not taken by a late heir this frame
        for i in fresh:
            tid = int(ids[i])
            heir = -1
            if cand.size and not at_edge[i]:
                dist = np.hypot(*(self._last_xy[cand] - xy[i]).T)
                j = int(np.argmin(dist))
                if dist[j] <= p.reid_px:
                    heir = int(cand[j])
                    cand = np.delete(cand, j)
            slot = self._new_slot()
            if heir >= 0:
                # The new id gets a copy of the vanished track's sides and counts; the
                # vanished track keeps its own in case it comes back.
                self._side[slot] = self._side[heir]
                self._counted[slot] = self._counted[heir]
                self._last_s[slot] = self._last_s[heir]
                self._zero_t[slot] = self._zero_t[heir]
                self._birth_s[slot] = self._birth_s[heir]
                self._last_t[slot] = self._last_t[heir]
                self._hits[slot] = self._hits[heir]
                self._ring[slot] = self._ring[heir]
                self._first_t[slot] = self._first_t[heir]
                self._bequeathed[heir] = True
                self._parent_id[slot] = self._id_of[heir]
            else:
                self._side[slot] = 0
                self._counted[slot] = 0
                self._last_s[slot] = np.nan
                self._zero_t[slot] = np.nan
                self._birth_s[slot] = np.nan
                self._parent_id[slot] = -1
                self._hits[slot] = 0
                self._ring[slot] = -np.inf
                self._first_t[slot] = t
            self._parent[slot] = heir
            self._born_t[slot] = t
            self._bequeathed[slot] = False
            self._slot_of[tid] = slot
            self._id_of[slot] = tid
            slots[i] = slot

    def _new_slot(self) -> int:
        if not self._free:
            cap = self._side.shape[0]
            self._side = np.concatenate([self._side, np.zeros_like(self._side)])
            self._counted = np.concatenate([self._counted, np.zeros_like(self._counted)])
            self._last_t = np.concatenate([self._last_t, np.full(cap, -np.inf)])
            self._last_xy = np.concatenate([self._last_xy, np.zeros_like(self._last_xy)])
            self._last_edge = np.concatenate([self._last_edge, np.zeros_like(self._last_edge)])
            self._last_s = np.concatenate([self._last_s, np.full_like(self._last_s, np.nan)])
            self._zero_t = np.concatenate([self._zero_t, np.full_like(self._zero_t, np.nan)])
            self._birth_s = np.concatenate([self._birth_s, np.full_like(self._birth_s, np.nan)])
            self._id_of = np.concatenate([self._id_of, np.full(cap, -1, dtype=np.int64)])
            self._parent = np.concatenate([self._parent, np.full(cap, -1, dtype=np.int64)])
            self._parent_id = np.concatenate([self._parent_id, np.full(cap, -1, dtype=np.int64)])
            self._born_t = np.concatenate([self._born_t, np.full(cap, np.inf)])
            self._bequeathed = np.concatenate([self._bequeathed, np.zeros(cap, dtype=bool)])
            self._hits = np.concatenate([self._hits, np.zeros(cap, dtype=np.int64)])
            self._ring = np.concatenate([self._ring, np.full_like(self._ring, -np.inf)])
            self._first_t = np.concatenate([self._first_t, np.full(cap, np.inf)])
            self._free = list(range(2 * cap - 1, cap - 1, -1))
        return self._free.pop()

    def _forget(self, t: float) -> None:
        if not self._slot_of:
            return
        horizon = t - self.params.forget_s
        stale = [tid for tid, sl in self._slot_of.items() if self._last_t[sl] < horizon]
        for tid in stale:
            sl = self._slot_of.pop(tid)
            self._id_of[sl] = -1
            self._last_t[sl] = -np.inf
            self._free.append(sl)

    def _cap_at_edges(self, frame_size: tuple[int, int]) -> None:
        w, h = frame_size
        if not (w > 0 and h > 0):
            raise ValueError(f"frame_size must be positive, not {frame_size}")
        corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64)
        for row, li in enumerate(self._lines_idx):
            s = (corners - self._p1[row]) @ self._n[row]
            self._h_in[li] = min(self._h_in[li], max(0.0, 0.5 * s.max()))
            self._h_out[li] = min(self._h_out[li], max(0.0, -0.5 * s.min()))


def _polygon_signed_distance(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Distance to the polygon's boundary, positive inside (even-odd rule)."""
    a = poly
    b = np.roll(poly, -1, axis=0)
    ab = b - a
    ap = xy[:, None, :] - a[None, :, :]
    tt = np.clip(np.einsum("ked,ed->ke", ap, ab) / np.einsum("ed,ed->e", ab, ab), 0.0, 1.0)
    closest = a[None] + tt[..., None] * ab[None]
    dist = np.hypot(*(xy[:, None, :] - closest).transpose(2, 0, 1)).min(axis=1)
    x, y = xy[:, 0:1], xy[:, 1:2]
    crosses = ((a[None, :, 1] > y) != (b[None, :, 1] > y)) & (
        x < a[None, :, 0] + (y - a[None, :, 1]) * ab[None, :, 0] / np.where(ab[:, 1] == 0, 1e-12, ab[:, 1])[None]
    )
    inside = (crosses.sum(axis=1) % 2) == 1
    return np.where(inside, dist, -dist)
