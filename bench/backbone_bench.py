"""Backbone benchmark: journal commit rate, and draining 30 days of 1-minute bins to Mosquitto.

    python -m bench.backbone_bench [--days 30] [--inflight 20]

Starts its own Mosquitto on a free port (persistence on, as a real broker).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from edge.agent import Agent  # noqa: E402
from edge.clock import VirtualClock  # noqa: E402
from edge.crossing import Crossing  # noqa: E402
from edge.journal import Journal  # noqa: E402
from edge.publisher import _in_tx  # noqa: E402
from harness import agent_config  # noqa: E402
from simulator.local_broker import Broker  # noqa: E402


def commit_rate(tmp: Path, batch: int, seconds: float = 3.0) -> float:
    j = Journal(tmp / f"commit-{batch}.db")
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        j.add_crossings([Crossing(1.7e9 + n + i, "door-1", "in", "beam", 1.0, f"mcu:1:{n + i}") for i in range(batch)])
        n += batch
    rate = n / (time.perf_counter() - t0)
    j.close()
    return rate


def drain(tmp: Path, days: float, inflight: int) -> dict[str, float]:
    broker = Broker(tmp / "broker")
    broker.start()
    try:
        start = time.time() - days * 86400 - 120
        clock = VirtualClock(start)
        agent = Agent(agent_config(tmp, broker.port, inflight=inflight), clock)
        agent.open()
        n_cross = int(days * 24 * 60)  # one crossing a minute
        agent.writer.add_crossings([Crossing(start + 60 * i + 30, "door-1", "in" if i % 2 else "out", "beam", 1.0, f"b:{i}")
                                    for i in range(n_cross)])
        clock.advance(days * 86400)
        t0 = time.perf_counter()
        while agent.writer.call(lambda j: _in_tx(j, lambda: agent.binner.tick(clock.wall(), max_bins=5000))):
            pass
        t_bin = time.perf_counter() - t0
        backlog = agent.writer.call(lambda j: agent.outbox.backlog())
        agent.publisher.start()
        t0 = time.perf_counter()
        while True:
            agent.publisher.pump()
            if agent.publisher.sent_count >= backlog:
                break
            agent.publisher.wake.wait(0.5)
            agent.publisher.wake.clear()
        t_drain = time.perf_counter() - t0
        agent.stop()
        return {"messages": backlog, "bin_s": t_bin, "drain_s": t_drain, "drain_rate": backlog / t_drain}
    finally:
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--inflight", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print("Journal commit rate (WAL, synchronous=FULL; one transaction per batch)")
        for batch in (1, 10, 100):
            rates = [commit_rate(tmp, batch) for _ in range(args.repeats)]
            print(f"  batch {batch:>3}: median {statistics.median(rates):>9,.0f} crossings/s  (runs: {', '.join(f'{r:,.0f}' for r in rates)})")
        print(f"Backlog drain: {args.days:g} days of 1-minute bins, in-flight window {args.inflight}, local Mosquitto")
        r = drain(tmp, args.days, args.inflight)
        print(f"  {r['messages']:,} messages; binning {r['bin_s']:.1f} s; drain {r['drain_s']:.1f} s = {r['drain_rate']:,.0f} msg/s"
              f" ({args.days:g} days of outage caught up in {r['drain_s'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
