"""The crossing journal: the device's single source of truth, in one SQLite file.

A source's event is acknowledged upstream (the microcontroller's ack, the end of a video)
only after the journal has committed it. Commits use WAL with ``synchronous=FULL``: each
commit is on stable storage when the call returns, so a power cut loses nothing that was
acknowledged. Writers batch (one transaction per serial read or per camera frame), which
keeps the fsync count near the event rate without a time-based batching window that
could lose acknowledged events.

Everything downstream (bins, outbox, summaries) is derived from these tables and can be
rebuilt. The class is not thread-safe by itself: the agent gives it to one owner thread
(`edge.journal_writer.JournalWriter`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from edge.crossing import Crossing
from contract.ratings import Press, classify

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS crossings (
    id           INTEGER PRIMARY KEY,
    t_utc        REAL    NOT NULL,
    line         TEXT    NOT NULL,
    direction    TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    source       TEXT    NOT NULL CHECK (source IN ('beam', 'camera', 'fused')),
    confidence   REAL    NOT NULL,
    source_ref   TEXT    NOT NULL,
    recorded_utc REAL    NOT NULL,
    UNIQUE (source, source_ref)
);
CREATE INDEX IF NOT EXISTS crossings_by_time ON crossings (t_utc);
CREATE TABLE IF NOT EXISTS beam_events (
    id         INTEGER PRIMARY KEY,
    door       TEXT    NOT NULL,
    mcu_epoch  INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    beam       INTEGER NOT NULL,
    edge       INTEGER NOT NULL,
    mcu_us     INTEGER NOT NULL,
    t_utc      REAL    NOT NULL,
    UNIQUE (door, mcu_epoch, seq)
);
CREATE TABLE IF NOT EXISTS health_log (
    id        INTEGER PRIMARY KEY,
    t_utc     REAL NOT NULL,
    component TEXT NOT NULL,
    ok        INTEGER NOT NULL,
    detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS health_by_time ON health_log (t_utc);
CREATE TABLE IF NOT EXISTS ratings (
    id           INTEGER PRIMARY KEY,
    door         TEXT    NOT NULL,
    mcu_epoch    INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    keypad       INTEGER NOT NULL,
    level        INTEGER NOT NULL,
    mcu_us       INTEGER NOT NULL,
    t_utc        REAL    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('counted', 'repeat', 'out_of_range')),
    recorded_utc REAL    NOT NULL,
    UNIQUE (door, mcu_epoch, seq)
);
CREATE INDEX IF NOT EXISTS ratings_by_time ON ratings (t_utc);
CREATE TABLE IF NOT EXISTS audits (
    id          INTEGER PRIMARY KEY,
    started_utc REAL    NOT NULL,
    ended_utc   REAL    NOT NULL,
    passed      INTEGER NOT NULL,
    record      TEXT    NOT NULL
);
"""


class BeamEventRow(NamedTuple):
    """One beam edge as the microcontroller reported it, with the host's receive time."""

    mcu_epoch: int  # the microcontroller's boot epoch (changes when it resets)
    seq: int  # u32 sequence within that epoch
    beam: int
    edge: int  # 1 = beam broken, 0 = beam cleared
    mcu_us: int  # microcontroller timestamp, microseconds since its boot
    t_utc: float  # host UTC time assigned on receipt


class JournalFullError(RuntimeError):
    """The disk (or the journal's size cap) is full: nothing was committed."""


def create_tables(conn: sqlite3.Connection, ddl: str) -> None:
    """Run CREATE ... IF NOT EXISTS statements one by one (executescript would commit an
    open transaction behind the caller's back)."""
    for stmt in ddl.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a journal-style SQLite file with the durability settings the project relies on."""
    path = Path(path)
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLite's 'database or disk is full' (SQLITE_FULL) and ENOSPC."""
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "full" in str(exc).lower()
    return isinstance(exc, OSError) and exc.errno == 28


