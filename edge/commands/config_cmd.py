"""`footfall config check|show`."""

from __future__ import annotations

import argparse
import json



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="check or show the agent configuration")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs.add_parser("check", help="validate the file; exit 2 with each problem and its fix").set_defaults(handler=check)
    verbs.add_parser("show", help="print the effective configuration (defaults filled, secrets masked)").set_defaults(handler=show)
    verbs.add_parser("reference", help="print every key with its type, default and meaning (Markdown)").set_defaults(handler=reference)


def _load(args: argparse.Namespace):
    from edge import config

    return config.load(args.config), config.resolve_path(args.config)  # a bad file raises ConfigError, a UserError


def check(args: argparse.Namespace) -> int:
    cfg, path = _load(args)
    print(f"{path}: OK (device {cfg.device.id} at site {cfg.device.site}, config hash {cfg.digest()})")
    return 0


def show(args: argparse.Namespace) -> int:
    import tomlkit

    cfg, _ = _load(args)
    data = json.loads(json.dumps(cfg.masked()))  # paths -> strings
    print(tomlkit.dumps(_drop_none(data)))
    return 0


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


def reference(args: argparse.Namespace) -> int:
    from edge.config import reference_markdown

    print(reference_markdown())
    return 0
