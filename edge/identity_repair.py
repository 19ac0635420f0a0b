"""Identity swaps after a merge, repaired by appearance, between the tracker and the counter.

The tracker associates by position only (docs/tracker.md). When two people pass each
other at the line, the detector often reports one box over both for a few frames; one
track takes it, the other coasts, and as they part the tracks can come back on the wrong
people: each track then ends on the side it started from and both crossings are lost
(vtest.avi `x610` 624/626, docs/camera.md). This component keeps, per track, the colours
of the person it reports (`edge.appearance`, learnt only while the track's box overlaps
no other), notes when two tracks merge, and when both are seen apart again compares the
two stored appearances with the two current boxes: if the crossed assignment fits
clearly better, it swaps the ids it reports onwards, so the counter keeps one id per
person. The tracker itself is not touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.appearance import distance, torso_histograms
from edge.box_overlap import overlap_of_smaller


@dataclass(frozen=True, slots=True)
class RepairParams:
    # Two boxes "merge" when their intersection covers this share of the smaller box: a
    # person half hidden behind another, or one box over both; also when a track vanishes
    # with its last box this much inside a box that is still tracked (it coasts inside it).
    merge_overlap: float = 0.3
    # A box is "clean" (its torso colours are its person's alone) when it overlaps every
    # other tracked box by less than this share of the smaller box.
    clean_overlap: float = 0.1
    # Swap only when the crossed assignment's summed Hellinger distance is at least this
    # much below the straight one: a near tie is noise (light, pose), and a wrong swap
    # costs two crossings just as a missed one does.
    margin: float = 0.2
    # ... and only when each stored appearance fits its new box as a person's own
    # appearance does after a merge: on vtest.avi (in-sample) 85% of those distances are
    # at most 0.4 (median 0.28). A crossed fit worse than that is two poor matches, not
    # a swap: a box whose torso is the sign in front of it, a third person in the merge.
    max_fit: float = 0.4
    # A merge not resolved within this long is forgotten (the coasting track died, or
    # the two walk on together and the tracker's choice stands).
    max_merge_s: float = 3.0
    # A track's appearance follows slow changes (turning, light) at this rate per clean frame.
    learn_rate: float = 0.2
    # Tracks unseen this long are forgotten (the tracker's coasting is shorter).
    forget_s: float = 10.0



class IdentityRepair:
    """Tracker ids in, the ids to count by out (a permutation of tracker ids)."""

    def __init__(self, params: RepairParams | None = None) -> None:
        self.params = params or RepairParams()
        self._report: dict[int, int] = {}  # tracker id -> reported id (where they differ)
        self._app: dict[int, np.ndarray] = {}  # tracker id -> appearance of the person it reports
        self._last: dict[int, tuple[np.ndarray, float]] = {}  # tracker id -> last box, time
        self._pairs: dict[tuple[int, int], float] = {}  # merged (a, b), a < b -> last time merged
        self._prev_t: float | None = None
        self.swaps: list[tuple[float, int, int]] = []  # (t, tracker id a, tracker id b), for reading
        # every merge resolved: (t, a, b, d(a's, a now), d(b's, b now), d(a's, b now), d(b's, a now), d(a's, b's))
        self.decisions: list[tuple[float, int, int, float, float, float, float, float]] = []

    def update(self, image: np.ndarray, ids: np.ndarray, boxes: np.ndarray, t: float,
               colour: bool = True) -> np.ndarray:
        """This frame's tracks (``TrackFrame.ids``/``boxes``) -> the ids to report.

        ``colour`` False (the camera sends grey infrared frames): clothes have no hue, so
        nothing is learnt and no merge is resolved; the ids already exchanged stay so."""
        p = self.params
        id_list = [int(i) for i in ids.tolist()]
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        row = {tid: k for k, tid in enumerate(id_list)}
        ov = overlap_of_smaller(boxes, boxes)
        np.fill_diagonal(ov, 0.0)
        for i, j in zip(*np.nonzero(np.triu(ov) >= p.merge_overlap)):
            self._note_merge(id_list[i], id_list[j], t)
        # a track that vanished this frame inside a tracked box coasts inside it
        gone = [tid for tid, (_, tl) in self._last.items() if tl == self._prev_t and tid not in row]
        if gone and id_list:
            inside = overlap_of_smaller(np.array([self._last[g][0] for g in gone]), boxes)
            for gi, k in zip(*np.nonzero(inside >= p.merge_overlap)):
                self._note_merge(gone[gi], id_list[k], t)
        clean = ov.max(axis=1, initial=0.0) < p.clean_overlap if len(id_list) else np.zeros(0, bool)
        hists: dict[int, np.ndarray | None] = {}

        def hist(tid: int) -> np.ndarray | None:
            if tid not in hists:
                hists[tid] = torso_histograms(image, boxes[row[tid]][None])[0]
            return hists[tid]

        for pair, tm in list(self._pairs.items()):
            a, b = pair
            if a in row and b in row and clean[row[a]] and clean[row[b]]:
                del self._pairs[pair]
                if colour:
                    self._resolve(a, b, hist(a), hist(b), t)
            elif t - tm > p.max_merge_s:
                del self._pairs[pair]
        busy = {tid for pair in self._pairs for tid in pair}
        for tid, k in row.items():
            if colour and clean[k] and tid not in busy:
                h = hist(tid)
                if h is not None:
                    old = self._app.get(tid)
                    self._app[tid] = h if old is None else (1 - p.learn_rate) * old + p.learn_rate * h
            self._last[tid] = (boxes[k], t)
        if self._prev_t is None or int(t) != int(self._prev_t):  # about once a second: forget the dead
            for tid in [x for x, (_, tl) in self._last.items() if t - tl > p.forget_s]:
                for state in (self._last, self._app, self._report):
                    state.pop(tid, None)
        self._prev_t = t
        if not self._report:
            return ids
        return np.array([self._report.get(tid, tid) for tid in id_list], dtype=np.asarray(ids).dtype)

    def _note_merge(self, a: int, b: int, t: float) -> None:
        self._pairs[(min(a, b), max(a, b))] = t

    def _resolve(self, a: int, b: int, ha: np.ndarray | None, hb: np.ndarray | None, t: float) -> None:
        """Both tracks are apart again: swap what they report if the crossed fit is clearly better."""
        pa, pb = self._app.get(a), self._app.get(b)
        if pa is None or pb is None or ha is None or hb is None:
            return
        aa, bb, ab, ba = distance(pa, ha), distance(pb, hb), distance(pa, hb), distance(pb, ha)
        self.decisions.append((t, a, b, aa, bb, ab, ba, distance(pa, pb)))
        if (aa + bb) - (ab + ba) < self.params.margin or max(ab, ba) > self.params.max_fit:
            return
        ra, rb = self._report.get(a, a), self._report.get(b, b)
        self._report[a], self._report[b] = rb, ra
        self._app[a], self._app[b] = pb, pa
        self.swaps.append((t, a, b))
