"""The health model: each part reports its state here; `status`, the watchdog and the
birth message read it. Thread-safe; no part reads another part's internals."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from edge.secrets import mask_text


@dataclass(frozen=True, slots=True)
class PartHealth:
    ok: bool
    detail: str
    since_utc: float


class Health:
    """Latest state per component, plus a hook that journals every change (bins' flags)."""

    # Components whose failure means the agent itself is broken and a restart can cure it
    # (the watchdog stops): the journal refusing commits for a reason other than a full
    # disk, a binner that failed several ticks running, paho's network thread gone.
    VITAL = ("journal", "binner", "mqtt_loop")

    def __init__(self, clock_wall: Callable[[], float], on_change: Callable[[float, str, bool, str], None] | None = None) -> None:
        self._wall = clock_wall
        self._lock = threading.Lock()
        self._parts: dict[str, PartHealth] = {}
        self._on_change = on_change

    def set(self, component: str, ok: bool, detail: str = "") -> None:
        detail = mask_text(detail)  # details go to alarms, status.json and the journal
        now = self._wall()
        with self._lock:
            prev = self._parts.get(component)
            if prev is not None and prev.ok == ok and prev.detail == detail:
                return
            self._parts[component] = PartHealth(ok, detail, now if prev is None or prev.ok != ok else prev.since_utc)
        if self._on_change is not None and (prev is None or prev.ok != ok):
            self._on_change(now, component, ok, detail)

    def snapshot(self) -> dict[str, PartHealth]:
        with self._lock:
            return dict(self._parts)

    def vital_ok(self) -> bool:
        snap = self.snapshot()
        return all(snap[c].ok for c in self.VITAL if c in snap)
