"""The fault day: a scenario's passers through a virtual board on a real pty, read by a
real agent process (`footfall run`) into a real journal file and published through a
real Mosquitto to the reference consumer (`index_system.consumer`), while faults strike
at random instants of the door's timeline, whatever is in flight:

- unplugs mid-frame (half a frame on the wire, then the cable is out),
- board resets that lose the unacknowledged events in the board's RAM,
- SIGKILLs of the agent process (a new process is started at once),
- SIGKILLs of the broker (restarted on the same port after `broker_down_s`),
- a full disk: the agent's state directory is a small tmpfs (mounting one needs root),
  filled to the last byte with a ballast file for `disk_full_s`, then freed,
- clock steps: the agent's wall clock stepped forward or back (seconds to hours, as NTP
  steps a device's clock; `bench/stepped_clock.py`), its monotonic clock untouched,
- byte corruption both ways, dropped and truncated frames, all day.

The seed of a run is drawn at start and printed; `--seed` replays it. Then the journal is
checked, by sequence, against the board's own record of what it emitted, the crossings
against a clean decode of the journaled edges, and the consumer's bins against the
agent's last revision of each bin.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from bench.stepped_clock import write_offset
from edge.beam_decoder import BeamDecoder, DecoderConfig, Edge
from index_system.consumer import ConsumerSettings, IndexConsumer, IndexStore
from index_system.intake import IntakeLimits
from simulator import people
from simulator.faults import WireFaults
from simulator.local_broker import Broker
from simulator.processes import terminate
from simulator.scenario import Scenario
from simulator.scoring import DirectionScore
from simulator.virtual_mcu import VirtualMcu

KINDS = ("unplug", "reset", "kill", "broker", "disk_full", "clock")
STATE_FS_MB = 64  # the agent's state directory: a day's journal fits with room to spare
RING = 96
BOARD_AHEAD_S = 30 * 86400  # the virtual board's clock runs `speedup` times real time
IN_FLIGHT_WAIT_S = 1.0  # after its instant, a fault waits at most this long for events in flight
STEP_MIN_S = 1.0  # clock steps: sizes log-uniform in [STEP_MIN_S, the scenario's clock_step_max_s]
MAX_OFFSET_S = 86400.0  # the agent's clock stays within a day of the truth (the consumer takes 2 days ahead)


@dataclass
class DayResult:
    seed: int
    passers: int
    events_emitted: int
    events_journaled: int
    lost: list[tuple[int, int]]  # (epoch, seq) emitted, not lost in a reset, not journaled
    lost_in_reset: int  # events a board reset destroyed (unacked in its RAM, never journaled)
    reported_lost: int  # what the agent reported for those (journal meta)
    doubled: int  # journal rows that match no emitted event or repeat one
    crossings: int
    crossings_replayed_match: bool  # journal crossings == a clean decode of the journaled edges
    bins_agent: int = 0  # bins the agent made
    bins_at_consumer_latest: int = 0  # of those, at the consumer at the agent's last revision
    consumer_totals_match: bool = False  # consumer in/out totals == the journal's beam crossings
    messages_missing_mid: int = 0  # published (PUBACKed), missing at the consumer, before a later one it has
    messages_missing_tail: int = 0  # same, after the last one it has of that outbox epoch (undetectable there)
    faults_done: dict[str, int] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)  # faults that struck with events unacked on the board
    wire: dict[str, int] = field(default_factory=dict)
    accuracy: dict[str, DirectionScore] = field(default_factory=dict)
    clock_steps: list[float] = field(default_factory=list)  # the steps made, seconds (+ forward, - back)
    wall_s: float = 0.0


def _agent_cmd(port: Path, state: Path, door: str, mqtt_port: int, clock_file: Path | None = None) -> list[str]:
    """The real agent (`footfall run`), its state in `state`, beams on `port`; with
    `clock_file`, its wall clock stepped by the offset that file holds."""
    cfg = state / "agent.toml"
    cfg.write_text(
        f'[device]\nid = "sim-door"\nsite = "sim-site"\n\n[storage]\nstate_dir = "{state}"\n\n'
        f'[bins]\nminutes = 1\nrequire_clock_sync = false\nlines = ["{door}"]\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\ntls = false\n\n'
        f'[[beams.doors]]\nname = "{door}"\nport = "{port}"\n'
        f'board_time_ahead_s = {BOARD_AHEAD_S}\n'
    )
    entry = ["-m", "edge.cli"] if clock_file is None else ["-m", "bench.stepped_clock", str(clock_file)]
    return [sys.executable, *entry, "--config", str(cfg), "run", "--log-level", "WARNING"]


def plan_faults(rng: random.Random, end_vt: float, counts: dict[str, int]) -> list[tuple[float, str]]:
    """Fault instants, uniform over the door's timeline (not on quiet moments)."""
    plan = [(rng.uniform(0.02, 0.98) * end_vt, kind) for kind, n in counts.items() for _ in range(n)]
    return sorted(plan)


