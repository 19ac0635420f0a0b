"""`footfall`: the agent and the technicians' tool."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from edge import __version__
from edge.errors import UserError

__all__ = ["UserError", "build_parser", "main"]

# Each entry is a module with register(subparsers). The index side (`footfall index`) is a
# package of its own, imported only when the command line is built: the agent's code never
# imports it.
COMMAND_MODULES: tuple[str, ...] = (
    "edge.commands.run",
    "edge.commands.status",
    "edge.commands.config_cmd",
    "index_system.cli",
    "edge.commands.ir",
    "edge.commands.summary",
    "edge.commands.report",
    "edge.commands.demo",
    "edge.commands.replay_detections",
    "edge.commands.count",
    "edge.commands.camera",
    "edge.commands.validate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="footfall",
        description="Footfall edge counter: counts people at a door and publishes the counts.",
    )
    parser.add_argument("--version", action="version", version=f"footfall {__version__}")
    parser.add_argument(
        "--config",
        default=None,
        help="agent configuration file (default: $FOOTFALL_CONFIG or /etc/footfall/agent.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:
        # the reader went away (`footfall config show | head`): end quietly, as cat does
        _quiet_stdout()
        return 141


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except UserError as exc:
        print(f"footfall: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
