"""A simulated door on a pseudo-terminal, on its own: drive a real agent without the demo.

    python -m simulator.door --pty /tmp/ttyDoor [--scenario single_file] [--people 20]
                             [--gap 4] [--speedup 1] [--ratings] [--exit-when-done]

A virtual door board (the reference firmware's behaviour, the real protocol) walks the
scenario's people through its two beams and, with --ratings, has some leavers press the
exit keypad. It prints the pty path (a stable symlink, like /dev/serial/by-id/...) and the
agent.toml lines that point an agent at it, then the door's truth as people pass. A
technician or an integrator runs `footfall run` against it with any broker, or none.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from simulator import people
from simulator.raters import RaterSpec, rate
from simulator.scenario import load
from simulator.virtual_mcu import VirtualMcu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulator.door", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pty", required=True, help="path of the symlink to the door's pty (the agent's [[beams.doors]] port)")
    ap.add_argument("--scenario", default="single_file", help="simulator scenario name or TOML file (default single_file)")
    ap.add_argument("--people", type=int, default=20, help="passers (default 20)")
    ap.add_argument("--gap", type=float, default=4.0, help="mean seconds between arrivals (default 4)")
    ap.add_argument("--speedup", type=float, default=1.0, help="door time per real second (default 1: real time)")
    ap.add_argument("--seed", type=int, help="crowd seed (default: the scenario's)")
    ap.add_argument("--ratings", action="store_true", help="leavers press a 4-button exit keypad (keypad 0)")
    ap.add_argument("--exit-when-done", action="store_true",
                    help="exit once every event is acknowledged (default: keep the board alive until Ctrl-C)")
    args = ap.parse_args(argv)
    if args.people < 0 or args.gap < 0 or args.speedup <= 0:
        ap.error("--people and --gap must be >= 0 and --speedup > 0")

    sc = load(args.scenario)
    spec = replace(sc.people, count=args.people, mean_gap_s=args.gap)
    if args.seed is not None:
        spec = replace(spec, seed=args.seed)
    crowd = people.generate(spec)
    edges = people.debounce(people.beam_edges(crowd, sc.door), sc.debounce_us / 1e6)
    presses = rate(crowd, sc.raters or RaterSpec())[0] if args.ratings else []
    truth = crowd.truth()
    port = Path(args.pty)
    mcu = VirtualMcu(port, edges, speedup=args.speedup, presses=presses)
    print(f"door board on {port} -> {port.resolve()}", flush=True)
    print(f"in agent.toml:\n  [[beams.doors]]\n  name = \"door1\"\n  port = \"{port}\"", flush=True)
    print(f"{len(truth)} passers ({sum(d == 'in' for _, d, _ in truth)} in, "
          f"{sum(d == 'out' for _, d, _ in truth)} out), {len(presses)} keypad presses", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    mcu.start()
    shown = 0
    try:
        while not stop.is_set():
            seen = [(t, d) for t, d, _ in truth if t <= mcu.vt]
            for t, d in seen[shown:]:
                print(f"t={t:8.1f} s  {d:<3}  (truth so far: {sum(x == 'in' for _, x in seen)} in, "
                      f"{sum(x == 'out' for _, x in seen)} out)", flush=True)
            shown = len(seen)
            if mcu.done and shown == len(truth):
                if args.exit_when_done:
                    break
            stop.wait(0.2)
    finally:
        mcu.stop()
    print(f"done: {len(mcu.record)} events sent, all acknowledged: {mcu.done}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
