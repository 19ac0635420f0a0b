"""The demo: a compressed opening day at one door, the agent's real parts on the simulator's
virtual clock, published through a local Mosquitto to the reference index consumer.

    footfall demo [--passers 30] [--seed N] [--workdir DIR]

The world (`simulator.day`): people arriving over the opening hours (08:00-20:00, a
morning and an afternoon peak, some two or three abreast), leavers pressing the exit
keypad. The door is sensed twice: the agent's beam decoder on the simulated beam edges,
and the camera path (composed scenes of real walkers through the shipped ONNX detector,
the tracker and the counting line, at 5 frames a second). The agent (`edge.agent.Agent`:
journal thread, fusion, binner, day summary, outbox, paho publisher) runs on a
`VirtualClock`, so a day of 15-minute bins passes in seconds; each hour is fed to it as its
virtual time comes.
Mosquitto and the consumer are real and run in real time. The screen shows the door's
truth, each source's count, the fused count and what the consumer holds; at the end the
day summary's figures, the device and the consumer compared, and the day report PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time as dtime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from contract.day_summary import per_thousand
from contract.ratings import Press, bad_share, good_levels
from edge.agent import Agent
from edge.clock import VirtualClock
from edge.config import AgentConfig, load as load_config
from edge.crossing import Crossing
from index_system.consumer import ConsumerSettings, IndexConsumer, IndexStore
from simulator.day import Segment, opening_day
from simulator.local_broker import Broker
from simulator.raters import RaterSpec, rate
from simulator.scenario import load as load_scenario

DOOR = "door1"
DEVICE, SITE = "demo-door", "demo-center"
ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 6, 1)  # a Monday
CAPACITY, RESIDENTS, LEVELS = 25, 12_000, 4
HOURS = "08:00-20:00"
STEP_S = 60.0  # virtual seconds per agent tick
CAMERA_FPS = 5.0  # a Pi-class detector rate ([camera] max_fps below); the detector is the demo's slow part
CAMERA_WINDOW_S = 3.0  # run the detector while a walker in view is within 3 s of the line


def agent_config(workdir: Path, broker_port: int) -> Path:
    """The agent.toml of the demo: fused counts are primary, the keypad has 4 buttons."""
    cfg = workdir / "agent.toml"
    week = "\n".join(f'{d} = "{HOURS}"' for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    cfg.write_text(f"""# written by the demo: one door, beams + camera fused, an exit keypad
[device]
id = "{DEVICE}"
site = "{SITE}"
timezone = "{ZONE.key}"

[storage]
state_dir = "{workdir / 'state'}"

[bins]
minutes = 15
primary_source = "fused"
require_clock_sync = false

[site]
capacity = {CAPACITY}
residents = {RESIDENTS}

[site.opening_hours]
{week}

[mqtt]
host = "127.0.0.1"
port = {broker_port}
tls = false

[beams]
rating_levels = {LEVELS}

[[beams.doors]]
name = "{DOOR}"
port = "/dev/null"

[camera]
enabled = true
max_fps = {CAMERA_FPS}

[[camera.lines]]
name = "{DOOR}"
p1 = [1, 1]
p2 = [1, 100]
inside = [50, 50]

[fusion]
enabled = true
lag_s = 5

[[fusion.pairs]]
door = "{DOOR}"
""")
    return cfg


@dataclass
class Sensed:
    """What the door's two sensors and its keypad gave for the day so far, and the truth."""

    truth: list[tuple[float, str]] = field(default_factory=list)  # (t_utc, direction)
    beam: int = 0
    camera: int = 0
    presses: int = 0
    rated: dict[int, int] = field(default_factory=dict)  # level -> people who rated (truth)
    sensing_s: float = 0.0  # wall seconds in the sensing paths (the camera's detector, mostly)


def shifted(cs: list[Crossing], t0: float, tag: str) -> list[Crossing]:
    """A segment's crossings on the day's UTC time line, with refs unique over the day."""
    return [replace(c, t_utc=t0 + c.t_utc, line=DOOR, source_ref=f"{c.source_ref}:{tag}") for c in cs]


