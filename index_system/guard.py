"""Keeping one bad input to itself: JSON parsed within bounds, logs with a rate limit, and
paho callbacks that never raise.

paho-mqtt ends its network thread when a callback raises, and the process then stays up
storing nothing; a hostile device can also flood the log. So the consumer parses every
payload with `parse_json` (size and depth bounded, never RecursionError), logs per-input
trouble through `RateLimitedLog`, and wraps each paho callback with `never_raises`.

The agent side has the same needs (issue 11); these three pieces are meant to move to a
shared place (`contract/`) when both sides are merged.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections import Counter
from itertools import accumulate
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class InputError(ValueError):
    """An input refused where it enters; `reason` is a short code for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
NOT_BRACKETS = re.compile(rb"[^\[\]{}]")


def nesting_depth(raw: bytes) -> int:
    """How deeply brackets nest in JSON text, outside strings, without parsing it. Checked
    before json.loads: its C parser recurses per level, and near the recursion limit an
    interpreter callback (a GC hook) can turn RecursionError into a fatal stack overflow."""
    brackets = NOT_BRACKETS.sub(b"", STRINGS.sub(b"", raw))
    if not brackets:
        return 0
    return max(accumulate(1 if c in b"[{" else -1 for c in brackets))


def _refuse_constant(name: str) -> Any:
    raise InputError("not_json", f"{name} is not JSON")


def parse_json(raw: bytes, *, max_bytes: int, max_depth: int) -> Any:
    """A stranger's JSON: size checked before parsing, strict UTF-8, no NaN/Infinity, at
    most `max_depth` nested containers. Raises InputError, never RecursionError."""
    if len(raw) > max_bytes:
        raise InputError("too_large", f"{len(raw)} bytes > {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("not_utf8", str(exc)[:120]) from None
    if raw.count(b"[") + raw.count(b"{") > max_depth and nesting_depth(raw) > max_depth:
        raise InputError("too_deep", f"nested deeper than {max_depth}")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:  # not reached after the depth check; kept so it can never escape
        raise InputError("too_deep", "nested too deep to parse") from None
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError("not_json", str(exc).splitlines()[0][:120] if str(exc) else "") from None


class RateLimitedLog:
    """At most one record per key every `every_s`; the next one says how many were held back.
    Keys are bounded (`max_keys`): past that, new keys share one key, so a flood of distinct
    inputs cannot grow memory either."""

    def __init__(self, logger: logging.Logger, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 1000) -> None:
        self.logger = logger
        self.every_s = every_s
        self.clock = clock
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def log(self, level: int, key: str, msg: str, *args: Any) -> bool:
        """Log unless `key` was logged less than `every_s` ago; returns whether it logged."""
        now = self.clock()
        with self._lock:
            if key not in self._last and len(self._last) >= self.max_keys:
                key = "*"
            last = self._last.get(key)
            if last is not None and now - last < self.every_s:
                self._held[key] += 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            msg += " (%d more like this held back)"
            args = (*args, held)
        self.logger.log(level, msg, *args)
        return True


def never_raises(fn: F, on_error: Callable[[BaseException], None]) -> F:
    """`fn` wrapped for paho: an exception goes to `on_error` (which must not raise either;
    if it does, that is swallowed too) instead of ending paho's network thread."""

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the point of this wrapper
            try:
                on_error(exc)
            except Exception:  # noqa: BLE001
                pass
            return None

    return guarded  # type: ignore[return-value]
