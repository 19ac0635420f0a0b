"""`footfall status`: today's counts, occupancy, backlog, last publish, health."""

from __future__ import annotations

import argparse
import json
import time

from edge.errors import UserError

STALE_AFTER_S = 15.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="what the running agent counts and how it is")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edge import config

    cfg = config.load(args.config)  # a bad file raises ConfigError, a UserError
    path = cfg.storage.status_path
    try:
        status = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: the agent has not run yet (systemctl status footfall-agent)") from None
    age = time.time() - status["updated_utc"]
    status["running"] = age < STALE_AFTER_S
    if args.json:
        print(json.dumps(status, indent=2))
        return 0 if status["running"] else 1
    render(status, age)
    return 0 if status["running"] else 1


def render(status: dict, age: float) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    head = f"[bold]{status['device']}[/] at site [bold]{status['site']}[/], {status['local_date']}"
    con.print(head + ("" if status["running"] else f"  [red]AGENT NOT RUNNING (last seen {age:.0f} s ago)[/]"))
    t = Table(title="Today")
    t.add_column("line")
    t.add_column("source")
    t.add_column("in", justify="right")
    t.add_column("out", justify="right")
    for line, sources in sorted(status["today"].items()):
        for source, c in sorted(sources.items()):
            t.add_row(line, source, str(c["in"]), str(c["out"]))
    tot = status["total_today"]
    t.add_row("[bold]total[/]", status["primary_source"], f"[bold]{tot['in']}[/]", f"[bold]{tot['out']}[/]")
    con.print(t)
    con.print(f"Occupancy now: [bold]{status['occupancy']}[/]   Outbox backlog: {status['outbox_backlog']}"
              + (f"   Held in memory (disk full): {status['held_in_memory']}" if status["held_in_memory"] else ""))
    last = status.get("last_publish_utc")
    con.print(f"MQTT: {'connected' if status['mqtt_connected'] else '[red]not connected[/]'}; last publish: "
              + (time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(last)) if last else "never"))
    h = Table(title="Health")
    h.add_column("part")
    h.add_column("state")
    h.add_column("detail")
    for part, v in sorted(status["health"].items()):
        h.add_row(part, "[green]ok[/]" if v["ok"] else "[red]FAULT[/]", v["detail"])
    con.print(h)
