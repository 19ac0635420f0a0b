"""`footfall ir`: the technician's tools for a door's infrared beams.

- `ir monitor`: live beam states, recent edges and link statistics.
- `ir walk-test`: the technician walks through N times in and M times out; the tool
  reports counted against told and passes or fails, audit-style.

Both open the door's serial port themselves (stop the agent first: a port has one
reader) and acknowledge events into a scratch journal by default, so test walks do not
enter the site's counts; `--journal` writes into a given journal instead. Transit limits
and direction are flags here; the report prints the `[beams]` lines to keep them.
"""

from __future__ import annotations

import argparse
import collections
import sqlite3
import tempfile
import time
from pathlib import Path

from edge.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    ir = subparsers.add_parser("ir", help="door infrared beams: monitor, walk-test")
    sub = ir.add_subparsers(dest="ir_command", metavar="IR_COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--port", required=True, help="serial device of the door board (prefer /dev/serial/by-id/...)")
        p.add_argument("--door", default="door1", help="door name (default door1)")
        p.add_argument("--baudrate", type=int, default=115200)
        p.add_argument("--journal", default=None, help="journal to write (default: a scratch journal, discarded)")
        p.add_argument("--a-then-b", choices=("in", "out"), default="in",
                       help="direction of a pass breaking beam A first (default in)")
        p.add_argument("--min-transit", type=float, default=0.004, help="seconds; closer break/clear order is 'simultaneous'")
        p.add_argument("--max-transit", type=float, default=2.5, help="seconds; longer blockages are low-confidence estimates")
        p.add_argument("--stuck", type=float, default=60.0, help="seconds a beam may stay blocked before it is a fault")

    mon = sub.add_parser("monitor", help="live beam states, events and link statistics")
    common(mon)
    mon.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    mon.set_defaults(handler=monitor)

    wt = sub.add_parser("walk-test", help="walk through N in and M out; counted against told, PASS/FAIL")
    common(wt)
    wt.add_argument("--in", dest="n_in", type=int, required=True, help="times you will walk in")
    wt.add_argument("--out", dest="n_out", type=int, required=True, help="times you will walk out")
    wt.add_argument("--seconds", type=float, default=None,
                    help="test length; default: until you press Enter")
    wt.set_defaults(handler=walk_test)
    ir.set_defaults(handler=lambda a: (ir.print_help(), 2)[1])


class _Session:
    """A BeamSource on one door with a journal, for the CLI's lifetime."""

    def __init__(self, args: argparse.Namespace) -> None:
        from pydantic import ValidationError

        from edge.beam_source import BeamSettings, BeamSource, DoorSettings
        from edge.journal_writer import JournalWriter

        if not Path(args.port).exists():
            raise UserError(f"no serial device at {args.port}: check the cable, then `ls /dev/serial/by-id/`")
        try:
            self.door = DoorSettings(name=args.door, port=args.port, baudrate=args.baudrate, a_then_b=args.a_then_b,
                                     min_transit_s=args.min_transit, max_transit_s=args.max_transit,
                                     stuck_s=args.stuck)
        except ValidationError as exc:
            raise UserError(f"bad beam settings: {exc.errors()[0]['msg']}") from exc
        self.scratch = args.journal is None
        self.journal_path = Path(args.journal or Path(tempfile.mkdtemp(prefix="footfall-ir-")) / "journal.db")
        self.store = JournalWriter.open(self.journal_path)
        self.health: collections.deque[tuple[float, str, bool, str]] = collections.deque(maxlen=50)  # refreshed each second
        self.source = BeamSource(BeamSettings(doors=[self.door]), self.store,
                                 lambda c, ok, d: self.health.append((time.time(), c, ok, d)))
        self.started_utc = time.time()
        self.source.start()

    @property
    def pipe(self):
        return self.source.doors[0]

    def crossings(self) -> list[tuple[float, str, float]]:
        c = sqlite3.connect(f"file:{self.journal_path}?mode=ro", uri=True)
        try:
            return c.execute("SELECT t_utc, direction, confidence FROM crossings WHERE line = ? AND recorded_utc >= ?"
                             " ORDER BY t_utc", (self.door.name, self.started_utc)).fetchall()
        finally:
            c.close()

    def close(self) -> None:
        self.source.stop()
        self.store.close()


