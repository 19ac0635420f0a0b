"""The agent's fusion component: feeds `edge.fusion` from the journal, writes fused crossings.

Runs on the journal's thread inside the agent's tick transaction, before the binner, so
a bin sees the fused crossings of its episodes as soon as they close. Data flows one way:
beam and camera crossings (journal) -> fusion -> fused crossings (journal) -> bins.

Restart safety: each tick it reads new beam/camera crossings by journal id, closes the
episodes that can no longer grow (watermark = now - `lag_s`) and, in the same transaction
as the fused rows, stores in meta where a restarted fuser must re-read from
(`fusion.<door>.resume_utc`: the earliest crossing of a still-open episode) and the last
crossing id read. After a crash the fuser re-reads from `resume_utc` by time: the same
crossings form the same episodes and the same fused refs, and the journal ignores refs it
already has.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.crossing import Crossing
from edge.fusion import DiscrepancyMonitor, Fusion, FusionParams, Verdict

log = logging.getLogger(__name__)


class FusionPair(BaseModel):
    """Which camera counting line watches which beam door."""

    model_config = ConfigDict(extra="forbid")

    door: str = Field(description="beam door name ([[beams.doors]] name); fused crossings carry it as their line", min_length=1)
    camera_line: str | None = Field(None, description="camera counting line ([[camera.lines]] name) over that door; default: the door's name")

    @property
    def line(self) -> str:
        return self.camera_line or self.door


class FusionSettings(BaseModel):
    """The agent configuration's [fusion] section (docs/fusion.md)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="fuse beam and camera crossings into source='fused' crossings")
    pairs: list[FusionPair] = Field(default_factory=list, description="one entry per door watched by both beams and a camera line")
    window_s: float = Field(1.0, gt=0, le=10, description="crossings of either source this close in time belong to one episode (the same people)")
    lag_s: float = Field(10.0, ge=0, le=600, description="episodes close this long after the fact (time for both sources to deliver)")
    hold_s: float = Field(900.0, ge=0, description="while a beam link is down, wait up to this long for its buffered events before closing episodes")
    camera_alone: bool = Field(False, description="count camera crossings of an episode the (healthy) beams saw nothing of")
    camera_min_confidence: float = Field(0.0, ge=0, le=1, description="camera crossings below this confidence are not fused")
    camera_component: str = Field("camera", description="health component of the camera source (its health gates trust in it)")
    discrepancy_bound: float = Field(0.3, gt=0, le=1, description="alarm when, in a direction, beams and camera differ by more than this share of the larger count")
    discrepancy_window_min: float = Field(60.0, gt=0, description="rolling window of the discrepancy monitor, minutes")
    discrepancy_min_count: int = Field(30, ge=1, description="judge the discrepancy only with at least this many crossings in the window")

    @model_validator(mode="after")
    def _unique(self) -> "FusionSettings":
        doors = [p.door for p in self.pairs]
        if len(set(doors)) != len(doors):
            raise ValueError(f"each door may be fused with one camera line only: {doors}")
        lines = [p.line for p in self.pairs]
        if len(set(lines)) != len(lines):
            raise ValueError(f"each camera line may watch one door only: {lines}")
        if self.enabled and not self.pairs:
            raise ValueError("fusion is enabled but no [[fusion.pairs]] says which camera line watches which door")
        return self

    def params(self) -> FusionParams:
        return FusionParams(window_s=self.window_s, camera_min_confidence=self.camera_min_confidence,
                            camera_alone=self.camera_alone)


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def _set_meta(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, str(value)))


@dataclass
class _Door:
    pair: FusionPair
    fusion: Fusion
    monitor: DiscrepancyMonitor
    beam_parts: tuple[str, ...]
    episodes: int = 0
    fused: int = 0
    verdict: Verdict = field(default_factory=lambda: Verdict(True, "starting"))


