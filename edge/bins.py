"""Time bins derived from the journal, queued for publishing with revisions.

Bins are a pure function of the journal (crossings + health log), so they can be
recomputed at any time. The binner keeps two marks in the journal's meta table: the start
of the next bin to close, and the last crossing id it has seen. Each tick it closes the
bins whose end has passed (zero bins too), and recomputes closed bins that received a
late crossing; a bin whose content changed since it was queued is queued again with the
next `revision`. While the outbox is full the binner stops where it is (the counts stay
in the journal) and resumes once the outbox drains, so nothing is dropped.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from edge.crossing import DIRECTIONS
from edge.journal import create_tables
from contract.occupancy import OccupancyRule, fold, step
from edge.outbox import Outbox
from contract.ratings import COUNTED, OUT_OF_RANGE, REPEAT, bin_block
from contract.timebins import Bin, bin_of, iso_utc, last_local_time_before

SCHEMA = """
CREATE TABLE IF NOT EXISTS bin_state (
    start_utc REAL PRIMARY KEY,
    revision  INTEGER NOT NULL,
    hash      TEXT    NOT NULL,
    occ_end   INTEGER NOT NULL
);
"""

META_NEXT = "bins_next_start_utc"
META_LAST_ID = "bins_last_crossing_id"
META_LAST_RATING_ID = "bins_last_rating_id"
# crossings before this (2000-01-01) are broken stamps (a journal written before board
# times were checked, edge/beam_source.py): never binned, so they cannot stop binning
PLAUSIBLE_FROM_UTC = 946684800.0


@dataclass(frozen=True, slots=True)
class BinPolicy:
    minutes: int
    zone: ZoneInfo
    primary_source: str
    rebase_local_time: str  # "HH:MM" or "never"
    lines: tuple[str, ...]
    occupancy: OccupancyRule = OccupancyRule()
    rating_levels: int = 0  # buttons on the door keypads; 0: no keypad, bins carry no `ratings`


class Binner:
    """Closes and revises bins on the journal's connection (the journal thread calls tick)."""

    def __init__(self, conn: sqlite3.Connection, outbox: Outbox | None, policy: BinPolicy, topic: str, header: dict[str, Any]) -> None:
        self.conn = conn
        self.outbox = outbox
        self.policy = policy
        self.topic = topic
        self.header = header  # device, site: identity fields every bin carries
        create_tables(conn, SCHEMA)

    # -- marks ---------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: object) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def start_at(self, t_utc: float) -> None:
        """Begin binning at the bin containing t_utc, unless binning already began."""
        if self._meta(META_NEXT) is None:
            self._set_meta(META_NEXT, bin_of(t_utc, self.policy.minutes, self.policy.zone).start_utc)

    # -- the tick ------------------------------------------------------------------

    def tick(self, now_utc: float, max_bins: int = 2000) -> int:
        """Queue every bin that closed or changed; returns how many messages were queued.

        Runs inside one transaction with the outbox rows it writes. Bounded per call so a
        30-day backlog is worked off in slices without starving the journal's writers.
        """
        assert self.outbox is not None, "a read-only binner (compute only) cannot tick"
        if self.outbox.is_full():
            return 0
        next_start = float(self._meta(META_NEXT) or bin_of(now_utc, self.policy.minutes, self.policy.zone).start_utc)
        last_id = int(self._meta(META_LAST_ID) or 0)
        max_id = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM crossings").fetchone()[0]

        dirty_starts = {
            bin_of(t, self.policy.minutes, self.policy.zone).start_utc
            for (t,) in self.conn.execute(
                "SELECT t_utc FROM crossings WHERE id > ? AND id <= ? AND t_utc < ? AND t_utc >= ?",
                (last_id, max_id, next_start, PLAUSIBLE_FROM_UTC)
            )
        }
        # a keypad press delivered late (after an unplug) revises its bin as a crossing does
        last_rating = int(self._meta(META_LAST_RATING_ID) or 0)
        max_rating = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM ratings").fetchone()[0] if self.policy.rating_levels else 0
        if max_rating > last_rating:
            dirty_starts |= {
                bin_of(t, self.policy.minutes, self.policy.zone).start_utc
                for (t,) in self.conn.execute(
                    "SELECT t_utc FROM ratings WHERE id > ? AND id <= ? AND t_utc < ? AND t_utc >= ?",
                    (last_rating, max_rating, next_start, PLAUSIBLE_FROM_UTC))
            }
        todo: list[Bin] = []
        for start in sorted(dirty_starts):
            todo.extend(self._period_from(start, next_start))
        b = bin_of(next_start, self.policy.minutes, self.policy.zone)
        while b.end_utc <= now_utc and len(todo) < max_bins:
            todo.append(b)
            b = bin_of(b.end_utc, self.policy.minutes, self.policy.zone)
        new_next = b.start_utc
        seen: set[float] = set()
        queued = 0
        for bin_ in sorted(todo, key=lambda x: x.start_utc):
            if bin_.start_utc in seen:
                continue
            seen.add(bin_.start_utc)
            queued += self._emit(bin_, now_utc)
            if self.outbox.is_full():  # stop where we are; the next tick resumes here
                return queued
        self._set_meta(META_NEXT, new_next)
        self._set_meta(META_LAST_ID, max_id)
        if max_rating > last_rating:
            self._set_meta(META_LAST_RATING_ID, max_rating)
        return queued

    def _period_from(self, start: float, until: float) -> list[Bin]:
        """A revised bin and the later closed bins of its occupancy period (their occupancy moves)."""
        out: list[Bin] = []
        b = bin_of(start, self.policy.minutes, self.policy.zone)
        while b.start_utc < until:
            if out and self._period_start(b) == b.start_utc:
                break
            out.append(b)
            b = bin_of(b.end_utc, self.policy.minutes, self.policy.zone)
        return out

    # -- one bin -------------------------------------------------------------------

    def compute(self, b: Bin, now_utc: float | None = None) -> dict[str, Any]:
        """The bin's content (no envelope): counts per line and source, totals, occupancy, flags."""
        p = self.policy
        lines: dict[str, dict[str, dict[str, int]]] = {name: {} for name in p.lines}
        for line, source, direction, n in self.conn.execute(
            "SELECT line, source, direction, COUNT(*) FROM crossings WHERE t_utc >= ? AND t_utc < ? GROUP BY 1, 2, 3",
            (b.start_utc, b.end_utc),
        ):
            lines.setdefault(line, {}).setdefault(source, {"in": 0, "out": 0})[direction] = n
        total = {d: sum(src.get(p.primary_source, {}).get(d, 0) for src in lines.values()) for d in DIRECTIONS}
        occ = step(self._occupancy_before(b), total["in"], total["out"], quiet_before=self._quiet_before(b.start_utc),
                   bin_minutes=p.minutes, closed=self._closed(b), rule=p.occupancy)
        local = b.local_start(p.zone)
        extra = {"ratings": self._ratings(b)} if p.rating_levels else {}
        return {
            **self.header,
            "bin": {
                "start_utc": iso_utc(b.start_utc),
                "end_utc": iso_utc(b.end_utc),
                "start_local": local.isoformat(),
                "timezone": p.zone.key,
                "utc_offset_min": b.utc_offset_min,
                "minutes": p.minutes,
            },
            "lines": lines,
            "total": {**total, "source": p.primary_source},
            "occupancy": {"end": occ.occupancy, "period_start_utc": iso_utc(self._period_start(b)),
                          "drift_removed": occ.drift_removed},
            "flags": self._flags(b),
            **extra,
        }

    def _ratings(self, b: Bin) -> dict[str, Any]:
        """Counted keypad ratings per level, and the flagged presses, of the bin (all doors)."""
        counts: dict[int, int] = {}
        flagged = {REPEAT: 0, OUT_OF_RANGE: 0}
        for status, level, n in self.conn.execute(
            "SELECT status, level, COUNT(*) FROM ratings WHERE t_utc >= ? AND t_utc < ? GROUP BY 1, 2", (b.start_utc, b.end_utc)
        ):
            if status == COUNTED:
                counts[level] = n
            else:
                flagged[status] += n
        return bin_block(self.policy.rating_levels, counts, flagged[REPEAT], flagged[OUT_OF_RANGE])

    def _emit(self, b: Bin, now_utc: float) -> int:
        assert self.outbox is not None
        body = self.compute(b)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]
        row = self.conn.execute("SELECT revision, hash FROM bin_state WHERE start_utc = ?", (b.start_utc,)).fetchone()
        if row is not None and row[1] == digest:
            return 0
        revision = 0 if row is None else row[0] + 1
        self.outbox.enqueue(self.topic, {"schema": "footfall.bins/1", **body, "revision": revision}, now_utc, about_utc=b.end_utc)
        self.conn.execute(
            "INSERT INTO bin_state(start_utc, revision, hash, occ_end) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(start_utc) DO UPDATE SET revision = excluded.revision, hash = excluded.hash, occ_end = excluded.occ_end",
            (b.start_utc, revision, digest, body["occupancy"]["end"]),
        )
        return 1

    def _period_start(self, b: Bin) -> float:
        """Start of the occupancy period: the bin holding the last re-base instant."""
        if self.policy.rebase_local_time == "never":
            first = self._meta("bins_first_start_utc")
            return float(first) if first is not None else float("-inf")
        r = last_local_time_before(b.end_utc - 1e-3, self.policy.rebase_local_time, self.policy.zone)
        return bin_of(r, self.policy.minutes, self.policy.zone).start_utc

    def _occupancy_before(self, b: Bin) -> int:
        period_start = self._period_start(b)
        if period_start >= b.start_utc:
            return 0
        prev = bin_of(b.start_utc - 1e-3, self.policy.minutes, self.policy.zone)
        row = self.conn.execute("SELECT occ_end FROM bin_state WHERE start_utc = ?", (prev.start_utc,)).fetchone()
        if row is not None:
            return int(row[0])
        # Not binned yet (first bin after boot, or a gap): fold the period from the journal
        # with the same rule as compute(), zero bins included (the drift rule needs them).
        p = self.policy
        size = p.minutes * 60
        start = max(period_start, float(self._meta("bins_first_start_utc") or period_start))
        if start >= b.start_utc:
            return 0
        per_bin: dict[int, tuple[int, int]] = {
            int(k): (int(n_in), int(n_out))
            for k, n_in, n_out in self.conn.execute(
                "SELECT CAST((t_utc - ?) / ? AS INTEGER) AS k, SUM(direction = 'in'), SUM(direction = 'out')"
                " FROM crossings WHERE +source = ? AND t_utc >= ? AND t_utc < ? GROUP BY k",
                (start, size, p.primary_source, start, b.start_utc),
            )
        }
        n_bins = int(round((b.start_utc - start) / size))
        counts = []
        for k in range(n_bins):
            n_in, n_out = per_bin.get(k, (0, 0))
            counts.append((n_in, n_out, self._closed(bin_of(start + k * size, p.minutes, p.zone))))
        steps = fold(counts, bin_minutes=p.minutes, rule=p.occupancy, quiet_before=self._quiet_before(start))
        return steps[-1].occupancy if steps else 0

    def _quiet_before(self, t_utc: float) -> float:
        """Minutes from the end of the bin of the last primary-source crossing before t_utc."""
        row = self.conn.execute("SELECT MAX(t_utc) FROM crossings WHERE +source = ? AND t_utc < ? AND t_utc >= ?",
                                (self.policy.primary_source, t_utc, PLAUSIBLE_FROM_UTC)).fetchone()
        if row[0] is None:
            return float("inf")
        last = bin_of(row[0], self.policy.minutes, self.policy.zone)
        return max(0.0, (t_utc - last.end_utc) / 60)

    def _closed(self, b: Bin) -> bool:
        """Outside opening hours: judged at the bin's middle, in local wall-clock time."""
        return not self.policy.occupancy.hours.is_open(datetime.fromtimestamp((b.start_utc + b.end_utc) / 2, self.policy.zone))

    def _flags(self, b: Bin) -> list[str]:
        """Quality flags from the health log: who was down during the bin, partial boot bins."""
        flags: set[str] = set()
        states: dict[str, bool] = {}
        for comp, ok in self.conn.execute(
            "SELECT component, ok FROM health_log h WHERE t_utc <= ? AND id = "
            "(SELECT MAX(id) FROM health_log WHERE component = h.component AND t_utc <= ?)",
            (b.start_utc, b.start_utc),
        ):
            states[comp] = bool(ok)
        for comp, ok, detail in self.conn.execute(
            "SELECT component, ok, detail FROM health_log WHERE t_utc > ? AND t_utc < ? ORDER BY t_utc, id",
            (b.start_utc, b.end_utc),
        ):
            if comp == "agent" and ok and detail == "start":
                flags.add("partial")
            if not ok:
                states[comp] = False  # down at some moment within the bin
        for comp, ok in states.items():
            if not ok:
                flags.add(_flag_of(comp))
        return sorted(flags)


# a door's reports that are not outages (edge/beam_source.py): events lost in a board
# reset or its ring, events freed by the board before this journal had them, a board
# time that maps to no plausible UTC (binned at receipt)
_BEAM_REPORTS = {"mcu": "events_lost", "gap": "events_skipped", "time": "board_time_implausible"}


def _flag_of(component: str) -> str:
    """The bin flag for a component that was unhealthy during the bin."""
    if component.startswith("fusion:"):  # both sources up but their counts drifted apart
        return "sources_disagree:" + component.removeprefix("fusion:")
    door, _, part = component.rpartition(":")
    if component.startswith("beams:") and part in _BEAM_REPORTS:
        return f"{_BEAM_REPORTS[part]}:{door}"
    return {"agent": "agent_down", "clock": "clock_unsynced"}.get(component, f"source_down:{component}")