def sense(seg: Segment, day_start: float, sc, detector, bank, seed: int, seq0: int
          ) -> tuple[list[Crossing], list[Crossing], list[Press], list[tuple[float, str]], dict[int, int]]:
    """Both sensing paths and the keypad on one hour's passers (the camera is the slow part)."""
    from bench.fusion_accuracy import beam_crossings, camera_crossings

    t0 = day_start + seg.offset_s
    tag = f"h{seg.hour}"
    beam = shifted(beam_crossings(seg.crowd, sc), t0, tag)
    camera = shifted(camera_crossings(seg.crowd, detector, bank, fps=CAMERA_FPS, seed=seed, window_s=CAMERA_WINDOW_S),
                     t0, tag)
    presses, truth = rate(seg.crowd, RaterSpec(levels=LEVELS, weights=(0.04, 0.08, 0.38, 0.5), share=0.4, seed=seed))
    keyed = [Press(1, seq0 + i, k, lv, int((seg.offset_s + t) * 1e6), t0 + t) for i, (t, k, lv) in enumerate(presses)]
    return beam, camera, keyed, [(day_start + t, d) for t, d in seg.truth()], dict(truth.counts)


def journal_counts(agent: Agent) -> dict[str, dict[str, int]]:
    """Crossings per source and direction in the agent's journal."""
    rows = agent.writer.call(lambda j: j.conn.execute(
        "SELECT source, direction, COUNT(*) FROM crossings GROUP BY 1, 2").fetchall())
    out = {s: {"in": 0, "out": 0} for s in ("beam", "camera", "fused")}
    for source, direction, n in rows:
        out[source][direction] = n
    return out


def view(clock: VirtualClock, phase: str, s: Sensed, counts: dict[str, dict[str, int]], index: dict[str, int],
         status: dict) -> Group:
    now = datetime.fromtimestamp(clock.wall(), ZONE)
    seen = {d: sum(1 for t, x in s.truth if x == d and t <= clock.wall()) for d in ("in", "out")}
    t = Table(title=f"footfall demo: {SITE}, {now:%a %Y-%m-%d %H:%M} (virtual clock); {phase}")
    for col in ("", "in", "out"):
        t.add_column(col, justify="right" if col else "left")
    t.add_row("the door (simulator's truth)", str(seen["in"]), str(seen["out"]))
    t.add_row("beams (decoder on the beam edges)", str(counts["beam"]["in"]), str(counts["beam"]["out"]))
    t.add_row("camera (detector, tracker, line)", str(counts["camera"]["in"]), str(counts["camera"]["out"]))
    t.add_row("[bold]fused[/] (the primary count)", str(counts["fused"]["in"]), str(counts["fused"]["out"]))
    t.add_row("index consumer (closed bins, via MQTT)", str(index["in"]), str(index["out"]))
    info = (f"occupancy {status.get('occupancy', '-')} (capacity {CAPACITY}); keypad presses {s.presses}; "
            f"outbox backlog {status.get('outbox_backlog', '-')}; "
            f"broker {'up' if status.get('mqtt_connected') else 'down'}; consumer holds {index['bins']} bins")
    return Group(t, info)


