"""The outbox: messages waiting for their PUBACK, in the journal's SQLite file.

Each message gets, when queued, the agent's boot epoch and the next sequence number of
that epoch; both travel in the payload, so a message sent twice (a lost PUBACK, a replay
request) is recognised by the index system as the same message. A row is marked sent
only when its PUBACK arrives. Sent rows are kept a few days to answer replay requests.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from edge.journal import create_tables

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY,
    epoch       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    topic       TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    qos         INTEGER NOT NULL,
    retain      INTEGER NOT NULL,
    created_utc REAL    NOT NULL,
    about_utc   REAL    NOT NULL,
    sent_utc    REAL,
    requeued    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (epoch, seq)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (sent_utc, id);
"""
# journals made before replays went after fresh messages lack the column
_MIGRATE = "ALTER TABLE outbox ADD COLUMN requeued INTEGER NOT NULL DEFAULT 0"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    epoch: int
    seq: int
    topic: str
    payload: str
    qos: int
    retain: bool
    created_utc: float
    about_utc: float  # the time the message describes (a bin's end); `historical` is judged on it


class Outbox:
    """Queue operations on a connection owned by the journal's thread."""

    def __init__(self, conn: sqlite3.Connection, epoch: int, max_messages: int) -> None:
        self.conn = conn
        self.epoch = epoch
        self.max_messages = max_messages
        create_tables(conn, SCHEMA)
        if "requeued" not in {r[1] for r in conn.execute("PRAGMA table_info(outbox)")}:
            conn.execute(_MIGRATE)
        row = conn.execute("SELECT MAX(seq) FROM outbox WHERE epoch = ?", (epoch,)).fetchone()
        self._next_seq = (row[0] or 0) + 1

    def backlog(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_utc IS NULL").fetchone()[0]

    def is_full(self) -> bool:
        return self.backlog() >= self.max_messages

    def enqueue(self, topic: str, body: dict[str, Any], now_utc: float, *, qos: int = 1, retain: bool = False,
                about_utc: float | None = None) -> int:
        """Queue a message (inside the caller's transaction); returns its seq."""
        seq = self._next_seq
        payload = json.dumps({**body, "epoch": self.epoch, "seq": seq}, separators=(",", ":"), sort_keys=True)
        self.conn.execute(
            "INSERT INTO outbox(epoch, seq, topic, payload, qos, retain, created_utc, about_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.epoch, seq, topic, payload, qos, int(retain), now_utc, now_utc if about_utc is None else about_utc),
        )
        self._next_seq += 1
        return seq

    def pending(self, limit: int, skip_ids: set[int] | frozenset[int] = frozenset()) -> list[OutboxRow]:
        """Oldest unsent messages first (the backlog drains in order); messages re-queued by a
        replay request after every fresh one, so a replay never delays fresh bins."""
        cur = self.conn.execute(
            "SELECT id, epoch, seq, topic, payload, qos, retain, created_utc, about_utc FROM outbox"
            " WHERE sent_utc IS NULL ORDER BY requeued, id LIMIT ?",
            (limit + len(skip_ids),),
        )
        rows = [OutboxRow(*r[:6], bool(r[6]), r[7], r[8]) for r in cur if r[0] not in skip_ids]
        return rows[:limit]

    def mark_sent(self, ids: list[int], now_utc: float) -> None:
        self.conn.executemany("UPDATE outbox SET sent_utc = ?, requeued = 0 WHERE id = ? AND sent_utc IS NULL",
                              [(now_utc, i) for i in ids])

    def requeue(self, epoch: int, first_seq: int, last_seq: int) -> int:
        """Answer a replay request: mark kept messages of an epoch's seq range unsent again,
        to go out behind every fresh message."""
        cur = self.conn.execute(
            "UPDATE outbox SET sent_utc = NULL, requeued = 1 WHERE epoch = ? AND seq BETWEEN ? AND ? AND sent_utc IS NOT NULL",
            (epoch, first_seq, last_seq),
        )
        return cur.rowcount

    def prune(self, older_than_utc: float) -> int:
        """Drop sent messages older than the cut, except each epoch's last one: the next
        boot's birth message names it (`last_seq`), so a lost tail can still be asked for."""
        cur = self.conn.execute(
            "DELETE FROM outbox WHERE sent_utc IS NOT NULL AND sent_utc < ?"
            " AND id NOT IN (SELECT MAX(id) FROM outbox GROUP BY epoch)",
            (older_than_utc,),
        )
        return cur.rowcount

    def last_seq(self, epoch: int) -> int | None:
        """The last sequence number queued in `epoch` (None: nothing was queued)."""
        return self.conn.execute("SELECT MAX(seq) FROM outbox WHERE epoch = ?", (epoch,)).fetchone()[0]

    def last_sent_utc(self) -> float | None:
        return self.conn.execute("SELECT MAX(sent_utc) FROM outbox").fetchone()[0]
