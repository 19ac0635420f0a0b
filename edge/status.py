"""What `footfall status` shows: today's counts, occupancy, backlog, last publish, health.

The agent writes this snapshot to status.json every tick; the CLI reads it (a reader of
the journal would contend with the agent's writer on a slow SD card)."""

from __future__ import annotations

from datetime import datetime, time as dtime
from typing import TYPE_CHECKING, Any

from contract.timebins import bin_of, iso_utc

if TYPE_CHECKING:
    from edge.agent import Agent


def build_status(agent: Agent, backlog: int) -> dict[str, Any]:
    cfg = agent.cfg
    now = agent.clock.wall()
    zone = cfg.zone
    midnight = datetime.combine(datetime.fromtimestamp(now, zone).date(), dtime(0), zone).timestamp()
    open_bin = bin_of(now, cfg.bins.minutes, zone)
    src = cfg.bins.primary_source

    def query(j: Any) -> tuple[list[tuple[str, str, str, int]], int, int, int]:
        rows = j.conn.execute(
            "SELECT line, source, direction, COUNT(*) FROM crossings WHERE t_utc >= ? AND t_utc < ? GROUP BY 1, 2, 3",
            (midnight, now + 1),
        ).fetchall()
        last = j.conn.execute("SELECT occ_end FROM bin_state WHERE start_utc < ? ORDER BY start_utc DESC LIMIT 1", (open_bin.start_utc,)).fetchone()
        n_in, n_out = j.conn.execute(
            "SELECT COALESCE(SUM(direction = 'in'), 0), COALESCE(SUM(direction = 'out'), 0) FROM crossings"
            " WHERE source = ? AND t_utc >= ? AND t_utc < ?",
            (src, open_bin.start_utc, now + 1),
        ).fetchone()
        return rows, (last[0] if last else 0), n_in, n_out

    try:
        rows, occ_closed, n_in, n_out = agent.writer.call(query, timeout=10)
    except Exception as exc:  # the journal is unwell: still say so
        rows, occ_closed, n_in, n_out = [], 0, 0, 0
        agent.health.set("journal", False, f"status query failed: {exc}")
    today: dict[str, dict[str, dict[str, int]]] = {}
    for line, source, direction, n in rows:
        today.setdefault(line, {}).setdefault(source, {"in": 0, "out": 0})[direction] = n
    pub = agent.publisher
    return {
        "device": cfg.device.id,
        "site": cfg.device.site,
        "epoch": agent.epoch,
        "updated_utc": now,
        "updated": iso_utc(now),
        "local_date": datetime.fromtimestamp(now, zone).date().isoformat(),
        "today": today,
        "total_today": {
            d: sum(s.get(src, {}).get(d, 0) for s in today.values()) for d in ("in", "out")
        },
        "primary_source": src,
        "occupancy": max(0, occ_closed + n_in - n_out),
        "outbox_backlog": backlog,
        "held_in_memory": agent.writer.held_in_memory,
        "last_publish_utc": pub.last_publish_utc if pub else None,
        "published_total": pub.sent_count if pub else 0,
        "mqtt_connected": bool(pub and pub.connected),
        "commands": pub.inputs.snapshot() if pub else None,  # counts and the latest refused, for a person to look at
        "health": {k: {"ok": v.ok, "detail": v.detail, "since_utc": v.since_utc} for k, v in agent.health.snapshot().items()},
    }
