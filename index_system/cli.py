"""`footfall index run|report`: the reference index consumer."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import date
from typing import Any


def local_day(text: str) -> date:
    """A local calendar date given as YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="reference index consumer (subscribe, dedupe, report)")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    r = verbs.add_parser("run", help="subscribe to all devices and store their counts",
                         description="Subscribe to every device's messages on the broker, store them (deduplicated) "
                         "in a SQLite file or a PostgreSQL database, and ask devices to replay sequence gaps. Several "
                         "instances (one --group, each its own --username or --client-id) share the load and one PostgreSQL. Defaults match the agent's "
                         "[mqtt] section and broker/mosquitto.conf: port 8883 with TLS.")
    r.add_argument("--db", required=True, help="the consumer's store: a SQLite file (created if absent) or a PostgreSQL URL, postgresql://user@host/db")
    r.add_argument("--host", default="localhost", help="broker host (default localhost)")
    r.add_argument("--port", type=int, default=8883, help="broker port (default 8883, MQTT over TLS; 1883 is plain)")
    r.add_argument("--tls", action=argparse.BooleanOptionalAction, default=True,
                   help="TLS to the broker (default on; --no-tls only for a local test broker)")
    r.add_argument("--ca-file", help="CA certificate that signed the broker's (default: the system's CAs)")
    r.add_argument("--username", help="broker user (broker/acl gives the index user read access to all sites)")
    r.add_argument("--password-file", help="file holding the password (kept out of the process list)")
    r.add_argument("--prefix", default="footfall/v1", help="topic prefix, as the agents' [mqtt] topic_prefix (default footfall/v1)")
    r.add_argument("--group", default="index", help="MQTT 5 shared-subscription group: consumers in one group share the load (default index)")
    r.add_argument("--client-id", default="footfall-index",
                   help="MQTT client id, one per instance (default footfall-index); a broker with use_username_as_clientid"
                        " (broker/mosquitto.conf) takes the --username instead")
    r.add_argument("--replay-after", type=float, default=10.0, metavar="S",
                   help="seconds a sequence gap stays open before the device is asked to replay it (default 10)")
    r.add_argument("--door-per-minute", type=int,
                   help="most people one device may count per minute and direction; a bin above it is refused"
                        " (default: IntakeLimits in index_system/intake.py, 120)")
    r.add_argument("--offline-grace-s", type=float, default=300.0,
                   help="a device is offline after one bin period plus this many seconds without a bin (default 300)")
    r.set_defaults(handler=run)
    rep = verbs.add_parser("report", help="per-site daily visits, hourly profile and peak occupancy")
    rep.add_argument("--db", required=True, help="the consumer's store: a SQLite file (created if absent) or a PostgreSQL URL, postgresql://user@host/db")
    rep.add_argument("--site")
    rep.add_argument("--json", action="store_true")
    rep.add_argument("--week", action="store_true",
                     help="per site: visits per day and week, week-over-week change, peak hours, usage rate, gathering rate, satisfaction share")
    rep.add_argument("--end", type=local_day, help="with --week: last local day of the week (default: the last day with bins)")
    rep.add_argument("--devices", action="store_true",
                     help="per device only: retained status, heard from by its bins, refused messages, duplicate identities")
    rep.add_argument("--offline-grace-s", type=float, default=300.0,
                     help="a device is offline after one bin period plus this many seconds without a bin (default 300)")
    rep.add_argument("--now", type=float, help=argparse.SUPPRESS)  # tests: judge availability at this UTC time
    rep.set_defaults(handler=report)
    sv = verbs.add_parser("serve", help="the lobby and district page (HTML, no internet needed) from the store",
                          description="Serve the district's ranking (visits, usage rate, gathering rate, satisfaction "
                          "this week) and, per site, today's live curve and the week, from the consumer's store. "
                          "Pages reload themselves; nothing is fetched from the internet.")
    sv.add_argument("--db", required=True, help="the consumer's store, a SQLite file or a PostgreSQL URL (as `footfall index run --db`)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for a screen elsewhere)")
    sv.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    sv.add_argument("--district", default="District", help="the heading of the ranking (default District)")
    sv.add_argument("--refresh", type=int, default=30, metavar="S", help="seconds between page reloads (default 30)")
    sv.set_defaults(handler=serve)
    sm = verbs.add_parser("summary", help="a device's day summary: as received, and as recomputed from the stored bins")
    sm.add_argument("--db", required=True, help="the consumer's store: a SQLite file (created if absent) or a PostgreSQL URL, postgresql://user@host/db")
    sm.add_argument("--device", required=True)
    sm.add_argument("--day", required=True, type=local_day, help="local date YYYY-MM-DD")
    sm.set_defaults(handler=summary)




