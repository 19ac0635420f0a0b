"""The demo: the real agent on a simulated door, a local Mosquitto and the reference index.

    footfall demo [--minutes 3] [--scenario single_file] [--workdir DIR]

Everything is real except the door: a virtual microcontroller speaks the real protocol
over a pseudo-terminal, the agent (`footfall run`) runs as its own process with its
journal, bins and outbox, Mosquitto runs on a free local port, and the reference index
consumer stores what arrives. The screen shows the door's truth, the agent's counts and
what reached the broker, live; at the end all three are compared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from index_system.consumer import ConsumerSettings, IndexConsumer, IndexStore
from simulator import people
from simulator.local_broker import Broker
from simulator.processes import terminate
from simulator.scenario import load as load_scenario
from simulator.virtual_mcu import VirtualMcu

DOOR = "main-door"
BIN_MINUTES = 1


def agent_config(workdir: Path, port: Path, broker_port: int) -> Path:
    cfg = workdir / "agent.toml"
    cfg.write_text(f"""# written by the demo: the agent on a simulated door
[device]
id = "demo-door"
site = "demo-center"
timezone = "Asia/Shanghai"

[storage]
state_dir = "{workdir / 'state'}"

[bins]
minutes = {BIN_MINUTES}
require_clock_sync = false

[mqtt]
host = "127.0.0.1"
port = {broker_port}
tls = false

