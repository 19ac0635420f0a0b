"""Day summary and report cost: what the device spends summarising a day, and the consumer.

    python -m bench.summary_bench [--visitors 2000] [--repeat 3]

One simulated day (Europe/Berlin, the 25-hour autumn day) per bin length, through the real
binner on a real SQLite journal. Reported side by side: closing the day's bins (the work
the agent does anyway) and, as ratios to it, the device's day summary (it recomputes every
bin of the day from the journal), the consumer's recomputation from its stored bins, and
drawing the report PNG. The device figure is the one that matters on a Raspberry Pi.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.timing import median_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from day_sim import Device, deliver, fast_store, local_midnight, visitors  # noqa: E402
from edge.day_report import Row, draw, png_bytes  # noqa: E402
from contract.day_summary import day_bounds  # noqa: E402
from edge.summaries import device_summary  # noqa: E402
from contract.timebins import bins_between  # noqa: E402

ZONE = ZoneInfo("Europe/Berlin")
DAY = date(2026, 10, 25)




def one(tmp: Path, minutes: int, n_visitors: int, repeat: int) -> dict[str, float]:
    start = local_midnight(DAY, ZONE)
    dev = Device(tmp / f"j{minutes}.db", ZONE, start, minutes=minutes)
    dev.journal.add_crossings(visitors(DAY, ZONE, random.Random(1), n_visitors))
    t0 = time.perf_counter()
    with dev.journal.transaction():
        dev.binner.tick(day_bounds(DAY, ZONE)[1], max_bins=100_000)
    close_s = time.perf_counter() - t0
    summary_s = median_seconds(lambda: device_summary(dev.binner, DAY, dev.profile), repeat)
    store = fast_store(tmp / f"i{minutes}.db")
    deliver(dev, store)
    consumer_s = median_seconds(lambda: store.recompute_summary(dev.device, DAY), repeat)
    s, e = day_bounds(DAY, ZONE)
    rows = [Row(b.start_utc, b.end_utc, dev.binner.compute(b)) for b in bins_between(s, e, minutes, ZONE)]
    draw_s = median_seconds(lambda: png_bytes(draw(rows, ZONE, dev.rule.hours, "bench", 40)), repeat)
    return {"bins": len(rows), "close": close_s, "summary": summary_s, "consumer": consumer_s, "draw": draw_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visitors", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"one 25-hour day, {args.visitors} visitors (about {2 * args.visitors} crossings); median of {args.repeat}")
    print(f"{'bin':>5} {'bins':>5} {'close bins':>11} {'device summary':>16} {'consumer recompute':>20} {'draw PNG':>10}")
    with tempfile.TemporaryDirectory() as d:
        for minutes in (15, 5, 1):
            r = one(Path(d), minutes, args.visitors, args.repeat)
            print(f"{minutes:>3} m {r['bins']:>5} {r['close']:>9.3f} s {r['summary']:>7.3f} s ({r['summary'] / r['close']:.2f}x)"
                  f" {r['consumer']:>9.4f} s ({r['consumer'] / r['close']:.3f}x) {r['draw']:>6.3f} s")


if __name__ == "__main__":
    main()