ENVELOPE = ("schema", "device", "site", "epoch", "seq", "historical", "revision", "trigger")


def summary(args: argparse.Namespace) -> int:
    """Print both summaries, whether they agree and, when not, why; exit 1 when they differ."""
    import time

    from index_system.consumer import IndexStore

    store = IndexStore(args.db)
    received = store.received_summary(args.device, args.day)
    recomputed = store.recompute_summary(args.device, args.day)
    figures = None if received is None else {k: v for k, v in received.items() if k not in ENVELOPE}
    agree = None if received is None or recomputed is None else figures == recomputed
    print(json.dumps({"received": received, "recomputed": recomputed, "agree": agree,
                      "why": why_not(figures, recomputed, time.time())}, indent=1))
    return 1 if received is not None and figures != recomputed else 0


def why_not(received: dict[str, Any] | None, recomputed: dict[str, Any] | None, now_utc: float) -> list[str]:
    """Plain reasons the device's summary and the consumer's recomputation differ (or cannot be
    compared); empty when they agree."""
    from contract.timebins import iso_utc

    if recomputed is None:
        return ["the consumer stored no bins of this device for this day"]
    end = recomputed["end_utc"]
    over = iso_utc(now_utc) >= end
    if received is None:
        return ["no summary received yet: " + ("the day is not over (it ends " + end + "); the device sends it "
                                               "after its re-base time" if not over else
                                               "the device sends it after its re-base time, or on request "
                                               "(`footfall summary --day` on the device)")]
    if received == recomputed:
        return []
    reasons = []
    got, have = received["completeness"]["received_bins"], recomputed["completeness"]["received_bins"]
    if not over:
        reasons.append(f"the day is not over yet (it ends {end}): bins are still arriving")
    if have < got:
        reasons.append(f"the consumer has {got - have} fewer bins than the device summarised "
                       f"({have} of {got}): missing bins (a replay may be pending)")
    elif have > got:
        reasons.append(f"the consumer has {have - got} bins the device's summary did not include: "
                       "a newer revision of the summary has not arrived yet")
    differ = sorted(k for k in set(received) | set(recomputed) if received.get(k) != recomputed.get(k))
    reasons.append("figures that differ: " + ", ".join(differ))
    return reasons


