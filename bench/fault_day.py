"""The fault day: a scenario's passers through a virtual microcontroller on a real pty,
read by a real agent process (`footfall run`) into
a real journal file, while the link is corrupted, unplugged, the board reset and the
agent SIGKILLed. Then the journal is checked, by sequence, against the board's own
record of what it emitted.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge.beam_decoder import BeamDecoder, DecoderConfig, Edge
from simulator import people
from simulator.faults import WireFaults
from simulator.processes import terminate
from simulator.scenario import Scenario
from simulator.scoring import DirectionScore
from simulator.virtual_mcu import VirtualMcu


@dataclass
class DayResult:
    passers: int
    events_emitted: int
    events_journaled: int
    lost: list[tuple[int, int]]  # (epoch, seq) emitted, not lost in a reset, not journaled
    lost_in_reset: int  # events a board reset destroyed (unacked in its RAM, never journaled)
    reported_lost: int  # what the agent reported for those (journal meta)
    doubled: int  # journal rows that match no emitted event or repeat one
    crossings: int
    crossings_replayed_match: bool  # journal crossings == a clean decode of the journaled edges
    faults_done: dict[str, int] = field(default_factory=dict)
    wire: dict[str, int] = field(default_factory=dict)
    accuracy: dict[str, DirectionScore] = field(default_factory=dict)
    wall_s: float = 0.0


def _agent_cmd(port: Path, journal: Path, door: str) -> list[str]:
    """The real agent (`footfall run`), its journal at `journal`, beams on `port`; its
    broker is unreachable on purpose (publishing is not under test here)."""
    from simulator.local_broker import free_port

    cfg = journal.parent / "agent.toml"
    cfg.write_text(
        f'[device]\nid = "sim-door"\nsite = "sim-site"\n\n[storage]\nstate_dir = "{journal.parent}"\n\n'
        f'[bins]\nminutes = 1\nrequire_clock_sync = false\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\ntls = false\n\n'
        f'[[beams.doors]]\nname = "{door}"\nport = "{port}"\n'
    )
    assert journal.name == "journal.db"
    return [sys.executable, "-m", "edge.cli", "--config", str(cfg), "run", "--log-level", "WARNING"]


def run(sc: Scenario, workdir: Path, *, passers: int | None = None, door: str = "door1",
        timeout_s: float = 600.0, log=print) -> DayResult:
    t_start = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    spec = sc.people if passers is None else replace(sc.people, count=passers)
    crowd = people.generate(spec)
    edges = people.debounce(people.beam_edges(crowd, sc.door), sc.debounce_us / 1e6)
    f = sc.faults
    wire = WireFaults(f.byte_corruption, f.drop_frame, f.truncate_frame, seed=f.seed)
    port = workdir / "ttyDoor"
    journal = workdir / "journal.db"
    mcu = VirtualMcu(port, edges, speedup=sc.speedup, faults=wire)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    agent_log = open(workdir / "agent.log", "ab")

    def spawn() -> subprocess.Popen:
        return subprocess.Popen(_agent_cmd(port, journal, door), env=env, stdout=agent_log, stderr=agent_log)

    # faults at evenly spread, interleaved points of the door's timeline
    end_vt = edges[-1][0] if edges else 0.0
    plan: list[tuple[float, str]] = []
    for kind, n in (("unplug", f.unplugs), ("reset", f.mcu_resets), ("kill", f.agent_kills)):
        plan += [(end_vt * (k + 0.5 + 0.13 * len(plan) % 0.4) / (n + 0.5), kind) for k in range(n)]
    plan.sort()
    done = {"unplug": 0, "reset": 0, "kill": 0}
    agent = spawn()
    mcu.vt_limit = plan[0][0] if plan else float("inf")
    mcu.start()
    ready_since = time.monotonic()
    try:
        while True:
            if time.monotonic() - t_start > timeout_s:
                raise TimeoutError(f"fault day not finished in {timeout_s} s: vt {mcu.vt:.0f}/{end_vt:.0f}")
            # one fault at a time: each strikes once the link has recovered from the last
            # (a board reset then loses only what was in flight, as at a real door)
            if plan and mcu.vt >= plan[0][0] and (mcu.synced and mcu.backlog == 0 or time.monotonic() - ready_since > 10):
                _, kind = plan.pop(0)
                done[kind] += 1
                if kind == "unplug":
                    mcu.unplug()
                    time.sleep(f.unplug_s)
                    mcu.plug()
                elif kind == "reset":
                    mcu.reset()
                else:
                    agent.send_signal(signal.SIGKILL)
                    agent.wait()
                    mcu.synced = False
                    agent = spawn()
                ready_since = time.monotonic()
                mcu.vt_limit = plan[0][0] if plan else float("inf")
            if not plan and mcu.done:
                break
            if agent.poll() is not None:
                raise RuntimeError(f"agent exited with {agent.returncode}; see {workdir / 'agent.log'}")
            time.sleep(0.02)
        time.sleep(1.5)  # heartbeats let the decoder settle the last pass
    finally:
        terminate(agent, 10)
        mcu.stop()
        agent_log.close()
    return check(mcu, journal, door, crowd, done, time.monotonic() - t_start)


def check(mcu: VirtualMcu, journal: Path, door: str, crowd: people.Crowd, done: dict[str, int],
          wall_s: float) -> DayResult:
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    rows = conn.execute("SELECT id, mcu_epoch, seq, beam, edge, mcu_us, t_utc FROM beam_events"
                        " WHERE door = ? ORDER BY id", (door,)).fetchall()
    emitted = {(e.epoch, e.seq): (e.beam, e.edge, e.t_us) for e in mcu.record}
    destroyed = {(e.epoch, e.seq) for e in mcu.lost_in_reset}
    seen: set[tuple[int, int]] = set()
    doubled = 0
    for _, ep, seq, beam, edge, t_us, _ in rows:
        key = (ep, seq)
        if key in seen or emitted.get(key) != (beam, edge, t_us):
            doubled += 1
        seen.add(key)
    lost = sorted(set(emitted) - destroyed - seen)
    destroyed_for_good = len((set(emitted) - seen) & destroyed)  # unacked at reset and never journaled
    reported = conn.execute("SELECT value FROM meta WHERE key = ?", (f"beams.{door}.lost_events",)).fetchone()
    got = {r[0] for r in conn.execute("SELECT source_ref FROM crossings WHERE line = ?", (door,))}
    # a clean, uninterrupted decode of the journaled edges must give exactly the same crossings
    dec = BeamDecoder(DecoderConfig(door=door))
    want = []
    for _, ep, seq, beam, edge, t_us, t_utc in rows:
        want += dec.feed(Edge(ep, seq, beam, edge, t_us, t_utc))
    want_refs = {c.source_ref for c in want}
    unsettled = not dec.idle
    counted = [(t, d) for t, d in conn.execute(
        "SELECT t_utc, direction FROM crossings WHERE line = ?", (door,))]
    conn.close()
    # host t_utc is real time, the truth is virtual: compare counts per direction only
    truth = crowd.truth()
    acc = {d: DirectionScore(d, sum(1 for _, dd, _ in truth if dd == d), sum(1 for _, dd in counted if dd == d), 0, 0)
           for d in ("in", "out")}
    return DayResult(
        passers=len(crowd.people), events_emitted=len(mcu.record), events_journaled=len(rows),
        lost=lost, lost_in_reset=destroyed_for_good, reported_lost=int(reported[0]) if reported else 0,
        doubled=doubled, crossings=len(got),
        crossings_replayed_match=(got == want_refs) or (unsettled and want_refs <= got),
        faults_done=dict(done, unplugs_seen=mcu.unplugs, resets_seen=mcu.resets),
        wire=vars(mcu.faults.stats), accuracy=acc, wall_s=wall_s)


def main() -> None:
    import argparse
    import json
    import tempfile

    from simulator.scenario import load

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="fault_day")
    ap.add_argument("--passers", type=int, default=None)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    wd = Path(args.workdir or tempfile.mkdtemp(prefix="fault_day-"))
    res = run(load(args.scenario), wd, passers=args.passers)
    out = {k: v for k, v in vars(res).items() if k not in ("accuracy", "lost")}
    out["lost_count"] = len(res.lost)
    out["counted"] = {d: s.counted for d, s in res.accuracy.items()}
    out["true"] = {d: s.true for d, s in res.accuracy.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
