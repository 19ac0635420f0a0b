"""The reference index consumer: what the index system must do with the devices' messages.

It subscribes to every device (an MQTT 5 shared subscription, so several consumers can
split the load), validates each payload against the contract's schema, drops duplicates
on (device, epoch, seq), keeps the highest revision of each bin, and asks a device to
replay any sequence numbers it never received (a message the broker acknowledged and then
lost in a crash). It is the test oracle for "arrives exactly once".
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlite3

import jsonschema
import paho.mqtt.client as mqtt

from contract.messages import parse_topic, validate
from contract.day_summary import SiteProfile, summarize_day
from index_system.week_view import week_view

log = logging.getLogger(__name__)


def connect(path: str | Path) -> sqlite3.Connection:
    """The index store's SQLite file: WAL, durable commits, autocommit outside explicit
    transactions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def create_tables(conn: sqlite3.Connection, ddl: str) -> None:
    for stmt in ddl.split(";"):
        if stmt.strip():
            conn.execute(stmt)

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    device TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, received_utc REAL NOT NULL,
    PRIMARY KEY (device, epoch, seq)
);
CREATE TABLE IF NOT EXISTS bins (
    device TEXT NOT NULL, site TEXT NOT NULL, start_utc TEXT NOT NULL,
    revision INTEGER NOT NULL, local_date TEXT NOT NULL, local_hour INTEGER NOT NULL,
    minutes INTEGER NOT NULL, visits_in INTEGER NOT NULL, visits_out INTEGER NOT NULL,
    occupancy INTEGER NOT NULL, flags TEXT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (device, start_utc)
);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY, site TEXT, state TEXT, epoch INTEGER,
    birth TEXT, updated_utc REAL
);
CREATE TABLE IF NOT EXISTS summaries (
    device TEXT NOT NULL, site TEXT NOT NULL, local_date TEXT NOT NULL, revision INTEGER NOT NULL,
    payload TEXT NOT NULL, PRIMARY KEY (device, local_date)
);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY, topic TEXT, error TEXT, payload BLOB, received_utc REAL
);
"""


class IndexStore:
    """The consumer's SQLite store; every method is one transaction."""

    def __init__(self, path: str | Path) -> None:
        self.conn = connect(path)
        create_tables(self.conn, SCHEMA)
        self.lock = threading.Lock()

    def ingest(self, topic_name: str, raw: bytes, prefix: str, now: float) -> str:
        """Store one message; returns 'new', 'duplicate', 'ignored' or 'rejected'."""
        where = parse_topic(prefix, topic_name)
        if where is None:
            return "ignored"
        site, device, kind = where
        with self.lock:
            try:
                body = json.loads(raw)
                validate(kind, body)
            except (ValueError, jsonschema.ValidationError) as exc:
                self._tx("INSERT INTO rejects(topic, error, payload, received_utc) VALUES (?, ?, ?, ?)",
                         (topic_name, str(exc)[:500], raw, now))
                log.warning("rejected message on %s: %s", topic_name, str(exc).splitlines()[0])
                return "rejected"
            if kind == "status":
                self._tx(
                    "INSERT INTO devices(device, site, state, epoch, updated_utc) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT(device) DO UPDATE SET state = excluded.state, epoch = excluded.epoch, updated_utc = excluded.updated_utc",
                    (device, site, body["state"], body["epoch"], now),
                )
                return "new"
            c = self.conn
            c.execute("BEGIN IMMEDIATE")
            try:
                cur = c.execute(
                    "INSERT OR IGNORE INTO messages(device, epoch, seq, kind, received_utc) VALUES (?, ?, ?, ?, ?)",
                    (device, body["epoch"], body["seq"], kind, now),
                )
                if cur.rowcount == 0:
                    c.execute("COMMIT")
                    return "duplicate"
                if kind == "bins":
                    self._store_bin(device, site, body)
                elif kind == "summary":
                    c.execute(
                        "INSERT INTO summaries(device, site, local_date, revision, payload) VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT(device, local_date) DO UPDATE SET revision = excluded.revision, payload = excluded.payload"
                        " WHERE excluded.revision >= summaries.revision",
                        (device, site, body["date"], body["revision"], json.dumps(body)),
                    )
                elif kind == "birth":
                    c.execute(
                        "INSERT INTO devices(device, site, birth, updated_utc) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT(device) DO UPDATE SET birth = excluded.birth, site = excluded.site, updated_utc = excluded.updated_utc",
                        (device, site, json.dumps(body), now),
                    )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            return "new"

    def _store_bin(self, device: str, site: str, body: dict[str, Any]) -> None:
        b = body["bin"]
        local_date, local_hour = b["start_local"][:10], int(b["start_local"][11:13])
        self.conn.execute(
            "INSERT INTO bins(device, site, start_utc, revision, local_date, local_hour, minutes, visits_in, visits_out,"
            " occupancy, flags, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(device, start_utc) DO UPDATE SET revision = excluded.revision, visits_in = excluded.visits_in,"
            " visits_out = excluded.visits_out, occupancy = excluded.occupancy, flags = excluded.flags, payload = excluded.payload"
            " WHERE excluded.revision > bins.revision",
            (device, site, b["start_utc"], body["revision"], local_date, local_hour, b["minutes"],
             body["total"]["in"], body["total"]["out"], body["occupancy"]["end"], json.dumps(body["flags"]), json.dumps(body)),
        )

    def _tx(self, sql: str, args: tuple[Any, ...]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute(sql, args)
        self.conn.execute("COMMIT")

    def gaps(self) -> list[tuple[str, int, int, int]]:
        """(device, epoch, first_missing, last_missing) for every hole in the sequences."""
        with self.lock:
            rows = self.conn.execute("SELECT device, epoch, seq FROM messages ORDER BY device, epoch, seq").fetchall()
        out: list[tuple[str, int, int, int]] = []
        expect: dict[tuple[str, int], int] = defaultdict(lambda: 1)
        for device, epoch, seq in rows:
            nxt = expect[(device, epoch)]
            if seq > nxt:
                out.append((device, epoch, nxt, seq - 1))
            expect[(device, epoch)] = seq + 1
        return out

    def daily(self, site: str | None = None) -> list[dict[str, Any]]:
        """Per site and local date: visits in/out, bins, flagged bins, peak occupancy, hourly profile."""
        q = "SELECT site, local_date, local_hour, SUM(visits_in), SUM(visits_out), COUNT(*), SUM(flags != '[]'), MAX(occupancy) FROM bins"
        args: tuple[Any, ...] = ()
        if site:
            q += " WHERE site = ?"
            args = (site,)
        q += " GROUP BY site, local_date, local_hour ORDER BY site, local_date, local_hour"
        with self.lock:
            rows = self.conn.execute(q, args).fetchall()
        days: dict[tuple[str, str], dict[str, Any]] = {}
        for s, day, hour, v_in, v_out, n, flagged, peak in rows:
            d = days.setdefault((s, day), {"site": s, "date": day, "visits_in": 0, "visits_out": 0, "bins": 0,
                                            "flagged_bins": 0, "peak_occupancy": 0, "hourly_in": [0] * 24})
            d["visits_in"] += v_in
            d["visits_out"] += v_out
            d["bins"] += n
            d["flagged_bins"] += flagged
            d["peak_occupancy"] = max(d["peak_occupancy"], peak)
            d["hourly_in"][hour] += v_in
        return list(days.values())

    # -- day summaries and the week view (the same figures as the devices') -----------------

    def devices(self, site: str | None = None) -> list[tuple[str, str]]:
        """(site, device) pairs that have bins."""
        q, args = "SELECT DISTINCT site, device FROM bins", ()
        if site:
            q, args = q + " WHERE site = ?", (site,)
        with self.lock:
            return [tuple(r) for r in self.conn.execute(q + " ORDER BY site, device", args)]

    def site_profile(self, device: str) -> SiteProfile:
        """Capacity and opening hours from the device's latest birth message."""
        with self.lock:
            row = self.conn.execute("SELECT birth FROM devices WHERE device = ?", (device,)).fetchone()
        birth = json.loads(row[0]) if row and row[0] else {}
        return SiteProfile.from_json(birth.get("site_profile"))

    def recompute_summary(self, device: str, day: date) -> dict[str, Any] | None:
        """The day summary from the bins stored here (highest revisions), or None without bins."""
        from zoneinfo import ZoneInfo

        with self.lock:
            rows = self.conn.execute("SELECT payload FROM bins WHERE device = ? AND local_date = ? ORDER BY start_utc",
                                     (device, day.isoformat())).fetchall()
        if not rows:
            return None
        bins = [json.loads(r[0]) for r in rows]
        first = bins[0]
        return summarize_day(bins, day=day, zone=ZoneInfo(first["bin"]["timezone"]), minutes=first["bin"]["minutes"],
                             profile=self.site_profile(device), source=first["total"]["source"])

    def received_summary(self, device: str, day: date) -> dict[str, Any] | None:
        """The summary the device itself sent for that day (highest revision), if any."""
        with self.lock:
            row = self.conn.execute("SELECT payload FROM summaries WHERE device = ? AND local_date = ?",
                                    (device, day.isoformat())).fetchone()
        return json.loads(row[0]) if row else None

    def site_bins(self, site: str, day: date) -> list[dict[str, Any]]:
        """The bins (payloads, highest revisions) of a site's devices on a local date, in time order."""
        with self.lock:
            rows = self.conn.execute("SELECT payload FROM bins WHERE site = ? AND local_date = ? ORDER BY start_utc",
                                     (site, day.isoformat())).fetchall()
        return [json.loads(r[0]) for r in rows]

    def last_date(self) -> date | None:
        with self.lock:
            row = self.conn.execute("SELECT MAX(local_date) FROM bins").fetchone()
        return date.fromisoformat(row[0]) if row and row[0] else None

    def week(self, end: date | None = None, site: str | None = None) -> list[dict[str, Any]]:
        """Per site: the seven days ending `end` (default: the last day with bins) and the seven before."""
        end = end or self.last_date()
        if end is None:
            return []
        sites: dict[str, list[str]] = defaultdict(list)
        for s, dev in self.devices(site):
            sites[s].append(dev)
        days = [end - timedelta(days=i) for i in range(13, -1, -1)]
        return [week_view(s, {d: {dev: self.recompute_summary(dev, d) for dev in devs} for d in days}, end)
                for s, devs in sites.items()]

    def totals(self) -> dict[str, int]:
        with self.lock:
            v_in, v_out, n = self.conn.execute("SELECT COALESCE(SUM(visits_in),0), COALESCE(SUM(visits_out),0), COUNT(*) FROM bins").fetchone()
        return {"in": v_in, "out": v_out, "bins": n}


@dataclass
class ConsumerSettings:
    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    tls: bool = False
    prefix: str = "footfall/v1"
    group: str = "index"
    client_id: str = "footfall-index"
    replay_after_s: float = 10.0


class IndexConsumer:
    """Subscribes, stores, and requests replays of missing sequence numbers."""

    def __init__(self, settings: ConsumerSettings, store: IndexStore) -> None:
        self.s = settings
        self.store = store
        self.counts: dict[str, int] = defaultdict(int)
        self.connected = threading.Event()
        self._gap_seen: dict[tuple[str, int, int, int], float] = {}
        self._sites: dict[str, str] = {}
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=mqtt.MQTTv5)
        if settings.username:
            c.username_pw_set(settings.username, settings.password)
        if settings.tls:
            c.tls_set(ca_certs=settings.ca_file)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        c.reconnect_delay_set(1, 10)
        self.client = c

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            log.error("index consumer: connect refused: %s", rc)
            return
        client.subscribe(f"$share/{self.s.group}/{self.s.prefix}/#", qos=1)
        self.connected.set()
        log.info("index consumer: connected to %s:%d, subscribed to %s/#", self.s.host, self.s.port, self.s.prefix)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if self.connected.is_set():  # once per loss, not per failed reconnect
            log.warning("index consumer: lost the broker (%s); reconnecting", rc)
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        where = parse_topic(self.s.prefix, msg.topic)
        if where is not None:
            self._sites[where[1]] = where[0]
            if where[2].startswith("cmd/"):
                return
        result = self.store.ingest(msg.topic, msg.payload, self.s.prefix, time.time())
        self.counts[result] += 1

    def start(self) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 86400  # keep our queue across our own restarts
        self.client.connect_async(self.s.host, self.s.port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def request_replays(self, now: float | None = None) -> int:
        """Ask devices to resend sequence ranges missing for longer than replay_after_s."""
        now = time.time() if now is None else now
        sent = 0
        current = set(self.store.gaps())
        self._gap_seen = {g: t for g, t in self._gap_seen.items() if g in current}
        for gap in current:
            first_seen = self._gap_seen.setdefault(gap, now)
            if now - first_seen < self.s.replay_after_s:
                continue
            device, epoch, first, last = gap
            site = self._sites.get(device)
            if site is None:
                continue
            self.client.publish(f"{self.s.prefix}/{site}/{device}/cmd/replay",
                                json.dumps({"epoch": epoch, "from_seq": first, "to_seq": last}), qos=1)
            self._gap_seen[gap] = now  # ask again later if it stays open
            sent += 1
            log.info("asked %s (site %s) to replay epoch %d seq %d..%d (missing for %.0f s)", device, site, epoch,
                     first, last, now - first_seen)
        return sent

    def run_forever(self, stop: threading.Event) -> None:
        self.start()
        while not stop.wait(1.0):
            self.request_replays()
        self.stop()
