"""`footfall summary --day DATE`: the day summary the device sends the index system."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from edge.commands.args import local_day
from edge.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="a local day's summary (visits, peak hour, occupancy, usage, completeness)")
    p.add_argument("--day", required=True, type=local_day, help="local date YYYY-MM-DD")
    p.add_argument("--json", action="store_true", help="print the summary's JSON (the contract's payload body)")
    p.add_argument("--publish", action="store_true", help="also have the running agent publish it (on its next tick)")
    p.set_defaults(handler=handle)




def open_journal(args: argparse.Namespace) -> tuple[Any, Any]:
    """The configuration and the agent's journal, or a UserError saying what is missing."""
    from edge import config
    from edge.journal import Journal

    cfg = config.load(args.config)  # a bad file raises ConfigError, a UserError
    path = cfg.storage.journal_path
    if not path.exists():
        raise UserError(f"{path} does not exist: the agent has not counted anything yet (check storage.state_dir)")
    return cfg, Journal(path)


@contextmanager
def read_snapshot(conn: Any) -> Iterator[None]:
    """A deferred (read) transaction: one consistent view of the journal without taking the
    write lock, so the running agent keeps committing crossings meanwhile (WAL)."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def handle(args: argparse.Namespace) -> int:
    import time

    from edge.summaries import device_summary, offline_binner, profile_of, request

    cfg, journal = open_journal(args)
    try:
        with read_snapshot(journal.conn):
            binner = offline_binner(cfg, journal.conn)
            body = device_summary(binner, args.day, profile_of(cfg))
        if args.publish:
            with journal.transaction():
                request(journal.conn, args.day, time.time(), "cli")
    finally:
        journal.close()
    if args.json:
        print(json.dumps(body, indent=1))
    else:
        render(cfg.device.id, body)
    if args.publish:
        print("queued: the running agent publishes it on its next tick", flush=True)
    return 0


def render(device: str, s: dict[str, Any]) -> None:
    c, v, b = s["completeness"], s["visits"], s["balance"]
    peak = s["peak_hour"]
    usage = s["usage_rate"]
    lines = [
        f"{device} {s['date']} ({s['timezone']}, {s['hours']} h, source {s['source']})",
        f"  visits in {v['in']}, out {v['out']}; balance in-out {b['in_minus_out']:+d}"
        + (f" (out/in {b['out_per_in']:.3f})" if b["out_per_in"] is not None else ""),
        f"  peak hour {peak['start_local'][11:16]} ({peak['in']} in)" if peak else "  peak hour: no visits",
        f"  peak occupancy {s['peak_occupancy']['value']}"
        + (f" at {s['peak_occupancy']['at_local'][11:16]}" if s["peak_occupancy"]["at_local"] else ""),
        f"  usage rate over opening hours: mean {usage['mean']:.1%}, peak {usage['peak']:.1%} of {usage['capacity']}"
        if usage else "  usage rate: n/a (no [site] capacity, or no opening hours that day)",
        f"  gathering rate {s['gathering_rate']['per_1000']:.2f} visits per 1,000 residents ({s['gathering_rate']['residents']})"
        if s.get("gathering_rate") else "  gathering rate: n/a (no [site] residents)",
        f"  completeness {c['share']:.1%} ({c['healthy_bins']} healthy of {c['expected_bins']} bins, {c['received_bins']} closed)",
    ]
    r = s.get("ratings")
    if r is not None:
        share, rate = r["satisfaction_share"], r["response_rate"]
        lines.append(f"  ratings {r['counted']} (" + ", ".join(f"level {k}: {n}" for k, n in r["counts"].items()) + ")"
                     + f"; satisfaction {'-' if share is None else f'{share:.1%}'}, response rate {'-' if rate is None else f'{rate:.1%}'}"
                     + f"; {r['repeats']} repeated press(es) not counted")
    print("\n".join(lines))
