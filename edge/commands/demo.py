"""`footfall demo`: the agent on a simulated door with a local broker (what `make demo` runs).

The simulator and the runner that wires it to the agent live outside the agent, so this runs
them as their own program (`python -m bench.demo`) rather than importing them."""

from __future__ import annotations

import argparse
import subprocess
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the agent on a simulated door with a local Mosquitto and index consumer")
    p.add_argument("--minutes", type=float, default=3.0, help="how long simulated people walk through (default 3)")
    p.add_argument("--scenario", default="single_file", help="simulator scenario name or TOML file")
    p.add_argument("--gap", type=float, default=4.0, help="mean seconds between arrivals")
    p.add_argument("--workdir", help="keep the demo's journal, configs and logs here")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    cmd = [sys.executable, "-m", "bench.demo", "--minutes", str(args.minutes), "--scenario", args.scenario,
           "--gap", str(args.gap)]
    if args.workdir:
        cmd += ["--workdir", args.workdir]
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130
