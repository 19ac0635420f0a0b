"""The device's day summaries: when to send them, and what went into them.

A local day is summarised once the day is over and the occupancy re-base that follows it
has passed (the first `bins.rebase_local_time` at or after the next local midnight; local
midnight itself for 24-hour sites), and only once the binner has closed every bin of the
day. Requests (the index system's `cmd/summary`, `footfall summary --publish`) go
through a table in the journal so that they survive a restart and are served by the one
thread that owns the journal. The figures come from `contract.day_summary`, the same function
the index consumer runs on the bins it received.

Like the binner, this works on the journal's connection inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import sqlite3
from datetime import date as Date, datetime, time as dtime, timedelta
from typing import Any

from edge.bins import Binner
from contract.day_summary import SCHEMA, SiteProfile, day_bounds, summarize_day
from contract.log_limit import LogLimiter
from edge.journal import create_tables, is_disk_full
from edge.outbox import Outbox
from contract.timebins import bins_between

TABLES = """
CREATE TABLE IF NOT EXISTS summary_state (
    local_date TEXT PRIMARY KEY, revision INTEGER NOT NULL, hash TEXT NOT NULL, queued_utc REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS summary_requests (
    id INTEGER PRIMARY KEY, local_date TEXT NOT NULL, requested_utc REAL NOT NULL, origin TEXT NOT NULL
);
"""
log = logging.getLogger(__name__)
_failures = LogLimiter(log, time.monotonic, every_s=60.0, burst=1)
META_NEXT_DATE = "summary_next_date"
META_LAST_ID = "summary_last_crossing_id"
META_LAST_RATING_ID = "summary_last_rating_id"


class RequestRefused(ValueError):
    """A summary request the agent will not take (a day it cannot have, too many waiting)."""


def request(conn: sqlite3.Connection, day: Date, now_utc: float, origin: str, *,
            zone: Any = None, max_pending: int | None = None) -> bool:
    """Ask the agent to (re)send a day's summary on its next tick (inside a transaction).

    A day already waiting is not asked twice (returns False). With `zone`, only days from
    the journal's first binned day to today are taken; with `max_pending`, at most that many
    wait at once. Both refusals raise RequestRefused."""
    create_tables(conn, TABLES)
    if zone is not None:
        first = conn.execute("SELECT value FROM meta WHERE key = 'bins_first_start_utc'").fetchone()
        lo = datetime.fromtimestamp(float(first[0]), zone).date() if first else None
        hi = datetime.fromtimestamp(now_utc, zone).date()
        if lo is None or not lo <= day <= hi:
            raise RequestRefused(f"{day} is outside the journal's days ({lo} to {hi})")
    if conn.execute("SELECT 1 FROM summary_requests WHERE local_date = ?", (day.isoformat(),)).fetchone():
        return False
    if max_pending is not None and conn.execute("SELECT COUNT(*) FROM summary_requests").fetchone()[0] >= max_pending:
        raise RequestRefused(f"{max_pending} summary requests already waiting")
    conn.execute("INSERT INTO summary_requests(local_date, requested_utc, origin) VALUES (?, ?, ?)",
                 (day.isoformat(), now_utc, origin))
    return True


def device_summary(binner: Binner, day: Date, profile: SiteProfile) -> dict[str, Any]:
    """The day's figures from the bins this device has closed (bins never closed are gaps)."""
    p = binner.policy
    start, end = day_bounds(day, p.zone)
    closed = {r[0] for r in binner.conn.execute("SELECT start_utc FROM bin_state WHERE start_utc >= ? AND start_utc < ?", (start, end))}
    bins = [binner.compute(b) for b in bins_between(start, end, p.minutes, p.zone) if b.start_utc in closed]
    return summarize_day(bins, day=day, zone=p.zone, minutes=p.minutes, profile=profile, source=p.primary_source)


def send_after(day: Date, rebase_local_time: str, zone: Any) -> float:
    """UTC instant when a day's summary is due: the re-base after it, or its closing midnight."""
    _, midnight = day_bounds(day, zone)
    if rebase_local_time == "never":
        return midnight
    hh, mm = (int(x) for x in rebase_local_time.split(":"))
    nxt = day + timedelta(days=1)
    return max(midnight, datetime.combine(nxt, dtime(hh, mm), zone).timestamp())


class Summaries:
    """Queues day summaries on schedule and on request."""

    def __init__(self, binner: Binner, outbox: Outbox, profile: SiteProfile, topic: str, per_tick: int = 4) -> None:
        self.binner = binner
        self.per_tick = per_tick  # requests served per tick: hundreds must not outlast the watchdog
        self.failed = 0  # requests that could not be served (dropped, logged)
        self.outbox = outbox
        self.profile = profile
        self.topic = topic
        self.conn = binner.conn
        create_tables(self.conn, TABLES)

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _binned_until(self) -> float:
        v = self._meta("bins_next_start_utc")
        return float(v) if v is not None else float("-inf")

    def tick(self, now_utc: float, max_days: int = 31) -> int:
        """Queue due and requested summaries; returns how many were queued."""
        p = self.binner.policy
        queued = 0
        nxt = self._meta(META_NEXT_DATE)
        if nxt is None:
            first = self._meta("bins_first_start_utc")
            if first is None:
                return 0
            nxt = datetime.fromtimestamp(float(first), p.zone).date().isoformat()
        day = Date.fromisoformat(nxt)
        binned = self._binned_until()
        for _ in range(max_days):
            if now_utc < send_after(day, p.rebase_local_time, p.zone) or binned < day_bounds(day, p.zone)[1]:
                break
            if self.outbox.is_full():
                return queued
            queued += self.queue(day, now_utc, "schedule")
            day += timedelta(days=1)
        self.conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                          (META_NEXT_DATE, day.isoformat()))
        queued += self._revise(now_utc)
        return queued + self._serve_requests(now_utc)

    def _serve_requests(self, now_utc: float) -> int:
        """A few requests per tick, oldest first. One that fails is rolled back alone and
        dropped (logged): it must not take the others down, nor come back after a restart."""
        queued = 0
        todo = self.conn.execute("SELECT id, local_date FROM summary_requests ORDER BY id LIMIT ?", (self.per_tick,)).fetchall()
        for rid, d in todo:
            if self.outbox.is_full():
                break
            self.conn.execute("SAVEPOINT summary_request")
            try:
                queued += self.queue(Date.fromisoformat(d), now_utc, "request")
            except Exception as exc:  # noqa: BLE001 - confined to this request
                self.conn.execute("ROLLBACK TO summary_request")
                if is_disk_full(exc):
                    self.conn.execute("RELEASE summary_request")
                    raise
                self.failed += 1
                _failures.log("summary", logging.ERROR, "summary request for %s dropped: %s: %s", d, type(exc).__name__, exc)
            self.conn.execute("RELEASE summary_request")
            self.conn.execute("DELETE FROM summary_requests WHERE id = ?", (rid,))
        return queued

    def _revise(self, now_utc: float) -> int:
        """Send a summarised day again (revision + 1) when a late crossing changed its bins."""
        zone = self.binner.policy.zone
        days: set[Date] = set()
        # late crossings, and late keypad presses (ratings are in the summary too)
        for table, key in (("crossings", META_LAST_ID), ("ratings", META_LAST_RATING_ID)):
            if table == "ratings" and not self.binner.policy.rating_levels:
                continue
            last = int(self._meta(key) or 0)
            max_id = self.conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
            if max_id == last:
                continue
            days |= {datetime.fromtimestamp(t, zone).date() for (t,) in self.conn.execute(
                f"SELECT t_utc FROM {table} WHERE id > ? AND id <= ? AND t_utc < ?", (last, max_id, self._binned_until()))}
            self.conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                              (key, str(max_id)))
        if not days:
            return 0
        done = {r[0] for r in self.conn.execute("SELECT local_date FROM summary_state")}
        return sum(self.queue(d, now_utc, "schedule") for d in sorted(days) if d.isoformat() in done)

    def queue(self, day: Date, now_utc: float, trigger: str) -> int:
        """Queue one summary; a scheduled one is skipped when nothing changed since the last."""
        body = device_summary(self.binner, day, self.profile)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]
        row = self.conn.execute("SELECT revision, hash FROM summary_state WHERE local_date = ?", (day.isoformat(),)).fetchone()
        if row is not None and row[1] == digest and trigger == "schedule":
            return 0
        revision = 0 if row is None else row[0] + (row[1] != digest)
        self.outbox.enqueue(self.topic, {"schema": SCHEMA, **self.binner.header, **body, "revision": revision, "trigger": trigger},
                            now_utc, about_utc=day_bounds(day, self.binner.policy.zone)[1])
        self.conn.execute(
            "INSERT INTO summary_state(local_date, revision, hash, queued_utc) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(local_date) DO UPDATE SET revision = excluded.revision, hash = excluded.hash, queued_utc = excluded.queued_utc",
            (day.isoformat(), revision, digest, now_utc),
        )
        return 1


def offline_binner(cfg: Any, conn: sqlite3.Connection) -> Binner:
    """A compute-only binner over a journal (for `footfall summary` and `footfall report`)."""
    from edge.bins import BinPolicy

    policy = BinPolicy(cfg.bins.minutes, cfg.zone, cfg.bins.primary_source, cfg.bins.rebase_local_time,
                       tuple(cfg.declared_lines()), cfg.occupancy_rule(), rating_levels=cfg.beams.keypad_levels())
    return Binner(conn, None, policy, "", {"device": cfg.device.id, "site": cfg.device.site})


def profile_of(cfg: Any) -> SiteProfile:
    return SiteProfile(cfg.site.capacity, cfg.occupancy_rule().hours, cfg.site.residents)