def plan_clock_steps(rng: random.Random, n: int, max_s: float) -> list[float]:
    """`n` steps, half forward and half back in a random order, sizes log-uniform in
    [STEP_MIN_S, max_s]; a step that would take the clock more than MAX_OFFSET_S from
    the truth goes the other way. The last step goes forward, at least to the highest
    offset of the day: after a step back the agent closes no new bin until its clock
    passes the bins it already closed, so it publishes nothing new, and a message tail
    that a broker SIGKILL lost after its PUBACK would stay unseen at the consumer (which
    learns an epoch's end only from a later message or birth) for the rest of the day;
    docs/RELIABILITY.md, "Door link"."""
    signs = [1.0] * ((n + 1) // 2) + [-1.0] * (n // 2)
    rng.shuffle(signs)
    if signs:
        signs.remove(1.0)
        signs.append(1.0)
    steps, offset, peak = [], 0.0, 0.0
    for i, sign in enumerate(signs):
        size = math.exp(rng.uniform(math.log(STEP_MIN_S), math.log(max(STEP_MIN_S, max_s))))
        step = sign * size if abs(offset + sign * size) <= MAX_OFFSET_S else -sign * size
        if i == n - 1:
            step = max(step, peak - offset + STEP_MIN_S)
        offset += step
        peak = max(peak, offset)
        steps.append(step)
    return steps


def run(sc: Scenario, workdir: Path, *, passers: int | None = None, per_kind: int | None = None,
        kinds: tuple[str, ...] = KINDS, seed: int | None = None, door: str = "door1", timeout_s: float = 900.0,
        log: Callable[[str], None] = print) -> DayResult:
    """One fault day; `per_kind` overrides the scenario's count of each fault; only
    `kinds` strike (wire faults always do)."""
    t_start = time.monotonic()
    seed = random.SystemRandom().randrange(2**32) if seed is None else seed
    log(f"fault day seed {seed} (replay: python -m bench.fault_day --seed {seed})")
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    spec = replace(sc.people, seed=rng.randrange(2**31), **({} if passers is None else {"count": passers}))
    crowd = people.generate(spec)
    edges = people.debounce(people.beam_edges(crowd, sc.door), sc.debounce_us / 1e6)
    f = sc.faults
    wire = WireFaults(f.byte_corruption, f.drop_frame, f.truncate_frame, seed=rng.randrange(2**31))
    counts = {"unplug": f.unplugs, "reset": f.mcu_resets, "kill": f.agent_kills, "broker": f.broker_kills,
              "disk_full": f.disk_fulls, "clock": f.clock_steps}
    if per_kind is not None:
        counts = dict.fromkeys(KINDS, per_kind)
    counts = {k: (n if k in kinds else 0) for k, n in counts.items()}
    port = workdir / "ttyDoor"
    state = workdir / "state"
    state.mkdir(exist_ok=True)
    mounted = counts["disk_full"] > 0 and _mount_tmpfs(state, STATE_FS_MB)
    if counts["disk_full"] and not mounted:
        counts["disk_full"] = 0
        log("fault day: NO disk-full faults (mounting a tmpfs for the state directory needs root)")
    journal = state / "journal.db"
    clock_file = workdir / "clock_offset" if counts["clock"] else None
    steps = plan_clock_steps(rng, counts["clock"], f.clock_step_max_s)
    offset = 0.0
    if clock_file is not None:
        write_offset(clock_file, offset)
    broker = Broker(workdir / "broker")
    broker.start()
    # The board's clock runs `speedup` times real time, so a minute of agent time holds that
    # many minutes of passers: the consumer's plausibility cap scales with it (it is not what
    # this day tests; tests/test_index_hostile.py does).
    limits = IntakeLimits(door_per_minute=int(IntakeLimits.door_per_minute * max(1.0, sc.speedup)))
    consumer = IndexConsumer(ConsumerSettings(port=broker.port, replay_after_s=1.0, replay_every_s=2.0),
                             IndexStore(workdir / "index.db", limits))
    consumer.start()
    # the reference firmware's ring (96): the board's clock holds at half of it while the
    # agent is away, so a reset loses at most what a real board would hold
    mcu = VirtualMcu(port, edges, speedup=sc.speedup, faults=wire, ring_capacity=RING)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    agent_log = open(workdir / "agent.log", "ab")

    def spawn() -> subprocess.Popen:
        return subprocess.Popen(_agent_cmd(port, state, door, broker.port, clock_file), env=env, stdout=agent_log, stderr=agent_log)

    end_vt = edges[-1][0] if edges else 0.0
    plan = plan_faults(rng, end_vt, counts)
    done = dict.fromkeys(KINDS, 0)
    in_flight = dict.fromkeys(KINDS, 0)
    agent = spawn()
    mcu.start()
    asked = time.monotonic()
    try:
        while True:
            if time.monotonic() - asked >= 1.0:  # as the consumer's run_forever does: holes are
                asked = time.monotonic()  # asked for while the day runs, not only once it ends
                consumer.request_replays()
            if time.monotonic() - t_start > timeout_s:
                raise TimeoutError(f"fault day not finished in {timeout_s} s: vt {mcu.vt:.0f}/{end_vt:.0f}")
            while plan and mcu.vt >= plan[0][0]:  # strike now, whatever the link is doing
                _, kind = plan.pop(0)
                done[kind] += 1
                in_flight[kind] += _until_in_flight(mcu)
                if kind == "unplug":
                    mcu.unplug(mid_frame=True)
                    time.sleep(f.unplug_s)
                    mcu.plug()
                elif kind == "reset":
                    mcu.reset()
                elif kind == "clock":
                    assert clock_file is not None
                    offset += steps[done["clock"] - 1]
                    write_offset(clock_file, offset)
                elif kind == "kill":
                    agent.send_signal(signal.SIGKILL)
                    agent.wait()
                    agent = spawn()
                elif kind == "broker":
                    broker.stop(kill=True)
                    time.sleep(f.broker_down_s)
                    broker.start()
                else:
                    _fill(state / "ballast")
                    time.sleep(f.disk_full_s)
                    (state / "ballast").unlink()
            if not plan and mcu.done:
                break
            if agent.poll() is not None:
                raise RuntimeError(f"agent exited with {agent.returncode}; see {workdir / 'agent.log'}")
            time.sleep(0.01)
        time.sleep(2.0)  # heartbeats let the decoder settle the last pass
        bins = _wait_for_consumer(journal, workdir / "index.db", consumer, timeout_s=90.0)
    finally:
        terminate(agent, 10)
        mcu.stop()
        consumer.stop()
        broker.stop()
        agent_log.close()
        if mounted:
            _copy_out_and_unmount(state)
    res = check(mcu, journal, door, crowd, done, time.monotonic() - t_start)
    res.seed = seed
    res.in_flight = in_flight
    res.clock_steps = steps[:done["clock"]]
    res.bins_agent, res.bins_at_consumer_latest, res.consumer_totals_match = bins
    res.messages_missing_mid, res.messages_missing_tail = _missing_at_consumer(journal, workdir / "index.db")
    return res


def _unsent(journal: Path) -> int:
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_utc IS NULL").fetchone()[0]
    finally:
        conn.close()


def _missing_at_consumer(journal: Path, index_db: Path) -> tuple[int, int]:
    """Messages the agent published (broker PUBACKed) that the consumer lacks: (in the
    middle of an outbox epoch, at its tail). A tail loss (the broker SIGKILLed after its
    PUBACK, before delivering or saving) shows in no later seq of that epoch; the next
    boot's birth names the epoch's last seq, so the consumer asks for it too."""
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    sent = set(conn.execute("SELECT epoch, seq FROM outbox WHERE sent_utc IS NOT NULL"))
    conn.close()
    conn = sqlite3.connect(f"file:{index_db}?mode=ro", uri=True)
    got = set(conn.execute("SELECT epoch, seq FROM messages"))
    conn.close()
    top: dict[int, int] = {}
    for e, q in got:
        top[e] = max(q, top.get(e, 0))
    missing = sent - got
    tail = sum(q > top.get(e, 0) for e, q in missing)
    return len(missing) - tail, tail


def can_fill_a_disk(scratch: Path) -> bool:
    """Whether this machine lets the fault day mount a tmpfs (root, and a kernel that
    lets this container mount): the full-disk fault needs it."""
    scratch.mkdir(parents=True, exist_ok=True)
    if not _mount_tmpfs(scratch, 1):
        return False
    subprocess.run(["umount", str(scratch)], check=False)
    return True


def _mount_tmpfs(path: Path, mb: int) -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _copy_out_and_unmount(state: Path) -> None:
    """Keep the journal for the checks (and a person), give the tmpfs back."""
    import shutil

    keep = state.with_name("state.tmp")
    shutil.copytree(state, keep, ignore=shutil.ignore_patterns("ballast"), dirs_exist_ok=True)
    subprocess.run(["umount", "-l", str(state)], check=False)
    shutil.copytree(keep, state, dirs_exist_ok=True)
    shutil.rmtree(keep)


def _fill(path: Path) -> None:
    """Write until the filesystem has no byte left (ENOSPC)."""
    with open(path, "wb", buffering=0) as f:  # unbuffered: nothing left to flush at close
        for size in (1 << 20, 4096, 512, 1):
            try:
                while f.write(b"\0" * size):
                    pass
            except OSError:
                pass


def _until_in_flight(mcu: VirtualMcu) -> bool:
    """Wait (briefly) for a moment with events emitted and not yet acknowledged: the
    instant a fault strikes is random, but it must find the link busy."""
    end = time.monotonic() + IN_FLIGHT_WAIT_S
    while mcu.backlog == 0 and time.monotonic() < end and not mcu.done:
        time.sleep(0.0005)
    return mcu.backlog > 0


def _agent_bins(journal: Path) -> dict[float, int]:
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT start_utc, revision FROM bin_state"))
    finally:
        conn.close()


def _wait_for_consumer(journal: Path, index_db: Path, consumer: IndexConsumer,
                       timeout_s: float) -> tuple[int, int, bool]:
    """Until every bin the agent made is at the consumer at its last revision, the totals
    agree and no message the agent sent is missing there (a hole in seq, or an epoch's tail
    that the next birth names: both are asked for again), or timeout:
    (bins made, bins at the consumer at their last revision, consumer totals == journal)."""
    from contract.timebins import iso_utc

    deadline = time.monotonic() + timeout_s
    while True:
        consumer.request_replays()
        agent = _agent_bins(journal)
        with consumer.store.lock:
            got = dict(consumer.store.conn.execute("SELECT start_utc, revision FROM bins"))
        latest = sum(got.get(iso_utc(start)) == rev for start, rev in agent.items())
        conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        binned_to = conn.execute("SELECT MAX(start_utc) FROM bin_state").fetchone()[0] or 0.0
        truth = dict(conn.execute("SELECT direction, COUNT(*) FROM crossings WHERE t_utc < ? + 60 GROUP BY 1",
                                  (binned_to,)))
        conn.close()
        totals = consumer.store.totals()
        match = (totals["in"], totals["out"]) == (truth.get("in", 0), truth.get("out", 0))
        settled = latest == len(agent) and match and _missing_at_consumer(journal, index_db) == (0, 0)
        if settled or time.monotonic() > deadline:
            return len(agent), latest, match
        time.sleep(0.5)


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
        seed=0, passers=len(crowd.people), events_emitted=len(mcu.record), events_journaled=len(rows),
        lost=lost, lost_in_reset=destroyed_for_good, reported_lost=int(reported[0]) if reported else 0,
        doubled=doubled, crossings=len(got),
        crossings_replayed_match=(got == want_refs) or (unsettled and want_refs <= got),
        faults_done=dict(done, unplugs_seen=mcu.unplugs, resets_seen=mcu.resets),
        wire=vars(mcu.faults.stats), accuracy=acc, wall_s=wall_s)


