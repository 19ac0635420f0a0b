"""`footfall index run|report`: the reference index consumer."""

from __future__ import annotations

import argparse
import json
import threading


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="reference index consumer (subscribe, dedupe, report)")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    r = verbs.add_parser("run", help="subscribe to all devices and store their counts")
    r.add_argument("--db", required=True, help="consumer SQLite file")
    r.add_argument("--host", default="localhost")
    r.add_argument("--port", type=int, default=1883)
    r.add_argument("--username")
    r.add_argument("--password-file", help="file holding the password")
    r.add_argument("--ca-file", help="CA certificate: enables TLS")
    r.add_argument("--prefix", default="footfall/v1")
    r.add_argument("--group", default="index", help="MQTT 5 shared-subscription group")
    r.set_defaults(handler=run)
    rep = verbs.add_parser("report", help="per-site daily visits, hourly profile and peak occupancy")
    rep.add_argument("--db", required=True)
    rep.add_argument("--site")
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(handler=report)


def run(args: argparse.Namespace) -> int:
    import logging
    import signal

    from edge.index_consumer import ConsumerSettings, IndexConsumer, IndexStore

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    password = open(args.password_file).read().strip() if args.password_file else None
    s = ConsumerSettings(host=args.host, port=args.port, username=args.username, password=password,
                         ca_file=args.ca_file, tls=bool(args.ca_file), prefix=args.prefix, group=args.group)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    IndexConsumer(s, IndexStore(args.db)).run_forever(stop)
    return 0


def report(args: argparse.Namespace) -> int:
    from edge.index_consumer import IndexStore

    days = IndexStore(args.db).daily(args.site)
    if args.json:
        print(json.dumps(days, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Daily visits per site")
    for col in ("site", "date", "in", "out", "peak occ.", "peak hour", "bins", "flagged"):
        t.add_column(col)
    for d in days:
        hourly = d["hourly_in"]
        peak_hour = max(range(24), key=hourly.__getitem__)
        t.add_row(d["site"], d["date"], str(d["visits_in"]), str(d["visits_out"]), str(d["peak_occupancy"]),
                  f"{peak_hour:02d}:00 ({hourly[peak_hour]})", str(d["bins"]), str(d["flagged_bins"]))
    Console().print(t)
    for d in days:
        bar = " ".join(f"{h:02d}:{n}" for h, n in enumerate(d["hourly_in"]) if n)
        print(f"{d['site']} {d['date']} hourly in: {bar or '-'}")
    return 0
