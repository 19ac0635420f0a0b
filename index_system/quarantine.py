"""The index store's quarantine: messages it refused, kept for a person to look at, bounded.

Two tables in the index store (SQLite or PostgreSQL). `rejects` keeps the latest `max_rows` refused
messages, each cut to `head_bytes`; `reject_counts` keeps one counter per (reason, device)
for ever, so the summary survives the rows' rotation. Distinct devices are bounded too: a
flood of invented names is counted under "*". A refused message is consumed (acknowledged),
never left for QoS 1 to redeliver.
"""

from __future__ import annotations

from dataclasses import dataclass

from index_system.store_sql import Connection

DDL = """
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY, topic TEXT, error TEXT, payload BLOB, received_utc REAL
);
CREATE TABLE IF NOT EXISTS reject_counts (
    reason TEXT NOT NULL, device TEXT NOT NULL, n INTEGER NOT NULL, first_utc REAL NOT NULL, last_utc REAL NOT NULL,
    PRIMARY KEY (reason, device)
);
"""
# Columns added after the first release; an old store gets them on open.
ADDED = {"rejects": {"reason": "TEXT", "device": "TEXT", "size": "INTEGER"}}


@dataclass(frozen=True)
class QuarantineLimits:
    max_rows: int = 1000
    head_bytes: int = 512
    max_devices: int = 10_000  # distinct (reason, device) counters before new ones go to "*"


def keep(conn: Connection, limits: QuarantineLimits, *, topic: str, device: str, reason: str, error: str,
         raw: bytes, now: float) -> None:
    """Record one refused message inside the caller's transaction."""
    conn.execute("INSERT INTO rejects(topic, reason, device, error, payload, size, received_utc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (topic[:256], reason, device[:64], error[:500], bytes(raw[: limits.head_bytes]), len(raw), now))
    conn.execute("DELETE FROM rejects WHERE id <= (SELECT MAX(id) FROM rejects) - ?", (limits.max_rows,))
    known = conn.execute("SELECT 1 FROM reject_counts WHERE reason = ? AND device = ?", (reason, device[:64])).fetchone()
    if known is None and conn.execute("SELECT COUNT(*) FROM reject_counts").fetchone()[0] >= limits.max_devices:
        device = "*"
    conn.execute("INSERT INTO reject_counts(reason, device, n, first_utc, last_utc) VALUES (?, ?, 1, ?, ?)"
                 " ON CONFLICT(reason, device) DO UPDATE SET n = reject_counts.n + 1, last_utc = excluded.last_utc",
                 (reason, device[:64], now, now))


def counts(conn: Connection) -> dict[tuple[str, str], int]:
    """(reason, device) -> how many messages were refused for that reason."""
    return {(r, d): n for r, d, n in conn.execute("SELECT reason, device, n FROM reject_counts")}