def main() -> None:
    import argparse
    import tempfile

    from simulator.scenario import load

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="fault_day")
    ap.add_argument("--passers", type=int, default=None)
    ap.add_argument("--per-kind", type=int, default=None, help="faults of each kind (default: the scenario's)")
    ap.add_argument("--seed", type=int, default=None, help="replay a run (default: drawn and printed)")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"faults that strike (default: all of {','.join(KINDS)})")
    ap.add_argument("--clock-step-max-s", type=float, default=None,
                    help="largest clock step, s (default: the scenario's; tests/test_beam_day.py uses 1800)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    wd = Path(args.workdir or tempfile.mkdtemp(prefix="fault_day-"))
    sc = load(args.scenario)
    if args.clock_step_max_s is not None:
        sc = replace(sc, faults=replace(sc.faults, clock_step_max_s=args.clock_step_max_s))
    res = run(sc, wd, passers=args.passers, per_kind=args.per_kind, seed=args.seed,
              kinds=tuple(args.kinds.split(",")))
    out = {k: v for k, v in vars(res).items() if k not in ("accuracy", "lost")}
    out["lost_count"] = len(res.lost)
    out["counted"] = {d: s.counted for d, s in res.accuracy.items()}
    out["true"] = {d: s.true for d, s in res.accuracy.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
