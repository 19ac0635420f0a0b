"""`footfall run`: the agent (systemd starts this)."""

from __future__ import annotations

import argparse
import logging



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the agent (counting, journal, publishing)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edge import config
    from edge.agent import Agent
    from edge.sources import build_sources

    from edge.secrets import mask_logs

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mask_logs()  # a camera URL's password must not reach the system journal
    cfg = config.load(args.config)  # a bad file raises ConfigError, a UserError
    Agent(cfg, make_sources=build_sources).run_forever()
    return 0
