"""`footfall run`: the agent (systemd starts this)."""

from __future__ import annotations

import argparse
import logging
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the agent (counting, journal, publishing)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="INFO (default): start, stop, every part going down or back (rate-limited), replays; "
                   "WARNING: faults only; DEBUG: every bin queued")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edge import config
    from edge.agent import Agent
    from edge.secrets import mask_logs
    from edge.sources import build_sources

    # under systemd (JOURNAL_STREAM set) journald stamps the time itself
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(level=args.log_level, format=stamp + "%(levelname)s %(name)s: %(message)s")
    mask_logs()  # a camera URL's password must not reach the system journal
    cfg = config.load(args.config)  # a bad file raises ConfigError, a UserError
    Agent(cfg, make_sources=build_sources).run_forever()
    return 0
