"""The reference index consumer: what the index system must do with the devices' messages.

It subscribes to every device (an MQTT 5 shared subscription, so several consumers can
split the load), admits each message through `intake` (bounded, validated against the
contract's schema, plausible, naming its topic's device and site) or quarantines it
(`quarantine`), drops duplicates on (device, epoch, seq) but raises one identity with two
contents, keeps the highest revision of each bin, asks a device to replay any sequence
numbers it never received (a message the broker acknowledged and then lost in a crash;
bounded and rate limited), and tells when a device's bins stop (`availability`). It is the
test oracle for "arrives exactly once". No message can end paho's thread (`guard`).
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

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from contract.messages import parse_topic
from contract.day_summary import SiteProfile, summarize_day
from index_system import quarantine
from index_system.availability import OFFLINE, heard_state
from contract.inputs import InputError, never_raises
from contract.log_limit import LogLimiter
from index_system.intake import Accepted, IntakeLimits, admit
from index_system.quarantine import QuarantineLimits
from index_system.sequences import SequenceTracker
from index_system.store_sql import migrate, open_store, shown_url, store_unreachable_errors
from index_system.week_view import week_view

log = logging.getLogger(__name__)


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
CREATE INDEX IF NOT EXISTS messages_received ON messages(received_utc);
CREATE TABLE IF NOT EXISTS replay_asks (
    device TEXT PRIMARY KEY, asked_utc REAL NOT NULL
);
"""
# Columns added after the first release; an older store gets them on open.
ADDED = {"messages": {"digest": "TEXT"}, "devices": {"last_bin_utc": "REAL", "bin_minutes": "INTEGER"}}