def run_day(con: Console, workdir: Path, passers: int, seed: int) -> int:
    from bench.fusion_accuracy import sprite_bank
    from edge.detector import OnnxDetector

    sc = load_scenario("abreast_mix")
    segments = opening_day(passers, sc.people, seed)
    broker = Broker(workdir / "broker")
    broker.start()
    cfg_path = agent_config(workdir, broker.port)
    cfg: AgentConfig = load_config(cfg_path)
    day_start = datetime.combine(DAY, dtime(0), ZONE).timestamp()
    clock = VirtualClock(day_start)
    agent = Agent(cfg, clock=clock)
    cons = IndexConsumer(ConsumerSettings(port=broker.port, replay_after_s=2), IndexStore(workdir / "index.db"))
    sensed = Sensed()
    t_wall = time.monotonic()
    try:
        con.print(f"Mosquitto on 127.0.0.1:{broker.port}; work folder {workdir}; seed {seed} "
                  f"(again: footfall demo --seed {seed} --passers {passers})")
        con.print("loading the camera's walkers (cut from real footage, checked by the detector) ...")
        t_bank = time.monotonic()
        bank = sprite_bank()
        t_bank = time.monotonic() - t_bank
        detector = OnnxDetector("ssdlite_person", threads=2)
        cons.start()
        agent.open()
        assert agent.publisher is not None
        agent.publisher.start()

        def refresh(live: Live, phase: str) -> None:
            try:  # what `footfall status` reads: the agent writes it every tick
                status = json.loads(cfg.storage.status_path.read_text())
            except (OSError, ValueError):
                status = {}
            live.update(view(clock, phase, sensed, journal_counts(agent), cons.store.totals(), status))

        def advance_to(t_utc: float, live: Live, phase: str) -> None:
            while clock.wall() < t_utc:
                clock.advance(min(STEP_S, t_utc - clock.wall()))
                agent.tick()
                cons.request_replays()
            refresh(live, phase)

        with Live(console=con, refresh_per_second=4, transient=False) as live:
            seq = 1
            for seg in segments:
                advance_to(day_start + seg.offset_s, live, f"{seg.hour:02d}:00, the camera sees this hour's people")
                t_cam = time.monotonic()
                beam, camera, presses, truth, rated = sense(seg, day_start, sc, detector, bank, seed + seg.hour, seq)
                sensed.sensing_s += time.monotonic() - t_cam
                seq += len(presses)
                sensed.truth += truth
                sensed.beam += len(beam)
                sensed.camera += len(camera)
                sensed.presses += len(presses)
                for lv, n in rated.items():
                    sensed.rated[lv] = sensed.rated.get(lv, 0) + n
                agent.writer.add_crossings(beam + camera)
                agent.writer.add_ratings(DOOR, presses, repeat_s=cfg.beams.rating_repeat_s, levels=LEVELS)
                advance_to(min(day_start + (seg.hour + 1) * 3600, max(day_start + seg.offset_s + 60,
                                                                   max((t for t, _ in truth), default=0) + 60)),
                           live, f"{seg.hour:02d}:00 counted")
            closing = datetime.combine(DAY + timedelta(days=1), dtime(4, 30), ZONE).timestamp()
            advance_to(closing, live, "closed; the night, then the day summary at the 04:00 re-base")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and cons.store.received_summary(DEVICE, DAY) is None:
                agent.tick()
                cons.request_replays()
                time.sleep(0.2)
            want = journal_counts(agent)["fused"]
            while time.monotonic() < deadline and (cons.store.totals()["in"], cons.store.totals()["out"]) != (
                    want["in"], want["out"]):
                agent.tick()
                cons.request_replays()
                time.sleep(0.2)
            refresh(live, "day over")
        con.print()
        counts = journal_counts(agent)
    finally:
        agent.stopping.set()
        try:
            agent.stop()
        finally:
            cons.stop()
            broker.stop()
    con.print(f"wall time: walkers {t_bank:.0f} s, sensing (camera + beams) {sensed.sensing_s:.0f} s, "
              f"the whole day {time.monotonic() - t_wall:.0f} s")
    png = workdir / f"report-{DEVICE}-{DAY.isoformat()}.png"
    rep = subprocess.run([sys.executable, "-m", "edge.cli", "--config", str(cfg_path), "report", "--day",
                          DAY.isoformat(), "--out", str(png)], capture_output=True, text=True, timeout=120)
    return report(con, sensed, counts, cons.store, png if rep.returncode == 0 else None, rep.stderr,
                  time.monotonic() - t_wall)


