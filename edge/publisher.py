"""Publishes the outbox over MQTT with paho-mqtt 2; never blocks counting.

- QoS 1; a row is marked sent only when its PUBACK arrives (paho may call on_publish
  before publish() returns, so acks for a mid not yet recorded are parked and matched).
- A bounded in-flight window; the backlog drains oldest first, flagged `historical`.
- Retained availability: last will "offline", "online" on every connect.
- MQTT 5, falling back to 3.1.1 when the broker refuses the protocol version.
- Replay requests from the index system (cmd/replay) re-queue kept messages, bounded in
  size and rate; re-queued messages go after fresh ones.
- Commands are input from outside: `_on_message` is their one entry (size, depth, schema,
  retained refused); every paho callback is wrapped so it can never raise and end paho's
  network thread (contract/inputs.py); `loop_alive()` tells the agent if it ended anyway.
"""

from __future__ import annotations

import json
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from contract.inputs import InputError, InputGuard, parse_json
from contract.log_limit import LogLimiter
from edge.config import CommandSettings, MqttSettings
from contract.messages import topic, validate
from edge.health import Health
from edge.journal import Journal
from edge.journal_writer import JournalWriter
from edge.outbox import Outbox, OutboxRow

log = logging.getLogger(__name__)

# CONNACK codes meaning "speak an older protocol": v5 0x84, v3 1.
_UNSUPPORTED_PROTOCOL = {0x84, 1}
# A command is a small flat object (contract/schemas/cmd-*.schema.json).
COMMAND_MAX_BYTES = 1024
COMMAND_MAX_DEPTH = 2


class CommandRefused(ValueError):
    """A well-formed command the agent will not run (out of range, too often, too many)."""


