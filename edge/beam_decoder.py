"""Direction decoding: a door's two beam edge streams -> Crossing records.

Pure: edges (with the microcontroller's µs timestamps) and `advance(t_us)` in,
crossings and a fault state out; no I/O, no threads, no clock of its own.

A *pass* runs from the first break while both beams are clear until both have been
clear for `merge_gap_s`. At its end the pass is classified from the per-beam blocked
intervals: the beam broken first and the beam cleared last give the direction (first A
and last B: A->B); the same beam first and last is a turn-back (nothing counted); one
beam only is an aborted approach (nothing counted). Several blocked intervals per beam
inside one pass are several people close together: the count is the smaller of the two
beams' interval counts, flagged with a lower confidence. A pass whose blockage outlasts
`max_transit_s` counts one person, flagged low confidence (someone standing in the door
or a dense group: beams alone cannot tell; the camera can). A beam blocked for `stuck_s`
is a fault: that pass counts nothing, and nothing counts until the beam clears.

A board reset (a new epoch) ends the pass in progress: if both beams had cleared it is
complete and is classified (its edges were journaled; only the settling wait was left),
otherwise it is cut and counted in `reset_discarded`. An edge journaled with
`TIME_UNKNOWN` (an implausible board stamp) takes the time of the edge before it.

Every crossing's `source_ref` derives from the door and the (epoch, seq) of the edge
that ended its pass, so replaying the same journaled edges after a restart yields the
same refs and the journal's uniqueness makes the replay harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from edge.crossing import Crossing, Direction

EDGE_BREAK = 1
EDGE_CLEAR = 0

CONF_CLEAN = 1.0
CONF_CLOSE_GROUP = 0.7
CONF_ONE_ORDER = 0.6
CONF_LONG_BLOCKAGE = 0.4
TIME_UNKNOWN = -1  # journaled instead of a board stamp that maps to no plausible time


class Edge(NamedTuple):
    """One debounced beam edge as the microcontroller reported it (a journal row)."""

    epoch: int
    seq: int
    beam: int
    edge: int  # 1 break, 0 clear
    t_us: int  # microcontroller µs since its boot
    t_utc: float  # host receive time (stored with the row, so replays see the same)


@dataclass(frozen=True)
class DecoderConfig:
    door: str
    a_beam: int = 0
    b_beam: int = 1
    a_then_b_is_in: bool = True
    min_block_s: float = 0.03  # shorter breaks are glitches (insects, rain, flicker)
    merge_gap_s: float = 0.12  # shorter clears inside a blockage are not a gap between people
    min_transit_s: float = 0.004  # break/clear order closer than this is "simultaneous"
    max_transit_s: float = 2.5  # blockages longer than this are estimates
    stuck_s: float = 60.0  # a beam blocked this long is a fault


@dataclass
class _Pass:
    intervals: dict[int, list[list[float]]] = field(default_factory=dict)  # beam -> [[start, end|-1]]
    last: Edge | None = None
    last_clear_s: float = 0.0


class BeamDecoder:
    """State machine over one beam pair; feed edges in journal order."""

    def __init__(self, cfg: DecoderConfig) -> None:
        self.cfg = cfg
        self._epoch: int | None = None
        self._blocked: dict[int, float | None] = {cfg.a_beam: None, cfg.b_beam: None}
        self._pass: _Pass | None = None
        self._stuck_beam: int | None = None
        self._last_t = 0.0
        self.fault: str | None = None
        self.stats = {"passes": 0, "aborted": 0, "turned_back": 0, "ambiguous": 0,
                      "glitches": 0, "estimated": 0, "stuck_discarded": 0, "reset_discarded": 0}

    @property
    def idle(self) -> bool:
        """No pass in progress: replay may safely restart after the last fed edge."""
        return self._pass is None

    @property
    def epoch(self) -> int | None:
        """The board epoch of the edges fed so far (None before the first)."""
        return self._epoch

    def end_epoch(self, epoch: int) -> list[Crossing]:
        """The board restarted into `epoch`: a pass whose beams have all cleared is complete
        and counts now; one with a beam still broken is cut (`reset_discarded`)."""
        out: list[Crossing] = []
        if self._epoch is not None and epoch != self._epoch:
            p = self._pass
            if p is not None and all(v is None for v in self._blocked.values()) and self._stuck_beam is None:
                self._pass = None
                out = self._classify(p)
            elif p is not None:
                self.stats["reset_discarded"] += 1
            self._pass = None
            self._blocked = dict.fromkeys(self._blocked)
            self._stuck_beam, self.fault = None, None
            self._last_t = 0.0
        self._epoch = epoch
        return out

    def feed(self, e: Edge) -> list[Crossing]:
        out: list[Crossing] = []
        if e.beam not in self._blocked:
            return out  # another pair's beam
        out += self.end_epoch(e.epoch)
        t = self._last_t if e.t_us == TIME_UNKNOWN else e.t_us / 1e6
        self._last_t = t
        out += self._settle(t)
        if e.edge == EDGE_BREAK:
            if self._blocked[e.beam] is not None:
                return out  # already broken (an edge lost before a reset): no-op
            self._blocked[e.beam] = t
            if self._pass is None:
                self._pass = _Pass({self.cfg.a_beam: [], self.cfg.b_beam: []})
            ivs = self._pass.intervals[e.beam]
            if ivs and ivs[-1][1] >= 0 and t - ivs[-1][1] < self.cfg.merge_gap_s:
                ivs[-1][1] = -1.0  # a flicker inside one body: reopen
            else:
                ivs.append([t, -1.0])
        else:
            since = self._blocked[e.beam]
            if since is None or self._pass is None:
                return out
            self._blocked[e.beam] = None
            self._pass.intervals[e.beam][-1][1] = t
            if t - since >= self.cfg.stuck_s or self._stuck_beam == e.beam:
                self._stuck(e.beam, t - since)
            if self._stuck_beam == e.beam:
                self._stuck_beam, self.fault = None, None
                self._pass = None
                self.stats["stuck_discarded"] += 1
                return out
            self._pass.last = e
            self._pass.last_clear_s = t
        return out

    def advance(self, t_us: int) -> list[Crossing]:
        """Time passed without edges (heartbeats): end a settled pass, detect a stuck beam."""
        t = t_us / 1e6
        for beam, since in self._blocked.items():
            if since is not None and t - since >= self.cfg.stuck_s:
                self._stuck(beam, t - since)
        return self._settle(t)

    def _stuck(self, beam: int, held: float) -> None:
        self._stuck_beam = beam
        self.fault = f"door {self.cfg.door}: beam {beam} blocked for {held:.0f} s (stuck or obstructed); no counts until it clears"

    def _settle(self, t: float) -> list[Crossing]:
        p = self._pass
        if p is None or any(v is not None for v in self._blocked.values()):
            return []
        if t - p.last_clear_s < self.cfg.merge_gap_s:
            return []
        self._pass = None
        return self._classify(p)

    def _classify(self, p: _Pass) -> list[Crossing]:
        cfg = self.cfg
        self.stats["passes"] += 1
        ivs = {}
        for beam, lst in p.intervals.items():
            kept = [iv for iv in lst if iv[1] - iv[0] >= cfg.min_block_s]
            self.stats["glitches"] += len(lst) - len(kept)
            ivs[beam] = kept
        a, b = ivs[cfg.a_beam], ivs[cfg.b_beam]
        if not a or not b or p.last is None:
            self.stats["aborted"] += 1
            return []
        first = _order(a[0][0], b[0][0], cfg.min_transit_s)  # "a", "b" or None
        last = _order(a[-1][1], b[-1][1], cfg.min_transit_s, later=True)
        confidence = CONF_CLEAN
        if first and last:
            if first == last:
                self.stats["turned_back"] += 1
                return []
            a_to_b = first == "a"
        elif first or last:
            a_to_b = (first or ("b" if last == "a" else "a")) == "a"
            confidence = CONF_ONE_ORDER
        else:
            self.stats["ambiguous"] += 1
            return []
        n = min(len(a), len(b))
        if n > 1:
            confidence = min(confidence, CONF_CLOSE_GROUP)
        longest = max(iv[1] - iv[0] for iv in a + b)
        if longest > cfg.max_transit_s or abs(b[0][0] - a[0][0]) > cfg.max_transit_s:
            confidence = min(confidence, CONF_LONG_BLOCKAGE)
            self.stats["estimated"] += 1
        direction: Direction = "in" if a_to_b == cfg.a_then_b_is_in else "out"
        ref = beam_ref(cfg.door, p.last.epoch, p.last.seq)
        return [
            Crossing(t_utc=p.last.t_utc, line=cfg.door, direction=direction, source="beam",
                     confidence=confidence, source_ref=ref if k == 0 else f"{ref}#{k}")
            for k in range(n)
        ]


def _order(ta: float, tb: float, tol: float, later: bool = False) -> str | None:
    if abs(ta - tb) < tol:
        return None
    first_is_a = ta < tb
    return ("b" if first_is_a else "a") if later else ("a" if first_is_a else "b")


def beam_ref(door: str, epoch: int, seq: int) -> str:
    """The idempotency key of a beam crossing: door + the MCU epoch and seq of the edge
    that completed the pass (doors are distinct MCUs whose epochs may coincide)."""
    return f"mcu:{door}:{epoch}:{seq}"
