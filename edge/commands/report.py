"""`footfall report --day DATE`: a day's in/out, occupancy and health gaps as PNG and CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.errors import UserError
from edge.commands.args import local_day
from edge.commands.summary import open_journal, read_snapshot


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="picture (PNG) and table (CSV) of a local day, and a short summary")
    p.add_argument("--day", required=True, type=local_day, help="local date YYYY-MM-DD")
    p.add_argument("--out", type=Path, help="PNG to write (default: report-<device>-<day>.png)")
    p.add_argument("--csv", type=Path, help="also write one CSV line per bin here")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from contract.figure_labels import day_figures
    from edge.commands.summary import render
    from edge.day_report import Row, draw, png_bytes, write_csv
    from contract.day_summary import day_bounds
    from edge.summaries import device_summary, offline_binner, profile_of
    from contract.timebins import bins_between

    cfg, journal = open_journal(args)
    try:
        with read_snapshot(journal.conn):
            binner = offline_binner(cfg, journal.conn)
            start, end = day_bounds(args.day, cfg.zone)
            closed = {r[0] for r in journal.conn.execute(
                "SELECT start_utc FROM bin_state WHERE start_utc >= ? AND start_utc < ?", (start, end))}
            rows = [Row(b.start_utc, b.end_utc, binner.compute(b) if b.start_utc in closed else None)
                    for b in bins_between(start, end, cfg.bins.minutes, cfg.zone)]
            summary = device_summary(binner, args.day, profile_of(cfg))
            meta = dict(journal.conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('bins_first_start_utc', 'bins_next_start_utc')").fetchall())
    finally:
        journal.close()
    out = args.out or Path(f"report-{cfg.device.id}-{args.day.isoformat()}.png")
    first = float(meta["bins_first_start_utc"]) if meta.get("bins_first_start_utc") else None
    due = float(meta["bins_next_start_utc"]) if meta.get("bins_next_start_utc") else None
    title = f"{cfg.device.site} / {cfg.device.id}   {args.day.isoformat()} ({cfg.device.timezone})"
    fig = draw(rows, cfg.zone, profile_of(cfg).hours, title, cfg.site.capacity, day_figures(summary), first, due)
    try:
        out.write_bytes(png_bytes(fig))
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}; check the directory exists and is writable") from None
    if args.csv:
        try:
            write_csv(rows, cfg.zone, args.csv)
        except OSError as exc:
            raise UserError(f"cannot write {args.csv}: {exc.strerror}") from None
    render(cfg.device.id, summary)
    gaps = sum(r.state(first, due) == "gap" for r in rows)
    print(f"  {gaps} of {len(rows)} bins shaded as health gaps")
    print(f"wrote {out}" + (f" and {args.csv}" if args.csv else ""))
    return 0
