"""`footfall validate`: the accuracy audit technicians and vendors run at a door.

The technician counts by hand for a period while the device counts as usual: a key per
person in the terminal (`i` in, `o` out, `u` undo, `q` finish; both counts shown live), or
`--totals` typed at the end, or `--in/--out` for a past period (`--start/--end`, e.g.
counted from a recording). The device's count is read from its journal (read-only: the
agent keeps running and counting) for the configured primary source, all lines or
`--line`. The figures, the matching and the verdict come from `edge.audit`; the audit is
stored in the journal (`audits`), and the next birth message declares the accuracy of the
last passing one. docs/validate.md.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from datetime import datetime, timezone
from typing import Any

from edge.errors import UserError

KEYS_HELP = "[i] in  [o] out  [u] undo  [q] finish"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="accuracy audit: count by hand while the device counts; PASS/FAIL, stored on the device")
    p.add_argument("--line", default=None, help="door/line to audit (default: every line of the device)")
    p.add_argument("--source", choices=("beam", "camera", "fused"), default=None,
                   help="device source to audit (default: bins.primary_source)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--totals", action="store_true", help="count on paper or a clicker; type the totals at the end")
    mode.add_argument("--in", dest="n_in", type=int, default=None, help="hand count IN of a past period (with --out, --start, --end)")
    p.add_argument("--out", dest="n_out", type=int, default=None, help="hand count OUT of a past period")
    p.add_argument("--start", type=_when, default=None, help="past period start, ISO 8601 with offset (e.g. 2026-11-24T09:00:00+08:00)")
    p.add_argument("--end", type=_when, default=None, help="past period end")
    p.add_argument("--match", default="events",
                   help="'events': pair each key press with a device crossing within --tolerance (default); "
                        "or a slot length in seconds (60: per minute, the field's usual practice)")
    p.add_argument("--tolerance", type=float, default=3.0, help="seconds a key press may be off its crossing (default 3)")
    p.add_argument("--min-crossings", type=int, default=100, help="crossings the hand count needs for a verdict (default 100)")
    p.add_argument("--pass-at", type=float, default=0.95, help="gross accuracy each direction needs to pass (default 0.95)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds to wait after the end for the device's last crossings")
    p.add_argument("--note", default="", help="free text kept with the audit (who, why)")
    p.add_argument("--json", action="store_true", help="print the stored audit record as JSON")
    p.add_argument("--history", action="store_true", help="list the audits stored on this device and exit")
    p.set_defaults(handler=handle)


def _when(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2026-11-24T09:00:00+08:00") from None
    if dt.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add one, e.g. +08:00")
    return dt.timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class DeviceCount:
    """The device's crossings for the audit, from a read-only connection to its journal."""

    def __init__(self, path: Any, source: str, line: str | None) -> None:
        from edge.journal import connect

        self.conn = connect(path, readonly=True)
        self.source, self.line = source, line

    def events(self, start: float, end: float) -> list[tuple[float, str]]:
        q = "SELECT t_utc, direction FROM crossings WHERE source = ? AND t_utc >= ? AND t_utc <= ?"
        args: tuple[Any, ...] = (self.source, start, end)
        if self.line is not None:
            q, args = q + " AND line = ?", args + (self.line,)
        return [(t, d) for t, d in self.conn.execute(q + " ORDER BY t_utc", args)]

    def totals(self, start: float, end: float) -> dict[str, int]:
        ev = self.events(start, end)
        return {d: sum(1 for _, dd in ev if dd == d) for d in ("in", "out")}

    def close(self) -> None:
        self.conn.close()


def handle(args: argparse.Namespace) -> int:
    from edge import config

    cfg = config.load(args.config)  # a bad file raises ConfigError, a UserError
    path = cfg.storage.journal_path
    if not path.exists():
        raise UserError(f"{path} does not exist: start the agent (footfall run) first, so that the device counts")
    if args.history:
        return history(path)
    _check(args)
    source = args.source or cfg.bins.primary_source
    device = DeviceCount(path, source, args.line)
    try:
        if args.n_in is not None:
            start, end = args.start, args.end
            hand: list[tuple[float, str]] | None = None
            typed = {"in": args.n_in, "out": args.n_out}
        else:
            start, end, hand, typed = _count_live(device, args)
            if args.settle > 0:
                print(f"waiting {args.settle:g} s for the device's last crossings...", flush=True)
                time.sleep(args.settle)
        device_events = device.events(start, end)
    finally:
        device.close()
    record = evaluate(args, start, end, hand, typed, device_events, source, cfg.device.id)
    from edge.journal import Journal

    j = Journal(path)
    try:
        record_id = j.add_audit(start, end, record["passed"], record)
    finally:
        j.close()
    record = {"id": record_id, **record}
    if args.json:
        print(json.dumps(record, indent=1))
    else:
        render(record, str(path))
    return 0 if record["passed"] else 1


