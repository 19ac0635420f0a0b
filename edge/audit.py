"""The accuracy audit (`footfall validate`): a technician's hand count against the device.

Pure: the hand count's events (or totals) and the device's crossings for the same period
in, per-direction figures and a verdict out. Definitions (docs/validate.md):

- per direction, `true` = the hand count, `counted` = the device's count;
- `missed` and `extra` come from *matching*: a hand event and a device crossing of the same
  direction match when they lie within `tolerance_s` of each other (each used once; the
  greedy earliest-first matching is a maximum matching for points on a line with a
  window). Unmatched hand events are missed, unmatched device crossings extra;
- with `slot_s` instead (the field's per-minute or per-bin practice, and the only choice
  for totals typed at the end: one slot for the whole period), per slot
  `missed = max(0, true - counted)`, `extra = max(0, counted - true)`;
- gross accuracy = 1 - (missed + extra) / true; net accuracy = 1 - |counted - true| / true.
  Net lets a miss and an extra cancel; gross does not. On totals they are equal, and both
  are an upper bound of the gross accuracy per-crossing matching would give.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

DIRECTIONS = ("in", "out")
Event = tuple[float, str]  # (t_utc, direction)


@dataclass(frozen=True, slots=True)
class DirectionResult:
    direction: str
    true: int
    counted: int
    matched: int
    missed: int
    extra: int

    @property
    def gross(self) -> float | None:
        return None if self.true == 0 else round(1 - (self.missed + self.extra) / self.true, 4)

    @property
    def net(self) -> float | None:
        return None if self.true == 0 else round(1 - abs(self.counted - self.true) / self.true, 4)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "gross": self.gross, "net": self.net}


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str


def match_events(hand: Sequence[float], device: Sequence[float], tolerance_s: float) -> int:
    """How many hand events pair with a device crossing within the tolerance (one direction)."""
    h, d = sorted(hand), sorted(device)
    i = j = matched = 0
    while i < len(h) and j < len(d):
        if d[j] < h[i] - tolerance_s:
            j += 1  # a device crossing too early for this and every later hand event: extra
        elif h[i] < d[j] - tolerance_s:
            i += 1  # a hand event with no device crossing near it: missed
        else:
            matched += 1
            i += 1
            j += 1
    return matched


def by_events(hand: Iterable[Event], device: Iterable[Event], tolerance_s: float) -> dict[str, DirectionResult]:
    """Per-crossing matching: hand key presses have timestamps."""
    hand, device = list(hand), list(device)
    out: dict[str, DirectionResult] = {}
    for d in DIRECTIONS:
        h = [t for t, dd in hand if dd == d]
        c = [t for t, dd in device if dd == d]
        m = match_events(h, c, tolerance_s)
        out[d] = DirectionResult(d, len(h), len(c), m, len(h) - m, len(c) - m)
    return out


def by_slots(hand: Iterable[Event], device: Iterable[Event], start_utc: float, slot_s: float) -> dict[str, DirectionResult]:
    """Per-slot matching (per minute, per bin) from the period's start."""
    def slots(events: Iterable[Event], d: str) -> dict[int, int]:
        n: dict[int, int] = {}
        for t, dd in events:
            if dd == d:
                k = int((t - start_utc) // slot_s)
                n[k] = n.get(k, 0) + 1
        return n

    hand, device = list(hand), list(device)
    out: dict[str, DirectionResult] = {}
    for d in DIRECTIONS:
        h, c = slots(hand, d), slots(device, d)
        missed = sum(max(0, h.get(k, 0) - c.get(k, 0)) for k in h.keys() | c.keys())
        extra = sum(max(0, c.get(k, 0) - h.get(k, 0)) for k in h.keys() | c.keys())
        true, counted = sum(h.values()), sum(c.values())
        out[d] = DirectionResult(d, true, counted, true - missed, missed, extra)
    return out


def by_totals(true: dict[str, int], counted: dict[str, int]) -> dict[str, DirectionResult]:
    """Totals typed at the end: one slot for the whole period."""
    return {d: DirectionResult(d, true[d], counted[d], min(true[d], counted[d]),
                               max(0, true[d] - counted[d]), max(0, counted[d] - true[d])) for d in DIRECTIONS}


def verdict(results: dict[str, DirectionResult], *, min_crossings: int, pass_at: float) -> Verdict:
    """Pass when the hand count saw enough crossings and each direction's gross accuracy
    reaches `pass_at` (a direction nobody walked passes only without extras)."""
    total = sum(r.true for r in results.values())
    if total < min_crossings:
        return Verdict(False, f"only {total} crossings counted by hand; an audit needs at least {min_crossings}")
    for d, r in results.items():
        if r.true == 0:
            if r.extra:
                return Verdict(False, f"{d}: nobody walked {d} by hand, but the device counted {r.extra}")
        elif r.gross is not None and r.gross < pass_at:
            return Verdict(False, f"{d}: gross accuracy {r.gross:.1%} is below {pass_at:.1%}")
    return Verdict(True, f"gross accuracy per direction >= {pass_at:.1%} over {total} crossings")


def declared_accuracy(audit: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the birth message declares from the last passing audit (its stored record)."""
    if not audit:
        return None
    res = audit["results"]
    return {
        "gross": {d: res[d]["gross"] for d in DIRECTIONS},
        "net": {d: res[d]["net"] for d in DIRECTIONS},
        "true": {d: res[d]["true"] for d in DIRECTIONS},
        "audit_id": audit["id"],
        "audited_utc": audit["ended"],
        "method": audit["method"],
        "source": audit["source"],
        "line": audit["line"],
    }
