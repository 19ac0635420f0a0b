"""Run the agent (`footfall ...`, edge/cli.py) in this process with its wall clock stepped
the way NTP steps a device's clock: `time.time` and `time.time_ns` return the real time
plus an offset read from a small file that another process (the fault day) rewrites;
`time.monotonic` (and every sleep and timeout) is left alone, as a real step leaves it.

The agent reads wall time only through `time.time()` (edge/clock.py `SystemClock.wall`,
the journal, the logs' `time.time_ns`), looked up on the module at each call, so
replacing the two module attributes before the agent is imported steps all of it.
(libfaketime, the other way, breaks Python's `time.sleep` on this system.)

    python -m bench.stepped_clock OFFSET_FILE [footfall arguments...]

OFFSET_FILE holds one number, seconds (may be negative); a missing or unreadable file
is offset 0. It is re-read at most every `REREAD_S`, so a step takes effect within that.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

REREAD_S = 0.05


class SteppedWall:
    """Real wall time plus the offset in `path` (cached, re-read at most every `reread_s`
    of monotonic time)."""

    def __init__(self, path: Path, reread_s: float = REREAD_S) -> None:
        self.path = path
        self.reread_s = reread_s
        self._real_time = time.time
        self._real_time_ns = time.time_ns
        self._mono = time.monotonic
        self._cache = (-math.inf, 0.0)  # (monotonic read at, offset s): one tuple, swapped whole

    def offset(self) -> float:
        read_at, offset = self._cache
        now = self._mono()
        if now - read_at >= self.reread_s:
            offset = read_offset(self.path, offset)
            self._cache = (now, offset)
        return offset

    def time(self) -> float:
        return self._real_time() + self.offset()

    def time_ns(self) -> int:
        return self._real_time_ns() + round(self.offset() * 1e9)


def read_offset(path: Path, previous: float = 0.0) -> float:
    """The offset in `path`; 0 if there is no file, `previous` if it is being rewritten
    (empty or torn) or holds no finite number."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return 0.0
    except OSError:
        return previous
    try:
        value = float(text)
    except ValueError:
        return previous
    return value if math.isfinite(value) else previous


def write_offset(path: Path, seconds: float) -> None:
    """Set the stepped process's offset (atomically: it never reads half a number)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(repr(float(seconds)))
    tmp.replace(path)


def install(path: Path) -> SteppedWall:
    """Replace this process's wall clock; to be called before the agent is imported."""
    wall = SteppedWall(path)
    time.time = wall.time
    time.time_ns = wall.time_ns
    return wall


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__.split("\n\n")[-2], file=sys.stderr)
        return 2
    install(Path(args[0]))
    from edge.cli import main as footfall  # after install: nothing holds the real time.time

    return footfall(args[1:])


if __name__ == "__main__":
    sys.exit(main())
