"""Helpers for the index consumer's hostile-input tests: a consumer on the shipped TLS/ACL
broker, and well-formed messages a good device sends."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from index_system.consumer import ConsumerSettings, IndexConsumer, IndexStore
from simulator.local_broker import SECURE_USERS, Broker

PREFIX = "footfall/v1"
SHANGHAI = timezone(timedelta(hours=8))


def secure_consumer(broker: Broker, db: Path, **settings: Any) -> IndexConsumer:
    """The reference consumer as `index` over TLS, connected and subscribed."""
    cons = IndexConsumer(ConsumerSettings(host="localhost", port=broker.port, username="index",
                                          password=SECURE_USERS["index"], tls=True, ca_file=str(broker.tls.ca_cert),
                                          **settings), IndexStore(db))
    cons.start()
    assert cons.connected.wait(10), "consumer did not connect"
    time.sleep(0.2)  # the SUBACK follows the CONNACK
    return cons


def forget_session(broker: Broker) -> None:
    """End the consumer's persistent session at the broker (client id = username `index`),
    so the next consumer starts as a new one: a new subscription, retained messages first."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="index", protocol=mqtt.MQTTv5)
    c.username_pw_set("index", SECURE_USERS["index"])
    c.tls_set(ca_certs=str(broker.tls.ca_cert))
    c.connect("127.0.0.1", broker.port, clean_start=True)  # session expiry 0: gone at disconnect
    c.loop_start()
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()


def bin_body(device: str, site: str, seq: int, start: datetime, n_in: int = 1, epoch: int = 1, **changes: Any) -> dict:
    """A one-minute bin as the agent sends it (contract/schemas/bins.schema.json)."""
    start = start.astimezone(timezone.utc).replace(second=0, microsecond=0)
    local = start.astimezone(SHANGHAI)
    body = {
        "schema": "footfall.bins/1", "device": device, "site": site, "epoch": epoch, "seq": seq, "historical": False,
        "revision": 0,
        "bin": {"start_utc": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end_utc": (start + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "start_local": local.isoformat(), "timezone": "Asia/Shanghai", "utc_offset_min": 480, "minutes": 1},
        "lines": {"door-1": {"beam": {"in": n_in, "out": 0}}},
        "total": {"in": n_in, "out": 0, "source": "beam"},
        "occupancy": {"end": n_in, "period_start_utc": start.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "flags": [],
    }
    body.update(changes)
    return body


def bin_at(device: str, site: str, seq: int, minutes_ago: int = 0, **kw: Any) -> bytes:
    """bin_body as bytes, for a bin that started `minutes_ago` (plus one) minutes ago."""
    start = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago + 1)
    return json.dumps(bin_body(device, site, seq, start, **kw)).encode()


def topic(site: str, device: str, kind: str) -> str:
    return f"{PREFIX}/{site}/{device}/{kind}"


def stored_bins(cons: IndexConsumer, device: str) -> int:
    with cons.store.lock:
        return cons.store.conn.execute("SELECT COUNT(*) FROM bins WHERE device = ?", (device,)).fetchone()[0]


def refused(cons: IndexConsumer) -> dict[str, int]:
    """reason -> count, all devices."""
    with cons.store.lock:
        return dict(cons.store.conn.execute("SELECT reason, SUM(n) FROM reject_counts GROUP BY reason").fetchall())


def alive(cons: IndexConsumer) -> bool:
    thread = cons.client._thread  # paho's network thread: it ends when a callback raises
    return thread is not None and thread.is_alive()