class Fuser:
    """One per agent; `tick(conn, now)` on the journal thread, inside a transaction."""

    META_LAST_ID = "fusion.last_crossing_id"

    def __init__(self, settings: FusionSettings) -> None:
        self.settings = settings
        self.reset()

    def reset(self) -> None:
        """Forget everything in memory; the next tick reloads from the journal's meta.
        Called when the tick's transaction rolled back (its fused rows were not kept)."""
        settings = self.settings
        p = settings.params()
        self.doors = {
            pair.door: _Door(pair, Fusion(pair.door, p),
                             DiscrepancyMonitor(settings.discrepancy_window_min * 60, settings.discrepancy_bound,
                                                settings.discrepancy_min_count),
                             (f"beams:{pair.door}:link", f"beams:{pair.door}:beams"))
            for pair in settings.pairs
        }
        self._by_line: dict[tuple[str, str], str] = {}
        for pair in settings.pairs:
            self._by_line[("beam", pair.door)] = pair.door
            self._by_line[("camera", pair.line)] = pair.door
        self._last_id: int | None = None
        self._health_id = 0

    def _key(self, door: str, name: str) -> str:
        return f"fusion.{door}.{name}"

    # -- start-up --------------------------------------------------------------------

    def _load(self, conn: sqlite3.Connection) -> None:
        """Re-read what open episodes need: crossings from each door's resume point."""
        self._last_id = int(_meta(conn, self.META_LAST_ID) or 0)
        self._read_health(conn)
        for door, st in self.doors.items():
            resume = _meta(conn, self._key(door, "resume_utc"))
            if resume is None:
                continue
            st.fusion.watermark = float(resume)  # nothing before it may join an episode any more
            rows = conn.execute(
                "SELECT t_utc, line, direction, source, confidence, source_ref FROM crossings"
                " WHERE t_utc >= ? AND id <= ? AND ((source = 'beam' AND line = ?) OR (source = 'camera' AND line = ?))"
                " ORDER BY id", (float(resume), self._last_id, door, st.pair.line))
            st.fusion.add(Crossing(*r) for r in rows)

    def _read_health(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute("SELECT id, t_utc, component, ok FROM health_log WHERE id > ? ORDER BY id", (self._health_id,))
        for hid, t, comp, ok in rows:
            self._health_id = hid
            for st in self.doors.values():
                if comp == self.settings.camera_component:
                    st.fusion.camera_health.add(t, bool(ok), comp)
                elif comp in st.beam_parts:
                    st.fusion.beam_health.add(t, bool(ok), comp)
                elif comp == "agent":  # while the agent was down neither source was watched
                    pass

    # -- the tick --------------------------------------------------------------------

    def tick(self, conn: sqlite3.Connection, now_utc: float) -> int:
        """Fuse what has closed; returns the number of fused crossings written."""
        if not self.settings.enabled or not self.doors:
            return 0
        if self._last_id is None:
            self._load(conn)
        assert self._last_id is not None
        self._read_health(conn)
        max_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM crossings").fetchone()[0]
        for t, line, direction, source, conf, ref in conn.execute(
            "SELECT t_utc, line, direction, source, confidence, source_ref FROM crossings"
            " WHERE id > ? AND id <= ? AND source IN ('beam', 'camera') ORDER BY id", (self._last_id, max_id)):
            door = self._by_line.get((source, line))
            if door is not None:
                self.doors[door].fusion.add([Crossing(t, line, direction, source, conf, ref)])
        written = 0
        now_rows = []
        for door, st in self.doors.items():
            watermark = now_utc - self.settings.lag_s
            down = st.fusion.beam_health.down_since(now_utc, st.beam_parts[0])
            if down is not None and now_utc - down < self.settings.hold_s:
                watermark = min(watermark, down)  # the board keeps events while the link is out
            late_before = st.fusion.late
            for ep in st.fusion.close(watermark):
                st.episodes += 1
                st.monitor.add(ep)
                now_rows += ep.fused
            if st.fusion.late != late_before:
                log.warning("door %s: %d crossing(s) arrived after their episode closed (not fused)",
                            door, st.fusion.late - late_before)
            _set_meta(conn, self._key(door, "resume_utc"), repr(st.fusion.resume_utc))
        if now_rows:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO crossings(t_utc, line, direction, source, confidence, source_ref, recorded_utc)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(c.t_utc, c.line, c.direction, c.source, c.confidence, c.source_ref, now_utc) for c in now_rows])
            written = conn.total_changes - before
            for c in now_rows:
                self.doors[c.line].fused += 1
        self._last_id = max_id
        _set_meta(conn, self.META_LAST_ID, max_id)
        return written

    def verdicts(self, now_utc: float) -> dict[str, Verdict]:
        """Per door, the discrepancy monitor's verdict: health component `fusion:<door>`."""
        out = {}
        for door, st in self.doors.items():
            v = st.monitor.verdict(now_utc)
            late = f"; {st.fusion.late} late crossing(s) not fused" if st.fusion.late else ""
            out[f"fusion:{door}"] = Verdict(v.ok, v.detail + late)
        return out
