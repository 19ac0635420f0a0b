"""Where a device's MQTT message enters the index side: bounded, validated, trusted after.

Pure: (topic, bytes, limits, now) in, an `Accepted` message out, or `InputError` with a
short reason code. Order matters: the size cap comes before any parsing, the depth bound
before schema validation, the schema before the plausibility rules (which may then trust
the shape). After this, the store may assume a message is well-formed and plausible:
integers fit SQLite, the body names the device and site of its topic, counts per bin are
within what a door can pass, dates lie within a device's life, local hours are 0-23.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema

from contract.messages import KINDS, validate
from contract.inputs import InputError, parse_json

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LOCAL_START = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d):\d\d(:\d\d)?")
INT_MAX = 2**63 - 1  # SQLite's INTEGER; anything larger raises OverflowError at the insert


@dataclass(frozen=True)
class IntakeLimits:
    """What the consumer accepts. `door_per_minute` is the most people one device may count
    per minute in each direction (a wide double door passes about 60; the default leaves
    room); `earliest` is before any device of this fleet was installed; `future_s` allows
    for a device's clock running ahead."""

    max_bytes: int = 32768  # a footfall message is well under 16 KB (broker/mosquitto.conf)
    max_depth: int = 16  # the deepest contract message nests 5 levels
    door_per_minute: int = 120
    max_occupancy: int = 100_000
    earliest: date = date(2020, 1, 1)
    future_s: float = 2 * 86400.0


@dataclass(frozen=True)
class Accepted:
    site: str
    device: str
    kind: str
    body: dict[str, Any]
    digest: str  # what the message says, for telling a duplicate from an identity clash


def digest(body: dict[str, Any]) -> str:
    """A fingerprint of a message's content; `historical` is excluded because the publisher
    sets it per send (the same message re-sent from a backlog)."""
    same = {k: v for k, v in body.items() if k != "historical"}
    return hashlib.sha256(json.dumps(same, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def admit(site: str, device: str, kind: str, raw: bytes, limits: IntakeLimits, now_utc: float) -> Accepted:
    """The message, checked; raises InputError(reason) for anything the index must not store."""
    if not ID.match(site) or not ID.match(device):
        raise InputError("bad_topic", "site or device is not an id")
    if kind not in KINDS:
        raise InputError("unknown_kind", kind[:64])
    body = parse_json(raw, max_bytes=limits.max_bytes, max_depth=limits.max_depth)
    if not isinstance(body, dict):
        raise InputError("not_object", type(body).__name__)
    _integers_fit(body)
    try:
        validate(kind, body)
    except jsonschema.ValidationError as exc:
        raise InputError("schema", str(exc.message)[:200]) from None
    if body["device"] != device or body["site"] != site:
        raise InputError("topic_mismatch", f"body says {str(body['site'])[:64]}/{str(body['device'])[:64]}")
    _plausible(kind, body, limits, now_utc)
    return Accepted(site, device, kind, body, digest(body))


def _integers_fit(body: Any) -> None:
    """Every integer fits SQLite and every number is finite (json gives unbounded ints)."""
    todo = [body]
    while todo:
        v = todo.pop()
        if isinstance(v, dict):
            todo.extend(v.values())
        elif isinstance(v, list):
            todo.extend(v)
        elif isinstance(v, bool):
            continue
        elif isinstance(v, int) and not -INT_MAX <= v <= INT_MAX:
            raise InputError("integer_range", f"{str(v)[:24]}... out of range")
        elif isinstance(v, float) and not math.isfinite(v):
            raise InputError("integer_range", "non-finite number")


def _day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError("implausible", f"{what} {text[:32]!r} is not a date") from None


def _utc(text: str, what: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise InputError("implausible", f"{what} {text[:32]!r} is not a UTC time") from None


def _within_life(day: date, limits: IntakeLimits, now_utc: float, what: str) -> None:
    latest = (datetime.fromtimestamp(now_utc, timezone.utc) + timedelta(seconds=limits.future_s)).date()
    if not limits.earliest <= day <= latest:
        raise InputError("implausible", f"{what} {day} outside {limits.earliest}..{latest}")


def _within_time(t_utc: float, limits: IntakeLimits, now_utc: float, what: str) -> None:
    first = datetime(limits.earliest.year, limits.earliest.month, limits.earliest.day, tzinfo=timezone.utc).timestamp()
    if not first <= t_utc <= now_utc + limits.future_s:
        raise InputError("implausible", f"{what} {t_utc} outside the device's life")


def _zone(key: str) -> None:
    """The report recomputes day summaries in this zone: it must be a real IANA zone."""
    try:
        ZoneInfo(key)
    except (ValueError, OSError, ZoneInfoNotFoundError):
        raise InputError("implausible", f"timezone {key[:64]!r} is not an IANA zone") from None


def _plausible(kind: str, body: dict[str, Any], limits: IntakeLimits, now_utc: float) -> None:
    if kind in ("bins", "summary", "birth"):
        _zone(body["bin"]["timezone"] if kind == "bins" else body["timezone"])
    if kind == "bins":
        _plausible_bin(body, limits, now_utc)
    elif kind == "summary":
        _within_life(_day(body["date"], "date"), limits, now_utc, "date")
        cap = limits.door_per_minute * 60 * body["hours"]
        if max(body["visits"]["in"], body["visits"]["out"]) > cap:
            raise InputError("implausible", f"day visits above {cap}")
        for h in body["hourly"]:
            if max(h["in"], h["out"]) > limits.door_per_minute * 60:
                raise InputError("implausible", "an hour above the door's throughput")
    elif kind == "birth":
        _within_time(body["boot_utc"], limits, now_utc, "boot_utc")
    elif kind == "alarm":
        _within_time(body["t_utc"], limits, now_utc, "t_utc")


def _plausible_bin(body: dict[str, Any], limits: IntakeLimits, now_utc: float) -> None:
    b = body["bin"]
    start, end = _utc(b["start_utc"], "start_utc"), _utc(b["end_utc"], "end_utc")
    if end - start != timedelta(minutes=b["minutes"]):
        raise InputError("implausible", "end_utc - start_utc is not the bin length")
    _within_life(start.date(), limits, now_utc, "start_utc")
    m = LOCAL_START.match(b["start_local"])
    if m is None:
        raise InputError("implausible", f"start_local {b['start_local'][:32]!r} is not a local time")
    local_day, hour = _day(m.group(1), "start_local"), int(m.group(2))
    if hour > 23:
        raise InputError("implausible", f"local hour {hour}")
    if abs((local_day - start.date()).days) > 1:
        raise InputError("implausible", "start_local is not within a day of start_utc")
    cap = limits.door_per_minute * b["minutes"]
    counts = [body["total"]["in"], body["total"]["out"]]
    counts += [n for sources in body["lines"].values() for io in sources.values() for n in io.values()]
    if max(counts) > cap:
        raise InputError("implausible", f"{max(counts)} people in a {b['minutes']}-minute bin (limit {cap})")
    if body["occupancy"]["end"] > limits.max_occupancy:
        raise InputError("implausible", f"occupancy {body['occupancy']['end']}")