class Publisher:
    def __init__(
        self,
        settings: MqttSettings,
        device: str,
        site: str,
        epoch: int,
        writer: JournalWriter,
        outbox: Outbox,
        health: Health,
        wall: Callable[[], float],
        historical_after_s: float,
        commands: dict[str, Callable[[dict[str, Any]], None]] | None = None,
        limits: CommandSettings | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.s = settings
        self.device = device
        self.site = site
        self.epoch = epoch
        self.writer = writer
        self.outbox = outbox
        self.health = health
        self.wall = wall  # records only; waits are on `monotonic` (an NTP step must not stretch them)
        self.monotonic = monotonic
        self.historical_after_s = historical_after_s
        # Requests from the index system on cmd/<name>, validated against the contract's schema;
        # a handler raises ValueError for a request it refuses.
        self.commands: dict[str, Callable[[dict[str, Any]], None]] = {"replay": self._replay, **(commands or {})}
        self.limits = limits or CommandSettings()
        self.inputs = InputGuard("commands", log, wall=wall)
        self._conn_log = LogLimiter(log, time.monotonic, every_s=60.0, burst=1)
        self._last_replay = float("-inf")
        self._lock = threading.Lock()
        self._inflight: dict[int, int] = {}  # mid -> outbox row id
        self._early: set[int] = set()  # PUBACKs that beat publish()'s return
        self._acked: list[int] = []
        self._connected = threading.Event()
        self.wake = threading.Event()  # set on PUBACK and (re)connect: the agent loop pumps again
        self._connected_since = 0.0
        self._connected_mono = 0.0
        self._short_sessions = 0  # disconnects soon after connecting, in a row
        self._protocol = mqtt.MQTTv311 if settings.protocol == "3.1.1" else mqtt.MQTTv5
        self._refused_until = -math.inf  # monotonic
        self._loop_wanted = False  # between start() and stop(): paho's thread must be alive
        self.last_publish_utc: float | None = None
        self.sent_count = 0
        self.client = self._make_client()

    # -- topics --------------------------------------------------------------------

    def topic(self, kind: str) -> str:
        return topic(self.s.topic_prefix, self.site, self.device, kind)

    def _status_payload(self, state: str) -> str:
        return json.dumps({"schema": "footfall.status/1", "device": self.device, "site": self.site, "state": state, "epoch": self.epoch})

    # -- client --------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"footfall-{self.device}",
            protocol=self._protocol,
            reconnect_on_failure=True,
        )
        c.username_pw_set(self.s.username or self.device, self.s.secret())
        if self.s.tls:
            c.tls_set(
                ca_certs=str(self.s.ca_file) if self.s.ca_file else None,
                certfile=str(self.s.cert_file) if self.s.cert_file else None,
                keyfile=str(self.s.key_file) if self.s.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        c.will_set(self.topic("status"), self._status_payload("offline"), qos=1, retain=True)
        c.max_inflight_messages_set(self.s.max_inflight)
        c.reconnect_delay_set(1, int(self.s.reconnect_max_s))
        guard = self.inputs.callback
        c.on_connect = guard("on_connect", self._on_connect)
        c.on_disconnect = guard("on_disconnect", self._on_disconnect)
        c.on_publish = guard("on_publish", self._on_publish)
        c.on_message = guard("on_message", self._on_message, describe=lambda _c, _u, msg: (msg.topic, msg.payload))
        return c

    def start(self) -> None:
        self.health.set("mqtt", False, "connecting")
        self.client.connect_async(self.s.host, self.s.port, keepalive=self.s.keepalive_s)
        with self._lock:
            self._loop_wanted = True
            self.client.loop_start()

    def stop(self) -> None:
        if self._connected.is_set():
            info = self.client.publish(self.topic("status"), self._status_payload("offline"), qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        with self._lock:
            self._loop_wanted = False
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def loop_alive(self) -> bool:
        """False when paho's network thread ended while it should run (nothing reconnects
        then). paho clears `_thread` when its thread ends, whatever the reason."""
        with self._lock:
            thread = getattr(self.client, "_thread", None)
            return not self._loop_wanted or (thread is not None and thread.is_alive())

    # -- callbacks (paho's network thread) -----------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if rc.is_failure:
            if client is self.client and self.s.protocol == "auto" and rc.value in _UNSUPPORTED_PROTOCOL and self._protocol == mqtt.MQTTv5:
                log.warning("broker refused MQTT 5 (%s); falling back to 3.1.1", rc)
                threading.Thread(target=self._fallback, daemon=True).start()
            self.health.set("mqtt", False, f"connect refused: {rc}")
            return
        self._connected_since = self.wall()
        self._connected_mono = time.monotonic()
        self._connected.set()
        self.health.set("mqtt", True, f"connected to {self.s.host}:{self.s.port}")
        client.publish(self.topic("status"), self._status_payload("online"), qos=1, retain=True)
        for name in self.commands:
            client.subscribe(self.topic(f"cmd/{name}"), qos=1)
        self.wake.set()

    def _fallback(self) -> None:
        with self._lock:
            self._loop_wanted = False
        old = self.client
        old.loop_stop()
        old.disconnect()
        with self._lock:
            self._protocol = mqtt.MQTTv311
            self._inflight.clear()
            self._early.clear()
            self.client = self._make_client()
        self.start()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self._connected.clear()
        self.health.set("mqtt", False, f"disconnected: {rc}")
        if not rc.is_failure:
            return
        # Why we were thrown off, e.g. MQTT 5 0x8E "session taken over": another client with
        # our client id. Mosquitto 2.0.11 sends no reason on a takeover (0x80 here), so a
        # connection that keeps dying within seconds of connecting is called out too.
        code = int(getattr(rc, "value", 0x80))
        short = time.monotonic() - self._connected_mono < 10
        self._short_sessions = self._short_sessions + 1 if short else 0
        self._conn_log.log(f"disconnect:{code}", logging.WARNING, "broker disconnected us: %s (reason code 0x%02X)%s",
                           rc, code, _why(code))
        if self._short_sessions >= 3:
            self._conn_log.log("flapping", logging.WARNING, "disconnected %d times within 10 s of connecting: is another "
                               "client using client id %r (an agent with the same device id, or copied credentials)?",
                               self._short_sessions, f"footfall-{self.device}")

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        with self._lock:
            if client is not self.client:
                return
            if rc.is_failure:  # MQTT 5 broker refused it (e.g. not authorised): keep it queued
                row = self._inflight.pop(mid, None)
                log.error("broker refused message (row %s): %s", row, rc)
                self.health.set("mqtt", False, f"publish refused: {rc}")
                self._refused_until = self.monotonic() + 30
                return
            row = self._inflight.pop(mid, None)
            if row is None:
                self._early.add(mid)
            else:
                self._acked.append(row)
        self.wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """The one entry of commands: bounded, validated, run; a refusal stays with its message."""
        name = msg.topic.rsplit("/cmd/", 1)[-1]
        handler = self.commands.get(name)
        if handler is None:
            self.inputs.refuse(msg.topic, "no such command", msg.payload)
            return
        if not msg.payload:  # an empty message deletes a retained one (ours, below): nothing to do
            return
        if msg.retain:  # a retained command would run again on every connect, after every restart
            self.inputs.refuse(msg.topic, "retained command (cleared)", msg.payload)
            client.publish(msg.topic, b"", qos=1, retain=True)  # our own subtree: the ACL lets us clear it
            return
        import jsonschema  # on the first command, not at start: ~10 MiB the agent rarely needs

        try:
            body = parse_json(msg.payload, max_bytes=COMMAND_MAX_BYTES, max_depth=COMMAND_MAX_DEPTH)
            if not isinstance(body, dict):
                raise InputError("not_object", "not a JSON object")
            validate(f"cmd/{name}", body)
            handler(body)
        except ValueError as exc:  # InputError, CommandRefused, or a handler refusing (a date that does not exist)
            self.inputs.refuse(msg.topic, str(exc)[:200], msg.payload)
            return
        except jsonschema.ValidationError as exc:
            self.inputs.refuse(msg.topic, f"schema: {exc.message[:200]}", msg.payload)
            return
        self.inputs.accepted()
        self.wake.set()

    def _replay(self, req: dict[str, Any]) -> None:
        """Re-queue kept messages the index system says it never received: at most
        `replay_max_messages` per request (the consumer asks again for the rest), at most one
        request per `replay_min_interval_s`; they go out after fresh messages."""
        now = self.monotonic()  # not the wall clock: a step back must not refuse requests for its length
        if now - self._last_replay < self.limits.replay_min_interval_s:
            raise CommandRefused(f"replay requests closer than {self.limits.replay_min_interval_s:g} s")
        epoch, first, last = int(req["epoch"]), int(req["from_seq"]), int(req["to_seq"])
        if first > last:
            raise CommandRefused(f"from_seq {first} > to_seq {last}")
        last = min(last, first + self.limits.replay_max_messages - 1)
        self._last_replay = now
        n = self.writer.call(lambda j: _in_tx(j, lambda: self.outbox.requeue(epoch, first, last)))
        log.info("replay request epoch %d seq %d..%d: %d messages re-queued", epoch, first, last, n)

    # -- the pump (agent loop thread) ----------------------------------------------

    def pump(self) -> int:
        """Commit PUBACKed rows, then fill the in-flight window from the outbox."""
        with self._lock:
            # One look at both: a PUBACK landing after this moves its row from in-flight to
            # acked, and the row must stay "busy" below until its ack is committed.
            acked, self._acked = self._acked, []
            busy = frozenset(self._inflight.values())
        if acked:
            now = self.wall()
            try:
                self.writer.call(lambda j: _in_tx(j, lambda: self.outbox.mark_sent(acked, now)))
            except Exception as exc:  # noqa: BLE001 - a full disk: keep the acks, send nothing new meanwhile
                with self._lock:
                    self._acked = acked + self._acked
                self._conn_log.log("mark_sent", logging.WARNING, "cannot record %d PUBACKs yet: %s", len(acked), exc)
                return 0
            self.last_publish_utc = now
            self.sent_count += len(acked)
        if not self._connected.is_set() or self.monotonic() < self._refused_until:
            return 0
        with self._lock:
            room = self.s.max_inflight - len(self._inflight)
            busy = busy | frozenset(self._inflight.values()) | frozenset(self._acked)
        if room <= 0:
            return 0
        rows = self.writer.call(lambda j: self.outbox.pending(room, busy))
        for row in rows:
            self._send(row)
        return len(rows)

    def _send(self, row: OutboxRow) -> None:
        body = json.loads(row.payload)
        now = self.wall()
        # Backlog replay: queued before this connection, or describing a time long past.
        body["historical"] = row.created_utc < self._connected_since - 1 or now - row.about_utc > self.historical_after_s
        with self._lock:
            client = self.client
        info = client.publish(row.topic, json.dumps(body, separators=(",", ":")), qos=row.qos, retain=row.retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            log.warning("publish of row %d failed locally: %s", row.id, mqtt.error_string(info.rc))
            return
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self._acked.append(row.id)
            else:
                self._inflight[info.mid] = row.id

    def inflight(self) -> int:
        with self._lock:
            return len(self._inflight)


def _why(code: int) -> str:
    """What a disconnect reason code means for a counter on a wall."""
    return {
        0x8E: ": another client connected with this device's client id (a second agent with the same"
              " device id or credentials?)",
        0x80: " (unspecified: also how Mosquitto 2.0 reports another client taking over this client id)",
        0x8D: ": keep-alive timeout",
        0x98: ": the broker's administrator disconnected us",
        0x8B: ": the broker is shutting down",
    }.get(code, "")


def _in_tx(j: Journal, fn: Callable[[], Any]) -> Any:
    with j.transaction():
        return fn()