def _check(args: argparse.Namespace) -> None:
    if args.n_in is not None or args.n_out is not None:
        if None in (args.n_in, args.n_out, args.start, args.end):
            raise UserError("a past period needs all of --in N --out M --start TIME --end TIME")
        if args.n_in < 0 or args.n_out < 0:
            raise UserError("--in and --out are numbers of people: 0 or more")
        if args.end <= args.start:
            raise UserError("--end must be after --start")
        if args.end > time.time():
            raise UserError("--end is in the future: for a count now, run `footfall validate` without --in/--out")
    elif args.start is not None or args.end is not None:
        raise UserError("--start/--end are for a past period with --in/--out; a live audit starts when you press Enter")
    if args.match != "events":
        try:
            if float(args.match) <= 0:
                raise ValueError
        except ValueError:
            raise UserError(f"--match {args.match!r}: use 'events' or a slot length in seconds, e.g. 60") from None
    if not 0 < args.pass_at <= 1:
        raise UserError("--pass-at is a share: more than 0, at most 1 (e.g. 0.95)")
    if args.min_crossings < 1 or args.tolerance < 0:
        raise UserError("--min-crossings must be at least 1 and --tolerance not negative")
    if args.n_in is None and not os.isatty(sys.stdin.fileno()):
        raise UserError("a live audit reads keys from a terminal; without one, give the hand count with "
                        "--in N --out M --start TIME --end TIME")


def evaluate(args: argparse.Namespace, start: float, end: float, hand: list[tuple[float, str]] | None,
             typed: dict[str, int] | None, device_events: list[tuple[float, str]], source: str, device_id: str) -> dict[str, Any]:
    """The audit record: what was compared, how, the figures and the verdict."""
    from edge import audit

    if hand is None:
        assert typed is not None
        counted = {d: sum(1 for _, dd in device_events if dd == d) for d in audit.DIRECTIONS}
        results, method = audit.by_totals(typed, counted), "totals"
    elif args.match == "events":
        results, method = audit.by_events(hand, device_events, args.tolerance), f"events within {args.tolerance:g} s"
    else:
        slot = float(args.match)
        results, method = audit.by_slots(hand, device_events, start, slot), f"slots of {slot:g} s"
    v = audit.verdict(results, min_crossings=args.min_crossings, pass_at=args.pass_at)
    return {
        "device": device_id,
        "started": iso(start),
        "ended": iso(end),
        "seconds": round(end - start, 1),
        "line": args.line,
        "source": source,
        "method": method,
        "min_crossings": args.min_crossings,
        "pass_at": args.pass_at,
        "passed": v.passed,
        "reason": v.reason,
        "results": {d: r.as_json() for d, r in results.items()},
        "hand_events": [[round(t, 3), d] for t, d in hand] if hand is not None else None,
        "note": args.note,
    }


# -- the live count -------------------------------------------------------------------