[[beams.doors]]
name = "{DOOR}"
port = "{port}"
""")
    return cfg


class Wire:
    """Keeps the last messages seen on the broker (what the index system receives)."""

    def __init__(self, port: int) -> None:
        self.lines: list[str] = []
        self.count = 0
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="demo-wire")
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, *a: c.subscribe("footfall/v1/#", qos=1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.count += 1
        kind = msg.topic.rsplit("/", 1)[-1]
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = {}
        if kind == "bins":
            text = (f"bin {body['bin']['start_local'][11:16]} in {body['total']['in']} out {body['total']['out']}"
                    f" occ {body['occupancy']['end']} rev {body['revision']} {' '.join(body['flags'])}")
        elif kind == "status":
            text = body.get("state", "")
        elif kind == "alarm":
            text = f"{body['component']} {'ok' if body['ok'] else 'FAULT'} {body['detail']}"
        else:
            text = f"epoch {body.get('epoch')} seq {body.get('seq')}"
        self.lines = (self.lines + [f"{time.strftime('%H:%M:%S')} {kind:<7} {text}"])[-8:]

    def stop(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def view(title: str, truth: dict[str, int], status: dict | None, index: dict[str, int], wire: Wire) -> Group:
    t = Table(title=title, expand=False)
    t.add_column("")
    t.add_column("in", justify="right")
    t.add_column("out", justify="right")
    t.add_column("")
    t.add_row("simulated door (truth so far)", str(truth["in"]), str(truth["out"]), "")
    if status:
        tot = status["total_today"]
        t.add_row("agent journal (beams)", str(tot["in"]), str(tot["out"]),
                  f"occupancy {status['occupancy']}, backlog {status['outbox_backlog']}, "
                  f"mqtt {'up' if status['mqtt_connected'] else 'DOWN'}")
    else:
        t.add_row("agent journal (beams)", "-", "-", "starting")
    t.add_row("index consumer (closed bins)", str(index["in"]), str(index["out"]), f"{index['bins']} bins")
    w = Table(title=f"On the broker ({wire.count} messages)", show_header=False)
    for line in wire.lines:
        w.add_row(line)
    return Group(t, w)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="footfall demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="how long people walk through (default 3)")
    ap.add_argument("--scenario", default="single_file", help="simulator scenario (simulator/scenarios)")
    ap.add_argument("--gap", type=float, default=4.0, help="mean seconds between arrivals (default 4)")
    ap.add_argument("--workdir", help="keep journal, configs and logs here (default: a temporary folder)")
    args = ap.parse_args(argv)
    con = Console()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="footfall-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)

    sc = load_scenario(args.scenario)
    n = max(1, int(args.minutes * 60 / (args.gap + sc.people.min_gap_s)))
    crowd = people.generate(replace(sc.people, count=n, mean_gap_s=args.gap))
    edges = people.debounce(people.beam_edges(crowd, sc.door), sc.debounce_us / 1e6)
    truth = crowd.truth()

    broker = Broker(workdir / "broker")
    broker.start()
    con.print(f"Mosquitto on 127.0.0.1:{broker.port}; work folder {workdir}")
    port = workdir / "ttyDoor"
    mcu = VirtualMcu(port, edges, speedup=1.0)  # real time: the agent's bins are on the wall clock
    cfg = agent_config(workdir, port, broker.port)
    log = open(workdir / "agent.log", "ab")
    agent = subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(cfg), "run"], stdout=log, stderr=log)
    cons = IndexConsumer(ConsumerSettings(port=broker.port, replay_after_s=5), IndexStore(workdir / "index.db"))
    cons.start()
    wire = Wire(broker.port)
    status_file = workdir / "state" / "status.json"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    t_start = time.time()
    mcu.start()
    last_t = edges[-1][0] if edges else 0.0
    # the last bin holding a crossing must close (and be published) before the comparison
    end_wall = t_start + last_t + 2
    final_bin_end = math.floor(end_wall / (BIN_MINUTES * 60)) * BIN_MINUTES * 60 + BIN_MINUTES * 60 + 3

    def snapshot() -> Group:
        seen = {"in": 0, "out": 0}
        for t, direction, _ in truth:
            if t <= mcu.vt:
                seen[direction] += 1
        status = None
        if status_file.exists():
            try:
                status = json.loads(status_file.read_text())
            except ValueError:
                pass
        left = max(0, final_bin_end - time.time())
        phase = "people walking" if mcu.vt < last_t else f"waiting for the last bin to close ({left:.0f} s)"
        return view(f"footfall demo: {sc.name}, {len(truth)} passers; {phase}", seen, status, cons.store.totals(), wire)

    try:
        with Live(snapshot(), console=con, refresh_per_second=2) as live:
            while not stop.is_set() and time.time() < final_bin_end:
                if agent.poll() is not None:
                    raise RuntimeError(f"the agent exited ({agent.returncode}); see {workdir / 'agent.log'}")
                cons.request_replays()
                live.update(snapshot())
                stop.wait(0.5)
            deadline = time.time() + 20
            want = {"in": sum(d == "in" for _, d, _ in truth), "out": sum(d == "out" for _, d, _ in truth)}
            while time.time() < deadline and not stop.is_set():
                tot = cons.store.totals()
                if tot["in"] >= want["in"] and tot["out"] >= want["out"]:
                    break
                live.update(snapshot())
                stop.wait(0.5)
            live.update(snapshot())
    except KeyboardInterrupt:
        pass
    finally:
        terminate(agent)
        mcu.stop()
        cons.stop()
        wire.stop()
        broker.stop()
        log.close()
    return report(con, truth, workdir, cons)


def report(con: Console, truth: list, workdir: Path, cons: IndexConsumer) -> int:
    want = {"in": sum(d == "in" for _, d, _ in truth), "out": sum(d == "out" for _, d, _ in truth)}
    import sqlite3

    j = sqlite3.connect(f"file:{workdir / 'state' / 'journal.db'}?mode=ro", uri=True)
    journal = dict(j.execute("SELECT direction, COUNT(*) FROM crossings WHERE source = 'beam' GROUP BY 1").fetchall())
    events = j.execute("SELECT COUNT(*) FROM beam_events").fetchone()[0]
    got = cons.store.totals()
    t = Table(title="Result")
    for col in ("", "in", "out"):
        t.add_column(col)
    t.add_row("truth (simulator)", str(want["in"]), str(want["out"]))
    t.add_row(f"agent journal ({events} beam edges)", str(journal.get("in", 0)), str(journal.get("out", 0)))
    t.add_row("index consumer", str(got["in"]), str(got["out"]))
    con.print(t)
    con.print(f"duplicates dropped by the consumer: {cons.counts.get('duplicate', 0)}; "
              f"rejected: {cons.counts.get('rejected', 0)}. Files: {workdir}")
    arrived = got["in"] == journal.get("in", 0) and got["out"] == journal.get("out", 0)
    con.print("[green]every journaled crossing reached the index system exactly once[/]" if arrived
              else "[red]the index system's totals differ from the journal's[/]")
    return 0 if arrived else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