def report(con: Console, s: Sensed, counts: dict[str, dict[str, int]], store: IndexStore, png: Path | None,
           png_err: str, wall_s: float) -> int:
    """The day's result: sources against the truth, the day summary's figures, device vs consumer."""
    want = {d: sum(1 for _, x in s.truth if x == d) for d in ("in", "out")}
    t = Table(title="The day at the door")
    for col in ("", "in", "out"):
        t.add_column(col, justify="right" if col else "left")
    t.add_row("truth (simulator)", str(want["in"]), str(want["out"]))
    for src in ("beam", "camera", "fused"):
        t.add_row(src, str(counts[src]["in"]), str(counts[src]["out"]))
    got = store.totals()
    t.add_row("index consumer (bins received)", str(got["in"]), str(got["out"]))
    con.print(t)

    received = store.received_summary(DEVICE, DAY)
    recomputed = store.recompute_summary(DEVICE, DAY)
    from index_system.cli import ENVELOPE, why_not

    figures = None if received is None else {k: v for k, v in received.items() if k not in ENVELOPE}
    agree = figures is not None and figures == recomputed
    if received is None:
        con.print("[red]the consumer received no day summary[/]")
        return 1
    r = received
    f = Table(title=f"Day summary of {DAY} (as the device sent it, source {r['source']})", show_header=False)
    f.add_column("figure")
    f.add_column("value", justify="right")
    f.add_column("check")
    v_in = r["visits"]["in"]
    f.add_row("visits in / out", f"{v_in} / {r['visits']['out']}", f"truth {want['in']} / {want['out']}")
    ph = r["peak_hour"]
    f.add_row("peak hour", "-" if ph is None else f"{ph['start_local'][11:16]} ({ph['in']} in)", "")
    po = r["peak_occupancy"]
    f.add_row("peak occupancy", f"{po['value']} at {(po['at_local'] or '-')[11:16]}", f"capacity {CAPACITY}")
    u = r["usage_rate"]
    f.add_row("usage rate (mean / peak, opening hours)", "-" if u is None else f"{u['mean']:.1%} / {u['peak']:.1%}", "")
    g = r.get("gathering_rate")
    f.add_row("gathering rate (visits per 1,000 residents)", "-" if g is None else f"{g['per_1000']:.2f}",
              f"truth {per_thousand(want['in'], RESIDENTS):.2f} ({RESIDENTS} residents)")
    rt = r.get("ratings") or {}
    true_good = sum(n for lv, n in s.rated.items() if lv in good_levels(LEVELS))
    true_n = sum(s.rated.values())
    sat, bad = rt.get("satisfaction_share"), bad_share(rt.get("counts", {}), LEVELS)
    f.add_row("satisfaction share (good ratings)", "-" if sat is None else f"{sat:.1%}",
              f"truth {true_good / true_n:.1%} of {true_n} raters" if true_n else "")
    f.add_row("bad-rating share", "-" if bad is None else f"{bad:.1%}", "")
    rr = rt.get("response_rate")
    f.add_row("response rate (ratings per visit out)", "-" if rr is None else f"{rr:.1%}",
              f"{rt.get('counted', 0)} counted, {rt.get('repeats', 0)} repeat presses dropped")
    c = r["completeness"]
    f.add_row("completeness (healthy bins)", f"{c['share']:.0%}", f"{c['healthy_bins']} of {c['expected_bins']}")
    con.print(f)
    if agree:
        con.print("[green]device and consumer agree: the summary received equals the consumer's recomputation "
                  "from the bins it stored[/]")
    else:
        con.print("[red]device and consumer differ:[/] " + "; ".join(why_not(figures, recomputed, time.time())))
    arrived = (got["in"], got["out"]) == (counts["fused"]["in"], counts["fused"]["out"])
    con.print(("[green]every fused crossing the device binned reached the index system exactly once[/]" if arrived
               else "[red]the index system's totals differ from the device's fused counts[/]"))
    con.print(f"day report: {png}" if png else f"[red]no day report[/]: {png_err.strip()[-500:]}")
    con.print(f"(the day took {wall_s:.0f} s of wall time)")
    return 0 if agree and arrived and png else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="footfall demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--passers", type=int, default=30, help="people through the door over the day (default 30)")
    ap.add_argument("--seed", type=int, help="draws the day (default: a fresh one, printed)")
    ap.add_argument("--workdir", help="keep journal, configs, the report and the index store here (default: a temporary folder)")
    args = ap.parse_args(argv)
    if not 1 <= args.passers <= 2000:
        ap.error("--passers must be 1..2000")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10_000)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="footfall-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    import logging  # the agent's and the consumer's log go to a file beside the journal, not over the live view

    logging.basicConfig(filename=workdir / "agent.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run_day(Console(), workdir, args.passers, seed)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
