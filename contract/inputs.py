"""Inputs from outside the process: bounded where they enter, a failure kept to that input.

Both sides of the wire read messages a stranger may have written (a retained message, a
device with a bug, a fuzzer). The rule (README, "Inputs from outside"): each kind of input
enters through one place, which bounds and validates it; a failure with one input is
counted, logged with a rate limit (`contract.log_limit`), kept aside in a bounded
quarantine for a person to look at, and never ends the thread that read it. paho-mqtt
ends its network thread when a callback raises, so every paho callback is wrapped by
`InputGuard.callback`.

Standard library only (and `contract.log_limit`): the agent (`edge/`) and the index
consumer (`index_system/`) can both use it.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from itertools import accumulate
from dataclasses import dataclass
from typing import Any, TypeVar

from contract.log_limit import LogLimiter

F = TypeVar("F", bound=Callable[..., Any])


class InputError(ValueError):
    """An input refused at its entry; `reason` is a short code for counting (too_large,
    not_utf8, too_deep, not_json, and the entry's own: schema, implausible, ...)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
NOT_BRACKETS = re.compile(rb"[^\[\]{}]")


def nesting_depth(raw: bytes) -> int:
    """How deeply brackets nest in JSON text, outside strings, without parsing it. Checked
    before json.loads: its C parser recurses per level, and near the recursion limit an
    interpreter callback (a GC hook) can turn RecursionError into a fatal stack overflow
    that no `except` catches (found by the consumer's fuzz suite)."""
    brackets = NOT_BRACKETS.sub(b"", STRINGS.sub(b"", raw))
    if not brackets:
        return 0
    return max(accumulate(1 if c in b"[{" else -1 for c in brackets))


def _refuse_constant(name: str) -> Any:
    raise InputError("not_json", f"{name} is not JSON")


def parse_json(raw: bytes | str, *, max_bytes: int, max_depth: int) -> Any:
    """A stranger's JSON: size checked before parsing, strict UTF-8, no NaN/Infinity, at
    most `max_depth` nested containers. Raises InputError, never RecursionError."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise InputError("too_large", f"{len(raw)} bytes, more than {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("not_utf8", f"not JSON: {str(exc)[:120]}") from None
    if raw.count(b"[") + raw.count(b"{") > max_depth and nesting_depth(raw) > max_depth:
        raise InputError("too_deep", f"nested deeper than {max_depth}")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:  # not reached after the depth check; kept so it can never escape
        raise InputError("too_deep", "nested too deep to parse") from None
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError("not_json", f"not JSON: {str(exc).splitlines()[0][:120] if str(exc) else ''}") from None


def never_raises(fn: F, on_error: Callable[[BaseException, tuple[Any, ...]], None]) -> F:
    """`fn` wrapped for paho (which ends its network thread when a callback raises): an
    exception goes to `on_error(exc, args)` instead; if that raises too, it is swallowed."""

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the point of this wrapper
            try:
                on_error(exc, args)
            except Exception:  # noqa: BLE001
                pass
            return None

    return guarded  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One input kept aside: where it came in, why it was refused, its first bytes."""

    t_utc: float
    where: str
    reason: str
    size: int
    head: bytes


class InputGuard:
    """The entry of one kind of input: counts, rate-limited log, bounded quarantine."""

    def __init__(self, name: str, logger: logging.Logger, *, keep: int = 50, head_bytes: int = 256,
                 log_every_s: float = 60.0, wall: Callable[[], float] = time.time) -> None:
        self.name = name
        self.log = LogLimiter(logger, time.monotonic, every_s=log_every_s, burst=1)
        self.wall = wall
        self.head_bytes = head_bytes
        self.counts: Counter[str] = Counter()  # "accepted", "refused", "failed"
        self.quarantine: deque[Quarantined] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def accepted(self) -> None:
        with self._lock:
            self.counts["accepted"] += 1

    def refuse(self, where: str, reason: str, payload: bytes | str | None = None) -> None:
        """An input broke its entry's rules: count, keep aside, warn (rate limited)."""
        self._keep("refused", where, reason, payload)
        self.log.log(f"refused:{where}", logging.WARNING, "%s: refused input on %s: %s", self.name, where, reason)

    def fail(self, where: str, exc: BaseException, payload: bytes | str | None = None) -> None:
        """Handling a valid-looking input raised: a bug, but confined to this input."""
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        self._keep("failed", where, reason, payload)
        self.log.log(f"failed:{where}", logging.ERROR, "%s: handling input on %s failed (%s); input set aside",
                     self.name, where, reason)

    def _keep(self, outcome: str, where: str, reason: str, payload: bytes | str | None) -> None:
        raw = payload.encode(errors="replace") if isinstance(payload, str) else (payload or b"")
        with self._lock:
            self.counts[outcome] += 1
            self.quarantine.append(Quarantined(self.wall(), where, reason, len(raw), bytes(raw[: self.head_bytes])))

    def callback(self, where: str, fn: F, describe: Callable[..., tuple[str, bytes]] | None = None) -> F:
        """`fn` wrapped so that it never raises (paho ends its network thread if it does).
        `describe(*args)` names the input for the quarantine: (where, payload)."""

        def failed(exc: BaseException, args: tuple[Any, ...]) -> None:
            at, payload = where, None
            if describe is not None:
                try:
                    at, payload = describe(*args)
                except Exception:  # noqa: BLE001
                    pass
            self.fail(at, exc, payload)

        return never_raises(fn, failed)

    def snapshot(self, last: int = 5) -> dict[str, Any]:
        """Counts and the latest quarantined inputs, for status and tests."""
        with self._lock:
            recent = list(self.quarantine)[-last:]
            counts = dict(self.counts)
        return {"counts": counts, "quarantined": len(self.quarantine),
                "recent": [{"t_utc": q.t_utc, "where": q.where, "reason": q.reason, "size": q.size,
                            "head": q.head[:64].decode("utf-8", "replace")} for q in recent]}