def _count_live(device: DeviceCount, args: argparse.Namespace
                ) -> tuple[float, float, list[tuple[float, str]] | None, dict[str, int] | None]:
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    where = f"line {args.line}" if args.line else "all lines"
    out = sys.stdout
    try:
        tty.setcbreak(fd)  # keys arrive one by one, unechoed; Ctrl-C still interrupts
        if args.totals:
            out.write(f"Audit of {where}, source {device.source}: count people on paper or a clicker.\n"
                      "Press Enter to start the period.\n")
            out.flush()
            _wait_key(fd, "\r\n")
            start = time.time()
            out.write(f"Counting since {iso(start)}. Press Enter when the period ends.\n")
            out.flush()
            _wait_key(fd, "\r\n", lambda: _live_line(out, None, device.totals(start, time.time()), start))
            end = time.time()
            out.write("\n")
            typed = {d: _ask_int(fd, out, f"people {d.upper()} counted by hand: ") for d in ("in", "out")}
            return start, end, None, typed
        out.write(f"Audit of {where}, source {device.source}. For each person crossing, press i (IN) or o (OUT);\n"
                  f"u undoes the last key, q finishes. Press Enter to start.\n")
        out.flush()
        _wait_key(fd, "\r\n")
        start = time.time()
        hand: list[tuple[float, str]] = []
        last_draw = 0.0
        while True:
            now = time.time()
            if now - last_draw >= 0.3:
                _live_line(out, hand, device.totals(start, now), start)
                last_draw = now
            if not select.select([fd], [], [], 0.1)[0]:
                continue
            for ch in os.read(fd, 64).decode(errors="replace").lower():
                if ch == "i":
                    hand.append((time.time(), "in"))
                elif ch == "o":
                    hand.append((time.time(), "out"))
                elif ch == "u" and hand:
                    hand.pop()
                elif ch == "q":
                    end = time.time()
                    _live_line(out, hand, device.totals(start, end), start)
                    out.write("\n")
                    return start, end, hand, None
                last_draw = 0.0
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        raise UserError("audit abandoned (Ctrl-C): nothing stored") from None
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _live_line(out: Any, hand: list[tuple[float, str]] | None, dev: dict[str, int], start: float) -> None:
    secs = int(time.time() - start)
    mine = "" if hand is None else (f"hand: in {sum(d == 'in' for _, d in hand)} out {sum(d == 'out' for _, d in hand)}   ")
    keys = "" if hand is None else KEYS_HELP
    out.write(f"\r\x1b[K{mine}device: in {dev['in']} out {dev['out']}   {secs // 60:02d}:{secs % 60:02d}   {keys}")
    out.flush()


def _wait_key(fd: int, keys: str, tick: Any = None) -> None:
    while True:
        if tick is not None:
            tick()
        if select.select([fd], [], [], 0.3)[0] and any(ch in keys for ch in os.read(fd, 64).decode(errors="replace")):
            return


def _ask_int(fd: int, out: Any, prompt: str) -> int:
    """Read a number typed in cbreak mode (echoing it; backspace works); ask again until valid."""
    while True:
        out.write(prompt)
        out.flush()
        text = ""
        while True:
            ch = os.read(fd, 1).decode(errors="replace")
            if ch in "\r\n":
                break
            if ch in "\x7f\b":
                if text:
                    text = text[:-1]
                    out.write("\b \b")
            else:
                text += ch
                out.write(ch)
            out.flush()
        out.write("\n")
        if text.strip().isdigit():
            return int(text.strip())
        out.write(f"{text.strip()!r} is not a number of people; type digits, e.g. 57\n")


# -- output ---------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def render(r: dict[str, Any], journal: str) -> None:
    print(f"\nfootfall validate: {r['device']}, {'line ' + r['line'] if r['line'] else 'all lines'}, source {r['source']}")
    print(f"  period    {r['started']} .. {r['ended']} ({r['seconds']:g} s)")
    print(f"  matching  {r['method']}")
    print(f"  {'':9} {'true':>6} {'device':>7} {'matched':>8} {'missed':>7} {'extra':>6} {'gross':>7} {'net':>7}")
    for d in ("in", "out"):
        x = r["results"][d]
        print(f"  {d:9} {x['true']:>6} {x['counted']:>7} {x['matched']:>8} {x['missed']:>7} {x['extra']:>6}"
              f" {_pct(x['gross']):>7} {_pct(x['net']):>7}")
    verdict = "PASS" if r["passed"] else "FAIL"
    print(f"  result    {verdict}: {r['reason']} (minimum {r['min_crossings']} crossings, pass at {r['pass_at']:.1%})")
    print(f"  stored    audit #{r['id']} in {journal}"
          + ("; the next birth message (agent start) declares it" if r["passed"] else "; not declared (failed)"))


def history(path: Any) -> int:
    from edge.journal import Journal

    j = Journal(path)
    try:
        audits = j.audits()
    finally:
        j.close()
    if not audits:
        print("no audits stored on this device yet")
    for a in audits:
        res = a["results"]
        print(f"#{a['id']} {a['ended']} {'PASS' if a['passed'] else 'FAIL'} {a['line'] or 'all lines'} {a['source']}"
              f" gross in {_pct(res['in']['gross'])} out {_pct(res['out']['gross'])}"
              f" ({res['in']['true'] + res['out']['true']} crossings, {a['method']})")
    return 0
