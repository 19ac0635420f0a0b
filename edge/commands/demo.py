"""`footfall demo`: a compressed opening day at one simulated door, through the agent's parts
on a virtual clock, a local broker and the index consumer (what `make demo` runs).

The simulator and the runner that wires it to the agent live outside the agent, so this runs
them as their own program (`python -m bench.demo`) rather than importing them."""

from __future__ import annotations

import argparse
import subprocess
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a compressed opening day at a simulated door: beams, camera, fusion, keypad, "
                       "a local Mosquitto and the index consumer")
    p.add_argument("--passers", type=int, default=30, help="people through the door over the day (default 30)")
    p.add_argument("--seed", type=int, help="draws the day (default: a fresh one, printed)")
    p.add_argument("--workdir", help="keep the demo's journal, configs, day report and index store here")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    cmd = [sys.executable, "-m", "bench.demo", "--passers", str(args.passers)]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if args.workdir:
        cmd += ["--workdir", args.workdir]
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130
