"""Rate-limited logging: a part that flaps (a broker going up and down, a serial port that
comes and goes) must not fill journald. Per key at most `burst` lines in any `every_s`
window; the lines held back are counted and said with the next one written. Standard
library only, in `contract/` so that both sides of the wire use it (the agent, the index
consumer, `contract/inputs.py`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class LogLimiter:
    """Per key: at most `burst` lines in any `every_s` seconds (on `clock`). Keys are bounded
    (`max_keys`): past that, new keys share one, so a flood of distinct inputs (a hostile
    device inventing topics) cannot grow memory either."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float], every_s: float = 60.0, burst: int = 3,
                 max_keys: int = 1000) -> None:
        self.logger = logger
        self.clock = clock
        self.every_s = every_s
        self.burst = burst
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._times: dict[str, list[float]] = {}
        self._held: dict[str, int] = {}

    def log(self, key: str, level: int, msg: str, *args: object) -> bool:
        """Log unless `key` wrote `burst` lines in the last `every_s`; True when the line was written."""
        now = self.clock()
        with self._lock:
            if key not in self._times and len(self._times) >= self.max_keys:
                key = "*"
            recent = [t for t in self._times.get(key, []) if now - t < self.every_s]
            if len(recent) >= self.burst:
                self._times[key] = recent
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._times[key] = recent + [now]
            held = self._held.pop(key, 0)
        if held:
            msg += f" ({held} more like this not logged in the last {self.every_s:.0f} s)"
        self.logger.log(level, msg, *args)
        return True