def _status_table(s: _Session):
    from rich.table import Table

    link = s.pipe.link
    hb = s.pipe.last_heartbeat
    hello = link.last_hello
    t = Table(title=f"door {s.door.name} on {s.door.port}", show_header=False)
    t.add_row("board", f"fw {hello.fw_major}.{hello.fw_minor}.{hello.fw_patch}, epoch {hello.epoch}, ring {hello.ring_capacity}"
              if hello else "[yellow]no HELLO yet[/]")
    if hb:
        states = " ".join(f"{'A' if i == s.door.a_beam else 'B' if i == s.door.b_beam else i}:"
                          f"{'[red]BROKEN[/]' if hb.states >> i & 1 else '[green]clear[/]'}" for i in range(len(hb.counters)))
        t.add_row("beams", states)
        t.add_row("edges since boot", " ".join(str(c) for c in hb.counters))
        t.add_row("board seq / acked / overflow", f"{hb.last_seq} / {hb.acked_seq} / {hb.overflow}")
    st = link.stats
    t.add_row("link", f"committed {st.events_committed}, gaps {st.gaps}, resumes {st.resumes_sent}, "
              f"skipped {st.skipped}, reopen {st.opens - 1 if st.opens else 0}, resets seen {st.resets_seen}")
    t.add_row("frames", link.frame_counts().text())
    rows = s.crossings()
    t.add_row("crossings", f"in {sum(d == 'in' for _, d, _ in rows)}  out {sum(d == 'out' for _, d, _ in rows)}"
              f"  (low confidence {sum(c < 1 for *_, c in rows)})")
    if s.pipe.decoder.fault:
        t.add_row("fault", f"[red]{s.pipe.decoder.fault}[/]")
    for when, comp, ok, detail in list(s.health)[-3:]:
        t.add_row(time.strftime("%H:%M:%S", time.localtime(when)), f"{'[green]ok[/]' if ok else '[red]DOWN[/]'} {detail}")
    return t


def monitor(args: argparse.Namespace) -> int:
    from rich.live import Live

    s = _Session(args)
    end = time.monotonic() + args.seconds if args.seconds else None
    try:
        with Live(_status_table(s), refresh_per_second=4) as live:
            while end is None or time.monotonic() < end:
                time.sleep(0.25)
                live.update(_status_table(s))
    except KeyboardInterrupt:
        pass
    finally:
        s.close()
    return 0


def walk_test(args: argparse.Namespace) -> int:
    from rich.console import Console

    if args.n_in < 0 or args.n_out < 0 or args.n_in + args.n_out == 0:
        raise UserError("tell how many times you will walk: --in N --out M, at least one pass")
    console = Console()
    s = _Session(args)
    try:
        console.print(f"Walk through door [bold]{s.door.name}[/]: [bold]{args.n_in}[/] time(s) IN and "
                      f"[bold]{args.n_out}[/] time(s) OUT, one at a time.")
        if args.seconds:
            console.print(f"The test ends in {args.seconds:.0f} s.")
            time.sleep(args.seconds)
        else:
            input("Press Enter when you have finished walking... ")
        time.sleep(max(1.0, s.door.merge_gap_s * 4))  # let the last pass settle
        rows = s.crossings()
        link = s.pipe.link
    finally:
        s.close()
    c_in = sum(d == "in" for _, d, _ in rows)
    c_out = sum(d == "out" for _, d, _ in rows)
    low = sum(c < 1 for *_, c in rows)
    ok = c_in == args.n_in and c_out == args.n_out
    hello = link.last_hello
    console.print("\n[bold]IR walk test[/]")
    console.print(f"  time (UTC)      {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(s.started_utc))}")
    console.print(f"  door / port     {s.door.name} / {s.door.port}")
    console.print("  board           " + (f"fw {hello.fw_major}.{hello.fw_minor}.{hello.fw_patch}, epoch {hello.epoch}"
                                        if hello else "NO HELLO: board not answering"))
    console.print(f"  settings        a_then_b={s.door.a_then_b} min_transit_s={s.door.min_transit_s} "
                  f"max_transit_s={s.door.max_transit_s} stuck_s={s.door.stuck_s}")
    console.print(f"  told            in {args.n_in}  out {args.n_out}")
    console.print(f"  counted         in {c_in}  out {c_out}  (low confidence: {low})")
    console.print(f"  link            committed {link.stats.events_committed} edges"
                  + (f", {link.stats.skipped} earlier edges skipped (acknowledged before this test)"
                     if link.stats.skipped else ""))
    console.print(f"  frames          {link.frame_counts().text()}")
    console.print(f"  journal         {'scratch (test walks kept out of the site counts)' if s.scratch else s.journal_path}")
    verdict = "[bold green]PASS[/]" if ok else "[bold red]FAIL[/]"
    console.print(f"  result          {verdict}")
    if not ok and c_in == args.n_out and c_out == args.n_in and c_in != c_out:
        console.print("  hint            in and out are swapped: use --a-then-b "
                      f"{'out' if s.door.a_then_b == 'in' else 'in'} and set a_then_b in [beams]")
    console.print("\nTo keep these settings, in the agent's [beams] doors entry:\n"
                  f'  a_then_b = "{s.door.a_then_b}"\n  min_transit_s = {s.door.min_transit_s}\n'
                  f"  max_transit_s = {s.door.max_transit_s}\n  stuck_s = {s.door.stuck_s}")
    return 0 if ok else 1
