"""The consumer's gap detection: one round of finding holes in the sequences, the old full
scan of the messages table against the incremental tracker, as the store grows.

    python -m bench.index_gaps_bench [--devices 20] [--days 7] [--repeat 5] [--seed N]

A store of `devices` devices x `days` days of 1-minute bins (one message per bin), with
0.1% of the sequence numbers missing (drawn with a seed printed at the start). The consumer
runs one round a second, so the full scan's cost per round is what it used to spend every
second; the tracker's cost is `holes()` plus its per-message `add`.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from collections import defaultdict

from index_system.sequences import SequenceTracker
from bench.timing import median_seconds


def full_scan(conn: sqlite3.Connection) -> list[tuple[str, int, int, int]]:
    """What IndexStore.gaps() did before: read every message, in order, each round."""
    rows = conn.execute("SELECT device, epoch, seq FROM messages ORDER BY device, epoch, seq").fetchall()
    out: list[tuple[str, int, int, int]] = []
    expect: dict[tuple[str, int], int] = defaultdict(lambda: 1)
    for device, epoch, seq in rows:
        nxt = expect[(device, epoch)]
        if seq > nxt:
            out.append((device, epoch, nxt, seq - 1))
        expect[(device, epoch)] = seq + 1
    return out




def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=20)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args()
    seed = random.randrange(2**32) if a.seed is None else a.seed
    print(f"seed {seed}")
    rng = random.Random(seed)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE messages (device TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,"
                 " PRIMARY KEY (device, epoch, seq))")
    per_device = a.days * 1440
    rows = [(f"dev-{d}", 1, s) for d in range(a.devices) for s in range(1, per_device + 1) if rng.random() >= 0.001]
    conn.executemany("INSERT INTO messages VALUES (?, ?, ?)", rows)
    tracker = SequenceTracker()
    t = time.perf_counter()
    for device, epoch, seq in rows:
        tracker.add(device, epoch, seq)
    add_us = (time.perf_counter() - t) / len(rows) * 1e6
    assert tracker.holes() == full_scan(conn), "the tracker and the scan disagree"
    scan = median_seconds(lambda: full_scan(conn), a.repeat)
    holes = median_seconds(tracker.holes, a.repeat)
    print(f"{len(rows)} messages ({a.devices} devices x {a.days} days of 1-minute bins), {len(tracker.holes())} holes")
    print(f"full scan per round:       {scan * 1e3:9.2f} ms")
    print(f"tracker holes() per round: {holes * 1e3:9.2f} ms  (scan / tracker = {scan / holes:.0f}x)")
    print(f"tracker add per message:   {add_us:9.2f} us")


if __name__ == "__main__":
    main()