def open_store_when_up(url: str | Path, limits: IntakeLimits, stop: threading.Event,
                       max_wait_s: float = 30.0) -> "IndexStore | None":
    """Open the store, waiting for it while it is unreachable (a PostgreSQL restarting, a
    database host rebooting with the consumer's): the consumer starts when the store comes
    back instead of exiting, and its devices' messages wait meanwhile in its broker session.
    Retries back off from 1 s to `max_wait_s`; the wait is logged at most once a minute.
    None when `stop` is set first."""
    says = LogLimiter(log, time.monotonic, every_s=60.0, burst=1)
    wait = 1.0
    while not stop.is_set():
        try:
            return IndexStore(url, limits)
        except store_unreachable_errors() as exc:
            says.log("store", logging.WARNING, "store %s unreachable, retrying every %.0f s at most: %s", shown_url(url), max_wait_s,
                         str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        stop.wait(wait)
        wait = min(max_wait_s, wait * 2)
    return None


class IndexStore:
    """The consumer's store, a SQLite file or a PostgreSQL database (`store_sql`, chosen by
    the `url`); every method is one transaction.

    `ingest` is the one entry of devices' messages: `intake.admit` checks each message, a
    refused one goes to the bounded quarantine, and nothing a message contains can make
    `ingest` raise. Sequence numbers are tracked incrementally for `gaps()`."""

    def __init__(self, url: str | Path, limits: IntakeLimits = IntakeLimits(),
                 quarantine_limits: QuarantineLimits = QuarantineLimits()) -> None:
        self.conn, self.sql = open_store(url)
        migrate(self.conn, self.sql, SCHEMA + quarantine.DDL, {**ADDED, **quarantine.ADDED})
        self.lock = threading.Lock()
        self.limits = limits
        self.quarantine_limits = quarantine_limits
        self.log = LogLimiter(log, time.monotonic, every_s=60.0, burst=1)
        self.seqs = SequenceTracker()
        self.rescan()

    def rescan(self) -> None:
        """Rebuild the sequence tracker from the stored messages (at open, after a repair)."""
        with self.lock:
            self.seqs = SequenceTracker()
            self.caught_up_utc = float("-inf")
            for device, epoch, seq, received in self.conn.execute("SELECT device, epoch, seq, received_utc FROM messages"):
                self.seqs.add(device, epoch, seq)
                self.caught_up_utc = max(self.caught_up_utc, received)
            for device, birth in self.conn.execute("SELECT device, birth FROM devices WHERE birth IS NOT NULL"):
                self._expect_previous_epoch(device, json.loads(birth))

    def _expect_previous_epoch(self, device: str, birth: dict[str, Any]) -> None:
        """A birth names the end of the device's previous epoch (a lost tail is a hole too)."""
        previous = birth.get("previous_epoch")
        if previous:
            self.seqs.expect_end(device, previous["epoch"], previous["last_seq"])

    # -- sequences shared by several consumer instances (one PostgreSQL, a shared subscription) --

    def catch_up(self, slack_s: float = 10.0) -> int:
        """Add to the sequence tracker what other instances stored since the last call, so each
        instance sees every device's whole sequence, not only its share of the subscription.
        Rows are read from `slack_s` before the newest seen: an instance commits a row stamped a
        moment earlier (its clock, then its transaction). A row later still is found by
        `stored_in` before any replay is asked for. Returns the rows read."""
        with self.lock:
            rows = self.conn.execute("SELECT device, epoch, seq, received_utc, kind FROM messages WHERE received_utc >= ?",
                                     (self.caught_up_utc - slack_s,)).fetchall()
            for device, epoch, seq, received, kind in rows:
                self.seqs.add(device, epoch, seq)
                self.caught_up_utc = max(self.caught_up_utc, received)
            for device in {r[0] for r in rows if r[4] == "birth"}:
                row = self.conn.execute("SELECT birth FROM devices WHERE device = ?", (device,)).fetchone()
                if row and row[0]:
                    self._expect_previous_epoch(device, json.loads(row[0]))
        return len(rows)

    def stored_in(self, device: str, epoch: int, first: int, last: int) -> list[int]:
        """Sequence numbers of (device, epoch) in first..last that the store holds (whoever
        stored them), added to the tracker: the check before a replay request."""
        with self.lock:
            got = [r[0] for r in self.conn.execute("SELECT seq FROM messages WHERE device = ? AND epoch = ?"
                                                   " AND seq BETWEEN ? AND ?", (device, epoch, first, last))]
            for seq in got:
                self.seqs.add(device, epoch, seq)
        return got

    def claim_replay(self, device: str, now: float, every_s: float) -> bool:
        """Whether this instance may ask `device` for a replay now: at most one request per
        device every `every_s` among all instances sharing the store (the row is the lease)."""
        with self.lock:
            cur = self.conn.execute("INSERT INTO replay_asks(device, asked_utc) VALUES (?, ?) ON CONFLICT(device)"
                                    " DO UPDATE SET asked_utc = excluded.asked_utc WHERE replay_asks.asked_utc <= ?",
                                    (device, now, now - every_s))
            return cur.rowcount == 1

    def site_of(self, device: str) -> str | None:
        """The site an admitted message of the device named (the devices table)."""
        with self.lock:
            row = self.conn.execute("SELECT site FROM devices WHERE device = ?", (device,)).fetchone()
        return row[0] if row else None

    def ingest(self, topic_name: str, raw: bytes, prefix: str, now: float) -> str:
        """Store one message; returns 'new', 'duplicate', 'conflict' (same identity, other
        content), 'ignored' (not a device's message) or 'rejected' (quarantined). Never raises
        because of what the message holds."""
        where = parse_topic(prefix, topic_name)
        if where is None or where[2].startswith("cmd/"):
            return "ignored"
        site, device, kind = where
        try:
            msg = admit(site, device, kind, raw, self.limits, now)
        except InputError as exc:
            self.reject(topic_name, device, exc.reason, str(exc), raw, now)
            return "rejected"
        except Exception as exc:  # noqa: BLE001 - a check that failed unforeseen refuses this message only
            self.reject(topic_name, device, "intake_error", f"{type(exc).__name__}: {exc}", raw, now)
            return "rejected"
        try:
            with self.lock:
                result = self._store(msg, now)
        except Exception as exc:  # noqa: BLE001 - a storage fault or a bug stays with this message
            self.reject(topic_name, device, "store_error", f"{type(exc).__name__}: {exc}", raw, now, whole=True)
            return "rejected"
        if result == "conflict":  # kept, not dropped: the second content goes to quarantine whole
            self.reject(topic_name, device, "duplicate_identity",
                        f"({device}, {msg.body['epoch']}, {msg.body['seq']}) arrived with two different contents:"
                        " two devices configured with one id?", raw, now, whole=True)
        return result

    def reject(self, topic_name: str, device: str, reason: str, error: str, raw: bytes, now: float,
               whole: bool = False) -> None:
        """Quarantine one message (bounded) and warn with a rate limit. `whole` keeps all of an
        admitted payload, so a message refused by a storage fault can be ingested again."""
        limits = self.quarantine_limits
        if whole:
            limits = QuarantineLimits(limits.max_rows, max(limits.head_bytes, len(raw)), limits.max_devices)
        with self.lock:
            self.conn.execute(self.sql.begin)
            try:
                quarantine.keep(self.conn, limits, topic=topic_name, device=device, reason=reason, error=error,
                                raw=raw, now=now)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        level = logging.ERROR if reason in ("duplicate_identity", "store_error") else logging.WARNING
        self.log.log(f"{reason}:{device[:64]}", level, "refused message on %s (%s): %s", topic_name[:200], reason,
                     error.splitlines()[0][:200] if error else "")

    def _store(self, msg: Accepted, now: float) -> str:
        c, body, device, site, kind = self.conn, msg.body, msg.device, msg.site, msg.kind
        if kind == "status":
            self._tx(
                "INSERT INTO devices(device, site, state, epoch, updated_utc) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(device) DO UPDATE SET state = excluded.state, epoch = excluded.epoch, updated_utc = excluded.updated_utc",
                (device, site, body["state"], body["epoch"], now),
            )
            return "new"
        c.execute(self.sql.begin)
        try:
            cur = c.execute(
                "INSERT INTO messages(device, epoch, seq, kind, received_utc, digest) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (device, body["epoch"], body["seq"], kind, now, msg.digest),
            )
            if cur.rowcount == 0:
                (stored,) = c.execute("SELECT digest FROM messages WHERE device = ? AND epoch = ? AND seq = ?",
                                      (device, body["epoch"], body["seq"])).fetchone()
                c.execute("COMMIT")
                return "conflict" if stored is not None and stored != msg.digest else "duplicate"
            if kind == "bins":
                self._store_bin(device, site, body, now)
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
        self.seqs.add(device, body["epoch"], body["seq"])
        if kind == "birth":
            self._expect_previous_epoch(device, body)
        return "new"

    def _store_bin(self, device: str, site: str, body: dict[str, Any], now: float) -> None:
        b = body["bin"]
        local_date, local_hour = b["start_local"][:10], int(b["start_local"][11:13])  # checked by intake
        self.conn.execute(
            "INSERT INTO devices(device, site, last_bin_utc, bin_minutes, updated_utc) VALUES (?, ?, ?, ?, ?)"
            f" ON CONFLICT(device) DO UPDATE SET last_bin_utc = {self.sql.greatest}(COALESCE(devices.last_bin_utc, 0),"
            " excluded.last_bin_utc),"
            " bin_minutes = excluded.bin_minutes, site = COALESCE(devices.site, excluded.site)",
            (device, site, now, b["minutes"], now),
        )
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
        self.conn.execute(self.sql.begin)
        self.conn.execute(sql, args)
        self.conn.execute("COMMIT")

    def gaps(self) -> list[tuple[str, int, int, int]]:
        """(device, epoch, first_missing, last_missing) for every hole in the sequences."""
        with self.lock:
            return self.seqs.holes()

    def daily(self, site: str | None = None) -> list[dict[str, Any]]:
        """Per site and local date: visits in/out, bins, flagged bins, peak occupancy, hourly profile."""
        # TOTAL (a float) cannot overflow where SUM would, and rows stored before the intake
        # checks (an hour of 99) are left out, so one device's odd rows cannot break the report.
        total = self.sql.total.format
        flagged = total("CASE WHEN flags <> '[]' THEN 1 ELSE 0 END")
        q = (f"SELECT site, local_date, local_hour, {total('visits_in')}, {total('visits_out')}, COUNT(*), {flagged},"
             f" MAX(occupancy) FROM bins WHERE local_hour BETWEEN 0 AND 23{self.sql.typed_rows}")
        args: tuple[Any, ...] = ()
        if site:
            q += " AND site = ?"
            args = (site,)
        q += " GROUP BY site, local_date, local_hour ORDER BY site, local_date, local_hour"
        with self.lock:
            rows = self.conn.execute(q, args).fetchall()
        days: dict[tuple[str, str], dict[str, Any]] = {}
        for s, day, hour, v_in, v_out, n, flagged, peak in rows:
            d = days.setdefault((s, day), {"site": s, "date": day, "visits_in": 0, "visits_out": 0, "bins": 0,
                                            "flagged_bins": 0, "peak_occupancy": 0, "hourly_in": [0] * 24})
            d["visits_in"] += int(v_in)
            d["visits_out"] += int(v_out)
            d["bins"] += n
            d["flagged_bins"] += int(flagged)
            d["peak_occupancy"] = max(d["peak_occupancy"], peak)
            d["hourly_in"][hour] += int(v_in)
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
            row = self.conn.execute(f"SELECT MAX(local_date) FROM bins WHERE {self.sql.iso_date}").fetchone()
        try:
            return date.fromisoformat(row[0]) if row and row[0] else None
        except ValueError:  # a row stored before the intake checks
            return None

    def week(self, end: date | None = None, site: str | None = None) -> list[dict[str, Any]]:
        """Per site: the seven days ending `end` (default: the last day with bins) and the seven before."""
        end = end or self.last_date()
        if end is None:
            return []
        sites: dict[str, list[str]] = defaultdict(list)
        for s, dev in self.devices(site):
            sites[s].append(dev)
        days = [end - timedelta(days=i) for i in range(13, -1, -1)]
        return [week_view(s, {d: {dev: self._summary_or_none(dev, d) for dev in devs} for d in days}, end)
                for s, devs in sites.items()]

    def _summary_or_none(self, device: str, day: date) -> dict[str, Any] | None:
        """recompute_summary, except that rows this store cannot summarise (stored before the
        intake checks) count as a day without bins for that device only, with a log line."""
        try:
            return self.recompute_summary(device, day)
        except Exception as exc:  # noqa: BLE001 - one device's odd rows must not end the report
            self.log.log(f"summary:{device}", logging.WARNING, "cannot summarise %s on %s: %s: %s", device, day,
                         type(exc).__name__, exc)
            return None

    def device_health(self, now: float, grace_s: float) -> list[dict[str, Any]]:
        """Per device: its retained status, whether it is heard from (bins within a bin period
        plus `grace_s`), and how many of its messages were refused, by reason."""
        with self.lock:
            rows = self.conn.execute("SELECT device, site, state, last_bin_utc, bin_minutes FROM devices ORDER BY site, device").fetchall()
            refused = quarantine.counts(self.conn)
        out = []
        for device, site, state, last_bin, minutes in rows:
            reasons = {r: n for (r, d), n in refused.items() if d == device}
            out.append({"device": device, "site": site, "status": state, "heard": heard_state(last_bin, minutes, grace_s, now),
                        "last_bin_utc": last_bin, "refused": sum(n for r, n in reasons.items() if r != "duplicate_identity"),
                        "duplicate_identity": reasons.get("duplicate_identity", 0), "reasons": reasons})
        return out

    def totals(self) -> dict[str, int]:
        with self.lock:
            v_in, v_out, n = self.conn.execute("SELECT COALESCE(SUM(visits_in),0), COALESCE(SUM(visits_out),0), COUNT(*) FROM bins").fetchone()
        return {"in": int(v_in), "out": int(v_out), "bins": n}  # int: PostgreSQL sums BIGINTs as NUMERIC


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
    client_id: str = "footfall-index"  # the broker uses the username instead (use_username_as_clientid)
    replay_after_s: float = 10.0  # a hole must stay open this long before a replay is asked for
    replay_max_messages: int = 500  # one request covers at most this many sequence numbers
    replay_every_s: float = 30.0  # at most one request per device this often
    replay_max_per_round: int = 20  # devices asked per round (one round a second)
    peer_slack_s: float = 10.0  # catch_up: rows other instances stored are read back this far
    offline_grace_s: float = 300.0  # a device is offline after a bin period plus this without a bin


class IndexConsumer:
    """Subscribes, stores, requests bounded replays of missing sequence numbers, and tells
    when a device falls silent. No paho callback can raise (`contract.inputs.never_raises`)."""

    def __init__(self, settings: ConsumerSettings, store: IndexStore) -> None:
        self.s = settings
        self.store = store
        self.counts: dict[str, int] = defaultdict(int)
        self.connected = threading.Event()
        self._gap_seen: dict[tuple[str, int, int, int], float] = {}
        self._sites: dict[str, str] = {}  # device -> site, from admitted messages only
        self._heard: dict[str, str] = {}
        self.log = LogLimiter(log, time.monotonic, every_s=60.0, burst=1)
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=mqtt.MQTTv5)
        if settings.username:
            c.username_pw_set(settings.username, settings.password)
        if settings.tls:
            c.tls_set(ca_certs=settings.ca_file)
        c.on_connect = never_raises(self._on_connect, self._callback_failed)
        c.on_message = never_raises(self._on_message, self._callback_failed)
        c.on_disconnect = never_raises(self._on_disconnect, self._callback_failed)
        c.reconnect_delay_set(1, 10)
        self.client = c

    def _callback_failed(self, exc: BaseException, args: tuple[Any, ...] = ()) -> None:
        self.counts["callback_error"] += 1
        self.log.log(f"callback:{type(exc).__name__}", logging.ERROR, "index consumer: a callback failed: %s: %s",
                     type(exc).__name__, str(exc)[:200])

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            log.error("index consumer: connect refused: %s", rc)
            return
        # retainHandling=1: retained messages come with a new subscription only, not again at
        # each reconnect of our persistent session (a retained message, poison included, is
        # handled once, not after every restart).
        client.subscribe(f"$share/{self.s.group}/{self.s.prefix}/#", options=SubscribeOptions(qos=1, retainHandling=1))
        self.connected.set()
        log.info("index consumer: connected to %s:%d, subscribed to %s/#", self.s.host, self.s.port, self.s.prefix)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if self.connected.is_set():  # once per loss, not per failed reconnect
            log.warning("index consumer: lost the broker (%s); reconnecting", rc)
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """Returning (whatever happened) lets paho acknowledge the message: a refused one is
        consumed and quarantined, not redelivered after every restart."""
        try:
            result = self.store.ingest(msg.topic, msg.payload, self.s.prefix, time.time())
        except Exception as exc:  # noqa: BLE001 - a fault in handling: keep the message whole
            self._callback_failed(exc)
            where = parse_topic(self.s.prefix, msg.topic)
            self.store.reject(msg.topic, where[1] if where else "?", "handling_error", f"{type(exc).__name__}: {exc}",
                              msg.payload, time.time(), whole=True)
            return
        self.counts[result] += 1
        if result in ("new", "duplicate"):
            site, device, _ = parse_topic(self.s.prefix, msg.topic) or ("", "", "")
            self._sites[device] = site

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
        """Ask devices to resend sequence ranges missing for longer than replay_after_s: one
        request per device spans its holes, at most `replay_max_messages` numbers, one every
        `replay_every_s` (among all instances sharing the store), `replay_max_per_round`
        devices per call. Instances sharing a subscription each see every sequence
        (`catch_up`), and a hole is checked against the store before it is asked for."""
        now = time.time() if now is None else now
        sent = 0
        self.store.catch_up(self.s.peer_slack_s)
        current = set(self.store.gaps())
        self._gap_seen = {g: t for g, t in self._gap_seen.items() if g in current}
        due: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
        for gap in sorted(current):
            first_seen = self._gap_seen.setdefault(gap, now)
            if now - first_seen >= self.s.replay_after_s:
                due[(gap[0], gap[1])].append((gap[2], gap[3]))
        for (device, epoch), holes in sorted(due.items()):
            if sent >= self.s.replay_max_per_round:
                break
            # One request spans the device's holes (up to replay_max_messages numbers): holes
            # scattered by a burst shared among instances are asked for at once, not one per
            # replay_every_s; what it re-sends that is stored already is dropped as a duplicate.
            first = holes[0][0]
            limit = first + self.s.replay_max_messages - 1
            last = max(min(hi, limit) for lo, hi in holes if lo <= limit)
            site = self._sites.get(device) or self.store.site_of(device)
            if site is None:
                continue
            have = set(self.store.stored_in(device, epoch, first, last))
            missing = [q for lo, hi in holes if lo <= last for q in range(lo, min(hi, last) + 1) if q not in have]
            if not missing:
                continue  # stored by another instance since: the tracker knows it now
            first, last = missing[0], missing[-1]
            if not self.store.claim_replay(device, now, self.s.replay_every_s):
                continue  # asked recently, by this instance or another
            self.client.publish(f"{self.s.prefix}/{site}/{device}/cmd/replay",
                                json.dumps({"epoch": epoch, "from_seq": first, "to_seq": last}), qos=1)
            sent += 1
            log.info("asked %s (site %s) to replay epoch %d seq %d..%d (%d missing, for %.0f s)", device, site, epoch,
                     first, last, len(missing), now - min(self._gap_seen.get((device, epoch, lo, hi), now) for lo, hi in holes))
        return sent

    def check_availability(self, now: float | None = None) -> dict[str, str]:
        """Device -> 'online'/'offline'/'unknown' judged by the bins received (not by the
        retained status); a change is logged (offline at WARNING)."""
        now = time.time() if now is None else now
        heard = {d["device"]: d["heard"] for d in self.store.device_health(now, self.s.offline_grace_s)}
        for device, state in heard.items():
            before = self._heard.get(device)
            if before is not None and before != state:
                log.log(logging.WARNING if state == OFFLINE else logging.INFO,
                        "index consumer: device %s is %s (by the bins it sends)", device, state)
        self._heard = heard
        return heard

    def run_forever(self, stop: threading.Event) -> None:
        self.start()
        while not stop.wait(1.0):
            try:
                self.request_replays()
                self.check_availability()
            except Exception as exc:  # noqa: BLE001 - the loop outlives a failed round
                self._callback_failed(exc)
        self.stop()