def serve(args: argparse.Namespace) -> int:
    import logging
    import signal

    from index_system.consumer import IndexStore
    from index_system.lobby_server import serve as start

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not 1 <= args.refresh <= 3600:
        print("footfall: --refresh must be 1..3600 seconds", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = start(IndexStore(args.db), args.host, args.port, args.district, args.refresh)
    print(f"serving http://{server.server_address[0]}:{server.server_address[1]}/", flush=True)
    stop.wait()
    server.shutdown()
    return 0


def run(args: argparse.Namespace) -> int:
    import logging
    import signal

    from index_system.consumer import ConsumerSettings, IndexConsumer, open_store_when_up
    from index_system.intake import IntakeLimits
    from index_system.store_sql import shown_url

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    password = open(args.password_file).read().strip() if args.password_file else None
    s = ConsumerSettings(host=args.host, port=args.port, username=args.username, password=password,
                         ca_file=args.ca_file, tls=args.tls, prefix=args.prefix, group=args.group, client_id=args.client_id,
                         replay_after_s=args.replay_after, offline_grace_s=args.offline_grace_s)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logging.getLogger(__name__).info("index consumer: broker %s:%d%s, store %s", args.host, args.port,
                                     " (TLS)" if args.tls else " (no TLS)", shown_url(args.db))
    limits = IntakeLimits() if args.door_per_minute is None else IntakeLimits(door_per_minute=args.door_per_minute)
    store = open_store_when_up(args.db, limits, stop)
    if store is not None:  # None: stopped while waiting for the store
        IndexConsumer(s, store).run_forever(stop)
    return 0


def report(args: argparse.Namespace) -> int:
    from index_system.consumer import IndexStore

    if args.week:
        return week(IndexStore(args.db), args)
    store = IndexStore(args.db)
    health = store.device_health(time.time() if args.now is None else args.now, args.offline_grace_s)
    if args.site:
        health = [d for d in health if d["site"] == args.site]
    if args.devices and args.json:
        print(json.dumps(health, indent=1))
        return 0
    from rich.table import Table

    if args.devices:
        print_whole(devices_table(health))
        return 0
    days = store.daily(args.site)
    if args.json:
        print(json.dumps(days, indent=1))
        return 0

    t = Table(title="Daily visits per site")
    for col in ("site", "date", "in", "out", "peak occ.", "peak hour", "bins", "flagged"):
        t.add_column(col, no_wrap=True)
    for d in days:
        hourly = d["hourly_in"]
        peak_hour = max(range(24), key=hourly.__getitem__)
        t.add_row(d["site"], d["date"], str(d["visits_in"]), str(d["visits_out"]), str(d["peak_occupancy"]),
                  f"{peak_hour:02d}:00 ({hourly[peak_hour]})", str(d["bins"]), str(d["flagged_bins"]))
    print_whole(t)
    for d in days:
        bar = " ".join(f"{h:02d}:{n}" for h, n in enumerate(d["hourly_in"]) if n)
        print(f"{d['site']} {d['date']} hourly in: {bar or '-'}")
    print_whole(devices_table(health))
    return 0


def print_whole(table: Any) -> None:
    """Print a table no narrower than it needs, whatever the terminal (80 columns when piped):
    site names (up to 64 characters) are shown whole, never cut; a narrow terminal wraps lines."""
    from rich.console import Console
    from rich.measure import Measurement

    con = Console()
    need = Measurement.get(con, con.options.update(width=10_000), table).maximum
    (Console(width=need) if need > con.width else con).print(table)


def devices_table(health: list[dict[str, Any]]) -> Any:
    """Availability judged by the bins received, next to the retained status it may contradict."""
    from rich.table import Table

    t = Table(title="Devices (heard: by the bins they send; status: their retained message)")
    for col in ("site", "device", "heard", "status", "last bin received (UTC)", "refused", "duplicate identity"):
        t.add_column(col, no_wrap=True)
    for d in health:
        last = d["last_bin_utc"]
        t.add_row(str(d["site"]), d["device"], d["heard"], str(d["status"] or "-"),
                  "-" if last is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(last)),
                  str(d["refused"]), str(d["duplicate_identity"]))
    return t


def week(store: Any, args: argparse.Namespace) -> int:
    views = store.week(args.end, args.site)
    if args.json:
        print(json.dumps(views, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    con = Console()
    if not views:
        con.print("no bins stored yet")
    for v in views:
        t = Table(title=f"Site {v['site']}: week {v['week_start']} .. {v['week_end']}")
        for col in ("date", "visits in", "peak hour", "complete"):
            t.add_column(col, justify="right" if col != "date" else "left")
        for d in v["days"]:
            peak = d["peak_hour"]
            t.add_row(d["date"], "-" if d["visits_in"] is None else str(d["visits_in"]),
                      f"{peak['start_local'][11:16]} ({peak['in']})" if peak else "-",
                      "-" if d["completeness"] is None else f"{d['completeness']:.0%}")
        con.print(t)
        wow = v["week_over_week"]
        con.print(f"visits this week {v['visits_week']}, previous week "
                  f"{'-' if v['visits_previous_week'] is None else v['visits_previous_week']}, change "
                  f"{'-' if wow is None else f'{wow:+.1%}'}")
        con.print("peak hours: " + (", ".join(f"{p['hour']:02d}:00 ({p['in']})" for p in v["peak_hours"]) or "-"))
        usage = v["usage_rate"]
        con.print("usage rate (mean over opening hours): " + ("-" if usage is None else f"{usage:.1%}"))
        gather = v["gathering_rate"]
        con.print("gathering rate: " + ("- (no `[site] residents` declared)" if gather is None else
                                        f"{gather:.1f} visits per 1,000 residents ({v['residents']} residents)"))
        share = v["satisfaction_share"]
        con.print("satisfaction share: " + ("- (no counted ratings: no keypad, or nobody rated)" if share is None
                                            else f"{share:.1%} of {v['ratings_counted']} ratings"))
    return 0