class Journal:
    """Durable, idempotent store of crossings and raw beam events."""

    def __init__(self, path: str | Path, *, max_pages: int | None = None) -> None:
        self.path = Path(path)
        self.conn = connect(self.path)
        if max_pages is not None:  # a size cap (tests use it to stand for a full disk)
            self.conn.execute(f"PRAGMA max_page_count={int(max_pages)}")
        with self.transaction():
            create_tables(self.conn, _SCHEMA)
        self.conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )

    # -- transactions ---------------------------------------------------------------

    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    # -- writes ---------------------------------------------------------------------

    def add_crossings(self, crossings: Sequence[Crossing]) -> int:
        """Commit crossings durably; ones already journaled (same source, source_ref)
        are ignored. Returns how many were new."""
        now = time.time()
        rows = [
            (c.t_utc, c.line, c.direction, c.source, c.confidence, c.source_ref, now)
            for c in crossings
        ]
        with self.transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO crossings"
                "(t_utc, line, direction, source, confidence, source_ref, recorded_utc)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return self.conn.total_changes - before

    def add_beam_events(self, door: str, events: Iterable[BeamEventRow]) -> int:
        """Commit raw beam events durably, idempotent on (door, mcu_epoch, seq).
        Returns how many were new; the caller may ack the microcontroller on return."""
        rows = [(door, *e) for e in events]
        with self.transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO beam_events"
                "(door, mcu_epoch, seq, beam, edge, mcu_us, t_utc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return self.conn.total_changes - before

    def add_ratings(self, door: str, presses: Sequence[Press], *, repeat_s: float, levels: int) -> int:
        """Commit keypad presses durably, idempotent on (door, mcu_epoch, seq), each with its
        status from the repeat filter (`contract.ratings.classify`) against the keypad's last
        journaled press. Returns how many were new."""
        now = time.time()
        with self.transaction():
            new = [p for p in presses if self.conn.execute(
                "SELECT 1 FROM ratings WHERE door = ? AND mcu_epoch = ? AND seq = ?", (door, p.mcu_epoch, p.seq)).fetchone() is None]
            previous: dict[int, Press] = {}
            for keypad in {p.keypad for p in new}:
                row = self.conn.execute(
                    "SELECT mcu_epoch, seq, keypad, level, mcu_us, t_utc FROM ratings WHERE door = ? AND keypad = ?"
                    " ORDER BY id DESC LIMIT 1", (door, keypad)).fetchone()
                if row is not None:
                    previous[keypad] = Press(*row)
            statuses = classify(previous, new, repeat_s=repeat_s, levels=levels)
            self.conn.executemany(
                "INSERT INTO ratings(door, mcu_epoch, seq, keypad, level, mcu_us, t_utc, status, recorded_utc)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(door, p.mcu_epoch, p.seq, p.keypad, p.level, p.mcu_us, p.t_utc, st, now) for p, st in zip(new, statuses)],
            )
            return len(new)

    def add_door_events(self, door: str, events: Iterable[BeamEventRow], presses: Sequence[Press], *,
                        repeat_s: float, levels: int) -> int:
        """Beam edges and keypad presses of one read in one transaction: they share the
        board's sequence, so the resume point never skips a press that was not committed."""
        with self.transaction():
            return self.add_beam_events(door, events) + self.add_ratings(door, presses, repeat_s=repeat_s, levels=levels)

    def add_audit(self, started_utc: float, ended_utc: float, passed: bool, record: dict[str, Any]) -> int:
        """Store a `footfall validate` audit (the record as JSON); returns its id."""
        with self.transaction():
            cur = self.conn.execute("INSERT INTO audits(started_utc, ended_utc, passed, record) VALUES (?, ?, ?, ?)",
                                    (started_utc, ended_utc, int(passed), json.dumps(record, sort_keys=True)))
            return int(cur.lastrowid)

    def log_health(self, t_utc: float, component: str, ok: bool, detail: str = "") -> None:
        """Record a change of a component's health; bins derive their quality flags from it."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO health_log(t_utc, component, ok, detail) VALUES (?, ?, ?, ?)",
                (t_utc, component, int(ok), detail),
            )

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- reads ----------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def last_beam_seq(self, door: str, mcu_epoch: int) -> int | None:
        """The highest committed sequence for a door's microcontroller epoch (resume point)."""
        row = self.conn.execute(
            "SELECT MAX(seq) FROM beam_events WHERE door = ? AND mcu_epoch = ?",
            (door, mcu_epoch),
        ).fetchone()
        return row[0]

    def count_beam_events(self, door: str, mcu_epoch: int, beam: int) -> int:
        """Journaled edges of one beam in one epoch (reconciled against the board's counter)."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM beam_events WHERE door = ? AND mcu_epoch = ? AND beam = ?", (door, mcu_epoch, beam)
        ).fetchone()[0]

    def last_event_seq(self, door: str, mcu_epoch: int) -> int | None:
        """The highest committed sequence of a door's epoch over beam edges and keypad
        presses (they share the board's sequence): the point to resume from."""
        row = self.conn.execute(
            "SELECT MAX(s) FROM (SELECT MAX(seq) AS s FROM beam_events WHERE door = ? AND mcu_epoch = ?"
            " UNION ALL SELECT MAX(seq) FROM ratings WHERE door = ? AND mcu_epoch = ?)",
            (door, mcu_epoch, door, mcu_epoch),
        ).fetchone()
        return row[0]

    def ratings_between(self, start_utc: float, end_utc: float) -> list[tuple[str, Press, str]]:
        """(door, press, status) journaled for [start, end), in time order."""
        cur = self.conn.execute(
            "SELECT door, mcu_epoch, seq, keypad, level, mcu_us, t_utc, status FROM ratings"
            " WHERE t_utc >= ? AND t_utc < ? ORDER BY t_utc, id", (start_utc, end_utc))
        return [(r[0], Press(*r[1:7]), r[7]) for r in cur]

    def audits(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest audits, newest first (each record with its id)."""
        rows = self.conn.execute("SELECT id, record FROM audits ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [{"id": i, **json.loads(r)} for i, r in rows]

    def last_passing_audit(self) -> dict[str, Any] | None:
        """The newest audit that passed: its accuracy is what the birth message declares."""
        row = self.conn.execute("SELECT id, record FROM audits WHERE passed = 1 ORDER BY ended_utc DESC, id DESC LIMIT 1").fetchone()
        return {"id": row[0], **json.loads(row[1])} if row else None

    def beam_events_after(self, door: str, row_id: int = 0) -> list[tuple[int, BeamEventRow]]:
        """Committed beam events of a door with journal id > row_id, in arrival order
        (the direction decoder replays these after a restart)."""
        cur = self.conn.execute(
            "SELECT id, mcu_epoch, seq, beam, edge, mcu_us, t_utc FROM beam_events"
            " WHERE door = ? AND id > ? ORDER BY id",
            (door, row_id),
        )
        return [(r[0], BeamEventRow(*r[1:])) for r in cur]

    def crossings_between(self, start_utc: float, end_utc: float) -> list[Crossing]:
        cur = self.conn.execute(
            "SELECT t_utc, line, direction, source, confidence, source_ref FROM crossings"
            " WHERE t_utc >= ? AND t_utc < ? ORDER BY t_utc, id",
            (start_utc, end_utc),
        )
        return [Crossing(*r) for r in cur]

    def count_crossings(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM crossings").fetchone()[0]

    def close(self) -> None:
        self.conn.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT; a full disk surfaces as JournalFullError."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.depth_owner = False

    def __enter__(self) -> sqlite3.Connection:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self.depth_owner = True
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.depth_owner:
            return
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.OperationalError as commit_exc:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                if is_disk_full(commit_exc):
                    raise JournalFullError(str(commit_exc)) from commit_exc
                raise
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        if exc is not None and is_disk_full(exc):
            raise JournalFullError(str(exc)) from exc
